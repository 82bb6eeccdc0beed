"""The diffusers backend's ``cached`` lookup: None before a render, the cached clip after, and
never the model (the grid job asks it before queueing a cell)."""

from __future__ import annotations

from pathlib import Path

import pytest

from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.plugin_host import get_plugin_host
from difflora_gui.preview import resident
from difflora_gui.preview.backend import PreviewJob, preview_backend
from difflora_gui.preview.render import cached_preview, run_preview
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.specs import resolve_callable
from tests.wan_tiny import save_tiny_wan


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model ü")
    wan = save_tiny_wan(folder / "wan")
    lora = folder / "slider.safetensors"
    make_wan_lora("tiny", path=lora, rank=4, seed=1)
    yield wan, lora
    resident.release_resident()


def _job(model, tmp_path) -> PreviewJob:
    wan, lora = model
    request = PreviewRequest(
        prompt="a cat", seed=2, width=32, height=32, frames=5, fps=8, steps=2,
        loras=(LoraEntry(str(lora), strength=1.0),),
    )  # fmt: skip
    options = {"model_dir": str(wan), "dtype": "fp32", "device": "auto"}
    return PreviewJob(request, options, cache_dir=str(tmp_path / "cache ü"), cache_mb=64)


def test_cached_preview_is_none_before_and_the_clip_after_without_the_model(model, tmp_path, monkeypatch):
    job = _job(model, tmp_path)
    assert cached_preview(job) is None
    assert cached_preview(PreviewJob(job.request, job.options)) is None  # no cache folder
    first = run_preview(PreviewJob(job.request, {**job.options, "device": "cpu"}, cache_dir=job.cache_dir,
                                   cache_mb=64), RecordingContext())  # fmt: skip

    def no_model(*args, **kwargs):
        raise AssertionError("the lookup loaded the model")

    monkeypatch.setattr("difflora_gui.preview.resident.get_resident", no_model)
    loads = resident.ResidentPipeline.loads
    hit = cached_preview(job.to_json())
    assert hit is not None and hit.cache_hit and hit.key == first.key
    assert (hit.frames, hit.width, hit.height) == (5, 32, 32) and Path(hit.video).is_file()
    assert resident.ResidentPipeline.loads == loads
    # the registered backend names the lookup
    spec = preview_backend(get_plugin_host(), "diffusers")
    assert resolve_callable(spec.cached) is cached_preview
