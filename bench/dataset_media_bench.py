"""Benchmark of dataset media reading and pairing on generated 1080p JPEGs (not a test).

    python bench/dataset_media_bench.py              # 1,000 pairs (2,000 files)
    python bench/dataset_media_bench.py --pairs 100

Prints, with the files in the page cache, ms per file and ratios against the full-size decode
with ``cv2.imread`` in one process: ``probe`` (header + end marker, no decode), ``pair_folders``
(scan + parallel probe + pairing), and ``read_image`` at 256 and 512 (reduced decode + one linear
resize).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((68, 120, 3), dtype=np.float32) * 255
    image = cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(folder: Path, pairs: int) -> tuple[Path, Path]:
    a, b = folder / "A", folder / "B"
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    if len(list(a.glob("*.jpg"))) == pairs and len(list(b.glob("*.jpg"))) == pairs:
        return a, b

    def write(i: int) -> None:
        image = frame(i)
        cv2.imwrite(str(a / f"frame{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(
            str(b / f"frame{i}.jpg"), cv2.GaussianBlur(image, (0, 0), 1.5), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(pairs)))
    return a, b


def timed(label: str, function, count: int, floor: float | None = None) -> float:
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    ratio = f"  {seconds / floor:.3f}× the full decode" if floor else ""
    print(f"{label:<46} {seconds:7.2f} s  {1000 * seconds / count:7.2f} ms/file{ratio}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "difflora_media_bench"))
    args = parser.parse_args()
    from difflora_gui.dataset.media import load_image, probe
    from difflora_gui.dataset.pairing import pair_folders

    cv2.setNumThreads(1)
    a, b = generate(Path(args.folder), args.pairs)
    files = sorted(a.glob("*.jpg")) + sorted(b.glob("*.jpg"))
    for path in files:  # warm the page cache
        path.read_bytes()
    n = len(files)
    print(f"{n} files, 1920×1080 JPEG q95, {sum(p.stat().st_size for p in files) / n / 1e6:.2f} MB each")
    floor = timed("full decode, cv2.imread, 1 process", lambda: [cv2.imread(str(p)) for p in files], n)
    timed("probe, 1 thread", lambda: [probe(p) for p in files], n, floor)
    pair_set = None

    def pairing():
        nonlocal pair_set
        pair_set = pair_folders(a, b)

    timed("pair_folders (scan + probe on 4 threads + pair)", pairing, n, floor)
    assert pair_set is not None and len(pair_set.pairs) == args.pairs
    for size in (256, 512):
        methods: set[str] = set()

        def read(size=size, methods=methods):
            for p in files:
                methods.add(load_image(p, size).method)

        timed(f"read_image at {size}, 1 process", read, n, floor)
        print(f"{'':<46} method: {', '.join(sorted(methods))}")


if __name__ == "__main__":
    main()
