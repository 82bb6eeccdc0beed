"""Grid export vs the ffmpeg command line (issue 15 target: ours ≤ 1.05× ffmpeg's wall time).

Makes a ``--cols`` × ``--rows`` grid (default 7 strengths × 2 seeds) of synthetic ``--frames``-frame
cells (default 81 frames of 480 wide × 832 tall: moving gradients, a panning texture, a moving blob,
σ 2.5 grain; H.264 crf 18, 16 fps, written with PyAV), then, ``--repeat`` times (default 3), in
alternating order:

* ``ours``: :func:`difflora_gui.compare.export.export_grid` to ``.mp4`` with the axis labels
  (cells composed in yuv420p planes, libx264 through PyAV);
* ``ffmpeg``: the same grid with the ffmpeg command line: ``xstack`` on the same cell positions,
  ``pad`` for the label bands, one ``drawtext`` per label, libx264 with the same preset and CRF
  (a system ``ffmpeg``, else imageio-ffmpeg's bundled binary).

Prints each method's median seconds, the ratio, both outputs' frame counts and sizes, the load
average, and "target met" / "target missed". Exits non-zero only on an error. Smoke run:
``python bench/grid_bench.py --cols 2 --rows 2 --frames 9 --size 64x48 --repeat 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from difflora_gui.compare.export import export_grid  # noqa: E402
from difflora_gui.compare.grid_canvas import BACKGROUND_RGB, LABEL_RGB, grid_geometry, layout_position  # noqa: E402
from difflora_gui.compare.grid_spec import Axis, GridSpec  # noqa: E402
from difflora_gui.compare.grid_types import CellResult, ExportOptions, GridResult  # noqa: E402
from difflora_gui.preview.request import LoraEntry, PreviewRequest  # noqa: E402
from difflora_gui.preview.video_io import write_video  # noqa: E402

TARGET = 1.05
FPS = 16
FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:/Windows/Fonts/arial.ttf",
)


def cell_frames(index: int, frames: int, width: int, height: int) -> np.ndarray:
    """A synthetic clip with motion and grain (an encoder has real work, unlike a flat colour)."""
    import cv2

    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # a smooth random texture (detail of about 24 px) panned 3 px a frame: motion an encoder can follow
    coarse = rng.uniform(0, 255, (height // 24 + 2, width // 24 + 2, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width + 8, height + 8), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 2.5, (8, height, width, 1)).astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for f in range(frames):
        phase = f / max(frames, 1) * 2 * np.pi + index
        gradient = 127 + 100 * np.sin(xx / width * 3 + phase)[..., None] * np.array([1, 0.6, 0.3], np.float32)
        shift = (f * 3) % 8
        pan = texture[shift : shift + height, shift : shift + width]
        bx = width * (0.5 + 0.35 * np.cos(phase))
        by = height * (0.5 + 0.35 * np.sin(phase))
        blob = 120 * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * (min(width, height) / 6) ** 2))
        frame = 0.6 * gradient + 0.4 * pan + blob[..., None] + grain[f % 8]
        out[f] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def make_grid(folder: Path, cols: int, rows: int, frames: int, width: int, height: int):
    """The spec (strength × seed), the cells' videos (made once per folder) and the GridResult."""
    strengths = tuple(round(-1.5 + 3.0 * i / max(cols - 1, 1), 2) for i in range(cols))
    base = PreviewRequest("bench", loras=(LoraEntry("slider.safetensors"),))
    spec = GridSpec(base, (Axis("strength", strengths), Axis("seed", tuple(range(1, rows + 1)))))
    cells = []
    for number, cell in enumerate(spec.cells()):
        path = folder / f"cell {cell.name} {frames}f {width}x{height} v2.mp4"
        if not path.is_file():
            write_video(path, cell_frames(number, frames, width, height), FPS, crf=18)
        cells.append(
            CellResult(
                cell.index,
                cell.row,
                cell.col,
                cell.labels,
                str(path),
                "",
                cell.name,
                True,
                frames,
                width,
                height,
                FPS,
                {},
            )
        )
    return spec, GridResult(tuple(cells), len(cells), 0)


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _escape(text: str) -> str:
    """A drawtext value inside single quotes in a filter graph."""
    return text.replace("\\", "\\\\\\\\").replace("'", "\u2019").replace(":", "\\:").replace("%", "\\%")


def _hex(rgb) -> str:
    return "0x" + "".join(f"{c:02X}" for c in rgb)


