"""A finished grid as one file: an H.264 video with its axis labels, a WebP/GIF clip, a PNG sheet.

By the output's suffix:

* ``.mp4``: H.264 (libx264 through PyAV, yuv420p, ``options.crf`` and ``options.preset``, x264's
  frame threads as the ffmpeg command line uses them), so it plays in browsers and chat apps
  without a system ffmpeg. The frames are composed in yuv420p planes (:mod:`.compose`); a PyAV
  build without libx264 falls back to OpenCV's MPEG-4 Part 2 (``mp4v``), and says so.
* ``.webm``: VP9 (VP8 where libvpx-vp9 is missing), through the same planes.
* ``.webp`` / ``.gif``: an animated image through Pillow, for short clips (at most
  :data:`MAX_ANIMATED_FRAMES` frames and :data:`MAX_ANIMATED_SIDE` pixels a side). Identical
  consecutive frames (a still grid) are stored once with their durations added, so a reader may
  count fewer frames than the grid has while the clip plays as long.

``options.sheet_frame`` also writes ``NAME.sheet.png``: that frame composed in RGB
(:func:`contact_sheet`, which the GUI uses too). Cells must share one size and frame rate; a
shorter cell holds its last frame until the longest ends. Nothing existing is replaced unless
``overwrite``; every file is written beside its destination and renamed when complete, so a
cancelled or failed export leaves no partial file. ``av``, ``cv2`` and ``PIL`` are imported inside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from difflora_gui.compare.compose import CellVideo, Prefetch, open_cells, rgb_frames, yuv_frames
from difflora_gui.compare.grid_canvas import GridGeometry
from difflora_gui.compare.grid_spec import GridSpec
from difflora_gui.compare.grid_types import EXPORT_SUFFIXES, ExportOptions, GridResult
from difflora_gui.compare.labels import label_canvas
from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_output, check_output_path
from difflora_gui.preview.video_io import (
    PYAV_FORMATS,
    _ffmpeg_reason,
    _pyav_encoder,
    _write_opencv,
    resolve_codec,
)

#: an animated WebP/GIF is held in memory by Pillow and grows fast: longer or larger grids go to .mp4
MAX_ANIMATED_FRAMES = 250
MAX_ANIMATED_SIDE = 4096
MAX_ANIMATED_BYTES = 2 << 30


@dataclass(frozen=True)
class ExportedGrid:
    """What an export wrote: the video, the contact sheet (empty when none), frames and size."""

    out: str
    sheet: str = ""  # the PNG contact sheet, when options.sheet_frame is set
    frames: int = 0
    width: int = 0
    height: int = 0


def sheet_path(out: str | Path) -> Path:
    """Where the contact sheet of ``out`` goes: ``NAME.sheet.png`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.sheet.png")


def _context(ctx):
    if ctx is not None:
        return ctx
    from difflora_gui.jobs.context import NullContext

    return NullContext()


def export_grid(
    result: GridResult,
    spec: GridSpec,
    out: str | Path,
    options: ExportOptions,
    *,
    overwrite: bool = False,
    ctx=None,
) -> ExportedGrid:
    """Compose ``result``'s cells into one labelled file at ``out`` (see the module doc)."""
    ctx = _context(ctx)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise UserError(f"a grid exports to {', '.join(EXPORT_SUFFIXES)}, not {suffix or '(none)'}", path=out)
    inputs = [cell.video for cell in result.cells]
    check_output_path(out, inputs=inputs, overwrite=overwrite)
    sheet = sheet_path(out) if options.sheet_frame is not None else None
    if sheet is not None:
        check_output_path(sheet, inputs=inputs, overwrite=overwrite)
    with contextlib.ExitStack() as stack:
        geometry, cells, fps, total = open_cells(result, spec, options, stack)
        if suffix in (".webp", ".gif"):
            _check_animation_size(out, geometry, total)
        ctx.log(
            f"grid export: {geometry.cols} × {geometry.rows} cells of {geometry.cell_w}×{geometry.cell_h}, "
            f"{total} frames at {float(fps):g} fps, {geometry.width}×{geometry.height} → {out.name}"
        )
        with atomic_output(out, inputs=inputs, overwrite=overwrite) as tmp:
            if suffix in (".webp", ".gif"):
                _write_animation(tmp, suffix, _reporting(rgb_frames(geometry, cells, total), total, ctx), fps)
            else:
                _write_video(tmp, out, geometry, cells, fps, total, options, ctx)
            if sheet is not None:
                ctx.status("writing the contact sheet")
                image = contact_sheet(result, spec, options.sheet_frame, options)
                _write_png(sheet, image, overwrite=overwrite)
    return ExportedGrid(
        out=str(out),
        sheet=str(sheet) if sheet is not None else "",
        frames=total,
        width=geometry.width,
        height=geometry.height,
    )


def contact_sheet(result: GridResult, spec: GridSpec, frame: int, options: ExportOptions) -> np.ndarray:
    """Frame ``frame`` of the grid (clamped to the last one) composed in RGB: (H, W, 3) uint8."""
    with contextlib.ExitStack() as stack:
        geometry, cells, _fps, total = open_cells(result, spec, options, stack)
        target = min(max(0, int(frame)), total - 1)
        canvas = label_canvas(geometry)
        for cell in cells:
            shown = _frame_at(cell, target)
            if shown is not None:
                x, y, w, h = cell.rect
                canvas[y : y + h, x : x + w] = shown.to_ndarray(format="rgb24")
        return canvas


def _frame_at(cell: CellVideo, index: int):
    """Decoded frame ``index`` of a cell, or its last one when it is shorter."""
    last = None
    for _ in range(index + 1):
        frame = cell.next_frame()
        if frame is None:
            break
        last = frame
    return last


def _reporting(frames: Iterator, total: int, ctx) -> Iterator:
    """``frames``, checking for a cancel before each and reporting progress after each."""
    for index in range(total):
        ctx.raise_if_cancelled()
        frame = next(frames)
        yield frame
        ctx.progress(index + 1, total, f"encoding frame {index + 1} of {total}")


def _write_video(
    tmp: Path,
    out: Path,
    geometry: GridGeometry,
    cells: list[CellVideo],
    fps: Fraction,
    total: int,
    options: ExportOptions,
    ctx,
) -> None:
    codec = resolve_codec(out)
    if codec == "mp4v":
        ctx.log(
            "this PyAV build has no libx264 encoder: the grid is written as MPEG-4 Part 2 (mp4v), "
            "which browsers and chat apps may not play"
        )
        _write_opencv(tmp, out, _reporting(rgb_frames(geometry, cells, total), total, ctx), fps)
        return
    if codec == "vp8":
        ctx.log("this PyAV build has no libvpx-vp9 encoder: the grid is written as VP8")
    with Prefetch(yuv_frames(geometry, cells, total)) as composed:
        _encode_pyav(tmp, out, _reporting(composed, total, ctx), geometry, fps, codec, options)


def _encoder_options(codec: str, options: ExportOptions) -> dict[str, str]:
    if codec == "h264":
        return {"crf": str(int(options.crf)), "preset": str(options.preset)}
    # libvpx: constant quality needs b:v 0; cpu-used 5 keeps VP9 near real time (as video_io)
    return {"crf": str(min(63, int(options.crf) + 12)), "b:v": "0", "cpu-used": "5", "row-mt": "1"}


def _encode_pyav(
    tmp: Path, out: Path, frames: Iterator, geometry: GridGeometry, fps: Fraction, codec: str, options
) -> None:
    import av

    encoder = _pyav_encoder(codec)
    time_base = Fraction(fps.denominator, fps.numerator)
    try:
        with av.open(str(tmp), "w", format=PYAV_FORMATS[out.suffix.lower()]) as container:
            stream = container.add_stream(encoder, rate=fps)
            stream.width, stream.height = geometry.width, geometry.height
            stream.pix_fmt = "yuv420p"
            # x264's frame threads, as the ffmpeg command line runs it (PyAV's default is slices)
            stream.thread_type = "AUTO"
            stream.options = _encoder_options(codec, options)
            for index, frame in enumerate(frames):
                frame.pts = index
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except av.FFmpegError as exc:
        raise UserError(f"could not encode the grid ({codec}): {_ffmpeg_reason(exc)}", path=out) from None


def _check_animation_size(out: Path, geometry: GridGeometry, total: int) -> None:
    kind = out.suffix.lower().lstrip(".").upper()
    if total > MAX_ANIMATED_FRAMES:
        raise UserError(
            f"{total} frames is too long for an animated {kind} (at most {MAX_ANIMATED_FRAMES}); "
            "export .mp4 instead",
            path=out,
        )
    side = max(geometry.width, geometry.height)
    if side > MAX_ANIMATED_SIDE:
        raise UserError(
            f"the grid is {geometry.width}×{geometry.height}, too large for an animated {kind} (at most "
            f"{MAX_ANIMATED_SIDE} pixels a side); export .mp4 instead",
            path=out,
        )
    if total * geometry.width * geometry.height * 3 > MAX_ANIMATED_BYTES:
        raise UserError(
            f"{total} frames of {geometry.width}×{geometry.height} are too much for an animated {kind} "
            f"(it is built in memory); export .mp4 instead",
            path=out,
        )


def _write_animation(tmp: Path, suffix: str, frames: Iterator[np.ndarray], fps: Fraction) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    duration = max(10, round(1000 / float(fps)))
    if suffix == ".gif":
        extra = {"format": "GIF", "optimize": False, "disposal": 1}
    else:
        extra = {"format": "WEBP", "quality": 90, "method": 4}
    with open(tmp, "wb") as handle:
        images[0].save(handle, save_all=True, append_images=images[1:], duration=duration, loop=0, **extra)


def _write_png(path: Path, image: np.ndarray, *, overwrite: bool) -> None:
    from PIL import Image

    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(image).save(handle, format="PNG")
