"""A word-wrapped QLabel whose height is the one its text needs at its actual width."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel, QWidget


class FittedLabel(QLabel):
    """A word-wrapped label exactly as tall as its text at its own width.

    A plain QLabel's size hint guesses a narrow width for wrapped text, so in a wide form a two-line
    hint gets the height of four lines and sits in a gap; this one asks for the height its actual
    width needs, and asks again when its width changes.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        if self.wordWrap() and self.width() > 0:
            hint.setHeight(self.heightForWidth(self.width()))
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # the height the new width needs
