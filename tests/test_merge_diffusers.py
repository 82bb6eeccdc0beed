"""A merged LoRA loads into a (tiny, config-built) diffusers WanTransformer3DModel and applies exactly ΔW_out."""

from __future__ import annotations

import os

import pytest
import torch

from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.wan_layout import tiny_transformer_config, to_diffusers
from difflora_gui.merge.engine import run_merge
from difflora_gui.merge.params import MergeParams

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("fmt", ["comfy", "diffusers"])
def test_diffusers_applies_the_merged_difference(tmp_path, fmt):
    diffusers = pytest.importorskip("diffusers")
    make_wan_lora("tiny", rank=8, alpha=4.0, seed=1, path=tmp_path / "a.safetensors", format="musubi")
    make_wan_lora("tiny", rank=8, alpha=None, seed=2, path=tmp_path / "b.safetensors", format="comfy")
    out = tmp_path / f"merged_{fmt}.safetensors"
    run_merge(
        MergeParams(
            lora_a=str(tmp_path / "a.safetensors"),
            lora_b=str(tmp_path / "b.safetensors"),
            output=str(out),
            rank=3,
            targets="attn",
            exclude_non_targeted=True,
            alpha=2.0,
            format=fmt,
            save_dtype="float32",
        )
    )
    with open_lora(out) as f:
        expected = {n: f.load(n).delta(torch.float64) for n in f.names()}
    with open_lora(tmp_path / "a.safetensors") as fa, open_lora(tmp_path / "b.safetensors") as fb:
        reference = {
            n: 2.0 * (fa.load(n).delta(torch.float64) - fb.load(n).delta(torch.float64)) for n in expected
        }

    torch.manual_seed(0)
    transformer = diffusers.WanTransformer3DModel(**tiny_transformer_config())
    state = diffusers.WanPipeline.lora_state_dict(str(out))
    transformer.load_lora_adapter(state, adapter_name="slider", prefix="transformer")
    modules = dict(transformer.named_modules())
    assert len(expected) == 16
    for name, delta in expected.items():
        layer = modules[to_diffusers(name)]
        applied = layer.scaling["slider"] * (
            layer.lora_B["slider"].weight.detach().double() @ layer.lora_A["slider"].weight.detach().double()
        )
        assert torch.allclose(applied, delta, rtol=1e-6, atol=1e-7), name
        # and it is the best rank-3 approximation of 2·(ΔW_a − ΔW_b)
        u, s, vh = torch.linalg.svd(reference[name], full_matrices=False)
        best = (u[:, :3] * s[:3]) @ vh[:3]
        assert float((applied - best).norm() / best.norm()) < 1e-5, name
    # the ffn layers were excluded, so diffusers left them alone
    assert not hasattr(modules["blocks.0.ffn.net.0.proj"], "lora_A")
