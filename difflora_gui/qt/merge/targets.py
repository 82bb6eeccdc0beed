"""Which modules take part in the merge: layer-group boxes, a block grid with weights, the selector text.

The checkboxes, the grid and the text (the grammar of ``docs/selectors.md``, block weights
included: ``attn blocks=0-9,10-19@0.5``) stay in sync both ways: a click or a weight rewrites the
text; an edited text updates the boxes and the grid. Text the boxes cannot express
(``include=``/``exclude=`` patterns, blocks the detected model does not have) is kept as typed and
marked "custom"; clicks then change groups and blocks and keep the patterns. Blocks the model does
not have get a warning line. Every user change is one undoable step once the panel gives the box
its :class:`~difflora_gui.qt.undo.UndoStack` (:meth:`TargetSelector.set_undo_stack`); typing in
one field or stepping one weight merges into one step.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import Selector, format_blocks, parse_blocks, parse_selector
from difflora_gui.lora.wan_layout import LAYER_GROUPS
from difflora_gui.qt.merge.block_grid import (
    GRID_COLUMNS,
    GRID_STYLE,
    BlockGrid,
    PresetMenu,
    grid_selector,
    out_of_range_text,
    preset_weights,
    round_weight,
    selector_weights,
)

__all__ = ["GRID_COLUMNS", "GROUP_BOXES", "TargetSelector"]

#: the longest description of the selection under the text (the rest is in the tooltip)
DESCRIPTION_CHARS = 160
#: the group boxes, in order: (group, label)
GROUP_BOXES = (
    ("self_attn", "Self-attention"),
    ("cross_attn", "Cross-attention"),
    ("ffn", "FFN"),
    ("other", "Other"),
)


class TargetSelector(QWidget):
    """Groups × weighted blocks (+ patterns): :meth:`selector` is what the merge gets as ``targets``."""

    #: the selection changed (by a click, an edit, an undo or :meth:`set_text`)
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("targetSelector")
        self.setStyleSheet(GRID_STYLE)
        self._groups: set[str] = {g for g, _ in GROUP_BOXES}
        self._blocks: frozenset[int] | None = None  # None: every block (and modules outside blocks)
        self._weights: dict[int, float] = {}  # blocks whose weight is not 1
        self._remembered: dict[int, float] = {}  # a switched-off block's weight, for switching it on
        self._include: tuple[str, ...] = ()
        self._exclude: tuple[str, ...] = ()
        self._text_error = ""
        self._names: list[str] = []
        self.block_count = 0
        self._undo = None
        self._shown_state: tuple = ()  # the state after the last change (the next undo step's "before")

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

        self.grid = BlockGrid()
        self.grid.toggled.connect(self._on_block_toggled)
        self.grid.weight_edited.connect(self._on_weight_edited)
        self.grid_note = QLabel("Add LoRA A or B to show the blocks of its model.")
        self.grid_note.setObjectName("mutedLabel")
        layout.addWidget(self.grid)
        layout.addWidget(self.grid_note)

        tools = QHBoxLayout()
        self.all_button = QPushButton("All")
        self.none_button = QPushButton("None")
        self.invert_button = QPushButton("Invert")
        self.all_button.setToolTip("Select every block (weights back to 1)")
        self.none_button.setToolTip("Select no block")
        self.invert_button.setToolTip("Select the blocks that are not selected, and only those")
        self.all_button.clicked.connect(lambda: self._user(self.select_all, "Select every block"))
        self.none_button.clicked.connect(lambda: self._user(self.select_none, "Select no block"))
        self.invert_button.clicked.connect(lambda: self._user(self.invert, "Invert the blocks"))
        self.preset_combo = PresetMenu()
        self.preset_combo.activated.connect(self._on_preset_chosen)
        for button in (self.all_button, self.none_button, self.invert_button):
            tools.addWidget(button)
        tools.addWidget(self.preset_combo, 1)
        layout.addLayout(tools)

        range_row = QHBoxLayout()
        self.range_edit = QLineEdit()
        self.range_edit.setObjectName("blockRange")
        self.range_edit.setPlaceholderText("blocks, e.g. 0-19,25")
        self.range_edit.setToolTip("Blocks to select: indices and ranges such as 0-19,25")
        self.range_edit.returnPressed.connect(self._apply_range)
        self.range_button = QPushButton("Select range")
        self.range_button.clicked.connect(self._apply_range)
        range_row.addWidget(self.range_edit, 1)
        range_row.addWidget(self.range_button)
        layout.addLayout(range_row)

        text_row = QHBoxLayout()
        text_label = QLabel("Selector")
        text_label.setToolTip("The same selection as text (see docs/selectors.md); you can edit it")
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("selectorText")
        self.text_edit.setPlaceholderText("nothing selected")
        self.text_edit.setToolTip(
            "attn, self_attn, cross_attn, ffn, other, all; blocks as 0-9,20 with weights as 10-19@0.5; "
            "include=REGEX / exclude=REGEX"
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
        self.range_warning = QLabel()
        self.range_warning.setObjectName("blocksOutOfRange")
        self.range_warning.setWordWrap(True)
        self.range_warning.setStyleSheet("color: #e0b060;")
        self.range_warning.hide()
        layout.addWidget(self.range_warning)
        self.status_label = QLabel()
        self.status_label.setObjectName("targetStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.set_block_count(0)
        self._refresh(from_text=False)
        self._shown_state = self._state()

    # --- undo --------------------------------------------------------------------------------

    def set_undo_stack(self, stack) -> None:
        """Record every user change on ``stack`` (an :class:`~difflora_gui.qt.undo.UndoStack`)."""
        self._undo = stack
        self._shown_state = self._state()

    def _state(self) -> tuple:
        # the whole state, not only the text: "no block" and an invalid text both show ""
        return (
            self.text_edit.text(),
            frozenset(self._groups),
            self._blocks,
            tuple(sorted(self._weights.items())),
            self._include,
            self._exclude,
            self._text_error,
        )

    def _record(self, what: str, merge_key: str | None = None) -> None:
        before, after = self._shown_state, self._state()
        self._shown_state = after
        if self._undo is None or self._undo.applying or before == after:
            return
        self._undo.record(
            f"Targets: {what}",
            lambda: self._restore(before),
            lambda: self._restore(after),
            merge_key=None if merge_key is None else f"targets-{id(self)}-{merge_key}",
        )

    def _restore(self, state: tuple) -> None:
        text, groups, self._blocks, weights, self._include, self._exclude, self._text_error = state
        self._groups, self._weights, self._remembered = set(groups), dict(weights), {}
        self.text_edit.setText(text)
        self._refresh(from_text=True)
        self._shown_state = state
        self.changed.emit()

    def _user(self, action, what: str, merge_key: str | None = None) -> None:
        """Run a user's action and record it as one step."""
        action()
        self._record(what, merge_key)

    # --- the model's blocks and modules ------------------------------------------------------

    @property
    def block_buttons(self):
        """The block toggles, block by block."""
        return [cell.button for cell in self.grid.cells]

    @property
    def weight_boxes(self):
        """The block weight fields, block by block."""
        return [cell.weight for cell in self.grid.cells]

    def set_block_count(self, count: int) -> None:
        """Show ``count`` block cells (0: none until an input is known)."""
        count = max(0, int(count))
        if count == self.block_count and self.grid.count == count:
            return
        self.block_count = count
        self.grid.set_count(count)
        self.grid.setVisible(count > 0)
        self.grid_note.setVisible(count == 0)
        for widget in (self.all_button, self.none_button, self.invert_button, self.range_button):
            widget.setEnabled(count > 0)
        self.range_edit.setEnabled(count > 0)
        self.preset_combo.setEnabled(count > 0)
        self._fix_tab_order()
        self._refresh(from_text=False, rewrite_text=False)

    def set_module_names(self, names: list[str]) -> None:
        """The modules of the current inputs (A ∪ B), for the "targets N of M" count."""
        self._names = list(names)
        self._refresh(from_text=False, rewrite_text=False)

    def focus_chain(self) -> list[QWidget]:
        """The box's focusable widgets in layout order (the panel chains the boxes by them)."""
        chain = [self.group_boxes[g] for g, _ in GROUP_BOXES] + self.grid.focus_chain()
        chain += [self.all_button, self.none_button, self.invert_button, self.preset_combo]
        return chain + [self.range_edit, self.range_button, self.text_edit]

    def _fix_tab_order(self) -> None:
        # the cells are made after the rest: without this, Tab reaches them last
        chain = self.focus_chain()
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)

    # --- state -------------------------------------------------------------------------------

    def selector(self) -> Selector | None:
        """The selection, or None when it is empty or the text does not parse (see :meth:`problem`)."""
        if self._text_error or not self._groups:
            return None
        if self._blocks is not None and not self._blocks:
            return None
        weights = {b: w for b, w in self._weights.items() if self._blocks is not None and b in self._blocks}
        return grid_selector(self._groups, self._blocks, weights, self._include, self._exclude)

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

    def block_weights(self) -> list[float]:
        """The weight of each block of the grid (0 = left out)."""
        return [self._weight_in_grid(b) for b in range(self.block_count)]

    def blocks_out_of_range(self) -> list[int]:
        """Named blocks the model of the inputs does not have (empty without inputs)."""
        if not self.block_count or self._blocks is None or self._text_error:
            return []
        return sorted(b for b in self._blocks if b >= self.block_count)

    def set_text(self, text: str) -> None:
        """Show a selector text (a restored recipe, not recorded); the boxes follow when they can."""
        self.text_edit.setText(text)
        self._apply_text(text)
        self._shown_state = self._state()
        self.changed.emit()

    # --- actions (the buttons record them; called directly they are not recorded) ------------

    def select_all(self) -> None:
        self._weights = {}
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
        """Switch a block on or off (clicks in the analysis plots; one undoable step)."""
        if not 0 <= block < self.block_count:
            return
        on = block not in self._blocks_in_grid()
        self._switch_block(block, on)
        self._record(f"block {block} {'on' if on else 'off'}")

    def set_block_weight(self, block: int, weight: float) -> None:
        """Give one block a weight (0 switches it off)."""
        weight = round_weight(weight)
        blocks = set(self._blocks_in_grid())
        if weight == 0:
            if block in blocks:
                self._remembered[block] = self._weight_in_grid(block)
            blocks.discard(block)
        else:
            blocks.add(block)
        self._set_weight(block, weight)
        self._set_blocks(frozenset(blocks))

    def apply_preset(self, name: str) -> None:
        """Weights from a preset (flat, ramp up/down, first/middle/last third) for every block."""
        if not self.block_count:
            return
        weights = preset_weights(name, self.block_count)
        self._weights = {b: w for b, w in enumerate(weights) if w not in (0, 1)}
        self._remembered = {}
        self._set_blocks(frozenset(b for b, w in enumerate(weights) if w != 0))

    # --- internals ---------------------------------------------------------------------------

    def _weight_in_grid(self, block: int) -> float:
        if block not in self._blocks_in_grid():
            return 0.0
        return self._weights.get(block, 1.0)

    def _set_weight(self, block: int, weight: float) -> None:
        if weight in (0, 1):
            self._weights.pop(block, None)
        else:
            self._weights[block] = weight

    def _switch_block(self, block: int, on: bool) -> None:
        blocks = set(self._blocks_in_grid())
        if on:
            blocks.add(block)
            self._set_weight(block, self._remembered.pop(block, 1.0))
        else:
            self._remembered[block] = self._weight_in_grid(block)
            blocks.discard(block)
            self._weights.pop(block, None)
        self._set_blocks(frozenset(blocks))

    def _blocks_in_grid(self) -> list[int]:
        if self._blocks is None:
            return list(range(self.block_count))
        return sorted(b for b in self._blocks if b < self.block_count)

    def _set_blocks(self, blocks: frozenset[int] | None) -> None:
        if blocks is not None:
            self._weights = {b: w for b, w in self._weights.items() if b in blocks}
        every = frozenset(range(self.block_count))
        if blocks is not None and self.block_count and blocks == every and not self._weights:
            blocks = None  # every block of the model at weight 1: the plain "all blocks" selector
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
            self.status_label.setText(f"<span style='color:#ff8a8a'>{html.escape(str(exc))}</span>")
            return
        self._record(f"select blocks {text}")
        self.range_edit.clear()

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)  # a menu of actions, not a state
        if name:
            self.apply_preset(name)
            self._record(f"weights {self.preset_combo.itemText(index).lower()}")

    def _on_group_toggled(self, _checked: bool) -> None:
        self._groups = {g for g, box in self.group_boxes.items() if box.isChecked()}
        self._text_error = ""
        self._refresh(from_text=False)
        self.changed.emit()
        self._record("layer groups")

    def _on_block_toggled(self, block: int, on: bool) -> None:
        self._switch_block(block, on)
        self._record(f"block {block} {'on' if on else 'off'}")

    def _on_weight_edited(self, block: int, weight: float) -> None:
        self.set_block_weight(block, weight)
        self._record(f"block {block} weight", merge_key=f"weight-{block}")

    def _on_text_edited(self, text: str) -> None:
        self._apply_text(text)
        self.changed.emit()
        self._record("selector text", merge_key="text")

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
        self._weights = selector_weights(selector)
        self._remembered = {}
        self._include, self._exclude = selector.include, selector.exclude
        self._refresh(from_text=True)

    def _refresh(self, *, from_text: bool, rewrite_text: bool = True) -> None:
        """Make the boxes, the grid, the text and the labels agree with the state."""
        for group, box in self.group_boxes.items():
            box.blockSignals(True)
            box.setChecked(group in self._groups)
            box.blockSignals(False)
        self.grid.show_weights(self.block_weights())
        selector = self.selector()
        if not from_text and rewrite_text and not self._text_error:
            self.text_edit.setText(selector.to_text() if selector is not None else "")
        outside = self.blocks_out_of_range()
        custom = bool(self._include or self._exclude) or bool(outside)
        self.custom_label.setVisible(custom and not self._text_error)
        self.custom_label.setToolTip(
            "The text says more than the boxes show (patterns, or blocks this model does not have); "
            "clicks change groups and blocks and keep the rest"
        )
        self.range_warning.setText(out_of_range_text(outside, self.block_count))
        self.range_warning.setVisible(bool(outside))
        self.text_edit.setProperty("invalid", bool(self._text_error))
        self.text_edit.setStyleSheet("border-color: #ff7b7b;" if self._text_error else "")
        self.status_label.setText(self._status_html(selector))

    def _status_html(self, selector: Selector | None) -> str:
        problem = self.problem()
        if problem:
            return f"<span style='color:#ff8a8a'>{_escape(problem)}</span>"
        count = self.targeted_count()
        what = selector.describe() if selector is not None else ""
        self.status_label.setToolTip(what)
        if len(what) > DESCRIPTION_CHARS:  # a ramp names every block: the tooltip has it all
            what = what[: DESCRIPTION_CHARS - 1].rstrip() + "…"
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
