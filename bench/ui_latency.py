"""UI responsiveness during a merge: the worst stall of the UI thread against the 100 ms target.

    python bench/ui_latency.py            # 5 runs
    python bench/ui_latency.py --runs 9

Each run is a fresh ``pytest tests/test_qt_merge_latency.py`` (offscreen): a Wan 1.3B-shaped
attention pair at rank 16 is merged from the Merge workbench while a 5 ms timer on the UI thread
measures the largest gap between its ticks, up to the result being on screen. Prints every run's
worst stall, the median and the maximum, and their ratio to the target. Exit code 1 if the median
misses the target.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.100
_STALL = re.compile(r"worst UI stall ([0-9.]+) ms")


def run_once() -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DIFFLORA_UI_STALL_BUDGET_S="1000")
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_qt_merge_latency.py"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8")
    found = _STALL.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the latency probe failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return float(found.group(1)) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stalls = []
    for index in range(args.runs):
        stalls.append(run_once())
        print(f"run {index + 1}: worst UI stall {1000 * stalls[-1]:.1f} ms", flush=True)
    median, worst = statistics.median(stalls), max(stalls)
    print(
        f"median {1000 * median:.1f} ms = {median / TARGET_S:.2f}x the {1000 * TARGET_S:.0f} ms target; "
        f"max {1000 * worst:.1f} ms = {worst / TARGET_S:.2f}x"
    )
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
