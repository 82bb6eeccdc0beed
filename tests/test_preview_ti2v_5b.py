"""Wan2.2 TI2V-5B through the diffusers preview backend, on a tiny 5B-shaped folder built from
configs (48-channel latents, the Wan2.2 VAE's 16× spatial factor, ``expand_timesteps``): what the
model is, the sizes it renders, a render through the CLI and the resident pipeline, strength 0
against no LoRA, the 48-channel latent preview and the block panel's block count."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Frame
from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.lora import wan_layout
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.writer import write_lora
from difflora_gui.preview import resident as resident_module
from difflora_gui.preview.backend import PreviewJob
from difflora_gui.preview.latent_preview import WAN22_RGB_BIAS, WAN22_RGB_FACTORS, latent_rgb
from difflora_gui.preview.model_files import ModelSettings, model_facts, size_multiple, size_problem
from difflora_gui.preview.render import run_preview
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.resident import ResidentPipeline, get_resident
from difflora_gui.preview.video_io import VideoReader
from tests.app_process import run_main
from tests.wan_tiny import save_tiny_wan
from tests.wan_tiny_5b import SIZE_MULTIPLE, save_tiny_ti2v, ti2v_lora_variant

#: three blocks, so a count of 3 can only have come from this model's config (the tiny Wan has 2)
BLOCKS = 3
REQUEST = PreviewRequest(
    prompt="a cat dancing in the rain",
    negative_prompt="blurry",
    seed=3,
    width=64,
    height=32,
    frames=5,
    steps=2,
    guidance=4.0,
)


@pytest.fixture(scope="module")
def ti2v(tmp_path_factory):
    base = tmp_path_factory.mktemp("ti2v 5b")
    folder = save_tiny_ti2v(base / "Wan2.2-TI2V-5B tiny", num_layers=BLOCKS)
    lora = base / "slider 5b.safetensors"
    # outside=True reaches the head, whose shape (48 channels × the 2×2 patch) only a 5B has
    make_wan_lora(ti2v_lora_variant(BLOCKS), path=lora, rank=4, seed=1, up_std=0.5, outside=True)
    yield folder, lora
    resident_module.release_resident()


def _settings(folder) -> ModelSettings:
    return ModelSettings(model_dir=str(folder), dtype="fp32", device="cpu")


def test_model_facts_name_the_ti2v_5b_with_its_block_count(ti2v, tmp_path):
    folder, _lora = ti2v
    index = json.loads((folder / "model_index.json").read_text())
    assert index["expand_timesteps"] is True and index["transformer_2"] == [None, None]
    facts = model_facts(_settings(folder))
    assert (facts.variant, facts.num_blocks, facts.two_experts) == ("5B", BLOCKS, False)
    assert facts.label == f"Wan2.2 TI2V-5B layout (dim 24), {BLOCKS} blocks"
    # the full-size config reads as the 5B itself (configs only: no weights are read)
    full = tmp_path / "full"
    (full / "transformer").mkdir(parents=True)
    (full / "model_index.json").write_text(json.dumps(index))
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config.update(num_layers=30, num_attention_heads=24, attention_head_dim=128, ffn_dim=14336)
    (full / "transformer" / "config.json").write_text(json.dumps(config))
    facts = model_facts(_settings(full))
    assert (facts.variant, facts.num_blocks, facts.label) == ("5B", 30, "Wan2.2 TI2V-5B, 30 blocks")


def test_the_5b_renders_multiples_of_32_and_the_wan21_vae_multiples_of_16(ti2v, tmp_path):
    folder, _lora = ti2v
    assert size_multiple(_settings(folder)) == SIZE_MULTIPLE
    wan21 = save_tiny_wan(tmp_path / "wan21")
    assert size_multiple(_settings(wan21)) == 16 and size_problem(48, 32, _settings(wan21)) is None
    assert size_problem(64, 32, _settings(folder)) is None
    line = size_problem(48, 32, _settings(folder))
    assert line == (
        "size 48x32: Wan2.2 TI2V-5B layout (dim 24) renders widths and heights in multiples of 32 "
        "(its VAE shrinks a frame 16× and the transformer patches 2×2); diffusers would crop it "
        "to 32x32: use 64x32"
    )
    # refused before the model loads, through the backend and the resident pipeline alike
    loads = ResidentPipeline.loads
    job = PreviewJob(request=REQUEST.replace(width=48), options=_settings(folder).to_json())
    with pytest.raises(UserError, match="multiples of 32"):
        run_preview(job, RecordingContext())
    assert ResidentPipeline.loads == loads


def test_a_cli_render_writes_the_requested_frames_and_size_and_a_bad_size_writes_nothing(ti2v, tmp_path):
    folder, lora = ti2v
    common = ["preview", "--model", folder, "--lora", f"{lora}:1.5", "--prompt", "a cat", "--seed", "3"]
    common += ["--frames", "5", "--steps", "2", "--fps", "8", "--dtype", "fp32", "--device", "cpu"]
    bad = tmp_path / "bad.mp4"
    refused = run_main(*common, "--size", "48x32", "--out", bad)
    assert refused.returncode == 2 and not bad.exists()
    assert "multiples of 32" in refused.stderr and "use 64x32" in refused.stderr
    out = tmp_path / "clip 5b.mp4"
    done = run_main(*common, "--size", "32x32", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    with VideoReader(out) as reader:
        assert (reader.frame_count, reader.width, reader.height) == (5, 32, 32)


def test_strength_0_is_exactly_no_lora_and_the_latent_preview_has_the_clip_size(ti2v):
    folder, lora = ti2v
    resident = get_resident(_settings(folder))
    assert resident.facts.variant == "5B"
    latents = []

    def keep(step, total, tensor):
        latents.append(tensor.detach().float().cpu().numpy().copy())

    none = resident.generate(REQUEST, on_step=keep)
    assert none.shape == (REQUEST.frames, REQUEST.height, REQUEST.width, 3)
    assert latents[0].shape == (1, 48, 2, 2, 4)  # 5 frames → 2 latent frames; 32×64 / 16
    picture = latent_rgb(latents[-1])
    assert picture.dtype == np.uint8 and picture.shape == (REQUEST.height, REQUEST.width, 3)

    def at(strength, selector="all"):
        entry = LoraEntry(file=str(lora), strength=strength, selector=selector)
        return resident.generate(REQUEST.replace(loras=(entry,)))

    assert np.array_equal(at(0.0), none)
    two = at(2.0)
    assert np.abs(two - none).max() > 1e-2
    assert np.array_equal(at(2.0, "exclude=."), none)  # the block panel's "every block off"
    # block 0 off (and, with blocks named, the modules outside the blocks) equals a file holding
    # only blocks 1 and 2
    modules = make_wan_lora(ti2v_lora_variant(BLOCKS), rank=4, seed=1, up_std=0.5, outside=True)
    kept = [m for m in modules if wan_layout.block_index(m.name) in (1, 2)]
    only = write_lora(lora.parent / "blocks 1-2.safetensors", kept, overwrite=True)
    theirs = resident.generate(REQUEST.replace(loras=(LoraEntry(file=str(only), strength=2.0),)))
    assert np.array_equal(at(2.0, "blocks=0@0,1,2"), theirs)
    assert np.array_equal(at(2.0), two)  # back again: in place, no reload, no re-read
    assert resident.file_reads == {str(lora): 1, str(only): 1}
    # a 16-channel (Wan2.1-shaped) LoRA reaching the head is refused by shape, in one line
    with pytest.raises(UserError, match="head.head is 64×24 but this model's layer is 192×24"):
        make_wan_lora("tiny", path=lora.parent / "wan21.safetensors", outside=True, overwrite=True)
        resident.apply_loras([LoraEntry(file=str(lora.parent / "wan21.safetensors"))])


def test_the_backend_sends_48_channel_latent_previews_of_the_clip_size(ti2v):
    folder, lora = ti2v
    ctx = RecordingContext()
    job = PreviewJob(
        request=REQUEST.replace(loras=(LoraEntry(str(lora), 1.0),)), options=_settings(folder).to_json()
    )
    result = run_preview(job, ctx)
    assert (result.frames, result.width, result.height) == (5, 64, 32)
    frames = [event for event in ctx.events if isinstance(event, Frame)]
    assert [f.meta.get("step") for f in frames] == [1, 2]
    assert all(f.image.shape == (32, 64, 3) for f in frames)


def test_the_48_channel_projection_is_comfyuis_wan22_factors_enlarged_16x():
    import torch

    latents = torch.randn(1, 48, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    picture = latent_rgb(latents)
    assert picture.shape == (32, 48, 3)
    assert np.array_equal(picture[:16, :16], np.broadcast_to(picture[0, 0], (16, 16, 3)))
    first = latents[0, :, 0, 1, 2].numpy()  # latent pixel (1, 2) → picture pixels (16.., 32..)
    want = ((first @ WAN22_RGB_FACTORS + WAN22_RGB_BIAS + 1.0) * 0.5).clip(0, 1) * 255.0 + 0.5
    assert np.array_equal(picture[16, 32], want.astype(np.uint8))
    later = latents.clone()
    later[:, :, 1:] = 0
    assert np.array_equal(latent_rgb(later), picture)  # the first latent frame only
    assert latent_rgb(torch.randn(1, 32, 2, 2, 2)) is None  # a layout with no known factors


def test_the_block_panel_shows_one_control_per_block_of_the_5b(ti2v, qtbot, monkeypatch):
    from tests.preview_panel_helpers import PreviewWindow

    folder, _lora = ti2v
    window = PreviewWindow(qtbot, monkeypatch, folder)
    try:
        panel = window.panel
        assert panel.blocks.num_blocks == BLOCKS
        assert panel.render_form.model_label.text() == f"Wan2.2 TI2V-5B layout (dim 24), {BLOCKS} blocks"
        assert panel.render_button.isEnabled()
    finally:
        window.close()


def test_the_preview_panel_turns_render_off_for_a_size_the_5b_cannot_render(qtbot, monkeypatch, tmp_path):
    from tests.preview_panel_helpers import PreviewWindow

    folder = save_tiny_ti2v(tmp_path / "ti2v 5b")
    window = PreviewWindow(qtbot, monkeypatch, folder)
    try:
        panel = window.panel
        window.quick_form(width=48, height=32)
        qtbot.waitUntil(lambda: not panel.render_button.isEnabled(), timeout=5_000)
        tip = panel.render_button.toolTip()
        assert "multiples of 32" in tip and "use 64x32" in tip
        window.quick_form(width=64, height=32)
        qtbot.waitUntil(panel.render_button.isEnabled, timeout=5_000)
    finally:
        window.close()
