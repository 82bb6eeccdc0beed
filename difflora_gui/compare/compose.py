"""A grid's frames composed from its cells' videos: in yuv420p planes for the encoder, or in RGB.

The encoder path never converts the canvas: each cell is decoded by PyAV in its own yuv420p and
its three planes are copied into the canvas planes at the cell's rectangle (the geometry keeps
every rectangle on even pixels, so chroma lands on whole chroma pixels). The background and the
label bands are converted to yuv420p once and stay in the canvas. A cell that has run out of
frames holds its last one. A per-frame RGB → yuv420p
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


#: frames composed ahead of the encoder (:class:`Prefetch`), and the frame buffers that takes: one
#: being composed, ``PREFETCH_DEPTH`` queued, one being encoded
PREFETCH_DEPTH = 2
FRAME_BUFFERS = PREFETCH_DEPTH + 2


def _yuv_planes(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable (rows, columns) views of a yuv420p ``av.VideoFrame``'s Y, U and V planes."""
    height, width = frame.height, frame.width
    sizes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
    return tuple(_plane_view(plane, h, w) for plane, (h, w) in zip(frame.planes, sizes, strict=True))


class YuvCanvas:
    """The grid's yuv420p frames: a few ``av.VideoFrame`` buffers used in turn, each starting as the
    label canvas (converted to yuv420p once); cells are copied into them frame by frame.

    The encoder gets the buffer itself, not a copy: libx264 and libvpx copy a frame's pixels
    before the encode call returns, so a buffer is free again once its frame is encoded. A new
    frame per grid frame (``VideoFrame.from_ndarray``) cost a 9-MB copy and allocation each: about
    6 ms a frame on this machine, 4-8 % of the export."""

    def __init__(self, background_rgb: np.ndarray, buffers: int = FRAME_BUFFERS):
        import av

        height, width = background_rgb.shape[:2]
        self.height, self.width = height, width
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(background_rgb), format="rgb24")
        background = _yuv_planes(rgb.reformat(format="yuv420p"))
        self._frames = []
        for _ in range(buffers):
            frame = av.VideoFrame(width, height, "yuv420p")
            for target, source in zip(_yuv_planes(frame), background, strict=True):
                target[:] = source
            self._frames.append(frame)
        self._next = 0

    def next_buffer(self):
        """The buffer for the next frame (the one composed ``buffers`` frames ago) and its planes."""
        frame = self._frames[self._next]
        self._next = (self._next + 1) % len(self._frames)
        return frame, _yuv_planes(frame)

    @staticmethod
    def paste(planes, frame, rect: tuple[int, int, int, int]) -> None:
        """Copy a decoded cell frame's planes into ``planes`` at ``rect`` (x, y, w, h; even)."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        x, y, w, h = rect
        cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
        cell_y, cell_u, cell_v = _yuv_planes(frame)
        planes[0][y : y + h, x : x + w] = cell_y[:h, :w]
        planes[1][cy : cy + ch, cx : cx + cw] = cell_u[:ch, :cw]
        planes[2][cy : cy + ch, cx : cx + cw] = cell_v[:ch, :cw]


def yuv_frames(
    geometry: GridGeometry, cells: Sequence[CellVideo], total: int, *, buffers: int = FRAME_BUFFERS
) -> Iterator:
    """The grid's ``total`` frames as yuv420p ``av.VideoFrame`` objects. The buffers are reused:
    a frame is valid until ``buffers - 1`` more have been taken (encode it, do not keep it)."""
    canvas = YuvCanvas(label_canvas(geometry), buffers)
    shown: list = [None] * len(cells)
    for _index in range(total):
        frame, planes = canvas.next_buffer()
        for number, cell in enumerate(cells):
            decoded = cell.next_frame()
            if decoded is not None:
                shown[number] = decoded
            if shown[number] is not None:  # a cell that has ended holds its last frame
                canvas.paste(planes, shown[number], cell.rect)
        yield frame


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

    def __init__(self, frames: Iterator, depth: int = PREFETCH_DEPTH):
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
