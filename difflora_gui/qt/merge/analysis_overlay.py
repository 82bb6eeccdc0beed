"""A cover over the analysis plots: a placeholder while there is no data, a stale mark after inputs change.

* ``show_empty(text)``: opaque, the introduction card (as the side shows before the plots exist),
  so no empty axes are seen (the plots stay laid out, and painted, beneath it);
* ``show_stale(text)``: translucent over the old numbers (greyed), with the reason in the middle;
  it takes the clicks, so a stale plot cannot toggle blocks or pick modules.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS

EMPTY, STALE = "empty", "stale"
#: how much of the old plots shows through the stale cover (0…255)
STALE_COVER_ALPHA = 175


INTRO_HEADING = "Where does the concept live?"
INTRO_TEXT = (
    "Analyze or Merge to see how A and B differ (Analyze writes nothing): block by block, how large LoRA A, "
    "LoRA B and their difference are, how much of A cancels against B, a blocks × layers heatmap of the "
    "output and the singular values of each module with the rank cut.<br><br>Click a block in the bars "
    "to select or deselect it in the target grid, a heatmap cell for that module's spectrum."
)


def intro_card(text: str) -> QFrame:
    """The introduction shown while there is no analysis: a heading and ``text`` (rich text)."""
    card = QFrame()
    card.setObjectName("sectionCard")
    layout = QVBoxLayout(card)
    layout.setContentsMargins(12, 10, 12, 10)
    heading = QLabel(INTRO_HEADING)
    heading.setObjectName("cardHeading")
    body = QLabel(text)
    body.setObjectName("mutedLabel")
    body.setWordWrap(True)
    layout.addWidget(heading)
    layout.addWidget(body)
    layout.addStretch(1)
    card.body = body
    return card


class AnalysisOverlay(QWidget):
    """Covers its parent widget entirely (follows its size) while shown."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("analysisOverlay")
        self.mode = ""
        self.text = ""
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.card = intro_card("")
        layout.addWidget(self.card)
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
        self.card.setVisible(mode == EMPTY)
        if mode == EMPTY:
            self.card.body.setText(text)
        self.raise_()
        self.show()
        self.update()

    def dismiss(self) -> None:
        self.mode, self.text = "", ""
        self.hide()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        if self.mode == EMPTY:  # opaque under the card: nothing of the plots shows
            painter.fillRect(self.rect(), QColor(COLORS["window"]))
            painter.end()
            return
        cover = QColor(COLORS["base"])
        cover.setAlpha(STALE_COVER_ALPHA)
        painter.fillRect(self.rect(), cover)
        margin = 24
        area = QRectF(self.rect()).adjusted(margin, margin, -margin, -margin)
        flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
        box = painter.boundingRect(area, flags, self.text)
        painter.setPen(QColor(COLORS["warning"]))
        painter.setBrush(QColor(COLORS["window"]))
        painter.drawRoundedRect(box.adjusted(-14, -10, 14, 10), 6, 6)
        painter.setPen(QColor(COLORS["text"]))
        painter.drawText(area, flags, self.text)
        painter.end()
