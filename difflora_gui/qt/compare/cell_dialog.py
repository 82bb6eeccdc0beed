"""One grid cell in the single player: a non-modal window with the cell's labels and its video.

The grid player shows every cell at a display scale; this window decodes the cell's own video at
its full size (:class:`~difflora_gui.qt.preview.player.VideoPlayer`, on a worker thread) and
starts at the frame the grid was on, so a detail seen in the grid can be looked at pixel for pixel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QVBoxLayout, QWidget

from difflora_gui.qt.preview.frame_view import ElidedLabel
from difflora_gui.qt.preview.player import VideoPlayer

if TYPE_CHECKING:
    from difflora_gui.compare.grid_types import CellResult


def cell_title(cell: CellResult) -> str:
    """``"strength 0.5 · seed 2"``; the position where a cell has no labels."""
    return " · ".join(cell.labels) or f"row {cell.row + 1}, column {cell.col + 1}"


class CellPlayerDialog(QDialog):
    """The cell's video at full size, opened at ``frame``; closing it deletes it."""

    def __init__(self, cell: CellResult, frame: int = 0, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("cellPlayerDialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setModal(False)
        self.cell = cell
        self._start_frame = max(0, int(frame))
        title = cell_title(cell)
        self.setWindowTitle(f"Grid cell · {title}")
        self.heading = ElidedLabel(title)
        self.heading.setObjectName("cellHeading")
        self.player = VideoPlayer()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.player, 1)
        layout.addWidget(buttons)
        width, height = cell.width or 640, cell.height or 360
        # the clip at 100 % where the screen allows; the window stays under 1280 × 720 either way
        self.resize(min(1200, max(720, width + 40)), min(680, max(480, height + 150)))
        self.player.loaded.connect(self._at_start_frame)
        self.player.load(cell.video)
        self.player.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot()
    def _at_start_frame(self) -> None:
        self.player.seek(min(self._start_frame, self.player.frame_count - 1))
