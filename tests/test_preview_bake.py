"""Export (bake): a stack entry's strength, block weights, layer filter and experts folded into new
comfy-format files: module by module equal to factor × the source's change, and rendered by the
tiny Wan pipeline exactly as the source with the same per-module PEFT scales."""

from __future__ import annotations

import re

import pytest
import torch

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.experts import expert_from_metadata, expert_output_path
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.reader import open_lora, read_header
from difflora_gui.lora.selector import parse_selector
from difflora_gui.lora.synthetic import make_wan_combo, make_wan_lora
from difflora_gui.lora.wan_layout import from_diffusers
from difflora_gui.lora.writer import write_lora
from difflora_gui.preview.adapters import module_factors
from difflora_gui.preview.bake import NOTHING_LEFT, bake_entry, run_bake
from difflora_gui.preview.request import LoraEntry


def _deltas(path, expert=None) -> dict[str, torch.Tensor]:
    with open_lora(path) as lora:
        part = lora.part(expert) if expert else lora
        return {name: part.load(name).delta() for name in part.names()}


def _expected(source_deltas, entry, expert=None) -> dict[str, torch.Tensor]:
    selector = parse_selector(entry.selector)
    out = {}
    for name, delta in source_deltas.items():
        # by hand: the grammar's own weight where the selector picks the module
        factor = entry.strength_for(expert) * selector.weight_of(name) if selector.matches(name) else 0.0
        if factor:
            out[name] = delta * factor
    return out


def _assert_same(got, want):
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-6, atol=1e-8, msg=name)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "slider é.safetensors"
    make_wan_lora("tiny", path=path, rank=4, alpha=2.0, seed=3)
    return path


def test_baked_modules_are_the_factor_times_the_source(tmp_path, source):
    entry = LoraEntry(str(source), strength=1.5, selector="attn blocks=0@0.5,1")
    out = tmp_path / "baked.safetensors"
    assert bake_entry(entry, out, num_blocks=2) == [out]
    got = _deltas(out)
    _assert_same(got, _expected(_deltas(source), entry))
    assert not [n for n in got if ".ffn." in n]  # the layer filter left the feed-forward layers out
    assert torch.equal(got["blocks.0.self_attn.q"], _deltas(source)["blocks.0.self_attn.q"] * 0.75)
    header = read_header(out)
    # comfy keys: what diffusers, ComfyUI and WanVideoWrapper's block edit (diffusion_model.blocks.N.) read
    assert all(re.match(r"diffusion_model\.blocks\.[01]\.", key) for key in header.tensors)
    meta = header.metadata
    assert meta["difflora.selector"] == "attn blocks=0@0.5,1"
    assert meta["difflora.strategy"] == "bake"
    assert '"strength": 1.5' in meta["difflora.params"]
    inputs = meta["difflora.inputs"]
    assert source.name in inputs and read_sha(source) in inputs


def read_sha(path):
    from difflora_gui.fileio import sha256_file

    return sha256_file(path)


def test_dropped_blocks_are_absent_and_a_negative_strength_flips_the_change(tmp_path, source):
    entry = LoraEntry(str(source), strength=-2.0, selector="all blocks=0@0,1")
    out = tmp_path / "minus.safetensors"
    bake_entry(entry, out)
    got = _deltas(out)
    assert got and all(name.startswith("blocks.1.") for name in got)
    _assert_same(got, {n: d * -2.0 for n, d in _deltas(source).items() if n.startswith("blocks.1.")})
    with open_lora(out) as baked:
        assert all(baked.alpha(n) > 0 for n in baked.names())  # the sign is in up, alpha stays positive


def test_a_bf16_source_keeps_its_bytes_and_dtype(tmp_path):
    path = tmp_path / "bf16.safetensors"
    make_wan_lora("tiny", path=path, rank=4, alpha=4.0, dtype="bfloat16", seed=1)
    out = tmp_path / "bf16_baked.safetensors"
    bake_entry(LoraEntry(str(path), strength=-0.7, selector="all 0@0.5,1"), out)
    with open_lora(path) as src, open_lora(out) as baked:
        assert {baked.dtype(n) for n in baked.names()} == {"bfloat16"}
        for name in src.names():
            a, b = src.load(name), baked.load(name)
            assert torch.equal(a.down, b.down) and torch.equal(-a.up, b.up)
            weight = 0.5 if name.startswith("blocks.0.") else 1.0
            assert b.scale == pytest.approx(a.scale * 0.7 * weight, rel=1e-7)


