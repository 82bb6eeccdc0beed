"""The Preview's block panel: a weight per DiT block, the layer-group filter, and the selector text.

One cell per block of the detected model (40 for 14B, 30 for 1.3B/5B) — the Merge section's
:class:`~difflora_gui.qt.merge.block_grid.BlockGrid`: a toggle (off = weight 0, greyed) over the
block's weight. All / None / Invert and the presets of :mod:`difflora_gui.lora.block_weights`
change every block at once; Self-attention / Cross-attention / FFN filter the layers (one stays
on). The text under the grid is the same setting in the selector grammar (``docs/selectors.md``),
which is what a :class:`~difflora_gui.preview.request.LoraEntry` holds: ``all`` for every block
at 1 with every group, ``attn blocks=0-9,10-19@0.5`` otherwise. The user may type it: Enter (or
leaving the field) applies valid text; invalid text gets a red border and the parser's message
and changes nothing.

The selector text is the state (so blocks beyond the current model, or ``include=``/``exclude=``
patterns, survive a change of model); the grid shows it for :meth:`BlockWeightsPanel.num_blocks`
blocks. Every block off has no selector text of its own: :data:`OFF_SELECTOR` stands for it.

``changed`` fires once per change (a preset that rewrites 40 weights is one signal); typing in a
weight field changes it on each keystroke that gives a new number, so the Preview panel debounces
its renders. Undo: :meth:`BlockWeightsPanel.set_undo_stack` records each user action on the
app's :class:`~difflora_gui.qt.undo.UndoStack`; an owner that keeps its own history (one panel
shown for several LoRA entries) listens to ``edited`` and restores with :meth:`set_state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from PySide6.QtCore import QEvent, Qt, Signal
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
from difflora_gui.lora.block_weights import preset_weights, selector_with_weights, weights_from_selector
from difflora_gui.lora.selector import Selector, parse_selector
from difflora_gui.lora.wan_layout import LAYER_GROUPS
from difflora_gui.qt.merge.block_grid import GRID_STYLE, BlockGrid, PresetMenu, out_of_range_text
from difflora_gui.qt.theme import COLORS, snug

__all__ = ["FILTER_GROUPS", "OFF_SELECTOR", "BlockWeightsPanel"]

#: the layer-group boxes, in order: (group, label)
FILTER_GROUPS = (("self_attn", "Self-attention"), ("cross_attn", "Cross-attention"), ("ffn", "FFN"))
#: the selector of "every block off": it parses and selects no module (``.`` is found in every name),
#: so a LoRA entry holding it changes nothing (``select()`` says it selects nothing)
OFF_SELECTOR = "exclude=."
_EVERY_GROUP = frozenset(LAYER_GROUPS)
_BOX_GROUPS = frozenset(g for g, _ in FILTER_GROUPS)
#: cells per row: 40 blocks in 5 rows fit a side column of about 340 px and more
GRID_COLUMNS = 8
TEXT_TIP = (
    "attn, self_attn, cross_attn, ffn, all; blocks as 0-9,20 with weights as 10-19@0.5; "
    "include=REGEX / exclude=REGEX. Enter applies, Esc goes back to the current setting."
)


class BlockWeightsPanel(QWidget):
    """Per-block weights × layer groups for one LoRA; :meth:`selector` is its selector text."""

    #: the setting changed (a user action, an undo, or a setter that changed something): once each
    changed = Signal()
    #: a user action: (what, merge key or "", state before, state after) — for an owner's undo
    edited = Signal(str, str, object, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("blockWeightsPanel")
        self.setStyleSheet(GRID_STYLE)
        self._num_blocks = 0
        self._base = Selector()  # groups, blocks and weights, patterns (ignored while off)
        self._off = False  # every block at 0
        self._remembered: dict[int, float] = {}  # a switched-off block's weight, for switching it on
        self._undo = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        groups_row = QHBoxLayout()
        self.group_boxes: dict[str, QCheckBox] = {}
        for group, label in FILTER_GROUPS:
            box = QCheckBox(label)
            box.setObjectName(f"group-{group}")
            box.setToolTip(f"{LAYER_GROUPS[group]} (at least one layer group stays on)")
            box.setChecked(True)
            box.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            box.toggled.connect(lambda _on, g=group: self._on_group_toggled(g))
            self.group_boxes[group] = box
            groups_row.addWidget(box)
        groups_row.addStretch(1)
        layout.addLayout(groups_row)

        self.grid = BlockGrid(columns=GRID_COLUMNS)
        self.grid.toggled.connect(self._on_block_toggled)
        self.grid.weight_edited.connect(self._on_weight_edited)
        self.grid_note = QLabel("The blocks show once the model is known.")
        self.grid_note.setObjectName("mutedLabel")
        layout.addWidget(self.grid)
        layout.addWidget(self.grid_note)

        tools = QHBoxLayout()
        self.all_button = QPushButton("All")
        self.all_button.setToolTip("Every block at weight 1")
        self.none_button = QPushButton("None")
        self.none_button.setToolTip("Every block off (weight 0): this LoRA then changes nothing")
        self.invert_button = QPushButton("Invert")
        self.invert_button.setToolTip("Blocks that are on go off, blocks that are off come on at weight 1")
        self.all_button.clicked.connect(lambda: self._user(lambda: self._fill(1.0), "every block on"))
        self.none_button.clicked.connect(lambda: self._user(lambda: self._fill(0.0), "every block off"))
        self.invert_button.clicked.connect(lambda: self._user(self.invert, "invert the blocks"))
        snug(self.all_button, self.none_button, self.invert_button)
        self.preset_combo = PresetMenu()
        self.preset_combo.activated.connect(self._on_preset_chosen)
        for button in (self.all_button, self.none_button, self.invert_button):
            tools.addWidget(button)
        tools.addWidget(self.preset_combo, 1)
        layout.addLayout(tools)

        text_row = QHBoxLayout()
        text_label = QLabel("Selector")
        text_label.setToolTip(
            "The same setting as selector text (docs/selectors.md); Enter applies typed text"
        )
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("selectorText")
        self.text_edit.textEdited.connect(self._on_text_edited)
        self.text_edit.editingFinished.connect(self._apply_typed_text)
        self.text_edit.installEventFilter(self)
        text_label.setBuddy(self.text_edit)
        text_row.addWidget(text_label)
        text_row.addWidget(self.text_edit, 1)
        layout.addLayout(text_row)
        self.message_label = QLabel()
        self.message_label.setObjectName("blocksMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.message_label)
        self._num_blocks = -1  # so that the next line disables the buttons
        self.set_num_blocks(0)

    # --- the model -----------------------------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    def set_num_blocks(self, n: int) -> None:
        """Show ``n`` block cells (40 for 14B, 30 for 1.3B/5B; 0 until the model is known).

        The setting is kept: blocks it names beyond the model get a warning and select nothing.
        """
        n = max(0, int(n))
        if n == self._num_blocks and self.grid.count == n:
            return
        self._num_blocks = n
        self.grid.set_count(n)
        for cell in self.grid.cells:
            # a wheel over a cell must not give it the focus (and with it the wheel)
            cell.weight.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.grid.setVisible(n > 0)
        self.grid_note.setVisible(n == 0)
        for widget in (self.all_button, self.none_button, self.invert_button, self.preset_combo):
            widget.setEnabled(n > 0)
        self._fix_tab_order()
        self._refresh()

    @property
    def block_buttons(self) -> list:
        return [cell.button for cell in self.grid.cells]

    @property
    def weight_boxes(self) -> list:
        return [cell.weight for cell in self.grid.cells]

    # --- the setting -----------------------------------------------------------------------------

    def selector(self) -> str:
        """The setting as normalised selector text (``all``; ``attn blocks=0-9,10-19@0.5``;
        :data:`OFF_SELECTOR` when every block is off)."""
        return OFF_SELECTOR if self._off else self._base.to_text()

    def set_selector(self, text: str) -> None:
        """Show a selector text (``UserError`` naming the bad term when it does not parse)."""
        if text.strip() == OFF_SELECTOR:
            # every group: what the panel shows depends on the text only, not on what it showed before
            self._set(Selector(), off=True)
            return
        self._set(parse_selector(text), off=False)

    def is_off(self) -> bool:
        """Every block is off: the LoRA changes nothing."""
        return self._off

    def weights(self) -> dict[int, float]:
        """{block: weight} for every block of the model (0 = off)."""
        if self._off:
            return dict.fromkeys(range(self._num_blocks), 0.0)
        return weights_from_selector(self._base, self._num_blocks)

    def set_weights(self, weights: Mapping[int, float] | Iterable[float]) -> None:
        """Set block weights ({block: weight}, or one weight per block); blocks not named keep theirs."""
        if not isinstance(weights, Mapping):
            weights = dict(enumerate(weights))
        grid = self.weights()
        grid.update({int(b): float(w) for b, w in weights.items()})
        self._set_grid(grid)

    def groups(self) -> frozenset[str]:
        """The layer groups checked: a subset of self_attn, cross_attn, ffn."""
        return frozenset(self._base.groups & _BOX_GROUPS)

    def set_groups(self, groups: Iterable[str]) -> None:
        """Filter to these groups (``attn`` = both attentions); all three = every module (``all``)."""
        names = [str(g) for g in groups]
        if not names:
            raise UserError("the layer-group filter needs at least one group (self_attn, cross_attn, ffn)")
        chosen = parse_selector(",".join(names)).groups
        if chosen >= _BOX_GROUPS:
            chosen = _EVERY_GROUP
        self._set(self._with_groups(chosen), off=self._off)

    def state(self) -> tuple[str, bool]:
        """The whole setting, for undo (``set_state`` restores it; the groups survive "every block off")."""
        return (self._base.to_text(), self._off)

    def set_state(self, state: tuple[str, bool]) -> None:
        text, off = state
        self._set(parse_selector(text), off=bool(off))

    # --- actions (the buttons record them; called directly they are not recorded) ---------------

    def select_all(self) -> None:
        self._fill(1.0)

    def select_none(self) -> None:
        self._fill(0.0)

    def invert(self) -> None:
        """Blocks that are on (any weight but 0) go off; blocks that are off come on at 1."""
        self._set_grid({b: 0.0 if w else 1.0 for b, w in self.weights().items()})

    def apply_preset(self, name: str) -> None:
        """A preset of :mod:`difflora_gui.lora.block_weights` (flat, ramps, thirds) on every block."""
        if self._num_blocks:
            self._remembered = {}
            self._set_grid(preset_weights(name, self._num_blocks))

    # --- undo --------------------------------------------------------------------------------------

    def set_undo_stack(self, stack) -> None:
        """Record every user action on ``stack`` (an :class:`~difflora_gui.qt.undo.UndoStack`)."""
        self._undo = stack

    def _record(self, what: str, before: tuple[str, bool], merge_key: str = "") -> None:
        after = self.state()
        if before == after:
            return
        self.edited.emit(what, merge_key, before, after)
        if self._undo is None or self._undo.applying:
            return
        self._undo.record(
            f"Blocks: {what}",
            lambda: self.set_state(before),
            lambda: self.set_state(after),
            merge_key=f"blocks-{id(self)}-{merge_key}" if merge_key else None,
        )

    def _user(self, action, what: str, merge_key: str = "") -> None:
        before = self.state()
        action()
        self._record(what, before, merge_key)

    # --- internals ---------------------------------------------------------------------------------

    def _set(self, base: Selector, *, off: bool) -> None:
        before = self.selector(), self.state()
        self._base, self._off = base, off
        self._refresh()
        if (self.selector(), self.state()) != before:
            self.changed.emit()

    def _set_grid(self, grid: Mapping[int, float]) -> None:
        grid = {b: w for b, w in grid.items() if 0 <= b < self._num_blocks}
        if not any(grid.values()):
            self._set(self._base, off=True)
            return
        self._set(selector_with_weights(self._base, grid, num_blocks=self._num_blocks), off=False)

    def _fill(self, weight: float) -> None:
        self._remembered = {}
        self._set_grid(dict.fromkeys(range(self._num_blocks), weight))

    def _with_groups(self, groups: frozenset[str]) -> Selector:
        base = self._base
        return Selector(groups, base.blocks, base.include, base.exclude, weights=base.weights)

    def _on_group_toggled(self, group: str) -> None:
        checked = frozenset(g for g, box in self.group_boxes.items() if box.isChecked())
        if not checked:
            self._refresh()  # the box goes back on
            self._show_message(f"At least one layer group stays on ({dict(FILTER_GROUPS)[group]} kept).")
            return
        groups = _EVERY_GROUP if checked == _BOX_GROUPS else checked
        self._user(lambda: self._set(self._with_groups(groups), off=self._off), "layer groups")

    def _on_block_toggled(self, block: int, on: bool) -> None:
        self._user(lambda: self._switch_block(block, on), f"block {block} {'on' if on else 'off'}")

    def _switch_block(self, block: int, on: bool) -> None:
        grid = self.weights()
        if on:
            grid[block] = self._remembered.pop(block, 1.0)
        else:
            self._remembered[block] = grid.get(block, 1.0)
            grid[block] = 0.0
        self._set_grid(grid)

    def _on_weight_edited(self, block: int, weight: float) -> None:
        self._remembered.pop(block, None)
        # rounded as the field shows it, so the text and the field agree
        self._user(
            lambda: self.set_weights({block: round(weight, 2)}), f"block {block} weight", f"weight-{block}"
        )

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)  # a menu of actions, not a state
        if name:
            self._user(lambda: self.apply_preset(name), f"preset {name}")

    def _typed_problem(self, text: str) -> str:
        if not text.strip():
            return "The selector is empty: write 'all' for every module."
        try:
            parse_selector(text)
        except UserError as exc:
            return f"{exc} — fix the text, or press Esc for the current setting."
        return ""

    def _on_text_edited(self, text: str) -> None:
        problem = self._typed_problem(text)
        self._mark_text(bool(problem))
        if problem:
            self._show_message(problem, error=True)
        elif text.strip() != self.selector():
            self._show_message("Enter applies the text (Esc: back to the current setting).")
        else:
            self._refresh()

    def _apply_typed_text(self) -> None:
        text = self.text_edit.text()
        if text.strip() == self.selector() or self._typed_problem(text):
            return  # invalid text stays as typed, marked, until it is fixed or Esc
        self._user(lambda: self.set_selector(text), "selector text")

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if (
            watched is self.text_edit
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Escape
        ):
            self._refresh()  # back to the current setting
            return True
        return super().eventFilter(watched, event)

    def _mark_text(self, invalid: bool) -> None:
        self.text_edit.setProperty("invalid", invalid)
        self.text_edit.setStyleSheet(f"border: 2px solid {COLORS['error']};" if invalid else "")

    def message(self) -> str:
        """The line under the text: a typing error, a warning, or how many blocks are on."""
        return self.message_label.text()

    def _show_message(self, text: str, *, error: bool = False, warning: bool = False) -> None:
        color = COLORS["error"] if error else COLORS["warning"] if warning else COLORS["muted"]
        self.message_label.setStyleSheet(f"color: {color};")
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    def _refresh(self) -> None:
        """Make the boxes, the grid, the text and the message agree with the state."""
        for group, box in self.group_boxes.items():
            box.blockSignals(True)
            box.setChecked(group in self._base.groups)
            box.blockSignals(False)
        weights = self.weights()
        self.grid.show_weights([weights[b] for b in range(self._num_blocks)])
        self.text_edit.setText("" if self._off else self.selector())
        self.text_edit.setPlaceholderText(
            "every block is off: this LoRA changes nothing" if self._off else "all"
        )
        self._mark_text(False)
        outside = [] if self._off else self._base.blocks_out_of_range(self._num_blocks)
        if self._num_blocks and outside:
            self._show_message(out_of_range_text(outside, self._num_blocks), warning=True)
        elif self._off:
            self._show_message("Every block is off: this LoRA changes nothing.", warning=True)
        else:
            self._show_message(self._summary())
        what = "nothing (every block off)" if self._off else self._base.describe()
        self.text_edit.setToolTip(f"{TEXT_TIP}\n\nNow: {what}")

    def _summary(self) -> str:
        if not self._num_blocks:
            return ""
        weights = self.weights()
        on = sum(1 for w in weights.values() if w)
        weighted = sum(1 for w in weights.values() if w not in (0.0, 1.0))
        text = f"{on} of {self._num_blocks} blocks on"
        return text + (f", {weighted} weighted" if weighted else "")

    # --- focus ---------------------------------------------------------------------------------------

    def focus_chain(self) -> list[QWidget]:
        """The focusable widgets in layout order (an owner chains its own widgets by them)."""
        chain: list[QWidget] = [self.group_boxes[g] for g, _ in FILTER_GROUPS] + self.grid.focus_chain()
        return chain + [
            self.all_button,
            self.none_button,
            self.invert_button,
            self.preset_combo,
            self.text_edit,
        ]

    def _fix_tab_order(self) -> None:
        # the cells are made after the rest: without this, Tab reaches them last
        chain = self.focus_chain()
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)
