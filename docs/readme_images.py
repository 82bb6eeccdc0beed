"""Render the README's two header pictures (docs/images) of the real main window, offscreen.

    python docs/make_screenshots.py --only main-window --only merge-workbench   # through the main script
    python docs/readme_images.py               # writes docs/images/main-window.png and merge-workbench.png
    python docs/readme_images.py --out DIR --only merge-workbench

The walk-through's pictures, one per section (docs/screenshots), are ``make_screenshots.py``'s own.

The window is built exactly as ``python main.py`` builds it (same plugins, theme and docks), in
throw-away settings folders so your own settings and window layout are neither used nor changed.
Both pictures use a synthetic pair of component LoRAs shaped like Wan2.1 1.3B (Musubi Tuner key
format and metadata) whose difference, the "concept", lives in the cross-attention of blocks 8-19
(``difflora_gui.merge.demo_pair``); LoRA B's metadata records another learning rate, so the input
check has something to say.

* ``main-window.png``: the Merge section with both inputs read and analysed, and the job system at
  work: three small example jobs run through the real JobController, one finished, one running
  (held at 40 % until the picture is taken) and one queued behind it in the same device lane.
* ``merge-workbench.png``: the Merge workbench after a real merge of the cross-attention of blocks
  8-19 at rank 8 with auto alpha: input cards, targets, and the analysis plots of that merge.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ("main-window", "merge-workbench")


def _count(params, ctx):
    """Example job: counts to ``params['total']``, reporting progress; waits at ``hold_at``."""
    total = params["total"]
    for step in range(1, total + 1):
        ctx.raise_if_cancelled()
        if step == params.get("hold_at"):
            ctx.log(f"holding at step {step} of {total}")
            while not params["release"].wait(0.02):
                ctx.raise_if_cancelled()
        ctx.progress(step, total, f"step {step}")
        time.sleep(params.get("delay", 0.0))
    return total


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--size", default="1680x1050", help="main-window size WIDTHxHEIGHT")
    parser.add_argument("--merge-size", default="1720x1160", help="merge-workbench window size WIDTHxHEIGHT")
    parser.add_argument("--only", choices=SHOTS, action="append", help="make only this picture (repeatable)")
    args = parser.parse_args(argv)
    shots = args.only or list(SHOTS)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="difflora-screens-"))
    os.environ["DIFFLORA_CONFIG_DIR"] = str(scratch / "config")
    os.environ["DIFFLORA_DATA_DIR"] = str(scratch / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QCoreApplication, QElapsedTimer

    from difflora_gui.merge.demo_pair import make_demo_pair
    from difflora_gui.qt.app import create_application
    from difflora_gui.qt.main_window import MainWindow

    app = create_application()

    def process(ms: int) -> None:
        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < ms:
            QCoreApplication.processEvents()
            time.sleep(0.005)

    def wait(condition, what: str, timeout_ms: int = 120_000) -> None:
        timer = QElapsedTimer()
        timer.start()
        while not condition():
            if timer.elapsed() > timeout_ms:
                raise RuntimeError(f"timed out waiting for {what}")
            process(20)

    loras = scratch / "component LoRAs"
    loras.mkdir()
    lora_a, lora_b = make_demo_pair(
        loras / "dense scenes.safetensors",
        loras / "sparse scenes.safetensors",
        variant="1.3B",
        rank=16,
        select="all",
        concept_blocks=range(8, 20),
        format="musubi",
        metadata_b={"ss_learning_rate": "1e-4"},
    )
    output_dir = scratch / "Anime Denser"
    output_dir.mkdir()
    args.out.mkdir(parents=True, exist_ok=True)

    def open_window(size: tuple[int, int]):
        window = MainWindow()
        window.resize(*size)
        window.show()
        window.show_section("merge")
        window.project.name = "Anime Denser"
        window.project.output_dir = str(output_dir)
        panel = window.panels["merge-workbench"].widget
        window.route_files([lora_a, lora_b])
        wait(lambda: panel.summaries["a"] is not None and panel.summaries["b"] is not None, "the input cards")
        return window, panel

    def run(panel, button) -> None:
        button.click()
        wait(
            lambda: panel.job is None and panel.analysis_view is not None and panel.analysis_view.is_filled,
            "the job and its plots",
        )

    def close(window) -> None:
        window.jobs.shutdown(10)
        window.project.save(scratch / "screenshots.difflora")  # nothing unsaved: no question on close
        window.close()
        app.processEvents()

    if "main-window" in shots:
        from difflora_gui.jobs import JobRequest

        window, panel = open_window(_size(args.size))
        run(panel, panel.analyze_button)
        release = threading.Event()
        done = window.jobs.submit(
            JobRequest("Example job: count to 50", _count, {"total": 50, "release": release, "delay": 0.02})
        )
        wait(lambda: done.is_finished, "the first example job")
        window.jobs.submit(
            JobRequest(
                "Example job: count to 200",
                _count,
                {"total": 200, "hold_at": 80, "release": release, "delay": 0.02},
            )
        )
        window.jobs.submit(
            JobRequest("Example job: queued behind it", _count, {"total": 10, "release": release})
        )
        window.log(
            "Screenshot: three example jobs in the cpu device lane (one done, one running, one queued)"
        )
        process(2500)  # 80 steps of 20 ms, then it holds: a real ETA is on screen
        window.stack.setFocus()
        target = args.out / "main-window.png"
        window.grab().save(str(target))
        print(f"wrote {target}")
        release.set()
        close(window)

    if "merge-workbench" in shots:
        window, panel = open_window(_size(args.merge_size))
        window.jobs_dock.hide()  # the picture is of the panel: give it the window's width
        panel.targets.set_text("cross_attn blocks=8-19")
        panel.rank_form.set_values({"rank": 8})
        panel.strength_form.set_values({"auto_alpha": True})
        run(panel, panel.merge_button)
        window.log_dock.hide()
        process(500)
        panel.analysis_view.select_module("blocks.12.cross_attn.k")
        # the settings column shows the inputs' check and the target grid
        from PySide6.QtWidgets import QScrollArea

        scroll = panel.findChild(QScrollArea, "mergeSettingsScroll")
        scroll.ensureWidgetVisible(panel.targets, 0, 40)
        process(500)
        target = args.out / "merge-workbench.png"
        window.pages["merge"].grab().save(str(target))
        print(f"wrote {target}")
        close(window)
    shutil.rmtree(scratch, ignore_errors=True)  # the demo LoRAs are large (about 90 MB each)
    return 0


if __name__ == "__main__":
    sys.exit(main())
