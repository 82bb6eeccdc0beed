"""Benchmark of the pair checks on 1,000 generated 1080p JPEG pairs (not a test).

    python bench/dataset_bench.py                # 1,000 pairs
    python bench/dataset_bench.py --pairs 100    # a quick run

It generates textured pairs (gradients, multi-octave value noise, textured shapes, a slight blur
and sensor grain, so they compress like film frames; B = A with a colour grade, a re-textured blob
and fresh grain), JPEG q95, in parallel, cached in a temp folder (reused by the next run with the
same count). Then, in one run and with the files in the page cache:

* the naive reference: decode every image at full size with ``cv2.imread`` in one process;
* import (``pair_folders``) + check of all pairs at 256 and at 512 with the check job
  (``run_check``: reduced decode, one linear resize, every score, both cores).

Targets on the project's 2-core machine: import + check at 256 ≤ 0.5× the full decode, at 512 ≤ 0.8×.

Besides wall times it prints CPU times (all threads) and, on Linux, how long the check's threads
were runnable but waiting for a CPU that another process held: on a shared machine the wall
ratio says more about the neighbours than about the pipeline, and "CPU ÷ workers ÷ the decode's
CPU" is what the same run gives with its cores free (the workers are threads; OpenCV and numpy
release the GIL, and a thread waiting for the GIL is not counted as waiting for a CPU).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 1920, 1080
GENERATOR_VERSION = 2
TARGETS = {256: 0.5, 512: 0.8}


def _value_noise(rng, octaves=5, base=8):
    out = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    amplitude, cells = 1.0, base
    for _ in range(octaves):
        grid = rng.random((cells * HEIGHT // WIDTH + 2, cells + 2, 3), dtype=np.float32)
        out += cv2.resize(grid, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) * amplitude
        amplitude *= 0.5
        cells *= 2
    return out


def _grain(rng, sigma: float) -> np.ndarray:
    noise = np.empty((HEIGHT, WIDTH, 3), np.float32)
    cv2.randn(noise, 0.0, sigma)
    return noise


def make_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cv2.setRNGSeed(seed)
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    colours = rng.random((2, 3), dtype=np.float32) * 200
    image = colours[0] * (1 - x) + colours[1] * y + _value_noise(rng) * 40
    for _ in range(int(rng.integers(15, 35))):  # textured shapes: a flat colour, textured below
        centre = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
        colour = tuple(float(c) for c in rng.random(3) * 255)
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(20, 200)), colour, -1, cv2.LINE_AA)
        else:
            size = (int(rng.integers(20, 300)), int(rng.integers(20, 300)))
            cv2.ellipse(image, centre, size, float(rng.random() * 180), 0, 360, colour, -1, cv2.LINE_AA)
    image += _value_noise(rng, octaves=2, base=256) * 30 - 30  # fine texture over everything
    image = cv2.GaussianBlur(image, (0, 0), 0.7)
    a = image + _grain(rng, 3.0)
    grade = (1.0 + rng.normal(0, 0.02, 3)).astype(np.float32)
    b = image * grade
    blob = np.zeros((HEIGHT, WIDTH), np.float32)
    centre = (int(rng.integers(200, WIDTH - 200)), int(rng.integers(200, HEIGHT - 200)))
    cv2.circle(blob, centre, 150, 1.0, -1)
    blob = cv2.GaussianBlur(blob, (0, 0), 20)[:, :, None]
    smooth = cv2.resize(
        cv2.resize(b, (WIDTH // 8, HEIGHT // 8), interpolation=cv2.INTER_AREA), (WIDTH, HEIGHT)
    )
    b = b * (1 - blob) + smooth * blob  # a re-textured (smoothed) region
    b += _grain(rng, 3.0)
    return np.clip(a, 0, 255).astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8)


def _write_pair(job):
    index, folder = job
    cv2.setNumThreads(1)
    a, b = make_pair(1000 + index)
    name = f"frame_{index:05d}.jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    cv2.imwrite(str(Path(folder) / "A" / name), a, params)
    cv2.imwrite(str(Path(folder) / "B" / name), b, params)
    return index


def generate(folder: Path, pairs: int) -> None:
    marker = folder / f"done-v{GENERATOR_VERSION}-{pairs}"
    if marker.exists():
        print(f"pairs: {pairs} cached in {folder}")
        return
    (folder / "A").mkdir(parents=True, exist_ok=True)
    (folder / "B").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        for done, _ in enumerate(
            pool.imap_unordered(_write_pair, [(i, str(folder)) for i in range(pairs)]), 1
        ):
            if done % 100 == 0:
                print(f"  generated {done}/{pairs}", flush=True)
    marker.write_text("ok\n")
    print(f"pairs: {pairs} generated in {time.perf_counter() - start:.1f} s into {folder}")


def decode_floor(folder: Path) -> tuple[float, float]:
    """(wall s, CPU s) to decode every image at full size with cv2.imread in this process."""
    files = sorted((folder / "A").glob("*.jpg")) + sorted((folder / "B").glob("*.jpg"))
    start, cpu = time.perf_counter(), time.process_time()
    for path in files:
        if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
            raise SystemExit(f"cannot decode {path}")
    return time.perf_counter() - start, time.process_time() - cpu


class RunQueueProbe:
    """Linux: how long this process's threads were runnable but waiting for a CPU (preempted by
    other processes), from /proc/self/task/*/schedstat, sampled while a run goes on. A thread
    waiting for the GIL sleeps and is not counted, so a large share means a busy machine, not
    a Python-bound pipeline."""

    def __init__(self):
        self.seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _read() -> dict[str, tuple[int, int]]:
        found = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as handle:
                    run, wait, _ = map(int, handle.read().split())
            except (OSError, ValueError):
                continue
            found[tid] = (run, wait)
        return found

    def _sample(self):
        while not self._stop.is_set():
            self.seen.update(self._read())
            self._stop.wait(0.05)

    def __enter__(self):
        self.start = self._read() if os.path.isdir("/proc/self/task") else {}
        if self.start:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def waited_s(self) -> float:
        return sum(wait - self.start.get(tid, (0, 0))[1] for tid, (_, wait) in self.seen.items()) / 1e9


def import_and_check(folder: Path, resolution: int, workers: int) -> tuple[float, float, float, object]:
    """(import wall s, check wall s, import + check CPU s of all threads, result)."""
    from difflora_gui.dataset.check_job import pair_two_folders, run_check

    start, cpu = time.perf_counter(), time.process_time()
    pair_set = pair_two_folders(folder / "A", folder / "B")
    imported = time.perf_counter()
    with RunQueueProbe() as probe:
        result = run_check({"pairs": pair_set, "resolution": resolution, "workers": workers})
    done = time.perf_counter()
    result.preempted_s = probe.waited_s()
    return imported - start, done - imported, time.process_time() - cpu, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--folder", type=Path, default=None, help="where the pairs are generated (cached)")
    parser.add_argument("--workers", type=int, default=0, help="check workers (0 = one per core)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure each figure this many times (min kept)"
    )
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.gettempdir()) / f"difflora-dataset-bench-{args.pairs}"
    generate(folder, args.pairs)
    print(f"machine: {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, load {os.getloadavg()[0]:.2f}")
    decode_floor(folder)  # warm the page cache
    floors, runs = [], {r: [] for r in TARGETS}
    result = {}
    for _ in range(args.rounds):
        floors.append(decode_floor(folder))
        for resolution in TARGETS:
            t_import, t_check, cpu, result[resolution] = import_and_check(folder, resolution, args.workers)
            runs[resolution].append((t_import + t_check, t_import, t_check, cpu))
    floor, floor_cpu = min(floors)
    n = args.pairs
    workers = args.workers or os.cpu_count() or 1
    print(
        f"full decode, cv2.imread, 1 process: {floor:.2f} s ({floor / n * 1000:.1f} ms/pair; "
        f"CPU {floor_cpu / n * 1000:.1f} ms/pair)"
    )
    ok = True
    for resolution, target in TARGETS.items():
        total, t_import, t_check, cpu = min(runs[resolution])
        ratio = total / floor
        ok &= ratio <= target
        summary = result[resolution].summary
        # with every worker on a core of its own the wall time is the CPU time / workers: the
        # figure a quiet machine gives (preemption by other processes barely changes CPU time)
        quiet = cpu / workers / floor_cpu
        print(
            f"import + check at {resolution}: {total:.2f} s (import {t_import:.2f} s, check {t_check:.2f} s, "
            f"{total / n * 1000:.1f} ms/pair) = {ratio:.2f}× decode (target ≤ {target}×: "
            f"{'met' if ratio <= target else 'MISSED'}); CPU {cpu / n * 1000:.1f} ms/pair = "
            f"{cpu / floor_cpu:.2f}× the decode's CPU, {quiet:.2f}× on {workers} free cores "
            f"(CPU/wall {cpu / total:.2f}; threads waited {result[resolution].preempted_s:.1f} s for a CPU "
            f"taken by other processes); SSIM median {summary.distributions['ssim'].median:.3f}, "
            f"{summary.flagged} flagged, {summary.resize_method}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