def ffmpeg_command(exe: str, spec, result, out: Path, options: ExportOptions) -> list[str]:
    """The ffmpeg command line that builds the same grid as ``export_grid``."""
    first = result.cells[0]
    geometry = grid_geometry(spec, first.width, first.height, layout=options.layout, labels=options.labels)
    inputs, positions = [], []
    for cell in result.cells:
        inputs += ["-i", cell.video]
        x, y, _w, _h = geometry.cell_rect(*layout_position(cell.row, cell.col, options.layout))
        positions.append(f"{x}_{y}")
    fill = _hex(BACKGROUND_RGB)
    n = len(result.cells)
    graph = "".join(f"[{i}:v]" for i in range(n))
    graph += f"xstack=inputs={n}:layout={'|'.join(positions)}:fill={fill},"
    graph += f"pad={geometry.width}:{geometry.height}:0:0:color={fill}"
    font = next((f for f in FONT_FILES if Path(f).is_file()), None)
    font_arg = f"fontfile='{_escape(font)}':" if font else ""
    size = max(8, round((geometry.top or 20) * 0.5))
    labels = [(geometry.column_label_rect(c), t) for c, t in enumerate(geometry.column_labels)]
    labels += [(geometry.row_label_rect(r), t) for r, t in enumerate(geometry.row_labels)]
    for (x, y, w, h), text in labels:
        if text and w and h:
            graph += (
                f",drawtext={font_arg}text='{_escape(text)}':fontsize={size}:fontcolor={_hex(LABEL_RGB)}"
                f":x={x}+({w}-tw)/2:y={y}+({h}-th)/2"
            )
    graph += "[out]"
    return [
        exe, "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[out]",
        "-c:v", "libx264", "-preset", options.preset, "-crf", str(options.crf), "-pix_fmt", "yuv420p",
        str(out),
    ]  # fmt: skip


def probe(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "frames": frames,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "mb": round(path.stat().st_size / 1e6, 3),
        }


def _load() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "n/a"
    text = f"{one:.2f} (1 min) {five:.2f} (5 min)"
    pressure = Path("/proc/pressure/cpu")
    if pressure.is_file():
        text += "; cpu pressure " + pressure.read_text().splitlines()[0].split()[1]
    return text


def _cpu_s(before, after, *, child: bool) -> float:
    """CPU seconds (user + system) between two ``os.times()``: this process's, or its children's
    (0 where the OS does not count children, as on Windows). Under load, wall time varies with the
    other processes; CPU time says what each method itself costs."""
    if child:
        return after.children_user + after.children_system - before.children_user - before.children_system
    return after.user + after.system - before.user - before.system


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cols", type=int, default=7, help="strengths (columns)")
    parser.add_argument("--rows", type=int, default=2, help="seeds (rows)")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="480x832", help="cell WIDTHxHEIGHT (default 480x832)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--crf", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="make (and reuse) the cells and outputs in this folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="grid_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        spec, result = make_grid(folder, args.cols, args.rows, args.frames, width, height)
        print(f"cells: {len(result.cells)} of {width}×{height}, {args.frames} frames "
              f"({time.perf_counter() - started:.1f} s to make or find)")  # fmt: skip
        options = ExportOptions(crf=args.crf, preset=args.preset)
        ours_out, ffmpeg_out = folder / "grid ours.mp4", folder / "grid ffmpeg.mp4"
        command = ffmpeg_command(ffmpeg_exe(), spec, result, ffmpeg_out, options)
        print(f"load before: {_load()}")
        times: dict[str, list[float]] = {"ours": [], "ffmpeg": []}
        cpu: dict[str, list[float]] = {"ours": [], "ffmpeg": []}
        for round_ in range(args.repeat):
            order = ("ours", "ffmpeg") if round_ % 2 == 0 else ("ffmpeg", "ours")
            for method in order:
                before, start = os.times(), time.perf_counter()
                if method == "ours":
                    export_grid(result, spec, ours_out, options, overwrite=True)
                else:
                    subprocess.run(command, check=True)
                times[method].append(time.perf_counter() - start)
                cpu[method].append(_cpu_s(before, os.times(), child=method == "ffmpeg"))
            print(f"round {round_ + 1}: ours {times['ours'][-1]:.2f} s (CPU {cpu['ours'][-1]:.1f} s), "
                  f"ffmpeg {times['ffmpeg'][-1]:.2f} s (CPU {cpu['ffmpeg'][-1]:.1f} s)")  # fmt: skip
        print(f"load after: {_load()}")
        ours, ffmpeg = (statistics.median(times[m]) for m in ("ours", "ffmpeg"))
        ratio = ours / ffmpeg
        outputs = {"ours": probe(ours_out), "ffmpeg": probe(ffmpeg_out)}
        for method, info in outputs.items():
            print(f"{method:>6}: median {statistics.median(times[method]):.2f} s, CPU "
                  f"{statistics.median(cpu[method]):.1f} s (min {min(times[method]):.2f}, max {max(times[method]):.2f}); {info['frames']} frames "
                  f"{info['width']}×{info['height']} {info['codec']} {info['pix_fmt']}, {info['mb']} MB")  # fmt: skip
        met = ratio <= TARGET
        print(
            f"ratio ours/ffmpeg: {ratio:.3f} (target ≤ {TARGET}): {'target met' if met else 'target missed'}"
        )
        if args.json:
            figures = {"times_s": times, "cpu_s": cpu, "median_s": {"ours": ours, "ffmpeg": ffmpeg}, "ratio": ratio,
                       "target_met": met, "outputs": outputs, "preset": args.preset, "crf": args.crf}  # fmt: skip
            args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
