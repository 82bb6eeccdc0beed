"""A grid over two ComfyUI stand-in servers (tests/fixtures/comfy_standin.py, not ComfyUI) when
one of them dies in the middle of it: its cell and every later one finish on the other, the dead
one is marked down, and the grid is exported."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from difflora_gui.comfy.pool import DOWN, shared_pool
from difflora_gui.compare.grid_canvas import grid_geometry
from difflora_gui.compare.grid_job import run_grid
from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.jobs.scheduler import Scheduler
from difflora_gui.preview.video_io import read_video
from tests.test_comfy_preview_backend import COLOR
from tests.test_compare_grid_job import two_server_grid_job

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_comfy_pools")]


def test_a_server_killed_mid_grid_has_its_cells_finish_on_the_other(tmp_path, standins):
    # "slow" adds the stand-in's ImageBlur, which takes node_delay_s: 'one' is certain to be
    # in the middle of its first cell when it is killed, 'two' renders at once
    one, two = standins("one", node_delay_s=30.0), standins("two")
    out = tmp_path / "grid.mp4"
    job = two_server_grid_job(tmp_path, one, two, strengths="-1,0.5,1", template="slow", out=out)
    spec = job.spec

    killed = threading.Event()

    def kill_when_running():
        end = time.monotonic() + 20
        while one.running is None and time.monotonic() < end:
            time.sleep(0.02)
        one.stop()
        killed.set()

    threading.Thread(target=kill_when_running, daemon=True).start()
    lanes = Scheduler(thread_prefix="grid-failover")
    ctx = RecordingContext()
    started = time.monotonic()
    try:
        result = run_grid(job, ctx, scheduler=lanes)
    finally:
        lanes.shutdown(10)
    assert killed.is_set() and time.monotonic() - started < 20

    # 'one' got one prompt, which it never finished; all six cells were rendered by 'two'
    assert len(one.posted) == 1 and len(two.posted) == 6
    assert (result.rendered, result.cached, len(result.cells)) == (6, 0, 6)
    assert {(c.row, c.col) for c in result.cells} == {(r, c) for r in range(2) for c in range(3)}
    for cell in result.cells:
        frames, _fps = read_video(cell.video)
        assert frames.shape == (5, 32, 48, 3)
        assert np.abs(frames.astype(float).mean(axis=(0, 1, 2)) - COLOR).max() < 8
    assert any("ComfyUI server one failed" in line and "trying another server" in line for line in ctx.logs)
    pool = shared_pool(job.options["servers"])
    assert pool.health("one").state == DOWN and pool.healthy_names() == ["two"]

    # the exported grid: every cell on one canvas
    assert Path(result.out) == out
    geometry = grid_geometry(spec, 48, 32)
    grid_frames, _fps = read_video(out)
    assert grid_frames.shape == (5, geometry.height, geometry.width, 3)
