"""Frame extraction at scene cuts vs decoding the video alone (issue 11 target: ≤ 1.2×).

Generates a 60 s 1280×720 24 fps H.264 video (libx264 veryfast, frame threads) with 21 shots — each
pans over its own texture with film grain — so 20 hard cuts at known frames, then measures, three
runs each, median:

* ``decode``: PyAV, ``thread_type="AUTO"``, every frame, no conversion (the floor);
* ``decode+bgr``: the same plus ``to_ndarray("bgr24")`` per frame (what a plain reader pays, and
  what perf-floors.md's 1.07× of PySceneDetect was measured against: cv2 ``read()``);
* ``extract``: :func:`difflora_gui.dataset.frames.extract_frames` in scene mode, default options
  (detection, filters, PNG writing of one frame per shot).

Run: ``python bench/frames_bench.py [--seconds 60] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ping_pong(value: int, span: int) -> int:
    """Pan back and forth inside ``[0, span]`` (a wrap-around would be an unintended jump cut)."""
    value %= 2 * span
    return value if value <= span else 2 * span - value


def plan_cuts(rng, total: int, shots: int) -> list[int]:
    cuts = sorted(rng.choice(np.arange(30, total - 30), shots - 1, replace=False).tolist())
    while any(b - a < 24 for a, b in zip([0, *cuts], [*cuts, total], strict=True)):  # shots >= 1 s
        cuts = sorted(rng.choice(np.arange(30, total - 30), shots - 1, replace=False).tolist())
    return cuts


def make_video(
    path: Path, seconds: int, width=1280, height=720, fps=24, shots=21, *, write=True
) -> list[int]:
    """Write the video (seeded: the same file every time); return its cut frames."""
    import av
    import cv2

    rng = np.random.default_rng(7)
    total = seconds * fps
    shots = max(2, min(shots, seconds // 2))  # shots of 1 s or more must fit
    cuts = plan_cuts(rng, total, shots)
    if not write:
        return cuts
    grain = [rng.normal(0, 4, (height, width, 1)).astype(np.int16) for _ in range(8)]
    bounds = [0, *cuts, total]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_type = "AUTO"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for shot in range(shots):
            coarse = rng.uniform(0, 255, (9, 16, 3)).astype(np.float32)
            fine = rng.uniform(0, 255, (72, 128, 3)).astype(np.float32)
            big = 0.7 * cv2.resize(
                coarse, (width + 400, height + 200), interpolation=cv2.INTER_CUBIC
            ) + 0.3 * cv2.resize(fine, (width + 400, height + 200), interpolation=cv2.INTER_LINEAR)
            big = np.clip(big, 0, 255).astype(np.uint8)
            dx, dy = rng.integers(-4, 5, 2)
            for k in range(bounds[shot + 1] - bounds[shot]):
                x, y = _ping_pong(200 + dx * k, 400), _ping_pong(100 + dy * k, 200)
                view = big[y : y + height, x : x + width]
                frame = np.clip(view.astype(np.int16) + grain[k % 8], 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return cuts


def decode(path: Path, bgr: bool) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        for frame in container.decode(stream):
            if bgr:
                frame.to_ndarray(format="bgr24")
            n += 1
    return n


def interleaved(fns: dict, runs: int) -> dict:
    """Run each function once per round, round after round (a busy machine's load hits all alike);
    return per name (wall median, min, max, CPU median of the process's threads, last value)."""
    walls: dict = {name: [] for name in fns}
    cpus: dict = {name: [] for name in fns}
    values: dict = {}
    for _ in range(runs):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            values[name] = fn()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    return {
        name: (statistics.median(w), min(w), max(w), statistics.median(cpus[name]), values[name])
        for name, w in walls.items()
    }


def _load() -> str:
    try:
        import os

        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep the video and frames here")
    args = parser.parse_args()
    from difflora_gui.dataset.frames import extract_frames

    work = Path(tempfile.mkdtemp(prefix="frames-bench-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    video = work / f"bench film {args.seconds}s.mp4"
    start = time.perf_counter()
    reuse = args.keep is not None and video.exists()
    cuts = make_video(video, args.seconds, write=not reuse)  # seeded: the same video every run
    made = "reused" if reuse else f"generated in {time.perf_counter() - start:.1f} s"
    print(
        f"video: {video.stat().st_size / 1e6:.1f} MB, {args.seconds} s 1280x720 24 fps, "
        f"{len(cuts)} cuts, {made}"
    )

    def extract():
        out = work / "frames"
        shutil.rmtree(out, ignore_errors=True)
        return extract_frames([video], out)

    timings = interleaved(
        {"dec": lambda: decode(video, False), "bgr": lambda: decode(video, True), "ext": extract}, args.runs
    )
    dec, bgr, ext = timings["dec"], timings["bgr"], timings["ext"]
    result = ext[4]
    stats = next(iter(result.per_video.values()))
    found = stats.cuts
    exact = sum(1 for c in cuts if c in found)
    near = sum(1 for c in cuts if any(abs(c - f) <= 1 for f in found))
    print(f"frames decoded: {dec[4]}; {args.runs} interleaved rounds; load average {_load()}")
    for label, t in (
        ("decode (PyAV AUTO, no conversion)", dec),
        ("decode + bgr24", bgr),
        ("extract (scenes)", ext),
    ):
        print(f"{label:34s} wall median {t[0]:.2f} s (min {t[1]:.2f}, max {t[2]:.2f}); CPU {t[3]:.2f} s")
    print(
        f"cuts: {exact}/{len(cuts)} frame-exact, {near}/{len(cuts)} within ±1, "
        f"{len(found) - near} extra; {len(result.frames)} frames written, {len(result.skipped)} skipped"
    )
    print(
        f"ratio extract / decode+bgr24      = {ext[0] / bgr[0]:.2f}x wall (min/min {ext[1] / bgr[1]:.2f}x), "
        f"{ext[3] / bgr[3]:.2f}x CPU (target <= 1.2x)"
    )
    print(
        f"ratio extract / decode (no conv.) = {ext[0] / dec[0]:.2f}x wall (min/min {ext[1] / dec[1]:.2f}x), "
        f"{ext[3] / dec[3]:.2f}x CPU"
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
