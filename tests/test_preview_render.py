"""The diffusers preview job on the tiny Wan model: a decodable clip, progress per step, cancel,
cache hits that never run the pipeline, misses when a setting changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact, Frame, Status
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview import resident
from difflora_gui.preview.backend import PreviewJob, PreviewResult
from difflora_gui.preview.latent_preview import latent_rgb, preview_every
from difflora_gui.preview.render import hash_lora, run_preview
from difflora_gui.preview.render_cache import RenderCache
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.video_io import VideoReader
from tests.wan_tiny import save_tiny_wan

STEPS = 3


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    wan = save_tiny_wan(folder / "wan")
    lora = folder / "slider.safetensors"
    make_wan_lora("tiny", path=lora, rank=4, seed=1, up_std=0.2)
    yield wan, lora
    resident.release_resident()


def _job(model, tmp_path, *, strength=1.5, out="", cache=True, **changes) -> PreviewJob:
    wan, lora = model
    values = dict(prompt="a cat", seed=3, width=48, height=32, frames=5, fps=8, steps=STEPS, guidance=4.0)
    request = PreviewRequest(loras=(LoraEntry(str(lora), strength=strength),), **{**values, **changes})
    return PreviewJob(
        request=request,
        options={"model_dir": str(wan), "dtype": "fp32", "device": "cpu"},
        out=str(out),
        cache_dir=str(tmp_path / "cache") if cache else "",
        cache_mb=64,
    )


def test_latent_preview_is_the_first_latent_frame_enlarged():
    import torch

    latents = torch.randn(1, 16, 3, 4, 6)
    picture = latent_rgb(latents)
    assert picture.dtype == np.uint8 and picture.shape == (32, 48, 3)
    assert np.array_equal(picture[:8, :8], np.broadcast_to(picture[0, 0], (8, 8, 3)))
    other = latents.clone()
    other[:, :, 1:] = 0  # later latent frames do not matter
    assert np.array_equal(latent_rgb(other), picture)
    assert latent_rgb(torch.randn(1, 32, 2, 4, 4)) is None  # no known factors for 32 channels
    assert preview_every(30) == 4 and preview_every(3) == 1


def test_a_render_writes_a_clip_of_the_requested_frames_and_size(model, tmp_path):
    out = tmp_path / "clip ü.mp4"
    ctx = RecordingContext()
    result = run_preview(_job(model, tmp_path, out=out).to_json(), ctx)
    assert isinstance(result, PreviewResult) and not result.cache_hit
    assert result.video == str(out) and (result.frames, result.width, result.height) == (5, 48, 32)
    with VideoReader(out) as reader:
        assert (reader.frame_count, reader.width, reader.height) == (5, 48, 32)
        assert reader.codec.lower() in ("h264", "avc1")
    steps = [(p.done, p.total, p.text) for p in ctx.progress_reports if p.done >= 1]
    assert steps == [(k, STEPS, f"step {k} of {STEPS}") for k in range(1, STEPS + 1)]
    kinds = {event.kind: event for event in ctx.events if isinstance(event, Artifact)}
    assert set(kinds) == {"video", "image"} and kinds["video"].path == str(out)
    assert kinds["video"].meta["request"]["loras"][0]["sha256"] == hash_lora(model[1])
    assert kinds["video"].meta["key"] == result.key
    latents = [event for event in ctx.events if isinstance(event, Frame)]
    assert latents and latents[0].image.shape == (32, 48, 3)
    assert any(isinstance(e, Status) and "loading model" in e.text for e in ctx.events)


def test_cancel_mid_render_leaves_no_file_and_no_cache_entry(model, tmp_path):
    out = tmp_path / "cancelled.mp4"
    ctx = RecordingContext(cancel_after_progress=2)  # step 0 reported, then step 1: cancel
    outcome = run_sync(run_preview, _job(model, tmp_path, out=out, seed=11), ctx)
    assert outcome.status == "cancelled", outcome.traceback
    assert not out.exists()
    assert RenderCache(tmp_path / "cache", 64).keys() == []
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


def test_the_same_request_again_is_replayed_without_the_pipeline(model, tmp_path, monkeypatch):
    first = run_preview(_job(model, tmp_path), RecordingContext())
    loads = resident.ResidentPipeline.loads

    def no_pipeline(*args, **kwargs):
        raise AssertionError("a cached render ran the pipeline")

    monkeypatch.setattr(resident.ResidentPipeline, "generate", no_pipeline)
    monkeypatch.setattr("difflora_gui.preview.resident.get_resident", no_pipeline)
    out = tmp_path / "again.mp4"
    ctx = RecordingContext()
    again = run_preview(_job(model, tmp_path, out=out), ctx)
    assert again.cache_hit and again.key == first.key and resident.ResidentPipeline.loads == loads
    assert out.read_bytes() == Path(first.video).read_bytes()  # the cached file, replayed
    assert {e.kind for e in ctx.events if isinstance(e, Artifact)} == {"video", "image"}
    # an existing out is refused (nothing replaced), then replaced with overwrite
    with pytest.raises(UserError, match="already exists"):
        run_preview(_job(model, tmp_path, out=out), RecordingContext())
    monkeypatch.undo()
    changed = run_preview(_job(model, tmp_path, strength=0.5), RecordingContext())
    assert not changed.cache_hit and changed.key != first.key
    assert not np.array_equal(_decoded(changed.video), _decoded(first.video))
    assert set(RenderCache(tmp_path / "cache", 64).keys()) == {first.key, changed.key}


def test_without_a_cache_nothing_is_kept_but_out(model, tmp_path):
    out = tmp_path / "plain.mp4"
    result = run_preview(_job(model, tmp_path, out=out, cache=False), RecordingContext())
    assert result.video == str(out) and out.is_file() and not (tmp_path / "cache").exists()


def test_a_missing_lora_or_model_is_one_line_before_anything_runs(model, tmp_path):
    job = _job(model, tmp_path).to_json()
    job["request"]["loras"][0]["file"] = str(tmp_path / "gone.safetensors")
    with pytest.raises(UserError, match="gone.safetensors"):
        run_preview(job, RecordingContext())
    job = _job(model, tmp_path).to_json()
    job["options"]["model_dir"] = str(tmp_path / "no model")
    with pytest.raises(UserError, match="no model"):
        run_preview(job, RecordingContext())
    assert not (tmp_path / "cache").exists()


def _decoded(path) -> np.ndarray:
    with VideoReader(path) as reader:
        return reader.frames()


def test_a_damaged_cache_entry_is_rendered_again(model, tmp_path):
    first = run_preview(_job(model, tmp_path, seed=5), RecordingContext())
    Path(first.video).with_name("meta.json").write_text("{half", encoding="utf-8")
    again = run_preview(_job(model, tmp_path, seed=5), RecordingContext())
    assert not again.cache_hit and again.key == first.key and Path(again.video).is_file()
    assert RenderCache(tmp_path / "cache", 64).get(first.key) is not None