def test_full_weight_and_bias_changes_are_scaled_too(tmp_path):
    path = tmp_path / "diff.safetensors"
    torch.manual_seed(0)
    modules = [
        LoraModule("blocks.0.self_attn.q", dense=torch.randn(24, 24), kind="diff", bias=torch.randn(24)),
        *make_wan_lora("tiny", rank=2, select="ffn", seed=2),
    ]
    write_lora(path, modules)
    out = tmp_path / "diff_baked.safetensors"
    bake_entry(LoraEntry(str(path), strength=0.25), out)
    with open_lora(out) as baked:
        q = baked.load("blocks.0.self_attn.q")
        torch.testing.assert_close(q.dense, modules[0].dense * 0.25)
        torch.testing.assert_close(q.bias, modules[0].bias * 0.25)
        assert baked.dtype("blocks.0.self_attn.q") == "float32"
    assert set(_deltas(out)) == {m.name for m in modules}


def test_a_combo_file_becomes_the_two_expert_files(tmp_path):
    combo = tmp_path / "motion_combo.safetensors"
    make_wan_combo("tiny", path=combo, rank=4, alpha=1.0, seed=5)
    entry = LoraEntry(str(combo), strength=1.0, strength_high=2.0, strength_low=-0.5, selector="self_attn")
    out = tmp_path / "motion.safetensors"
    paths = bake_entry(entry, out, num_blocks=2, two_experts=True)
    assert paths == [expert_output_path(out, "high"), expert_output_path(out, "low")]
    assert [p.name for p in paths] == ["motion_high_noise.safetensors", "motion_low_noise.safetensors"]
    assert not out.exists()
    for path, expert in zip(paths, ("high", "low"), strict=True):
        meta = read_header(path).metadata
        assert expert_from_metadata(meta)[0] == expert
        with open_lora(path) as baked:
            assert baked.expert_role.role == expert
        _assert_same(_deltas(path), _expected(_deltas(combo, expert), entry, expert))
    assert '"strength": 2.0' in read_header(paths[0]).metadata["difflora.params"]


def test_a_shared_file_on_a_two_expert_model(tmp_path, source):
    # one strength on both experts: one file serves both
    same = tmp_path / "same.safetensors"
    assert bake_entry(LoraEntry(str(source), strength=0.5), same, two_experts=True) == [same]
    assert expert_from_metadata(read_header(same).metadata) is None
    # a strength per expert: the two files
    split = tmp_path / "split.safetensors"
    entry = LoraEntry(str(source), strength=1.0, strength_low=3.0)
    high, low = bake_entry(entry, split, two_experts=True)
    _assert_same(_deltas(high), _deltas(source))
    _assert_same(_deltas(low), {n: d * 3.0 for n, d in _deltas(source).items()})
    # on the low expert only: the low-noise file alone
    only = tmp_path / "only.safetensors"
    paths = bake_entry(LoraEntry(str(source), strength=1.0, expert="low"), only, two_experts=True)
    assert paths == [expert_output_path(only, "low")]
    assert not expert_output_path(only, "high").exists()
    assert expert_from_metadata(read_header(paths[0]).metadata)[0] == "low"


def test_a_file_for_one_expert_stays_one_file_with_its_expert(tmp_path):
    high = tmp_path / "detail_high_noise.safetensors"
    make_wan_lora("tiny", path=high, rank=2, seed=4)
    out = tmp_path / "detail baked.safetensors"
    assert bake_entry(LoraEntry(str(high), strength_high=1.25), out, two_experts=True) == [out]
    assert expert_from_metadata(read_header(out).metadata)[0] == "high"
    _assert_same(_deltas(out), {n: d * 1.25 for n, d in _deltas(high).items()})
    # put on the other expert by the entry (as the preview routes it): a file for that expert
    moved = tmp_path / "detail moved.safetensors"
    bake_entry(LoraEntry(str(high), expert="low", strength_low=0.5), moved, two_experts=True)
    assert expert_from_metadata(read_header(moved).metadata)[0] == "low"
    _assert_same(_deltas(moved), {n: d * 0.5 for n, d in _deltas(high).items()})
    with pytest.raises(UserError, match=NOTHING_LEFT):
        bake_entry(LoraEntry(str(high), strength_high=0.0), tmp_path / "x.safetensors", two_experts=True)
    with pytest.raises(UserError, match="the name says low-noise expert"):
        bake_entry(LoraEntry(str(high)), tmp_path / "y_low_noise.safetensors", two_experts=True)


