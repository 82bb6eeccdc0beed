"""The Compare section's grid player: every cell of a grid on one timeline, frame-locked.

The cells are decoded off the UI thread at one display size that keeps the whole grid within a
memory budget (:mod:`difflora_gui.qt.compare.cell_frames`); each frame is then one RGB canvas
composed with numpy over a background that holds the axis-label bands (drawn once per layout),
shown in a :class:`~difflora_gui.qt.preview.frame_view.FrameView`. Every cell shows the same frame
index; a shorter clip holds its last frame. The difference view shows ``|cell − strength-0 cell| ×
gain`` (saturated), so what the slider changes, and where, stands out; the strength-0 cells
themselves go black. A click on a cell emits :attr:`GridPlayer.cell_clicked` with the spec's
(row, col); a double-click opens the cell in the single player
(:class:`~difflora_gui.qt.compare.cell_dialog.CellPlayerDialog`). A cell whose video is missing or
unreadable shows why in its rectangle (and :attr:`GridPlayer.problem` says it for the log).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QSignalBlocker, Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QToolTip, QVBoxLayout, QWidget

from difflora_gui.compare.grid_canvas import GridGeometry, grid_geometry, layout_position, spec_position
from difflora_gui.compare.grid_spec import LAYOUTS, GridSpec
from difflora_gui.errors import UserError
from difflora_gui.qt.compare.cell_frames import (
    MEMORY_BUDGET,
    CellRelay,
    Key,
    label_background,
    message_tile,
    start_decoding,
    zero_references,
)
from difflora_gui.qt.preview.frame_view import BACKGROUND, ElidedLabel, FrameView
from difflora_gui.qt.preview.timeline import TimelineWidget
from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    import threading

    import numpy as np

    from difflora_gui.compare.grid_types import CellResult, GridResult
    from difflora_gui.qt.compare.cell_dialog import CellPlayerDialog

GAIN_RANGE = (1.0, 16.0)
DEFAULT_GAIN = 4.0
#: a press and release closer than this (screen px) is a click, farther a pan of the zoomed view
CLICK_SLOP = 5
NO_ZERO_TIP = (
    "This grid has no strength axis with a 0 value: the difference view compares every cell with "
    "its strength-0 cell. Add 0 to the strengths to use it."
)
DIFFERENCE_TIP = (
    "Show |cell − its strength-0 cell| × gain: what the LoRA changes, and where "
    "(the strength-0 cells themselves show black)"
)


class GridPlayer(TimelineWidget):
    """A grid's cells playing in lockstep; see the module docstring."""

    #: the spec's (row, col) of a clicked cell
    cell_clicked = Signal(int, int)
    #: every cell was decoded (or found unreadable) and is shown
    loaded = Signal()
    #: a cell could not be shown: the one-line reason, with its file (for the log)
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, memory_budget: int = MEMORY_BUDGET):
        super().__init__(parent)
        self.setObjectName("gridPlayer")
        self._budget = int(memory_budget)
        self.view = FrameView()
        self._show_focus(False)
        self.status = ElidedLabel("")
        self.status.setObjectName("gridStatus")
        self.status.setStyleSheet(f"color: {COLORS['muted']};")
        self.difference_box = QCheckBox("Difference vs strength 0")
        self.difference_box.setObjectName("differenceBox")
        self.gain_spin = QDoubleSpinBox()
        self.gain_spin.setObjectName("differenceGain")
        self.gain_spin.setRange(*GAIN_RANGE)
        self.gain_spin.setDecimals(1)
        self.gain_spin.setSingleStep(1.0)
        self.gain_spin.setPrefix("×")
        self.gain_spin.setValue(DEFAULT_GAIN)
        self.gain_spin.setToolTip("Amplify the difference (×1 … ×16); small changes need more")
        self.gain_spin.setAccessibleName("Difference gain")
        # the wheel changes the gain only once the box is focused (clicked or tabbed into)
        self.gain_spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.gain_spin.installEventFilter(self)
        tools = QHBoxLayout()
        tools.setSpacing(8)
        tools.addWidget(self.status, 1)
        tools.addWidget(self.difference_box)
        tools.addWidget(self.gain_spin)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.view, 1)
        layout.addLayout(tools)
        layout.addWidget(self.bar)
        chain = [self.difference_box, self.gain_spin, self.bar.play_button, self.bar.back_button]
        chain += [self.bar.forward_button, self.bar.slider, self.bar.loop_button, self.bar.speed_combo]
        chain.append(self.bar.zoom_combo)
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)
        self.difference_box.toggled.connect(lambda on: self.set_difference(on, self.gain_spin.value()))
        self.gain_spin.valueChanged.connect(lambda gain: self.set_difference(self._difference, gain))
        self.view.canvas.installEventFilter(self)
        self._relay = CellRelay()
        self._relay.planned.connect(self._on_planned, Qt.ConnectionType.QueuedConnection)
        self._relay.cell_done.connect(self._on_cell_done, Qt.ConnectionType.QueuedConnection)
        self._relay.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._generation = 0
        # the running load's stop event, in a box the destroyed-handler holds: a player deleted
        # mid-decode stops its workers (the handler cannot reach a half-deleted player's attributes)
        self._stop: list[threading.Event | None] = [None]
        stop = self._stop
        self.destroyed.connect(lambda *_args: stop[0] is not None and stop[0].set())
        self._press_at: QPoint | None = None
        self._dialogs: list[CellPlayerDialog] = []
        self._difference = False
        self._gain = DEFAULT_GAIN
        self._layout = "horizontal"
        self._reset()
        self.clear()

    def _reset(self) -> None:
        self._spec: GridSpec | None = None
        self._result: GridResult | None = None
        self._cells: dict[Key, CellResult] = {}
        self._references: dict[Key, Key | None] = {}
        self._frames: dict[Key, np.ndarray] = {}
        self._errors: dict[Key, str] = {}
        self._tiles: dict[Key, np.ndarray] = {}
        self._pending: set[Key] = set()
        self._geometry: GridGeometry | None = None
        self._background: np.ndarray | None = None
        self._canvas: np.ndarray | None = None
        self._cell_size: tuple[int, int] | None = None
        self._planned_frames = 0
        self._fps_given = False
        self._loading = False
        self.problems: list[str] = []

    # --- content -----------------------------------------------------------------------------

    def set_grid(self, spec: GridSpec, result: GridResult, layout: str = "horizontal") -> None:
        """Show ``result``'s cells; they decode on worker threads, then frame 0 shows (``loaded``)."""
        if layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self._cancel_loading()
        self._generation += 1
        self.pause()
        self._reset()
        self._layout = layout
        if not result.cells:
            self.clear("The grid has no cells")
            return
        self._spec, self._result = spec, result
        self._cells = {(c.row, c.col): c for c in result.cells}
        self._references = zero_references(spec)
        self._pending = set(self._cells)
        self._loading = True
        self._count, self._index = 0, 0
        self.bar.set_state(0, 0, False)
        self.view.set_frames(None)
        self.view.set_message(f"Decoding {len(self._cells)} cells …")
        self._update_difference_controls()
        self._update_status()
        self._stop[0] = start_decoding(self._relay, self._generation, list(result.cells), self._budget)

    def clear(self, message: str = "") -> None:
        """No grid: the view says ``message`` ("No grid"); a decode in flight is dropped."""
        self._cancel_loading()
        self._generation += 1
        self.pause()
        self._reset()
        self._count, self._index = 0, 0
        self.view.set_frames(None)
        self.view.set_message(message or "No grid")
        self.bar.set_state(0, 0, False)
        self._update_difference_controls()
        self._update_status()

    def set_layout(self, layout: str) -> None:
        """``"horizontal"`` (the first axis along the columns) or ``"vertical"`` (down the rows)."""
        if layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if layout == self._layout:
            return
        self._layout = layout
        if self._cell_size is not None:
            self._build_canvas()
            self._show(self._index)

    def layout_name(self) -> str:
        return self._layout

    def set_difference(self, on: bool, gain: float = DEFAULT_GAIN) -> None:
        """The difference view on or off, at ``gain`` (1…16); refused (stays off) without a strength 0."""
        self._gain = min(GAIN_RANGE[1], max(GAIN_RANGE[0], float(gain)))
        self._difference = bool(on) and self.difference_available()
        with QSignalBlocker(self.difference_box), QSignalBlocker(self.gain_spin):
            self.difference_box.setChecked(self._difference)
            self.gain_spin.setValue(self._gain)
        self.gain_spin.setEnabled(self._difference)
        if self._background is not None and self._count:
            self._show(self._index)
        else:
            self._update_status()

    def difference_available(self) -> bool:
        return any(ref is not None for ref in self._references.values())

    def difference(self) -> tuple[bool, float]:
        return self._difference, self._gain

    def _update_difference_controls(self) -> None:
        available = self.difference_available()
        self.difference_box.setEnabled(available)
        self.difference_box.setToolTip(DIFFERENCE_TIP if available else NO_ZERO_TIP)
        if not available and self._difference:
            self._difference = False
            with QSignalBlocker(self.difference_box):
                self.difference_box.setChecked(False)
        self.gain_spin.setEnabled(self._difference)

    def _cancel_loading(self) -> None:
        if self._stop[0] is not None:
            self._stop[0].set()
            self._stop[0] = None

    # --- decoded results (UI thread) ---------------------------------------------------------

    @Slot(int, int, int, int, float)
    def _on_planned(self, generation: int, width: int, height: int, frames: int, fps: float) -> None:
        if generation != self._generation:
            return
        self._cell_size = (width, height)
        self._planned_frames = frames
        self._fps_given = fps > 0
        self._build_canvas()
        self._set_timeline(frames, fps)

    @Slot(int, int, int, object, float, str, str)
    def _on_cell_done(self, generation, row, col, frames, fps, error, short) -> None:
        if generation != self._generation:
            return
        key = (row, col)
        self._pending.discard(key)
        self._tiles.pop(key, None)
        if error:
            self._errors[key] = error
            self.problems.append(error)
            self._tiles[key] = self._message(key, short)
            self.problem.emit(error)
        else:
            self._frames[key] = frames
            if not self._fps_given and fps > 0:  # no cell result said its rate: the first video's
                self._fps, self._fps_given = fps, True
        count = max((len(f) for f in self._frames.values()), default=0)
        if self._pending:
            count = max(count, self._planned_frames)
        self._set_timeline(max(1, count), self._fps)
        self._update_status()

    @Slot(int)
    def _on_finished(self, generation: int) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._stop[0] = None
        self._update_status()
        self.loaded.emit()

    def _message(self, key: Key, text: str) -> np.ndarray:
        width, height = self._cell_size or (64, 64)
        video = self._cells[key].video if key in self._cells else ""
        name = Path(video).name if video else ""
        return message_tile(width, height, f"{text}\n{name}" if name else text)

    def _build_canvas(self) -> None:
        """The geometry and the label background for the layout and cell size (labels drawn once)."""
        width, height = self._cell_size
        self._geometry = grid_geometry(self._spec, width, height, layout=self._layout)
        self._background = label_background(self._geometry)
        pending = message_tile(width, height, "decoding …")
        for key in self._pending:
            self._tiles[key] = pending

    # --- composing a frame -------------------------------------------------------------------

    def _cell_rect(self, key: Key) -> tuple[int, int, int, int] | None:
        try:
            return self._geometry.cell_rect(*layout_position(*key, self._layout))
        except IndexError:
            return None

    def _compose(self, index: int) -> np.ndarray | None:
        if self._background is None:
            return None
        import cv2

        canvas = self._background.copy()
        no_reference = None
        for key in self._cells:
            rect = self._cell_rect(key)
            if rect is None:
                continue
            x, y, w, h = rect
            frames = self._frames.get(key)
            if frames is None:
                tile = self._tiles.get(key)
                if tile is not None:
                    canvas[y : y + h, x : x + w] = tile
                continue
            frame = frames[min(index, len(frames) - 1)]
            if self._difference:
                reference = self._frames.get(self._references.get(key) or (-1, -1))
                if reference is None:
                    if no_reference is None:
                        no_reference = message_tile(w, h, "no strength-0 cell to compare with")
                    canvas[y : y + h, x : x + w] = no_reference
                    continue
                difference = cv2.absdiff(frame, reference[min(index, len(reference) - 1)])
                frame = cv2.convertScaleAbs(difference, alpha=self._gain)  # × gain, saturated at 255
            canvas[y : y + h, x : x + w] = frame
        return canvas

    def _show(self, index: int) -> None:
        self._canvas = self._compose(index)
        self.view.set_frames(self._canvas)
        self._update_status()

    def _apply_zoom(self, zoom: str | float) -> None:
        self.view.set_zoom(zoom)

    def _update_status(self) -> None:
        if not self._cells:
            self.status.set_full_text("")
            return
        if self._geometry is not None:
            shape = f"{self._geometry.cols} × {self._geometry.rows} cells"
        else:
            shape = f"{len(self._cells)} cells"
        parts = [shape]
        if self._pending:
            parts.append(f"decoded {len(self._cells) - len(self._pending)} of {len(self._cells)} …")
        if self._count:
            parts.append(f"frame {self._index + 1} of {self._count}")
        if self._difference:
            parts.append(f"difference ×{self._gain:g}")
        if self._errors:
            failed = len(self._errors)
            parts.append(f"{failed} cell{'s' if failed > 1 else ''} could not be read")
        self.status.set_full_text(" · ".join(parts))

    # --- queries -----------------------------------------------------------------------------

    def is_loading(self) -> bool:
        return self._loading

    def composed(self) -> np.ndarray | None:
        """The RGB canvas on screen (image resolution): cells, labels, messages."""
        return self._canvas

    def geometry_of_grid(self) -> GridGeometry | None:
        return self._geometry

    def cell_frame(self, row: int, col: int) -> np.ndarray | None:
        """What the cell at the spec's ``row``, ``col`` shows now (display scale); None without a video."""
        key = (row, col)
        if self._canvas is None or key not in self._frames:
            return None
        rect = self._cell_rect(key)
        if rect is None:
            return None
        x, y, w, h = rect
        return self._canvas[y : y + h, x : x + w].copy()

    def cell_error(self, row: int, col: int) -> str:
        return self._errors.get((row, col), "")

    def cell_point(self, row: int, col: int) -> QPoint | None:
        """The centre of the spec's cell ``row``, ``col`` on the view's canvas widget (for a click)."""
        rect = self._cell_rect((row, col)) if self._geometry is not None else None
        target = self.view.image_rect()
        if rect is None or target.isEmpty():
            return None
        size = self.view.image_size()
        x, y, w, h = rect
        sx, sy = target.width() / size.width(), target.height() / size.height()
        return QPoint(round(target.left() + (x + w / 2) * sx), round(target.top() + (y + h / 2) * sy))

    def _image_point(self, point: QPointF) -> tuple[float, float] | None:
        target = self.view.image_rect()
        size = self.view.image_size()
        if target.isEmpty() or not target.contains(point):
            return None
        return (
            (point.x() - target.left()) * size.width() / target.width(),
            (point.y() - target.top()) * size.height() / target.height(),
        )

    def cell_at_point(self, point: QPointF) -> Key | None:
        """The spec's (row, col) of the cell under ``point`` on the view's canvas; None off the cells."""
        image = self._image_point(QPointF(point))
        if image is None or self._geometry is None:
            return None
        hit = self._geometry.at(*image)
        if hit is None:
            return None
        key = spec_position(*hit, self._layout)
        return key if key in self._cells else None

    def _tooltip_at(self, point: QPointF) -> str:
        key = self.cell_at_point(point)
        if key is not None:
            cell = self._cells[key]
            text = " · ".join(cell.labels) or f"row {key[0] + 1}, column {key[1] + 1}"
            if key in self._errors:
                text += f"\n{self._errors[key]}"
            return text + "\nclick: select · double-click: open in the player"
        image = self._image_point(QPointF(point))
        if image is None or self._geometry is None:
            return ""
        geometry, (x, y) = self._geometry, image
        if y < geometry.top:
            for col, text in enumerate(geometry.column_labels):
                cx, _cy, w, _h = geometry.column_label_rect(col)
                if cx <= x < cx + w:
                    return text
        if x < geometry.left:
            for row, text in enumerate(geometry.row_labels):
                _cx, cy, _w, h = geometry.row_label_rect(row)
                if cy <= y < cy + h:
                    return text
        return ""

    # --- the single player -------------------------------------------------------------------

    def open_cell(self, row: int, col: int) -> CellPlayerDialog | None:
        """Open the spec's cell ``row``, ``col`` in its own (non-modal) player at the current frame."""
        from difflora_gui.qt.compare.cell_dialog import CellPlayerDialog

        cell = self._cells.get((row, col))
        if cell is None:
            return None
        dialog = CellPlayerDialog(cell, frame=self._index, parent=self)
        self._dialogs.append(dialog)
        dialog.destroyed.connect(lambda _obj=None, d=dialog: self._forget(d))
        dialog.show()
        return dialog

    def _forget(self, dialog) -> None:
        if dialog in self._dialogs:
            self._dialogs.remove(dialog)

    # --- events ------------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if watched is self.gain_spin and kind == QEvent.Type.Wheel and not self.gain_spin.hasFocus():
            event.ignore()  # filtered and ignored: the wheel goes to the parent, not the gain
            return True
        if watched is self.view.canvas:
            if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
                self._press_at = event.position().toPoint()
            elif kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                pressed, self._press_at = self._press_at, None
                point = event.position().toPoint()
                if pressed is not None and (point - pressed).manhattanLength() <= CLICK_SLOP:
                    key = self.cell_at_point(event.position())
                    if key is not None:
                        self.cell_clicked.emit(*key)
            elif kind == QEvent.Type.MouseButtonDblClick and event.button() == Qt.MouseButton.LeftButton:
                self._press_at = None  # the release after a double-click is not another click
                key = self.cell_at_point(event.position())
                if key is not None:
                    self.open_cell(*key)
                    return True
            elif kind == QEvent.Type.ToolTip:
                text = self._tooltip_at(QPointF(event.pos()))
                if text:
                    QToolTip.showText(event.globalPos(), text, self.view.canvas)
                else:
                    QToolTip.hideText()
                return True
        return super().eventFilter(watched, event)

    def _show_focus(self, focused: bool) -> None:
        """A ring round the grid while the keys (Space, arrows …) go to it; the same width without."""
        colour = COLORS["accent"] if focused else "transparent"
        self.view.setStyleSheet(
            f"QScrollArea#frameView {{ background: {BACKGROUND}; border: 1px solid {colour}; }}"
        )

    def focusInEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._show_focus(True)
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._show_focus(False)
        super().focusOutEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._cancel_loading()
        super().closeEvent(event)
