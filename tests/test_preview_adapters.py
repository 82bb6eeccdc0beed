"""The preview's LoRA stack as PEFT adapters: strengths, block weights and layer filters are exact.

Every comparison renders the real tiny Wan pipeline (a diffusers folder saved to tmp and loaded
through ``get_resident``) with real LoRA files; "equal" means bit-equal frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from preview_resident_helpers import entry, render
from wan_tiny import save_tiny_wan

from difflora_gui.lora import wan_layout
from difflora_gui.lora.selector import parse_selector
from difflora_gui.lora.synthetic import make_wan_lora, module_names
from difflora_gui.lora.writer import write_lora
from difflora_gui.preview.adapters import module_factors
from difflora_gui.preview.model_files import ModelSettings
from difflora_gui.preview.request import LoraEntry
from difflora_gui.preview.resident import get_resident, release_resident


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("adapters")
    folder = save_tiny_wan(base / "wan")
    full = base / "full.safetensors"
    modules = make_wan_lora("tiny", path=full, up_std=0.5, seed=11)
    no_block0 = write_lora(
        base / "no_block0.safetensors", [m for m in modules if wan_layout.block_index(m.name) != 0]
    )
    halved = []
    for m in modules:
        if wan_layout.block_index(m.name) == 1:
            m = dataclasses.replace(m, up=m.up * 0.5)
        halved.append(m)
    halved = write_lora(base / "block1_halved.safetensors", halved)
    attn = write_lora(
        base / "attn_only.safetensors",
        [m for m in modules if wan_layout.layer_group(m.name) in ("self_attn", "cross_attn")],
    )
    return {"folder": folder, "full": full, "no_block0": no_block0, "halved": halved, "attn": attn}


@pytest.fixture(scope="module")
def resident(files):
    pipe = get_resident(ModelSettings(model_dir=str(files["folder"]), dtype="fp32"))
    yield pipe
    release_resident()


@pytest.fixture(scope="module")
def plain(resident):
    return render(resident)


def test_module_factors_are_strength_times_block_weight_inside_the_selection():
    names = module_names("tiny", outside=True)
    for text in (
        "all",
        "attn",
        "ffn blocks=1@0.5",
        "blocks=0@0.25,1",
        "self_attn include=q$",
        "all exclude=ffn",
    ):
        sel = parse_selector(text)
        got = module_factors(LoraEntry("x.safetensors", strength=-1.5, selector=text), names, None)
        assert got == {n: -1.5 * (sel.weight_of(n) if sel.matches(n) else 0.0) for n in names}, text
    one = LoraEntry("x.safetensors", strength=2.0, strength_low=0.5, expert="both")
    assert set(module_factors(one, names, "low").values()) == {0.5}
    assert set(module_factors(one, names, "high").values()) == {2.0}
    only_low = LoraEntry("x.safetensors", strength=2.0, expert="low")
    assert set(module_factors(only_low, names, "high").values()) == {0.0}
    blocks = module_factors(LoraEntry("x.safetensors", selector="blocks=1@0.5"), names, None)
    assert blocks["blocks.1.ffn.0"] == 0.5 and blocks["blocks.0.ffn.0"] == 0.0 and blocks["head.head"] == 0.0


def test_strength_zero_is_exactly_no_lora_and_strengths_move_the_output(resident, files, plain):
    assert np.array_equal(render(resident, entry(files["full"], 0.0)), plain)
    two = render(resident, entry(files["full"], 2.0))
    assert np.abs(two - plain).max() > 1e-2
    negative = render(resident, entry(files["full"], -2.0))
    assert np.abs(negative - plain).max() > 1e-2
    assert np.abs(negative - two).max() > 1e-2
    # back to 0 after other strengths: no residue of the scales written before
    assert np.array_equal(render(resident, entry(files["full"], 0.0)), plain)
    assert np.array_equal(render(resident), plain)


def test_every_block_at_weight_zero_equals_strength_zero(resident, files, plain):
    # the selector grammar refuses a selection of nothing, so "both blocks of the tiny model at 0"
    # names a block past its end
    assert np.array_equal(render(resident, entry(files["full"], 1.5, "blocks=2")), plain)
    assert np.array_equal(render(resident, entry(files["full"], 1.5, "blocks=0@0,1@0,2")), plain)
    # what the block panel writes for "every block off" (qt.preview.blocks.OFF_SELECTOR)
    assert np.array_equal(render(resident, entry(files["full"], 1.5, "exclude=.")), plain)


def test_block_zero_off_equals_a_file_without_block_zero(resident, files):
    ours = render(resident, entry(files["full"], 1.5, "blocks=0@0,1"))
    theirs = render(resident, entry(files["no_block0"], 1.5))
    assert np.array_equal(ours, theirs)
    assert not np.array_equal(ours, render(resident, entry(files["full"], 1.5)))


def test_block_weight_half_equals_a_file_with_that_block_halved(resident, files):
    ours = render(resident, entry(files["full"], 2.0, "blocks=0,1@0.5"))
    theirs = render(resident, entry(files["halved"], 2.0))
    assert np.array_equal(ours, theirs)


def test_layer_filter_equals_a_file_of_those_layers(resident, files):
    ours = render(resident, entry(files["full"], 1.0, "attn"))
    theirs = render(resident, entry(files["attn"], 1.0))
    assert np.array_equal(ours, theirs)


def test_the_same_file_twice_adds_its_factors(resident, files):
    doubled = render(resident, entry(files["full"], 1.0, "attn"), entry(files["full"], 1.0, "attn"))
    once = render(resident, entry(files["full"], 2.0, "attn"))
    assert np.array_equal(doubled, once)


def test_scales_are_written_per_module_and_never_through_set_adapters(resident, files, monkeypatch):
    transformer = resident.pipe.transformer

    def refuse(*args, **kwargs):
        raise AssertionError("set_adapters resets per-module scales")

    monkeypatch.setattr(type(transformer), "set_adapters", refuse, raising=False)
    monkeypatch.setattr(type(resident.pipe), "set_adapters", refuse, raising=False)
    resident.apply_loras([entry(files["full"], -0.75, "ffn blocks=1@0.5")])
    (scales,) = [s for name, s in resident.adapters.scales().items() if name in resident.adapters.active()]
    assert scales["blocks.1.ffn.0"] == -0.375
    assert scales["blocks.0.ffn.0"] == 0.0
    assert scales["blocks.1.self_attn.q"] == 0.0
    # the base diffusers gives a LoRA loaded without alphas (scale folded into lora_B): 1 everywhere
    for adapter in resident.adapters.adapters.values():
        assert set(adapter.layers[None].base) == {1.0}


def test_a_lora_of_another_model_size_is_refused_with_both_shapes(resident, tmp_path):
    from difflora_gui.errors import UserError

    other = make_wan_lora("1.3B", select="self_attn blocks=0", path=tmp_path / "big.safetensors")
    assert other
    with pytest.raises(
        UserError, match=r"big.safetensors: is a LoRA for .*1536×1536 but this model's layer is 24×24"
    ):
        resident.apply_loras([LoraEntry(str(tmp_path / "big.safetensors"))])
    assert np.isfinite(render(resident)).all()  # nothing half-loaded stays behind


def test_preview_bench_runs_and_is_bit_exact(monkeypatch, tmp_path):
    """The bench's code paths, small: re-configuration bit-exact against fresh adapters, and the
    --full-1.3b denoising loop run on the CPU with a narrow model (no timing asserted)."""
    import importlib
    import json
    from pathlib import Path

    import torch

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    threads = torch.get_num_threads()
    try:
        bench = importlib.import_module("preview_bench")
        out = tmp_path / "bench.json"
        bench.main(["--blocks", "4", "--repeats", "5", "--reload-repeats", "1", "--json", str(out)])
        small = json.loads(out.read_text())["small"]
        assert small["bit_exact"] and small["lora_moves_output_by"] > 0
        assert small["set_adapters_resets_block_weights"]
        full = bench.run_full(
            None, variant=bench.bench_variant(2), device="cpu", height=32, width=32, frames=5, steps=2
        )
        assert full["seconds_per_step"] > 0 and full["reconfigure_ms"] > 0
    finally:
        torch.set_num_threads(threads)