def test_refusals_write_nothing(tmp_path, source):
    out = tmp_path / "exists.safetensors"
    out.write_bytes(b"keep me")
    entry = LoraEntry(str(source), strength=2.0)
    with pytest.raises(UserError, match="already exists"):
        bake_entry(entry, out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(UserError, match="input file"):
        bake_entry(entry, source, overwrite=True)
    with pytest.raises(UserError, match=NOTHING_LEFT):
        bake_entry(LoraEntry(str(source), strength=0.0), tmp_path / "zero.safetensors")
    with pytest.raises(UserError, match="block"):  # a 2-block LoRA is not for a 1-block model
        bake_entry(entry, tmp_path / "small.safetensors", num_blocks=1)
    # a pair: one existing file stops both
    combo = tmp_path / "c.safetensors"
    make_wan_combo("tiny", path=combo, rank=2)
    pair = tmp_path / "pair.safetensors"
    expert_output_path(pair, "low").write_bytes(b"old")
    with pytest.raises(UserError, match="already exists"):
        bake_entry(LoraEntry(str(combo)), pair, two_experts=True)
    assert not expert_output_path(pair, "high").exists()
    assert bake_entry(entry, out, overwrite=True) == [out]
    _assert_same(_deltas(out), {n: d * 2.0 for n, d in _deltas(source).items()})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files


def test_the_job_reports_progress_and_the_files(tmp_path):
    combo = tmp_path / "job.safetensors"
    make_wan_combo("tiny", path=combo, rank=2)
    entry = LoraEntry(str(combo), strength=0.5)
    out = tmp_path / "job_out.safetensors"
    ctx = RecordingContext(progress_interval_s=0)
    outcome = run_sync(
        "difflora_gui.preview.bake:run_bake",
        {"entry": entry.to_json(), "out": str(out), "two_experts": True},
        ctx,
    )
    assert outcome.status == "done", outcome.traceback
    assert outcome.result["experts"] == ["high", "low"]
    artifacts = [e for e in ctx.events if isinstance(e, Artifact)]
    assert [(a.kind, a.meta["expert"]) for a in artifacts] == [("lora", "high"), ("lora", "low")]
    assert [a.path for a in artifacts] == outcome.result["files"]
    assert ctx.progress_reports[-1].done == ctx.progress_reports[-1].total
    with pytest.raises(UserError, match="output file"):
        run_bake({"entry": entry.to_json()}, None)


def test_a_cancelled_export_writes_nothing(tmp_path):
    combo = tmp_path / "cancel.safetensors"
    make_wan_combo("tiny", path=combo, rank=2)
    out = tmp_path / "cancel_out.safetensors"
    ctx = RecordingContext(progress_interval_s=0, cancel_after_progress=25)  # during the second expert
    outcome = run_sync(
        run_bake, {"entry": LoraEntry(str(combo)).to_json(), "out": str(out), "two_experts": True}, ctx
    )
    assert outcome.status == "cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cancel.safetensors"]


# --- the render check -----------------------------------------------------------------------------


def _render(pipe) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    video = pipe(
        prompt="a red fox",
        negative_prompt="blur",
        height=16,
        width=16,
        num_frames=5,
        num_inference_steps=2,
        guidance_scale=3.0,
        generator=generator,
        output_type="pt",
    ).frames
    return video.float()


def _set_scales(transformer, adapter, entry, expert=None) -> int:
    from peft.tuners.lora import LoraLayer

    count = 0
    for name, layer in transformer.named_modules():
        if isinstance(layer, LoraLayer) and adapter in layer.scaling:
            canonical = from_diffusers(name)
            assert canonical is not None, name
            layer.scaling[adapter] = module_factors(entry, [canonical], expert)[canonical]
            count += 1
    return count


