"""A/B compare: two clips on one timeline, as a swipe (one picture split by a divider) or side by side.

One set of transport controls drives both clips' frame index, so frame k of the render at strength s
is always beside frame k of the other render. In swipe mode the image columns left of the divider
come from clip A and the rest from clip B; the user drags the divider (or clicks where it should
go; ←/→ still step frames). A shorter clip holds its last frame. Clips of different sizes are both
shown on clip A's rectangle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.preview.frame_view import ElidedLabel, FrameView
from difflora_gui.qt.preview.timeline import TimelineWidget, clip_array
from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    import numpy as np

MODES = (("swipe", "Swipe"), ("side", "Side by side"))


class SwipeCompare(TimelineWidget):
    """``set_clips(left, right, fps, left_label, right_label)``; ``position`` 0…1; ``set_mode("swipe" | "side")``."""

    #: the divider moved (0…1 of the image width)
    position_changed = Signal(float)
    loaded = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("swipeCompare")
        self._left: np.ndarray | None = None
        self._right: np.ndarray | None = None
        self._labels = ("", "")
        self._position = 0.5
        self._mode = "swipe"
        self.swipe_view = FrameView()
        self.swipe_view.setObjectName("swipeView")
        self.swipe_view.split_dragged.connect(self.set_position)
        self.left_view, self.right_view = FrameView(), FrameView()
        self.left_view.setObjectName("leftView")
        self.right_view.setObjectName("rightView")
        self.left_title, self.right_title = ElidedLabel(), ElidedLabel()
        for a, b in ((self.left_view, self.right_view), (self.right_view, self.left_view)):
            # both halves show the same spot when zoomed in
            a.horizontalScrollBar().valueChanged.connect(b.horizontalScrollBar().setValue)
            a.verticalScrollBar().valueChanged.connect(b.verticalScrollBar().setValue)
        side = QWidget()
        grid = QGridLayout(side)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(2)
        grid.addWidget(self.left_title, 0, 0)
        grid.addWidget(self.right_title, 0, 1)
        grid.addWidget(self.left_view, 1, 0)
        grid.addWidget(self.right_view, 1, 1)
        grid.setRowStretch(1, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.swipe_view)
        self.stack.addWidget(side)
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("compareMode")
        self.mode_combo.setToolTip(
            "Swipe: drag the divider across one picture; side by side: the two clips next to each other"
        )
        for value, text in MODES:
            self.mode_combo.addItem(text, value)
        self.mode_combo.activated.connect(lambda _i: self._chose(self.set_mode, self.mode_combo))
        # above the picture, not in the transport bar: the bar must fit a half-width column
        self.hint = ElidedLabel("Drag the line to swipe · S: side by side")
        self.hint.setObjectName("mutedLabel")
        self.hint.setStyleSheet(f"color: {COLORS['muted']};")
        mode_label = QLabel("&View")
        mode_label.setBuddy(self.mode_combo)
        header = QHBoxLayout()
        header.setSpacing(6)
        header.addWidget(self.hint, 1)
        header.addWidget(mode_label)
        header.addWidget(self.mode_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.bar)
        self.clear()

    # --- content -----------------------------------------------------------------------------

    def set_clips(
        self, left_frames, right_frames, fps: float, left_label: str = "A", right_label: str = "B"
    ) -> None:
        """Compare two in-memory clips ((F, H, W, 3) uint8 or float [0, 1]) on one timeline."""
        self._left, self._right = clip_array(left_frames), clip_array(right_frames)
        self._labels = (left_label, right_label)
        self.left_title.set_full_text(left_label)
        self.right_title.set_full_text(right_label)
        self.swipe_view.set_split(self._position, self._labels)
        self._set_timeline(max(len(self._left), len(self._right)), fps)
        self.loaded.emit()

    def clear(self) -> None:
        self.pause()
        self._left = self._right = None
        self._count = self._index = 0
        for view in (self.swipe_view, self.left_view, self.right_view):
            view.set_frames(None)
            view.set_message("Nothing to compare yet")
        self.left_title.set_full_text("")
        self.right_title.set_full_text("")
        self.bar.set_state(0, 0, False)

    # --- divider and mode --------------------------------------------------------------------

    @property
    def position(self) -> float:
        return self._position

    @position.setter
    def position(self, value: float) -> None:
        self.set_position(value)

    def set_position(self, value: float) -> None:
        value = min(1.0, max(0.0, float(value)))
        if value == self._position:
            return
        self._position = value
        self.swipe_view.set_split(value, self._labels)
        self.position_changed.emit(value)

    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in dict(MODES):
            raise ValueError(f"compare mode must be one of {', '.join(dict(MODES))}, not {mode!r}")
        self._mode = mode
        self.mode_combo.setCurrentIndex([m for m, _ in MODES].index(mode))
        self.stack.setCurrentIndex(0 if mode == "swipe" else 1)
        self.hint.set_full_text("Drag the line to swipe · S: side by side" if mode == "swipe" else "S: swipe")

    # --- queries -----------------------------------------------------------------------------

    def frames_at(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Clip A's and clip B's frame at timeline ``index`` (a shorter clip holds its last frame)."""
        if self._left is None or self._right is None:
            return None
        return self._left[min(index, len(self._left) - 1)], self._right[min(index, len(self._right) - 1)]

    def composed(self) -> np.ndarray | None:
        """The swipe picture at image resolution: columns before the divider from A, the rest from B."""
        return self.swipe_view.composed()

    # --- TimelineWidget ----------------------------------------------------------------------

    def _show(self, index: int) -> None:
        pair = self.frames_at(index)
        if pair is None:
            return
        self.swipe_view.set_frames(*pair)
        self.left_view.set_frames(pair[0])
        self.right_view.set_frames(pair[1])

    def _apply_zoom(self, zoom: str | float) -> None:
        for view in (self.swipe_view, self.left_view, self.right_view):
            view.set_zoom(zoom)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key.Key_S and self._left is not None:
            self.set_mode("side" if self._mode == "swipe" else "swipe")
            event.accept()
            return
        super().keyPressEvent(event)
