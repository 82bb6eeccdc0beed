"""Render README screenshots of the real main window, offscreen.

    python docs/make_screenshots.py            # writes docs/images/main-window.png
    python docs/make_screenshots.py --out DIR

The window is built exactly as ``python main.py`` builds it (same plugins, theme and docks), in
throw-away settings folders so your own settings and window layout are neither used nor changed.
To show the job system at work it runs three small example jobs through the real JobController:
one finished, one running (held at 40 % until the picture is taken) and one queued behind it in
the same device lane.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--size", default="1440x880", help="window size WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="difflora-screens-"))
    os.environ["DIFFLORA_CONFIG_DIR"] = str(scratch / "config")
    os.environ["DIFFLORA_DATA_DIR"] = str(scratch / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QCoreApplication, QElapsedTimer

    from difflora_gui.jobs import JobRequest
    from difflora_gui.qt.app import create_application
    from difflora_gui.qt.main_window import MainWindow

    app = create_application()
    window = MainWindow()
    window.resize(width, height)
    window.show()
    window.show_section("merge")

    def process(ms: int) -> None:
        timer = QElapsedTimer()
        timer.start()
        while timer.elapsed() < ms:
            QCoreApplication.processEvents()
            time.sleep(0.005)

    release = threading.Event()
    done = window.jobs.submit(
        JobRequest("Example job: count to 50", _count, {"total": 50, "release": release, "delay": 0.02})
    )
    while not done.is_finished:
        process(20)
    window.jobs.submit(
        JobRequest(
            "Example job: count to 200",
            _count,
            {"total": 200, "hold_at": 80, "release": release, "delay": 0.02},
        )
    )
    window.jobs.submit(JobRequest("Example job: queued behind it", _count, {"total": 10, "release": release}))
    window.log("Screenshot: three example jobs in the cpu device lane (one done, one running, one queued)")
    process(2500)  # 80 steps of 20 ms, then it holds: a real ETA is on screen
    window.stack.setFocus()

    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "main-window.png"
    window.grab().save(str(target))
    print(f"wrote {target}")

    release.set()
    window.jobs.shutdown(10)
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
