"""The grid player's cells decoded off the UI thread, each downscaled so the whole grid fits in memory.

A grid of 14 cells of 81 frames at 832×480 is 1.4 GB of RGB decoded; 243 cells would be 24 GB. So
one display cell size is picked for the whole grid (:func:`display_cell_size`: the source size
scaled down until every cell's frames together fit :data:`MEMORY_BUDGET`), and each cell is decoded
(:class:`~difflora_gui.preview.video_io.VideoReader`, PyAV with the OpenCV fallback) and resized
(``cv2.INTER_AREA``; bilinear above half size) on a small thread pool, then its full-size frames
are dropped. Results go to the UI thread through :class:`CellRelay`'s signals (queued), tagged
with a generation so a newer grid drops what an older load still delivers; :func:`start_decoding`
returns the event that stops the old load's remaining work. Also here: what the player draws
around and in place of the cells (the label background, message tiles) and each cell's
strength-0 reference.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter

from difflora_gui.compare.grid_canvas import BACKGROUND_RGB, LABEL_RGB, GridGeometry
from difflora_gui.compare.grid_spec import short_label
from difflora_gui.errors import UserError
from difflora_gui.qt.preview.frame_view import rgb_qimage

if TYPE_CHECKING:
    import numpy as np

    from difflora_gui.compare.grid_spec import GridSpec
    from difflora_gui.compare.grid_types import CellResult

#: decoded frames of the whole grid at display scale, at most (bytes)
MEMORY_BUDGET = 512 << 20
#: cells decoding at once (each decoder also runs its own frame threads; on 2 cores two at once
#: decoded 14 cells of 33 frames at 832×480 in 2.6 s against 3.8 s one at a time)
DECODE_WORKERS = max(2, min(4, (os.cpu_count() or 2) // 2))
#: the cell size when no cell says (or can tell) its size: every video is missing
FALLBACK_SIZE = (256, 144)
#: frames assumed for a cell whose result does not say
FALLBACK_FRAMES = 81
#: a display cell is never smaller than this on its short side (pixels)
MIN_SIDE = 16


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def display_cell_size(
    width: int, height: int, cells: int, frames: int, budget: int = MEMORY_BUDGET
) -> tuple[int, int]:
    """The cell size (even, ≤ the source's) at which ``cells`` clips of ``frames`` fit ``budget`` bytes."""
    width, height = max(2, int(width)), max(2, int(height))
    full = max(1, cells) * max(1, frames) * width * height * 3
    scale = min(1.0, math.sqrt(budget / full))
    scale = max(scale, min(1.0, MIN_SIDE / min(width, height)))
    if scale >= 1.0:
        return _even_floor(width), _even_floor(height)
    return _even_floor(width * scale), _even_floor(height * scale)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(F, H, W, 3) uint8 frames at ``size`` (w, h); the array itself when it already is that size."""
    import cv2
    import numpy as np

    width, height = size
    if frames.shape[1:3] == (height, width):
        return np.ascontiguousarray(frames)
    # area averaging where an output pixel covers 2+ source pixels; above half size bilinear reads
    # the same neighbours and is 4× faster than OpenCV's fractional area path (832×480 → 818×472)
    mild = width * 2 > frames.shape[2] and height * 2 > frames.shape[1]
    interpolation = cv2.INTER_LINEAR if mild else cv2.INTER_AREA
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (width, height), interpolation=interpolation)
    return out


def decode_cell(path: str | Path, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A cell's video as (F, h, w, 3) uint8 at the display ``size``, and its frame rate."""
    from difflora_gui.preview.video_io import VideoReader

    with VideoReader(path) as reader:
        return resize_frames(reader.frames(), size), reader.fps


def _probe(path: str) -> tuple[int, int, int] | None:
    """Width, height and frame count from a video's header (no decode); None when it cannot be read."""
    try:
        import av

        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height, int(stream.frames or 0)
    except Exception:  # the cell's own decode reports why
        return None


@dataclass(frozen=True)
class DecodePlan:
    """The display cell size, the grid's expected frame count and frame rate."""

    width: int
    height: int
    frames: int
    fps: float


def plan_decoding(cells: list[CellResult], budget: int = MEMORY_BUDGET) -> DecodePlan:
    """The display size from the cells' recorded sizes (their file headers where a result lacks one)."""
    size = next(((c.width, c.height) for c in cells if c.width > 0 and c.height > 0), None)
    frames = max((c.frames for c in cells), default=0)
    if size is None:
        for cell in cells:
            probed = _probe(cell.video) if cell.video else None
            if probed and probed[0] > 0:
                size, frames = probed[:2], max(frames, probed[2])
                break
    width, height = size or FALLBACK_SIZE
    frames = frames or FALLBACK_FRAMES
    fps = next((float(c.fps) for c in cells if c.fps), 0.0)
    return DecodePlan(*display_cell_size(width, height, len(cells), frames, budget), frames, fps)


class CellRelay(QObject):
    """Worker threads → UI thread. Made without a parent: the threads hold it, so a player closed
    mid-decode is never emitted on half-deleted (the queued connections go with the player)."""

    #: generation, display width, height, expected frames, fps
    planned = Signal(int, int, int, int, float)
    #: generation, the cell's spec row, col, frames (F, h, w, 3) | None, fps, error ("" when decoded)
    #: and the error's short form
    cell_done = Signal(int, int, int, object, float, str, str)
    #: generation: every cell was delivered
    finished = Signal(int)


def _emit(signal, *args) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:  # the relay was torn down at exit
        pass


def _cell_error(cell: CellResult, exc: Exception) -> tuple[str, str]:
    """The whole reason (with the path, for the log) and the short one (for the cell's rectangle)."""
    short = getattr(exc, "problem", None)
    if short:
        return str(exc), short
    return f"{cell.video}: {type(exc).__name__}: {exc}", f"{type(exc).__name__}: {exc}"


def _decode_one(relay: CellRelay, generation: int, cell: CellResult, size, stop: threading.Event) -> None:
    if stop.is_set():
        return
    frames, fps, error, short = None, 0.0, "", ""
    try:
        if not cell.video:
            raise UserError("the cell has no video")
        frames, fps = decode_cell(cell.video, size)
    except Exception as exc:  # shown in the cell; the other cells go on
        error, short = _cell_error(cell, exc)
    if not stop.is_set():
        _emit(relay.cell_done, generation, cell.row, cell.col, frames, fps, error, short)


def _run(relay: CellRelay, generation: int, cells: list[CellResult], budget: int, stop) -> None:
    plan = plan_decoding(cells, budget)
    if stop.is_set():
        return
    _emit(relay.planned, generation, plan.width, plan.height, plan.frames, plan.fps)
    size = (plan.width, plan.height)
    with ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="grid-cell-decode") as pool:
        for cell in cells:
            pool.submit(_decode_one, relay, generation, cell, size, stop)
    if not stop.is_set():
        _emit(relay.finished, generation)


