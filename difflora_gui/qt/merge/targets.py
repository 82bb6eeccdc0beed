"""Which modules take part in the merge: layer-group boxes, a block grid and the selector text.

The checkboxes and the text (the grammar of ``docs/selectors.md``) stay in sync both ways: a
click rewrites the text; an edited text updates the checkboxes. Text the boxes cannot express
(``include=``/``exclude=`` patterns, blocks the detected model does not have) is kept as typed
and marked "custom"; clicks then change groups and blocks and keep the patterns. The grid has one
toggle per block of the detected model (30 for Wan 1.3B, 40 for 14B, the file's own count for
other layouts).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import Selector, format_blocks, parse_blocks, parse_selector
from difflora_gui.lora.wan_layout import LAYER_GROUPS

#: the group boxes, in order: (group, label)
GROUP_BOXES = (
    ("self_attn", "Self-attention"),
    ("cross_attn", "Cross-attention"),
    ("ffn", "FFN"),
    ("other", "Other"),
)
GRID_COLUMNS = 10

_BLOCK_STYLE = """
QToolButton#blockToggle {
    min-width: 26px; max-width: 34px; min-height: 20px; padding: 1px 0;
    border: 1px solid #3a3e45; border-radius: 4px; background: #1b1c1f; color: #8b9098;
}
QToolButton#blockToggle:checked { background: #2f4a7a; border-color: #5b8def; color: #ffffff; }
QToolButton#blockToggle:disabled { color: #4a4d52; border-color: #2a2d32; }
"""


class TargetSelector(QWidget):
    """Groups × blocks (+ patterns): :meth:`selector` is what the merge gets as ``targets``."""

    #: the selection changed (by a click, an edit or :meth:`set_text`)
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("targetSelector")
        self.setStyleSheet(_BLOCK_STYLE)
        self._groups: set[str] = {g for g, _ in GROUP_BOXES}
        self._blocks: frozenset[int] | None = None  # None: every block (and modules outside blocks)
        self._include: tuple[str, ...] = ()
        self._exclude: tuple[str, ...] = ()
        self._text_error = ""
        self._names: list[str] = []
        self.block_count = 0
        self.block_buttons: list[QToolButton] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        groups_row = QHBoxLayout()
        self.group_boxes: dict[str, QCheckBox] = {}
        for group, label in GROUP_BOXES:
            box = QCheckBox(label)
            box.setObjectName(f"group-{group}")
            box.setToolTip(LAYER_GROUPS[group])
            box.setChecked(True)
            box.toggled.connect(self._on_group_toggled)
            self.group_boxes[group] = box
            groups_row.addWidget(box)
        groups_row.addStretch(1)
        layout.addLayout(groups_row)

        self.grid_holder = QWidget()
        self.grid = QGridLayout(self.grid_holder)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(3)
        self.grid.setVerticalSpacing(3)
        self.grid_note = QLabel("Add LoRA A or B to show the blocks of its model.")
        self.grid_note.setObjectName("mutedLabel")
        layout.addWidget(self.grid_holder)
        layout.addWidget(self.grid_note)

        tools = QHBoxLayout()
        self.all_button = QPushButton("All")
        self.none_button = QPushButton("None")
        self.invert_button = QPushButton("Invert")
        self.all_button.setToolTip("Select every block")
        self.none_button.setToolTip("Select no block")
        self.invert_button.setToolTip("Select the blocks that are not selected, and only those")
        self.all_button.clicked.connect(self.select_all)
        self.none_button.clicked.connect(self.select_none)
        self.invert_button.clicked.connect(self.invert)
        self.range_edit = QLineEdit()
        self.range_edit.setObjectName("blockRange")
        self.range_edit.setPlaceholderText("e.g. 0-19,25")
        self.range_edit.setToolTip("Blocks to select: indices and ranges such as 0-19,25")
        self.range_edit.returnPressed.connect(self._apply_range)
        self.range_button = QPushButton("Select range")
        self.range_button.clicked.connect(self._apply_range)
        for button in (self.all_button, self.none_button, self.invert_button):
            tools.addWidget(button)
        tools.addSpacing(8)
        tools.addWidget(self.range_edit, 1)
        tools.addWidget(self.range_button)
        layout.addLayout(tools)

        text_row = QHBoxLayout()
        text_label = QLabel("Selector")
        text_label.setToolTip("The same selection as text (see docs/selectors.md); you can edit it")
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("selectorText")
        self.text_edit.setPlaceholderText("nothing selected")
        self.text_edit.setToolTip(
            "attn, self_attn, cross_attn, ffn, other, all; blocks as 0-9,20; include=REGEX / exclude=REGEX"
        )
        self.text_edit.textEdited.connect(self._on_text_edited)
        self.custom_label = QLabel("custom")
        self.custom_label.setObjectName("customSelector")
        self.custom_label.setStyleSheet("color: #e0b060; font-weight: 600;")
        self.custom_label.hide()
        text_row.addWidget(text_label)
        text_row.addWidget(self.text_edit, 1)
        text_row.addWidget(self.custom_label)
        layout.addLayout(text_row)
        self.status_label = QLabel()
        self.status_label.setObjectName("targetStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.set_block_count(0)
        self._refresh(from_text=False)

    # --- the model's blocks and modules ------------------------------------------------------

    def set_block_count(self, count: int) -> None:
        """Show ``count`` block toggles (0: none until an input is known)."""
        count = max(0, int(count))
        if count == self.block_count and len(self.block_buttons) == count:
            return
        for button in self.block_buttons:
            self.grid.removeWidget(button)
            button.deleteLater()
        self.block_buttons = []
        self.block_count = count
        for block in range(count):
            button = QToolButton()
            button.setObjectName("blockToggle")
            button.setText(str(block))
            button.setCheckable(True)
            button.setToolTip(f"block {block}")
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            button.toggled.connect(self._on_block_toggled)
            self.grid.addWidget(button, block // GRID_COLUMNS, block % GRID_COLUMNS)
            self.block_buttons.append(button)
        self.grid_holder.setVisible(count > 0)
        self.grid_note.setVisible(count == 0)
        for button in (self.all_button, self.none_button, self.invert_button, self.range_button):
            button.setEnabled(count > 0)
        self.range_edit.setEnabled(count > 0)
        self._refresh(from_text=False, rewrite_text=False)

    def set_module_names(self, names: list[str]) -> None:
        """The modules of the current inputs (A ∪ B), for the "targets N of M" count."""
        self._names = list(names)
        self._refresh(from_text=False, rewrite_text=False)

    # --- state -------------------------------------------------------------------------------

    def selector(self) -> Selector | None:
        """The selection, or None when it is empty or the text does not parse (see :meth:`problem`)."""
        if self._text_error or not self._groups:
            return None
        if self._blocks is not None and not self._blocks:
            return None
        return Selector(
            groups=frozenset(self._groups), blocks=self._blocks, include=self._include, exclude=self._exclude
        )

    def text(self) -> str:
        return self.text_edit.text().strip()

    def problem(self) -> str:
        """Why nothing can run with this selection ("" when it is fine)."""
        if self._text_error:
            return f"the selector text is not valid: {self._text_error}"
        if not self._groups:
            return "no layer group is selected"
        if self._blocks is not None and not self._blocks:
            return "no block is selected"
        selector = self.selector()
        if selector is not None and self._names:
            try:
                selector.select(self._names)
            except UserError as exc:
                return str(exc)
        return ""

    def targeted_count(self) -> int | None:
        """How many modules of the current inputs the selection targets (None without inputs)."""
        selector = self.selector()
        if not self._names:
            return None
        if selector is None:
            return 0
        return sum(1 for name in self._names if selector.matches(name))

    def is_custom(self) -> bool:
        return not self.custom_label.isHidden()

    def checked_blocks(self) -> list[int]:
        return [b for b, button in enumerate(self.block_buttons) if button.isChecked()]

    def set_text(self, text: str) -> None:
        """Show a selector text (a restored recipe); the boxes follow when they can express it."""
        self.text_edit.setText(text)
        self._apply_text(text)
        self.changed.emit()

    # --- actions -----------------------------------------------------------------------------

    def select_all(self) -> None:
        self._set_blocks(None)

    def select_none(self) -> None:
        self._set_blocks(frozenset())

    def invert(self) -> None:
        current = set(self._blocks_in_grid())
        self._set_blocks(frozenset(b for b in range(self.block_count) if b not in current))

    def select_range(self, text: str) -> None:
        blocks = parse_blocks(text)
        self._set_blocks(frozenset(b for b in blocks if b < self.block_count) or frozenset(blocks))

    def toggle_block(self, block: int) -> None:
        """Select a block if it is not selected, else deselect it (clicks in the analysis plots)."""
        if not 0 <= block < self.block_count:
            return
        current = set(self._blocks_in_grid())
        current ^= {block}
        self._set_blocks(frozenset(current))

    # --- internals ---------------------------------------------------------------------------

    def _blocks_in_grid(self) -> list[int]:
        if self._blocks is None:
            return list(range(self.block_count))
        return sorted(b for b in self._blocks if b < self.block_count)

    def _set_blocks(self, blocks: frozenset[int] | None) -> None:
        if blocks is not None and self.block_count and blocks >= frozenset(range(self.block_count)):
            blocks = None  # every block of the model: the plain "all blocks" selector
        self._blocks = blocks
        self._text_error = ""
        self._refresh(from_text=False)
        self.changed.emit()

    def _apply_range(self) -> None:
        text = self.range_edit.text().strip()
        if not text:
            return
        try:
            self.select_range(text)
        except UserError as exc:
            self.status_label.setText(f"<span style='color:#ff8a8a'>{exc}</span>")
            return
        self.range_edit.clear()

    def _on_group_toggled(self, _checked: bool) -> None:
        self._groups = {g for g, box in self.group_boxes.items() if box.isChecked()}
        self._text_error = ""
        self._refresh(from_text=False)
        self.changed.emit()

    def _on_block_toggled(self, _checked: bool) -> None:
        checked = frozenset(self.checked_blocks())
        self._set_blocks(checked)

    def _on_text_edited(self, text: str) -> None:
        self._apply_text(text)
        self.changed.emit()

    def _apply_text(self, text: str) -> None:
        if not text.strip():
            self._text_error = "empty (write 'all' to select everything)"
            self._refresh(from_text=True)
            return
        try:
            selector = parse_selector(text)
        except UserError as exc:
            self._text_error = str(exc)
            self._refresh(from_text=True)
            return
        self._text_error = ""
        self._groups = set(selector.groups)
        self._blocks = selector.blocks
        self._include, self._exclude = selector.include, selector.exclude
        self._refresh(from_text=True)

    def _refresh(self, *, from_text: bool, rewrite_text: bool = True) -> None:
        """Make the boxes, the text and the labels agree with the state."""
        for group, box in self.group_boxes.items():
            box.blockSignals(True)
            box.setChecked(group in self._groups)
            box.blockSignals(False)
        in_grid = set(self._blocks_in_grid())
        for block, button in enumerate(self.block_buttons):
            button.blockSignals(True)
            button.setChecked(block in in_grid)
            button.blockSignals(False)
        selector = self.selector()
        if not from_text and rewrite_text and not self._text_error:
            self.text_edit.setText(selector.to_text() if selector is not None else "")
        custom = bool(self._include or self._exclude) or (
            self._blocks is not None
            and self.block_count > 0
            and any(b >= self.block_count for b in self._blocks)
        )
        self.custom_label.setVisible(custom and not self._text_error)
        self.custom_label.setToolTip(
            "The text says more than the boxes show (patterns, or blocks this model does not have); "
            "clicks change groups and blocks and keep the rest"
        )
        self.text_edit.setProperty("invalid", bool(self._text_error))
        self.text_edit.setStyleSheet("border-color: #ff7b7b;" if self._text_error else "")
        self.status_label.setText(self._status_html(selector))

    def _status_html(self, selector: Selector | None) -> str:
        problem = self.problem()
        if problem:
            return f"<span style='color:#ff8a8a'>{_escape(problem)}</span>"
        count = self.targeted_count()
        what = selector.describe() if selector is not None else ""
        if count is None:
            return f"<span style='color:#8b9098'>{_escape(what)}</span>"
        blocks = ""
        if self._blocks is not None:
            blocks = f" (blocks {format_blocks(b for b in self._blocks)})"
        return (
            f"Targets <b>{count}</b> of {len(self._names)} modules in A ∪ B{_escape(blocks)}"
            f"<br><span style='color:#8b9098'>{_escape(what)}</span>"
        )


def _escape(text: str) -> str:
    return html.escape(text)
