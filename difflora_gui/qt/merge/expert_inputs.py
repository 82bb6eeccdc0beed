"""The two-expert inputs grid: columns "High-noise expert" | "Low-noise expert", rows A (+) and B (−).

Wan2.2 A14B LoRAs come per expert, so each expert has its own A and B card. The grid is two
columns wide when there is room (about 360 px and more) and one column (A high, A low, Swap, B
high, B low) in a narrower settings column, so it fits the workbench at 1280×720.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from difflora_gui.merge.input_slots import EXPERT_SLOTS, slot_title
from difflora_gui.qt.merge.input_card import LoraCard

#: below this width (or two cards' minimum widths) the grid stacks its cards in one column
TWO_COLUMN_MIN_WIDTH = 360
COLUMN_TITLES = {"high": "High-noise expert", "low": "Low-noise expert"}


class ExpertGrid(QWidget):
    """The four expert cards (``cards[slot]``), their column headings and a Swap A and B button."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("expertGrid")
        self.cards = {slot: LoraCard(slot, slot_title(slot), compact=True) for slot in EXPERT_SLOTS}
        self.headings = {}
        for expert, title in COLUMN_TITLES.items():
            label = QLabel(title)
            label.setObjectName("expertHeading")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("font-weight: 600;")
            self.headings[expert] = label
        self.swap_button = QPushButton("⇅ Swap A and B")
        self.swap_button.setObjectName("expertSwapButton")
        self.swap_button.setToolTip("Exchange LoRA A and LoRA B of both experts")
        self.swap_row = QWidget()
        row = QHBoxLayout(self.swap_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        row.addWidget(self.swap_button)
        row.addStretch(1)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(6)
        self.columns = 0
        self._arrange(2)
        # Tab follows the reading order: A's two experts, Swap, B's two experts
        chain = []
        for slot in ("a_high", "a_low", "swap", "b_high", "b_low"):
            if slot == "swap":
                chain.append(self.swap_button)
            else:
                card = self.cards[slot]
                chain += [card.open_button, card.clear_button, card.role_combo]
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)
        self.setMinimumWidth(self.minimumSizeHint().width())

    def _arrange(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for widget in (*self.headings.values(), *self.cards.values(), self.swap_row):
            self.grid.removeWidget(widget)
        for column in range(2):
            self.grid.setColumnStretch(column, 0)
        if columns == 2:
            self.grid.addWidget(self.headings["high"], 0, 0)
            self.grid.addWidget(self.headings["low"], 0, 1)
            self.grid.addWidget(self.cards["a_high"], 1, 0)
            self.grid.addWidget(self.cards["a_low"], 1, 1)
            self.grid.addWidget(self.swap_row, 2, 0, 1, 2)
            self.grid.addWidget(self.cards["b_high"], 3, 0)
            self.grid.addWidget(self.cards["b_low"], 3, 1)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 1)
        else:
            order = ["a_high", "a_low", "swap", "b_high", "b_low"]
            for index, name in enumerate(order):
                self.grid.addWidget(self.swap_row if name == "swap" else self.cards[name], index, 0, 1, 2)
            self.grid.setColumnStretch(0, 1)
        for label in self.headings.values():
            label.setVisible(columns == 2)
        for card in self.cards.values():
            card.title_label.setVisible(columns == 1)  # the column headings say it when side by side

    def two_column_width(self) -> int:
        """The narrowest width at which two cards fit side by side (their buttons whole)."""
        card = max(c.minimumSizeHint().width() for c in self.cards.values())
        return max(TWO_COLUMN_MIN_WIDTH, 2 * card + self.grid.horizontalSpacing())

    def minimumSizeHint(self):  # noqa: N802 - Qt override
        # one card wide: below two cards' width the grid stacks (it never widens the column)
        hint = super().minimumSizeHint()
        hint.setWidth(max(c.minimumSizeHint().width() for c in self.cards.values()))
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.setMinimumWidth(self.minimumSizeHint().width())
        self._arrange(2 if event.size().width() >= self.two_column_width() else 1)
