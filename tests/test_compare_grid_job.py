"""The grid job with the tiny Wan model (tests/wan_tiny.py) on a real Scheduler: cells rendered
once and replayed from the cache, render order, progress, cancel keeping finished cells, a failed
cell, and cells spread over two ComfyUI stand-in servers (tests/fixtures/comfy_standin.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from difflora_gui.compare import grid_job
from difflora_gui.compare.grid_job import run_grid
from difflora_gui.compare.grid_spec import Axis, GridSpec
from difflora_gui.compare.grid_types import GridJob
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.jobs.scheduler import Scheduler
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview.backend import PreviewJob
from difflora_gui.preview.render import cached_preview
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.video_io import read_video

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.wan_tiny import save_tiny_wan

    root = tmp_path_factory.mktemp("grid") / "grid ü"
    model = save_tiny_wan(root / "tiny wan")
    loras = [root / "slider a.safetensors", root / "slider b.safetensors"]
    for seed, path in enumerate(loras, start=1):
        make_wan_lora("tiny", path=path, rank=4, seed=seed)
    return model, loras


def base(lora: Path) -> PreviewRequest:
    return PreviewRequest(
        "a red cube", width=32, height=32, frames=5, steps=2, fps=8, loras=(LoraEntry(str(lora)),)
    )


def grid(files, tmp_path, *axes, **changes) -> GridJob:
    model, loras = files
    spec = GridSpec(base(loras[0]), axes or (Axis.parse("strength", "-1:1:1"), Axis.parse("seed", "1,2")))
    values = {
        "options": {"model_dir": str(model), "device": "cpu", "dtype": "fp32"},
        "cache_dir": str(tmp_path / "cache"),
        **changes,
    }
    return GridJob(spec, **values)


@pytest.fixture
def scheduler():
    lanes = Scheduler(thread_prefix="grid-test")
    lanes.register_devices(["cpu"])
    yield lanes
    lanes.shutdown(10)


def test_a_3x2_grid_renders_6_cells_and_a_second_run_none(files, tmp_path, scheduler, monkeypatch):
    job = grid(files, tmp_path)
    ctx = RecordingContext()
    first = run_grid(job, ctx, scheduler=scheduler)
    assert (first.rendered, first.cached, len(first.cells)) == (6, 0, 6)
    assert sorted((c.row, c.col) for c in first.cells) == [(r, c) for r in range(2) for c in range(3)]
    for cell in first.cells:
        frames, _fps = read_video(cell.video)
        assert frames.shape == (5, 32, 32, 3) and cell.frames == 5 and cell.rendered
    texts = [p.text for p in ctx.progress_reports]
    assert any(t.startswith("cell 1 of 6") for t in texts)
    assert ctx.progress_reports[-1].done == 6 and ctx.progress_reports[-1].total == 6
    assert "6 cells: 6 rendered, 0 from the cache" in ctx.logs
    # the strengths differ, and the seeds do: six different clips
    firsts = {read_video(c.video)[0].tobytes() for c in first.cells}
    assert len(firsts) == 6

    def no_render(*_args, **_kwargs):
        raise AssertionError("a cached cell was rendered again")

    monkeypatch.setattr(grid_job, "run_cell", no_render)
    second = run_grid(job, RecordingContext(), scheduler=scheduler)
    assert (second.rendered, second.cached) == (0, 6)
    assert [c.video for c in second.cells] == [c.video for c in first.cells]
    assert not any(c.rendered for c in second.cells)


def test_cells_render_with_the_expensive_axis_outermost(files, tmp_path, scheduler, monkeypatch):
    _model, loras = files
    order = []
    real = grid_job.run_cell

    def recording(params, ctx):
        order.append(Path(params["job"]["request"]["loras"][0]["file"]).name)
        return real(params, ctx)

    monkeypatch.setattr(grid_job, "run_cell", recording)  # the cell jobs resolve it by name
    variants = Axis("variant", tuple(str(p) for p in loras))
    job = grid(files, tmp_path, Axis.parse("strength", "0.5,1"), variants)
    result = run_grid(job, RecordingContext(), scheduler=scheduler)
    assert result.rendered == 4
    assert order == ["slider a.safetensors"] * 2 + ["slider b.safetensors"] * 2
    assert {c.labels[1] for c in result.cells} == {"slider a", "slider b"}


def test_cancel_keeps_finished_cells_cached_and_exports_nothing(files, tmp_path, scheduler):
    job = grid(files, tmp_path, out=str(tmp_path / "grid é.mp4"))
    ctx = RecordingContext()
    finished = []

    def stop_after_two(child, state):
        if state == "done" and child.request.title.startswith("Grid cell"):
            finished.append(child)
            if len(finished) == 2:
                ctx.cancel()

    scheduler.add_listener(stop_after_two)
    with pytest.raises(JobCancelled):
        run_grid(job, ctx, scheduler=scheduler)
    scheduler.remove_listener(stop_after_two)
    assert not (tmp_path / "grid é.mp4").exists()
    assert not any(p.suffix == ".tmp" or p.name.startswith(".") for p in tmp_path.iterdir())
    assert not [j for j in scheduler.jobs() if not j.is_finished]
    cached = [
        c
        for c in job.spec.cells()
        if cached_preview(PreviewJob(c.request, job.options, cache_dir=job.cache_dir))
    ]
    assert len(cached) >= 2
    resumed = run_grid(job, RecordingContext(), scheduler=scheduler)
    assert resumed.cached >= 2 and resumed.rendered == 6 - resumed.cached
    assert Path(resumed.out).is_file() and Path(resumed.sidecar).is_file()


def test_a_failing_cell_names_itself_and_nothing_is_exported(files, tmp_path, scheduler):
    _model, loras = files
    gone = tmp_path / "deleted checkpoint.safetensors"
    variants = Axis("variant", (str(loras[0]), str(gone)))
    job = grid(files, tmp_path, Axis.parse("strength", "1"), variants, out=str(tmp_path / "g.mp4"))
    with pytest.raises(UserError) as caught:
        run_grid(job, RecordingContext(), scheduler=scheduler)
    assert "deleted checkpoint" in str(caught.value)
    assert not (tmp_path / "g.mp4").exists()
    assert not [j for j in scheduler.jobs() if not j.is_finished]


def test_an_existing_out_is_refused_before_any_cell_renders(files, tmp_path, scheduler):
    out = tmp_path / "grid.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        run_grid(grid(files, tmp_path, out=str(out)), RecordingContext(), scheduler=scheduler)
    assert out.read_bytes() == b"keep me" and not (tmp_path / "cache").exists()


def test_a_device_pattern_lane_sets_each_cells_device(files, tmp_path, monkeypatch):
    lanes = Scheduler(thread_prefix="grid-test")
    lanes.register_devices(["cpu"])
    seen = []
    real = grid_job.run_cell

    def spy(params, ctx):
        seen.append((ctx.lane_key, params["job"]["options"]["device"]))
        return real(params, ctx)

    monkeypatch.setattr(grid_job, "run_cell", spy)
    job = grid(files, tmp_path, Axis.parse("strength", "1,2"), lane="device:*")
    job = GridJob.from_json({**job.to_json(), "options": {**job.options, "device": "auto"}})
    try:
        result = run_grid(job, RecordingContext(), scheduler=lanes)
    finally:
        lanes.shutdown(10)
    assert result.rendered == 2 and seen == [("device:cpu", "auto")] * 2
    assert all(c.request["loras"][0]["strength"] in (1.0, 2.0) for c in result.cells)


def two_server_grid_job(tmp_path, one, two, *, strengths: str, template: str, out=None) -> GridJob:
    """A strengths × seeds 1,2 grid of a tiny LoRA over the stand-ins ``one`` and ``two``."""
    from tests.test_comfy_preview_backend import BUILDER

    lora = tmp_path / "slider.safetensors"
    make_wan_lora("tiny", path=lora, rank=4, seed=3)
    servers = [
        {"name": name, "url": s.url, "lora_dir": str(s.base / "models/loras")}
        for name, s in (("one", one), ("two", two))
    ]
    request = PreviewRequest(
        "a cat", width=48, height=32, frames=5, fps=8, steps=4, loras=(LoraEntry(str(lora)),)
    )
    spec = GridSpec(request, (Axis.parse("strength", strengths), Axis.parse("seed", "1,2")))
    options = {"template": template, "servers": servers, "builder": BUILDER}
    return GridJob(
        spec, backend="comfyui", options=options, cache_dir=str(tmp_path / "cache"), out=str(out) if out else ""
    )


@pytest.mark.usefixtures("fresh_comfy_pools")
def test_cells_spread_over_two_comfyui_servers(tmp_path, standins):
    one, two = standins("one"), standins("two")
    for server in (one, two):
        server.sampler_step_s = 0.05
    job = two_server_grid_job(tmp_path, one, two, strengths="-1:1:0.5", template="tiny")
    lanes = Scheduler(thread_prefix="grid-test")
    try:
        result = run_grid(job, RecordingContext(), scheduler=lanes)
        assert result.rendered == 10
        assert len(one.posted) >= 1 and len(two.posted) >= 1
        assert len(one.posted) + len(two.posted) == 10
        again = run_grid(job, RecordingContext(), scheduler=lanes)  # found in the cache: no prompt sent
        assert (again.rendered, again.cached) == (0, 10)
        assert len(one.posted) + len(two.posted) == 10
    finally:
        lanes.shutdown(10)
