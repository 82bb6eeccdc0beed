"""The rank hint: the smallest fixed rank keeping 90/95/99 % of the targeted energy, from real analyses."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_merge_support import by_name, dense, make_modules, params, write

from difflora_gui.lora.selector import parse_selector
from difflora_gui.merge import analysis as an
from difflora_gui.merge.engine import run_analysis
from difflora_gui.merge.rank_hint import energy_ranks, hint_text, hints_for, suggested_rank


@pytest.fixture(scope="module")
def decaying_pair(tmp_path_factory):
    """A and B with fast-decaying spectra (rank 8 each): their difference has up to 16 values."""
    folder = tmp_path_factory.mktemp("rank_hint")
    mods_a, mods_b = make_modules(1, rank=8, decay=0.6), make_modules(2, rank=8, decay=0.6)
    return write(folder / "a.safetensors", mods_a), write(folder / "b.safetensors", mods_b), mods_a, mods_b


def dense_shares(mods_a, mods_b, chosen, weight_of=lambda name: 1.0):
    """The reference: torch SVD of every chosen module's dense A−B, energy kept by rank 1, 2, …"""
    a, b = by_name(mods_a), by_name(mods_b)
    spectra = {n: torch.linalg.svdvals(dense(a[n]) - dense(b[n])) * weight_of(n) for n in chosen}
    longest = max(len(s) for s in spectra.values())
    total = sum(float((s**2).sum()) for s in spectra.values())
    return [sum(float((s[:r] ** 2).sum()) for s in spectra.values()) / total for r in range(1, longest + 1)]


def test_the_hint_matches_a_dense_reference(tmp_path, decaying_pair):
    a, b, mods_a, mods_b = decaying_pair
    result = run_analysis(params(tmp_path, a, b, targets="attn", rank=0))
    chosen = [r.name for r in result.rows if r.status == an.MERGED]
    assert chosen and len(chosen) < len(result.rows)  # FFN and the rest are not targeted
    hint = energy_ranks(result)
    assert hint.modules == len(chosen) and hint.exact
    reference = dense_shares(mods_a, mods_b, chosen)
    assert hint.kept[: len(reference)] == pytest.approx(reference[: len(hint.kept)], abs=1e-6)
    expected = {f: next(r for r, s in enumerate(reference, 1) if s >= f - 1e-12) for f in (0.9, 0.95, 0.99)}
    assert hint.ranks == expected
    assert 1 < expected[0.9] <= expected[0.95] <= expected[0.99] < 16  # a spectrum that decays
    assert hint_text([hint]) == f"rank {expected[0.99]} keeps 99 % of the targeted energy"
    assert hint.share_at(0) == 1.0 and hint.share_at(expected[0.99]) >= 0.99


def test_block_weights_weigh_each_module_s_energy(tmp_path, decaying_pair):
    a, b, mods_a, mods_b = decaying_pair
    result = run_analysis(params(tmp_path, a, b, targets="attn", rank=0))
    chosen = [r.name for r in result.rows if r.status == an.MERGED]
    selector = parse_selector("attn blocks=0@0.1,1")
    weighted = energy_ranks(result, selector.weight_of)
    reference = dense_shares(mods_a, mods_b, chosen, selector.weight_of)
    assert weighted.kept[: len(reference)] == pytest.approx(reference[: len(weighted.kept)], abs=1e-6)


def test_two_experts_get_their_own_ranks_and_the_hint_takes_the_larger(tmp_path, decaying_pair):
    a, b, _, _ = decaying_pair
    steep = tmp_path / "steep.safetensors"
    write(steep, make_modules(3, rank=8, decay=0.2))
    high = dataclasses.replace(run_analysis(params(tmp_path, a, b, targets="attn", rank=0)), expert="high")
    low = dataclasses.replace(run_analysis(params(tmp_path, steep, b, targets="attn", rank=0)), expert="low")
    pair = dataclasses.replace(high, rows=[], expert=None, by_expert={"high": high, "low": low})
    hints = hints_for(pair)
    assert [h.expert for h in hints] == ["high", "low"]
    ranks = [h.rank_for(0.99) for h in hints]
    assert ranks[0] != ranks[1]
    assert suggested_rank(hints) == max(ranks)
    assert hint_text(hints) == (
        f"rank {max(ranks)} keeps 99 % of the targeted energy (high-noise {ranks[0]}, low-noise {ranks[1]})"
    )


def test_no_hint_without_targeted_spectra_and_a_partial_spectrum_is_a_lower_bound():
    assert hints_for(None) == [] and hint_text([]) == ""
    empty = an.AnalysisResult("a", "b", "m", 1.0, rows=[])
    assert energy_ranks(empty) is None
    row = an.ModuleRow(
        "blocks.0.self_attn.q", 0, "self_attn", "q", (8, 8), 4, 4, an.MERGED,
        norm_diff=5.0, singular_values=[4.0, 2.0], sv_exact=False,
    )  # fmt: skip
    hint = energy_ranks(an.AnalysisResult("a", "b", "m", 1.0, rows=[row]))
    assert hint.kept == pytest.approx((16 / 25, 20 / 25))  # the total is the exact ‖ΔW‖² = 25
    assert hint.rank_for(0.99) is None
    assert hint_text([hint]) == "more than rank 2 is needed to keep 99 % of the targeted energy"
    not_targeted = dataclasses.replace(row, status=an.NULLIFIED, reason=an.NOT_TARGETED)
    assert energy_ranks(an.AnalysisResult("a", "b", "m", 1.0, rows=[not_targeted])) is None
