"""The demo walk timed (issue 16 target: ≤ 10 minutes from the window's first start to the exported
grid on a 2-core machine).

The same walk as ``tests/test_qt_demo_walk.py`` (``tests/demo_walk_helpers.py``), clicking the
sections' own controls, but with the settings a user would leave as they are: the demo's training
form (the built-in trainer's quick-test preset on the tiny model) and the render settings the demo
project opens with in Preview and Compare (128×80, 17 frames, 10 steps). Steps: first start + Build the demo,
Dataset check, the pair run, Merge these (exact SVD, attention targets), Preview at strengths
0.5, 1 and 1.5 with block 1 at weight 0.5, Strength grid…: the demo's grid (strengths -2…2 × seeds
1, 2) exported to .mp4.

Prints each step's seconds, the total, the exported video's codec, frames and size, and the load
average before and after. Run with ``QT_QPA_PLATFORM=offscreen python bench/demo_walk.py``;
``--threads N`` sets torch's threads (default 2, the target machine's cores). User folders are
isolated in a temporary folder (kept with ``--keep``)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: None: the demo project's own render settings, as a user finds them
FORM = None
STRENGTHS = (0.5, 1.0, 1.5)
BLOCK_WEIGHTS = {1: 0.5}


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="demo walk "))
    os.environ["DIFFLORA_CONFIG_DIR"] = str(root / "config")
    os.environ["DIFFLORA_DATA_DIR"] = str(root / "data")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import pytest
    import torch
    from PySide6.QtWidgets import QApplication

    from difflora_gui.compare.grid_canvas import grid_geometry
    from tests.demo_walk_helpers import DemoWalk, EventLoopBot
    from tests.e2e_helpers import probe_video

    torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([])
    print(f"before: {load()}; torch threads {args.threads}; folder {root}")
    with pytest.MonkeyPatch.context() as monkeypatch:
        walk = DemoWalk(EventLoopBot(app), monkeypatch, root / "demo")
        try:
            walk.start_and_build_demo()
            scores = walk.check_pairs()
            flagged = sorted(pair_id for pair_id, score in scores.items() if score.flags)
            print(f"checked {len(scores)} pairs, flagged {flagged}")
            runs = walk.train_pair()
            print(
                f"training form as opened: max_train_steps {walk.steps_before_preset}; then Apply quick-test"
            )
            print("runs: " + ", ".join(f"{r.name} {r.status} {r.steps_done} steps" for r in runs))
            merged = walk.merge_pair()
            print(f"merged: {merged.name} ({walk.merge_status})")
            previews = walk.preview(merged, STRENGTHS, BLOCK_WEIGHTS, FORM)
            request = previews[0].request
            print(f"previews: {len(previews)} at {request.width}×{request.height}, {request.frames} frames")
            out = root / "demo grid.mp4"
            grid = walk.grid(merged, out, FORM, keep_axes=True)
            cell = grid.cells[0]
            spec = walk.window.panels["compare-grid"].widget.grid_spec()
            canvas = grid_geometry(spec, cell.width, cell.height)
            probe = probe_video(out)
            axes = " × ".join(f"{axis.kind} {len(axis.values)}" for axis in spec.axes)
            print(
                f"grid ({axes}): {len(grid.cells)} cells of {cell.width}×{cell.height}; {out.name}: {probe.codec}, "
                f"{probe.frames} frames, {probe.width}×{probe.height} (canvas {canvas.width}×{canvas.height})"
            )
        finally:
            for step, seconds in walk.times.items():
                print(f"{step:>20}: {seconds:7.1f} s")
            print(f"{'total':>20}: {sum(walk.times.values()):7.1f} s")
            print(f"after: {load()}")
            walk.close()
            app.processEvents()
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
