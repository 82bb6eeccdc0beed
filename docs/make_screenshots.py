"""Render the README's walk-through screenshots from the demo project, one per section, offscreen.

    python docs/make_screenshots.py                       # docs/screenshots/{dataset,train,merge,preview,compare}.png
    python docs/make_screenshots.py --out DIR --size 1280x720 --sections dataset,merge
    python docs/make_screenshots.py --demo DIR            # build (or complete) the demo in DIR and keep it

The window is the real one (``python main.py``'s plugins, dark theme and docks) in throw-away settings
folders, walked through the demo with each section's own controls, exactly as
``tests/test_qt_demo_walk.py`` walks it (``tests/demo_walk_helpers.py``):

* ``dataset``: the demo's 24 pairs after Check pairs (the shifted and the colour-cast pair flagged);
* ``train``: the pair run (A and B with identical settings) finished, on the built-in trainer;
* ``merge``: Merge these (B subtracted from A, exact SVD on the attention) finished, with its plots;
* ``preview``: the differential LoRA rendered at strength 1 with block weights;
* ``compare``: a strengths -2:2:1 × seeds 1,2 grid rendered and exported as H.264.

A section needs the steps before it (Compare needs the merge, which needs the pair run): those run,
only the chosen sections are saved. The PNGs it writes replace any of the same name in ``--out``
(it is this script's output folder); nothing else there is touched. ``--only main-window`` or
``--only merge-workbench`` makes the README's header pictures in docs/images instead (readme_images.py). ``--fast`` trains 2 steps and
renders 32×32 instead of 64×64 clips (5 frames, 2 steps: the tiny demo model renders noise-like
clips at any size).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("dataset", "train", "merge", "preview", "compare")
#: the README's header pictures, made by readme_images.py
HEADER_PICTURES = ("main-window", "merge-workbench")
PROMPT = "a hatched scene"
#: Preview's block weights: the first blocks at full weight, block 1 halved
BLOCK_WEIGHTS = {0: 1.0, 1: 0.5}
GRID_STRENGTHS, GRID_SEEDS = "-2:2:1", "1,2"
FAST_TRAINING = {"max_train_steps": 2, "save_every_n_steps": 0, "resolution": "32"}
#: renders small enough for a CPU in seconds; ``--fast`` halves the size again
RENDER = {"width": 64, "height": 64, "frames": 5, "steps": 2, "fps": 8}
FAST_RENDER = {**RENDER, "width": 32, "height": 32}


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 1280x720, not {text!r}") from None
    if width < 320 or height < 240:
        raise argparse.ArgumentTypeError(f"the window needs at least 320x240, not {text}")
    return width, height


def parse_sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; not {', '.join(unknown)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="PNG folder")
    parser.add_argument("--size", type=parse_size, default=(1280, 720), help="window size WIDTHxHEIGHT")
    parser.add_argument("--sections", type=parse_sections, default=list(SECTIONS), help="comma-separated")
    parser.add_argument("--demo", type=Path, help="build (or complete) the demo here and keep it")
    parser.add_argument("--fast", action="store_true", help="2 training steps, 32×32 renders (tests)")
    parser.add_argument("--threads", type=int, default=4, help="torch threads")
    parser.add_argument(
        "--only",
        choices=HEADER_PICTURES,
        action="append",
        help="instead: the README's header picture (docs/images, readme_images.py; repeatable)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.only:
        sys.path.insert(0, str(ROOT / "docs"))
        import readme_images

        out = args.out if "--out" in (sys.argv[1:] if argv is None else argv) else ROOT / "docs" / "images"
        return readme_images.main([f"--only={name}" for name in args.only] + [f"--out={out}"])
    scratch = Path(tempfile.mkdtemp(prefix="difflora-screens-"))
    os.environ["DIFFLORA_CONFIG_DIR"] = str(scratch / "config")
    os.environ["DIFFLORA_DATA_DIR"] = str(scratch / "data")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    try:
        write_screenshots(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def write_screenshots(args, scratch: Path) -> list[Path]:
    import pytest
    import torch
    from PySide6.QtWidgets import QApplication

    from difflora_gui.qt.theme import apply_dark_theme
    from tests import demo_walk_helpers
    from tests.demo_walk_helpers import DemoWalk, EventLoopBot

    torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication([])
    apply_dark_theme(app)
    wanted = set(args.sections)
    last = max(SECTIONS.index(name) for name in wanted)
    render = {"prompt": PROMPT, **(FAST_RENDER if args.fast else RENDER)}
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        # the grid's axes for the pictures, undone afterwards (tests run this in their own process too)
        monkeypatch.setattr(demo_walk_helpers, "GRID_STRENGTHS", GRID_STRENGTHS)
        monkeypatch.setattr(demo_walk_helpers, "GRID_SEEDS", GRID_SEEDS)
        bot = EventLoopBot(app)
        walk = DemoWalk(bot, monkeypatch, args.demo or scratch / "demo")

        def shoot(name: str) -> None:
            if name not in wanted:
                return
            walk.window.resize(*args.size)
            bot.waitUntil(lambda: True)
            settle(app)
            target = args.out / f"{name}.png"
            partial = target.with_name(f".{name}.partial.png")
            if not walk.window.grab().save(str(partial)):
                raise RuntimeError(f"could not write {partial}")
            partial.replace(target)
            written.append(target)
            print(f"wrote {target}")

        try:
            walk.start_and_build_demo()
            # the pictures are of the sections: the Jobs and Log docks would take half of a 1280×720 window
            walk.window.jobs_dock.hide()
            walk.window.log_dock.hide()
            walk.window.resize(*args.size)
            walk.check_pairs()
            show_flagged_pairs(walk.window.panels["dataset-pairs"].widget)
            shoot("dataset")
            if last >= SECTIONS.index("train"):
                walk.train_pair(FAST_TRAINING if args.fast else None)
                shoot("train")
            if last >= SECTIONS.index("merge"):
                merged = walk.merge_pair()
                shoot("merge")
            if last >= SECTIONS.index("preview"):
                walk.preview(merged, (1.0,), BLOCK_WEIGHTS, render)
                show_block_weights(walk.window.panels["preview-player"].widget)
                shoot("preview")
            if last >= SECTIONS.index("compare"):
                walk.grid(merged, scratch / "demo grid.mp4", render)
                shoot("compare")
        finally:
            walk.close()
            app.processEvents()
    return written


def show_flagged_pairs(dataset) -> None:
    """The grid filtered to the flagged pairs, the shifted one open beside its scores."""
    from difflora_gui.demo import dataset as demo_dataset
    from difflora_gui.qt.dataset.pair_grid import FLAGGED

    dataset.grid.bar.set_flag_filter(FLAGGED)
    dataset.grid.select_pair(demo_dataset.pair_id(demo_dataset.SHIFTED_PAIR))


def show_block_weights(preview) -> None:
    """The settings column scrolled to the block weights (the render form is above them)."""
    from PySide6.QtWidgets import QScrollArea

    scroll = preview.findChild(QScrollArea, "previewInputsScroll")
    if scroll is not None:
        scroll.ensureWidgetVisible(preview.blocks, 0, 20)


def settle(app, seconds: float = 0.4) -> None:
    """Let layouts, plots and decoded frames reach the screen before the grab."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
