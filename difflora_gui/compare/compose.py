"""A grid's frames composed from its cells' videos: in yuv420p planes for the encoder, or in RGB.

The encoder path never converts the canvas: each cell is decoded by PyAV in its own yuv420p and
its three planes are copied into the canvas planes at the cell's rectangle (the geometry keeps
every rectangle on even pixels, so chroma lands on whole chroma pixels). The background and the
label bands are converted to yuv420p once and stay in the canvas. A cell that has run out of
frames simply is not copied again: the canvas keeps its last frame. A per-frame RGB → yuv420p
conversion of a 5.6-Mpx canvas would cost about a third more than the encode itself
(perf-floors.md (b)). ``av`` is imported inside the functions (core module).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from difflora_gui.compare.grid_canvas import GridGeometry, grid_geometry, layout_position
from difflora_gui.compare.grid_spec import GridSpec
from difflora_gui.compare.grid_types import CellResult, ExportOptions, GridResult
from difflora_gui.compare.labels import label_canvas
from difflora_gui.errors import UserError

#: each cell's decoder uses frame threads, as the ffmpeg command line's decoders do. Single-threaded
#: decoders spend about a fifth less decoder CPU, but on a busy machine the scheduler shares CPU per
#: runnable thread, and an export with far fewer threads than ffmpeg gets less of it (on this shared
#: 2-core box at load 4–7: one bench with single-threaded decoders 1.5× ffmpeg's wall time, with
#: frame threads 0.8–0.9×; runs there vary by ±30 %, so these are indications, not a law)
DECODER_THREAD_TYPE = "AUTO"


@dataclass
class CellVideo:
    """One cell's open video: where it goes on the canvas and its decoded-frame iterator."""

    cell: CellResult
    rect: tuple[int, int, int, int]
    width: int
    height: int
    fps: Fraction
    frames: int
    container: object
    decoded: Iterator

    def next_frame(self):
        """The next decoded ``av.VideoFrame``; None once the video has ended."""
        import av

        if self.decoded is None:
            return None
        try:
            frame = next(self.decoded, None)
        except av.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UserError(
                f"cell {_cell_name(self.cell)}: could not decode ({reason})", path=self.cell.video
            ) from None
        if frame is None:
            self.decoded = None
        return frame


def _cell_name(cell: CellResult) -> str:
    return " · ".join(cell.labels) or f"row {cell.row + 1}, column {cell.col + 1}"


def _open_cell(cell: CellResult, stack: contextlib.ExitStack):
    import av

    path = Path(cell.video)
    if not path.is_file():
        raise UserError(f"the video of cell {_cell_name(cell)} is missing", path=path)
    try:
        container = stack.enter_context(av.open(str(path), metadata_errors="ignore"))
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"cell {_cell_name(cell)}: not a readable video ({reason})", path=path) from None
    if not container.streams.video:
        raise UserError(f"cell {_cell_name(cell)}: the file has no video stream", path=path)
    stream = container.streams.video[0]
    stream.thread_type = DECODER_THREAD_TYPE
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = Fraction(cell.fps) if cell.fps else Fraction(rate or 16).limit_denominator(1001)
    frames = int(cell.frames or stream.frames or 0)
    return container, stream, fps, frames


