"""Float block weights end to end through ``run_merge``: each block's ΔW_out is scaled by exactly its
weight (factored, dense and bias changes), weight 0 leaves a block out, the analysis keeps the
inputs unweighted, auto alpha matches the weighted output, and the recipe re-runs bit for bit."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from test_merge_support import SMALL, dense, make_modules, names, params, write

from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.reader import open_lora
from difflora_gui.merge import analysis as an
from difflora_gui.merge.engine import run_merge

ATTN = [n for n in names() if ".ffn." not in n]
FFN = [n for n in names() if ".ffn." in n]
WEIGHTS = {0: 1.0, 1: 0.5, 2: -2.0}  # a negative weight flips the block's difference


def read_modules(path: Path) -> dict[str, LoraModule]:
    with open_lora(path) as f:
        return {n: f.load(n) for n in f.names()}


def block_of(name: str) -> int:
    return int(name.split(".")[1])


def rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


@pytest.fixture
def pair(tmp_path):
    """A: rank 16 with alpha; one full-weight (diff) module and one bias (.diff_b) in block 1. B: rank 8."""
    mods_a = make_modules(1, rank=16, alpha=8.0)
    gen = torch.Generator().manual_seed(5)
    by_name = {m.name: i for i, m in enumerate(mods_a)}
    diff_name, bias_name = "blocks.1.self_attn.q", "blocks.1.cross_attn.o"
    full = torch.randn(*SMALL.shape(diff_name), generator=gen) * 0.01
    mods_a[by_name[diff_name]] = LoraModule(diff_name, dense=full, kind="diff")
    with_bias = mods_a[by_name[bias_name]]
    with_bias.bias = torch.randn(SMALL.shape(bias_name)[0], generator=gen) * 0.01
    a = write(tmp_path / "a.safetensors", mods_a)
    b = write(tmp_path / "b.safetensors", make_modules(2, rank=8))
    return a, b


def merge(tmp_path, a, b, targets: str, out: str, **kwargs):
    values = dict(targets=targets, output=str(tmp_path / out), save_dtype="float32", analyze=True)
    values.update(kwargs)
    result = run_merge(params(tmp_path, a, b, **values))
    return result, read_modules(tmp_path / out)


@pytest.mark.parametrize("strategy", ["randomized_svd", "full_svd"])
def test_each_block_is_scaled_by_exactly_its_weight(tmp_path, pair, strategy):
    a, b = pair
    plain, plain_out = merge(tmp_path, a, b, "attn", "plain.safetensors", strategy=strategy)
    weighted, out = merge(tmp_path, a, b, "attn 0,1@0.5,2@-2", "weighted.safetensors", strategy=strategy)
    assert weighted.merged == plain.merged == len(ATTN)
    for name in ATTN:
        w = WEIGHTS[block_of(name)]
        expected = w * plain_out[name].delta(torch.float64)
        assert rel(out[name].delta(torch.float64), expected) <= 1e-6, name
        assert out[name].rank == plain_out[name].rank  # the rank is chosen on the unweighted difference
    # the bias difference is part of the block's difference: scaled too
    bias_name = "blocks.1.cross_attn.o"
    assert torch.equal(out[bias_name].bias, (plain_out[bias_name].bias.double() * 0.5).float())
    for name in FFN:  # not targeted: nullified zero pairs, as without weights
        assert not out[name].up.any() and not out[name].down.any()


def test_a_dense_module_in_a_weighted_block_is_scaled(tmp_path, pair):
    a, b = pair
    _, plain_out = merge(tmp_path, a, b, "attn", "plain.safetensors", rank=0, strategy="full_svd")
    _, out = merge(tmp_path, a, b, "attn 0,1@0.5,2@-2", "weighted.safetensors", rank=0, strategy="full_svd")
    name = "blocks.1.self_attn.q"  # the full-weight module of A
    with open_lora(a) as f:
        exact = f.load(name).delta(torch.float64) - dense(read_modules(tmp_path / "b.safetensors")[name])
    assert rel(out[name].delta(torch.float64), 0.5 * exact) <= 1e-6
    assert rel(out[name].delta(torch.float64), 0.5 * plain_out[name].delta(torch.float64)) <= 1e-6


def test_weight_zero_leaves_the_block_out(tmp_path, pair):
    a, b = pair
    _, plain_out = merge(tmp_path, a, b, "attn", "plain.safetensors")
    result, out = merge(tmp_path, a, b, "attn blocks=0@1,1@0.5,2@0", "zero.safetensors")
    assert result.recipe["targets"] == "attn blocks=0@1,1@0.5,2@0"
    block2 = [n for n in ATTN if block_of(n) == 2]
    assert result.merged == len(ATTN) - len(block2)
    for name in block2:  # nullified like any module that is not targeted
        assert not out[name].up.any() and not out[name].down.any()
        assert result.analysis.row(name).status == an.NULLIFIED
    for name in ATTN:
        if block_of(name) < 2:
            expected = WEIGHTS[block_of(name)] * plain_out[name].delta(torch.float64)
            assert rel(out[name].delta(torch.float64), expected) <= 1e-6, name
    _, excluded = merge(
        tmp_path, a, b, "attn blocks=0@1,1@0.5,2@0", "excluded.safetensors", exclude_non_targeted=True
    )
    assert sorted(excluded) == sorted(n for n in ATTN if block_of(n) < 2)


def test_analysis_shows_unweighted_inputs_and_the_weighted_output(tmp_path, pair):
    a, b = pair
    plain, _ = merge(tmp_path, a, b, "attn", "plain.safetensors", alpha=1.5)
    weighted, _ = merge(tmp_path, a, b, "attn 0,1@0.5,2@-2", "weighted.safetensors", alpha=1.5)
    for name in ATTN:
        p, w = plain.analysis.row(name), weighted.analysis.row(name)
        assert (w.norm_a, w.norm_b, w.inner, w.norm_diff) == (p.norm_a, p.norm_b, p.inner, p.norm_diff)
        assert (w.rank, w.retained_energy, w.residual) == (p.rank, p.retained_energy, p.residual)
        assert math.isclose(w.norm_out, abs(WEIGHTS[block_of(name)]) * p.norm_out, rel_tol=1e-12), name


def test_auto_alpha_matches_the_target_after_the_weights(tmp_path, pair):
    """The weights shape the blocks, alpha sets the overall strength: mean ‖ΔW_out‖ = the target."""
    a, b = pair
    kwargs = dict(auto_alpha=True, target_norm="2.5", exclude_non_targeted=True)
    plain, plain_out = merge(tmp_path, a, b, "attn", "plain.safetensors", **kwargs)
    weighted, out = merge(tmp_path, a, b, "attn 0,1@0.5,2@0.25", "weighted.safetensors", **kwargs)
    norms = [float(m.delta(torch.float64).norm()) for m in out.values()]
    assert math.isclose(sum(norms) / len(norms), 2.5, rel_tol=1e-5)
    assert weighted.alpha > plain.alpha  # the weights lowered the output, alpha makes up for it
    ratio = weighted.alpha / plain.alpha
    for name in ATTN:  # one common factor on top of each block's weight
        expected = ratio * {0: 1.0, 1: 0.5, 2: 0.25}[block_of(name)] * plain_out[name].delta(torch.float64)
        assert rel(out[name].delta(torch.float64), expected) <= 1e-5, name


def test_the_recipe_keeps_the_weights_and_reruns_bit_for_bit(tmp_path, pair):
    a, b = pair
    first, _ = merge(tmp_path, a, b, "attn 0-1@0.5 2@-2", "one.safetensors", created=None)
    path = tmp_path / "one.safetensors"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with open_lora(path) as f:
        assert f.metadata["difflora.selector"] == "attn blocks=0-1@0.5,2@-2"
    assert "@0.5" in first.recipe["targets"] and "@-2" in first.recipe["targets"]
    run_merge(dict(first.recipe, overwrite=True))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_unweighted_and_weight_one_merges_are_the_same_bytes(tmp_path, pair):
    a, b = pair
    merge(tmp_path, a, b, "attn blocks=0-2", "plain.safetensors")
    merge(tmp_path, a, b, "attn blocks=0@1,1@1.0,2", "ones.safetensors")
    plain, ones = read_modules(tmp_path / "plain.safetensors"), read_modules(tmp_path / "ones.safetensors")
    for name in plain:
        assert torch.equal(plain[name].up, ones[name].up) and torch.equal(plain[name].down, ones[name].down)
