"""The merge on a CUDA device gives what the CPU gives (skipped where torch sees no CUDA GPU).

CI has no GPU; these run on a machine with one (``python -m pytest tests/test_merge_cuda.py``).
"""

from __future__ import annotations

import pytest
import torch
from test_merge_support import dense, make_modules, names, params, rel_err, truncated, write

from difflora_gui.errors import UserError
from difflora_gui.lora.reader import open_lora
from difflora_gui.merge.engine import run_merge
from difflora_gui.merge.runtime import resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ATTN = [n for n in names() if ".ffn." not in n]


def _read(path):
    with open_lora(path) as lora:
        return {n: lora.load(n) for n in lora.names()}


@pytest.fixture
def pair(tmp_path):
    a = write(
        tmp_path / "a.safetensors", make_modules(1, rank=16, alpha=1.0), format="musubi", dtype="bfloat16"
    )
    b = write(tmp_path / "b.safetensors", make_modules(2, rank=32, alpha=None), dtype="float16")
    return a, b


def test_cuda_device_names_resolve():
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("CUDA:0") == torch.device("cuda", 0)
    missing = torch.cuda.device_count()
    with pytest.raises(UserError, match=f"no CUDA device {missing}"):
        resolve_device(f"cuda:{missing}")


@pytest.mark.parametrize("strategy", ["full_svd", "randomized_svd", "magnitude_filter"])
def test_cuda_merge_matches_the_cpu_merge(tmp_path, pair, strategy):
    a, b = pair
    outputs = {}
    for device in ("cpu", "cuda"):
        folder = tmp_path / device
        folder.mkdir()
        extra = (
            {"strategy_params": {"magnitude_filter": {"top_k_layers": 10}}}
            if strategy == "magnitude_filter"
            else {}
        )
        result = run_merge(
            params(
                folder,
                a,
                b,
                targets="attn",
                rank=4,
                device=device,
                strategy=strategy,
                save_dtype="float32",
                **extra,
            ),
            keep_analysis=True,
        )
        outputs[device] = (result, _read(folder / "out.safetensors"))
    (cpu_result, cpu_out), (cuda_result, cuda_out) = outputs["cpu"], outputs["cuda"]
    assert (cuda_result.merged, cuda_result.nullified) == (cpu_result.merged, cpu_result.nullified)
    assert set(cuda_out) == set(cpu_out)
    ins_a, ins_b = _read(a), _read(b)
    merged = [r.name for r in cpu_result.analysis.rows if r.status == "merged"]
    # randomized SVD is an estimate (its own error is ~1e-3): CPU and GPU agree to its float32 noise
    tolerance = 1e-4 if strategy == "randomized_svd" else 1e-5
    for name in ATTN:
        got = cuda_out[name].delta(torch.float64)
        assert got.device.type == "cpu"
        if name not in merged:  # left out by the filter: zero on both devices
            assert not got.any() and not cpu_out[name].delta(torch.float64).any()
            continue
        assert rel_err(got, cpu_out[name].delta(torch.float64)) <= tolerance, name
        if strategy == "full_svd":
            expected = truncated(dense(ins_a[name]) - dense(ins_b[name]), 4)
            assert rel_err(got, expected) <= 1e-5, name


def test_cuda_merge_of_dense_inputs(tmp_path):
    """Full-weight (.diff) inputs take the dense SVD path on the GPU."""
    only = ["blocks.0.self_attn.q", "blocks.1.cross_attn.o"]
    modules_a = make_modules(3, rank=8, only=only)
    dense_b = make_modules(4, rank=8, only=only)
    for module in dense_b:  # B stores its ΔW as a full-weight difference
        module.dense, module.up, module.down, module.kind = module.delta(torch.float32), None, None, "diff"
    a = write(tmp_path / "a.safetensors", modules_a)
    b = write(tmp_path / "b.safetensors", dense_b)
    run_merge(params(tmp_path, a, b, rank=4, device="cuda", save_dtype="float32"))
    out = _read(tmp_path / "out.safetensors")
    for module_a, module_b in zip(modules_a, dense_b, strict=True):
        expected = truncated(module_a.delta(torch.float64) - module_b.dense.to(torch.float64), 4)
        assert rel_err(out[module_a.name].delta(torch.float64), expected) <= 1e-5