def open_cells(
    result: GridResult, spec: GridSpec, options: ExportOptions, stack: contextlib.ExitStack
) -> tuple[GridGeometry, list[CellVideo], Fraction, int]:
    """Open every cell's video (closed by ``stack``); return the geometry, the cells, the frame rate
    and the grid's frame count (the longest cell's). All cells must share one size and frame rate."""
    if not result.cells:
        raise UserError("the grid has no cells to export")
    opened = []
    for cell in result.cells:
        container, stream, fps, frames = _open_cell(cell, stack)
        width, height = stream.codec_context.width, stream.codec_context.height
        opened.append((cell, container, stream, fps, frames, width, height))
    first = opened[0]
    for cell, _c, _s, fps, _f, width, height in opened[1:]:
        if (width, height, fps) != (first[5], first[6], first[3]):
            raise UserError(
                f"cell {_cell_name(cell)} is {width}×{height} at {float(fps):g} fps but cell "
                f"{_cell_name(first[0])} is {first[5]}×{first[6]} at {float(first[3]):g} fps: every "
                "cell of a grid needs one size and frame rate",
                path=cell.video,
            )
    geometry = grid_geometry(spec, first[5], first[6], layout=options.layout, labels=options.labels)
    cells = []
    for cell, container, stream, fps, frames, width, height in opened:
        row, col = layout_position(cell.row, cell.col, options.layout)
        try:
            rect = geometry.cell_rect(row, col)
        except IndexError:
            raise UserError(
                f"cell {_cell_name(cell)} is at row {cell.row + 1}, column {cell.col + 1}, outside the "
                f"{spec.rows} × {spec.columns} grid",
                path=cell.video,
            ) from None
        decoded = container.decode(stream)
        cells.append(CellVideo(cell, rect, width, height, fps, frames, container, decoded))
    total = max(c.frames for c in cells)
    if total <= 0:
        raise UserError("the grid's cells have no frames")
    return geometry, cells, first[3], total


def _plane_view(plane, height: int, width: int) -> np.ndarray:
    """A decoded plane as a (height, width) uint8 view (no copy; the frame's rows may be padded)."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


class YuvCanvas:
    """The grid's yuv420p frame: the label canvas converted once, cells copied in per frame."""

    def __init__(self, background_rgb: np.ndarray):
        import av

        height, width = background_rgb.shape[:2]
        self.height, self.width = height, width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(background_rgb), format="rgb24")
        #: (H * 3/2, W): the Y plane, then U and V (each H/2 × W/2) packed, as PyAV's yuv420p arrays
        self.packed = np.ascontiguousarray(frame.reformat(format="yuv420p").to_ndarray())
        self.y = self.packed[:height]
        chroma = self.packed[height:].reshape(-1)
        size = (height // 2) * (width // 2)
        self.u = chroma[:size].reshape(height // 2, width // 2)
        self.v = chroma[size : 2 * size].reshape(height // 2, width // 2)

    def paste(self, frame, rect: tuple[int, int, int, int]) -> None:
        """Copy a decoded cell frame's planes into the canvas at ``rect`` (x, y, w, h; even)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        x, y, w, h = rect
        planes = frame.planes
        self.y[y : y + h, x : x + w] = _plane_view(planes[0], h, w)
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        self.u[cy : cy + ch, cx : cx + cw] = _plane_view(planes[1], ch, cw)
        self.v[cy : cy + ch, cx : cx + cw] = _plane_view(planes[2], ch, cw)

    def video_frame(self):
        import av

        return av.VideoFrame.from_ndarray(self.packed, format="yuv420p")


def yuv_frames(geometry: GridGeometry, cells: Sequence[CellVideo], total: int) -> Iterator:
    """The grid's ``total`` frames as yuv420p ``av.VideoFrame`` objects."""
    canvas = YuvCanvas(label_canvas(geometry))
    for _index in range(total):
        for cell in cells:
            frame = cell.next_frame()
            if frame is not None:
                canvas.paste(frame, cell.rect)
        yield canvas.video_frame()


def rgb_frames(geometry: GridGeometry, cells: Sequence[CellVideo], total: int) -> Iterator[np.ndarray]:
    """The grid's ``total`` frames as RGB arrays (H, W, 3 uint8); each one is a fresh array."""
    canvas = label_canvas(geometry)
    for _index in range(total):
        for cell in cells:
            frame = cell.next_frame()
            if frame is not None:
                x, y, w, h = cell.rect
                canvas[y : y + h, x : x + w] = frame.to_ndarray(format="rgb24")
        yield canvas.copy()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


class Prefetch:
    """Iterate ``frames`` on a worker thread, up to ``depth`` frames ahead of the consumer.

    The cells decode and the canvas is composed while x264 encodes the frame before (PyAV releases
    the GIL in both). An error on the worker is raised in the consumer. :meth:`close` stops and
    joins the worker; call it before the cells' containers close (it is a context manager)."""

    def __init__(self, frames: Iterator, depth: int = 2):
        self._frames = frames
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="grid compose", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._frames:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failed(exc))
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._stop.set()
            raise StopIteration
        if isinstance(item, _Failed):
            self._stop.set()
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
