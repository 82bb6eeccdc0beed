"""Issue 16: the demo walked through the window with each section's own controls, at the smallest
settings the panels take — checks flag the two flawed pairs, a synchronised pair run on the tiny
model writes two LoRAs, Merge these writes the differential LoRA (exact SVD, attention) and fills
the plots, Preview renders it at three strengths with block weights, Compare exports a 3 × 2
strength × seed grid as H.264 of grid_geometry's size. Wall times are printed, not asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from difflora_gui.demo import dataset as demo_dataset
from tests.demo_walk_helpers import DemoWalk

#: the fewest steps a pair run takes here (the quick-test preset otherwise)
TINY_TRAINING = {"max_train_steps": 2, "save_every_n_steps": 0, "resolution": "32"}
PREVIEW_FORM = {"prompt": "a hatched scene", "width": 64, "height": 64, "frames": 5, "steps": 2, "fps": 8}
GRID_FORM = {**PREVIEW_FORM, "width": 32, "height": 32}
PREVIEW_STRENGTHS = (0.5, 1.0, 1.5)
BLOCK_WEIGHTS = {0: 1.0, 1: 0.5}


@pytest.mark.slow
def test_the_demo_walk_through_the_sections_controls(qtbot, monkeypatch, tmp_path):
    import av
    import torch

    from difflora_gui.compare.grid_canvas import grid_geometry

    torch.set_num_threads(2)
    walk = DemoWalk(qtbot, monkeypatch, tmp_path / "démo walk")
    try:
        project = walk.start_and_build_demo()
        assert project.name == "DiffLoRA demo.difflora" and project.is_file()

        scores = walk.check_pairs()
        assert len(scores) == 24
        flagged = {pair_id for pair_id, score in scores.items() if score.flags}
        shifted = demo_dataset.pair_id(demo_dataset.SHIFTED_PAIR)
        tinted = demo_dataset.pair_id(demo_dataset.COLOUR_CAST_PAIR)
        assert flagged == {shifted, tinted}, {k: scores[k].flags for k in flagged}

        runs = walk.train_pair(TINY_TRAINING)
        assert [(r.side, r.status) for r in runs] == [("a", "finished"), ("b", "finished")]
        assert all(Path(r.output).is_file() and r.steps_done == 2 for r in runs)
        train_form = walk.window.project.section("train")["form"]
        assert train_form["backend"] == "builtin" and train_form["preset"] == "quick-test"
        pairs = walk.window.project.section("train")["pairs"]
        assert pairs[runs[0].pair_id]["config"]["pair_mode"] == "synchronised"

        merged = walk.merge_pair()
        merge = walk.window.panels["merge-workbench"].widget
        assert merged.is_file() and "Wrote" in walk.merge_status, walk.merge_status
        assert merge.targets.text() == "attn"
        assert merge.analysis is not None and merge.analysis.rows
        assert merge.analysis_view.is_filled

        previews = walk.preview(merged, PREVIEW_STRENGTHS, BLOCK_WEIGHTS, PREVIEW_FORM)
        shown = {r.request.loras[0].strength for r in previews}
        assert shown == set(PREVIEW_STRENGTHS)
        assert all(Path(r.video).is_file() for r in previews)
        assert previews[0].request.loras[0].selector == "all blocks=0,1@0.5"
        preview = walk.window.panels["preview-player"].widget
        assert preview.player.frame_count == 5 and preview.player.frames().shape[1:3] == (64, 64)

        out = tmp_path / "grids ü" / "demo grid.mp4"
        out.parent.mkdir()
        grid = walk.grid(merged, out, GRID_FORM)
        assert grid is not None and len(grid.cells) == 6
        assert out.is_file()
        canvas = grid_geometry(walk.window.panels["compare-grid"].widget.grid_spec(), 32, 32)
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = sum(1 for _ in container.decode(stream))
            size = stream.codec_context.width, stream.codec_context.height
        assert frames == 5 and size == (canvas.width, canvas.height)
    finally:
        print(walk.report())
        walk.close()
