"""Start-up benchmark: time from launching ``python main.py`` to the first shown window.

    python bench/startup.py            # 7 runs
    python bench/startup.py --runs 3 --budget 2.0

Each run starts a fresh ``python main.py`` (offscreen, throw-away settings folders) with
``DIFFLORA_STARTUP_PROBE=1``: the app prints one line when its window is first shown (the time
since launch, and which heavy modules were already imported) and quits. Prints the median and
minimum time, whether torch/diffusers were imported before the window showed, and the ratio to
the budget (2 s on a 2-core machine). Exit code 1 if the median misses the budget or torch was
imported before the window.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "DIFFLORA_STARTUP "


def launch_once(python: str, extra_args: list[str], timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="difflora-bench-") as scratch:
        env = os.environ.copy()
        env.update(
            {
                "QT_QPA_PLATFORM": "offscreen",
                "DIFFLORA_STARTUP_PROBE": "1",
                "DIFFLORA_CONFIG_DIR": str(Path(scratch) / "config"),
                "DIFFLORA_DATA_DIR": str(Path(scratch) / "data"),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env["DIFFLORA_STARTUP_T0"] = repr(time.time())
        started = time.perf_counter()
        proc = subprocess.run(
            [python, str(ROOT / "main.py"), *extra_args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout_s,
        )
        total = time.perf_counter() - started
    reports = [
        json.loads(line[len(PREFIX) :]) for line in proc.stdout.splitlines() if line.startswith(PREFIX)
    ]
    if proc.returncode != 0 or not reports:
        raise RuntimeError(f"main.py failed (exit code {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report = reports[0]
    report["process_s"] = total
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time from launch to the first shown window.")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds allowed to the first window")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    launch_once(args.python, [], args.timeout)  # warm the OS file cache; not counted
    reports = [launch_once(args.python, [], args.timeout) for _ in range(args.runs)]
    shown = [r["since_launch_s"] for r in reports]
    in_app = [r["since_run_gui_s"] for r in reports]
    whole = [r["process_s"] for r in reports]
    heavy_before = sorted({name for r in reports for name, loaded in r["imported"].items() if loaded})
    torch_before = any(r["imported"]["torch"] or r["imported"]["diffusers"] for r in reports)
    median = statistics.median(shown)

    print(
        f"machine: {os.cpu_count()} CPU core(s), Python {sys.version.split()[0]}, {args.runs} runs (+1 warm-up)"
    )
    print(
        f"launch -> first shown window: median {median:.3f} s, min {min(shown):.3f} s, max {max(shown):.3f} s"
    )
    print(f"  of which inside run_gui():  median {statistics.median(in_app):.3f} s")
    print(f"whole process (show + quit):  median {statistics.median(whole):.3f} s")
    print(f"budget {args.budget:.1f} s: median / budget = {median / args.budget:.2f}")
    print(f"torch or diffusers imported before the window showed: {'YES' if torch_before else 'no'}")
    print(f"heavy modules imported before the window: {', '.join(heavy_before) if heavy_before else 'none'}")
    return 0 if median <= args.budget and not torch_before else 1


if __name__ == "__main__":
    sys.exit(main())