def start_decoding(
    relay: CellRelay, generation: int, cells: list[CellResult], budget: int = MEMORY_BUDGET
) -> threading.Event:
    """Plan and decode ``cells`` on worker threads; set the returned event to stop what is left."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_run, args=(relay, generation, list(cells), budget, stop), name="grid-decode", daemon=True
    )
    thread.start()
    return stop


# --- what is drawn around and in place of the cells ---------------------------------------------

TILE_RGB = (38, 40, 44)
TILE_TEXT = "#9aa0a8"
_NUMBER_KINDS = ("strength", "strength_high", "strength_low")
Key = tuple[int, int]


def zero_references(spec: GridSpec) -> dict[Key, Key | None]:
    """Each cell's (row, col) → its strength-0 cell's, by :meth:`GridSpec.zero_strength_cell`'s rule
    (the first strength axis holding 0), from positions alone: that method searches every cell and
    costs seconds on the UI thread for a 243-cell grid."""
    axis = next((a for a, ax in enumerate(spec.axes) if ax.kind in _NUMBER_KINDS and 0.0 in ax.values), None)
    references: dict[Key, Key | None] = {}
    for cell in spec.cells():
        if axis is None:
            references[(cell.row, cell.col)] = None
            continue
        index = list(cell.index)
        index[axis] = spec.axes[axis].values.index(0.0)
        references[(cell.row, cell.col)] = spec.position(index)
    return references


def _qcolor(rgb: tuple[int, int, int]) -> QColor:
    return QColor(*rgb)


def message_tile(width: int, height: int, text: str) -> np.ndarray:
    """A cell-sized RGB image saying ``text`` (word-wrapped, centred): a missing video, decoding …"""
    import numpy as np

    tile = np.empty((height, width, 3), np.uint8)
    tile[:] = TILE_RGB
    image = rgb_qimage(tile)  # painting the wrapper paints the array
    painter = QPainter(image)
    font = QFont(painter.font())
    font.setPixelSize(max(8, min(15, height // 7)))
    painter.setFont(font)
    painter.setPen(QColor(TILE_TEXT))
    margin = max(2, width // 20)
    painter.drawText(
        QRect(margin, margin, width - 2 * margin, height - 2 * margin),
        Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
        text,
    )
    painter.end()
    return tile


def label_background(geometry: GridGeometry) -> np.ndarray:
    """The canvas without cells: background and the axis labels (Qt text: any script, elided to fit)."""
    import numpy as np

    canvas = np.empty((geometry.height, geometry.width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    if not (geometry.top or geometry.left):
        return canvas
    image = rgb_qimage(canvas)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    band = geometry.top or max(20, round(min(geometry.cell_w, geometry.cell_h) * 0.09))
    font = QFont(painter.font())
    font.setPixelSize(max(8, round(band * 0.55)))
    painter.setFont(font)
    painter.setPen(_qcolor(LABEL_RGB))
    metrics = painter.fontMetrics()
    boxes = []
    if geometry.top:
        boxes += [(geometry.column_label_rect(c), t) for c, t in enumerate(geometry.column_labels)]
    if geometry.left:
        boxes += [(geometry.row_label_rect(r), t) for r, t in enumerate(geometry.row_labels)]
    for (x, y, w, h), text in boxes:
        if metrics.horizontalAdvance(text) > w - 8:
            text = short_label(text)  # "-1" reads better than "stre…h -1"; the hover has it all
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, max(0, w - 8))
        painter.drawText(QRect(x + 4, y, w - 8, h), Qt.AlignmentFlag.AlignCenter, shown)
    painter.end()
    return canvas
