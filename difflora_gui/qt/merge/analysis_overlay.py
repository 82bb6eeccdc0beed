"""A cover over the analysis plots: a placeholder while there is no data, a stale mark after inputs change.

* ``show_empty(text)``: opaque, so no empty axes are seen (the plots stay laid out beneath it);
* ``show_stale(text)``: translucent over the old numbers (greyed), with the reason in the middle;
  it takes the clicks, so a stale plot cannot toggle blocks or pick modules.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

from difflora_gui.qt.theme import COLORS

EMPTY, STALE = "empty", "stale"
#: how much of the old plots shows through the stale cover (0…255)
STALE_COVER_ALPHA = 175


class AnalysisOverlay(QWidget):
    """Covers its parent widget entirely (follows its size) while shown."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("analysisOverlay")
        self.mode = ""
        self.text = ""
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        parent.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.parent() and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.parentWidget().rect())
        return False

    def show_empty(self, text: str) -> None:
        self._show(EMPTY, text)

    def show_stale(self, text: str) -> None:
        self._show(STALE, text)

    def _show(self, mode: str, text: str) -> None:
        self.mode, self.text = mode, text
        self.setGeometry(self.parentWidget().rect())
        self.setToolTip(text if mode == STALE else "")
        self.raise_()
        self.show()
        self.update()

    def dismiss(self) -> None:
        self.mode, self.text = "", ""
        self.hide()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        base = QColor(COLORS["base"])
        if self.mode == STALE:
            base.setAlpha(STALE_COVER_ALPHA)
        painter.fillRect(self.rect(), base)
        margin = 24
        area = QRectF(self.rect()).adjusted(margin, margin, -margin, -margin)
        flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
        box = painter.boundingRect(area, flags, self.text)
        if self.mode == STALE:
            frame = box.adjusted(-14, -10, 14, 10)
            painter.setPen(QColor(COLORS["warning"]))
            painter.setBrush(QColor(COLORS["window"]))
            painter.drawRoundedRect(frame, 6, 6)
            painter.setPen(QColor(COLORS["text"]))
        else:
            painter.setPen(QColor(COLORS["muted"]))
        painter.drawText(area, flags, self.text)
        painter.end()