def test_the_baked_file_renders_as_the_entry_with_its_scales(tmp_path):
    pytest.importorskip("diffusers")
    from tests.wan_tiny import tiny_pipeline

    source = tmp_path / "render.safetensors"
    make_wan_lora("tiny", path=source, rank=4, alpha=2.0, seed=11, up_std=0.5)
    entry = LoraEntry(str(source), strength=-1.7, selector="attn,ffn blocks=0@0.5,1@1.5 exclude=cross_attn.v")
    baked = tmp_path / "render_baked.safetensors"
    bake_entry(entry, baked, num_blocks=2)

    pipe = tiny_pipeline(seed=0)
    plain = _render(pipe)
    pipe.load_lora_weights(str(source), adapter_name="stack")
    assert _set_scales(pipe.transformer, "stack", entry) == 20
    stacked = _render(pipe)
    pipe.unload_lora_weights()
    torch.testing.assert_close(_render(pipe), plain, rtol=0, atol=0)
    pipe.load_lora_weights(str(baked))
    exported = _render(pipe)
    assert (stacked - plain).abs().max() > 1e-3  # the LoRA changes the clip
    torch.testing.assert_close(exported, stacked, rtol=1e-4, atol=1e-5)


def test_the_expert_pair_renders_as_the_shared_file_with_a_strength_per_expert(tmp_path):
    pytest.importorskip("diffusers")
    from tests.wan_tiny import tiny_pipeline

    source = tmp_path / "shared.safetensors"
    make_wan_lora("tiny", path=source, rank=4, seed=12, up_std=0.5)
    entry = LoraEntry(str(source), strength=1.0, strength_high=2.0, strength_low=-0.5, selector="attn")
    high, low = bake_entry(entry, tmp_path / "pair.safetensors", num_blocks=2, two_experts=True)

    pipe = tiny_pipeline(seed=0, two_experts=True)
    for expert, transformer in (("high", pipe.transformer), ("low", pipe.transformer_2)):
        pipe.load_lora_weights(
            str(source), adapter_name=f"stack_{expert}", load_into_transformer_2=expert == "low"
        )
        assert _set_scales(transformer, f"stack_{expert}", entry, expert) == 20
    stacked = _render(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(high))
    pipe.load_lora_weights(str(low), load_into_transformer_2=True)
    torch.testing.assert_close(_render(pipe), stacked, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("two_experts", [False, True])
def test_the_baked_files_render_as_the_preview_renders_the_entry(tmp_path, two_experts):
    """Against the preview's own adapter stack: a combo file (Wan2.2) or a plain one, per-expert
    strengths, a negative block weight and a layer filter."""
    pytest.importorskip("diffusers")
    from difflora_gui.preview.adapters import AdapterStack
    from tests.wan_tiny import tiny_pipeline

    source = tmp_path / "stack.safetensors"
    if two_experts:
        make_wan_combo("tiny", path=source, rank=4, alpha=2.0, seed=21, up_std=0.5)
    else:
        make_wan_lora("tiny", path=source, rank=4, alpha=2.0, seed=21, up_std=0.5)
    entry = LoraEntry(
        str(source), strength=1.5, strength_low=-0.75, selector="self_attn,ffn blocks=0@-1,1@0.5"
    )
    paths = bake_entry(entry, tmp_path / "stack_baked.safetensors", num_blocks=2, two_experts=two_experts)
    assert len(paths) == (2 if two_experts else 1)

    previewed = tiny_pipeline(seed=0, two_experts=two_experts)
    AdapterStack(previewed, two_experts=two_experts).apply([entry])
    exported = tiny_pipeline(seed=0, two_experts=two_experts)
    exported.load_lora_weights(str(paths[0]))
    if two_experts:
        exported.load_lora_weights(str(paths[1]), load_into_transformer_2=True)
    shown = _render(previewed)
    assert (shown - _render(tiny_pipeline(seed=0, two_experts=two_experts))).abs().max() > 1e-3
    torch.testing.assert_close(_render(exported), shown, rtol=1e-4, atol=1e-5)
