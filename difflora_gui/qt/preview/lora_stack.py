"""The Preview panel's LoRA stack: the files a render applies, each with its strength and expert.

A row per entry: an on/off box, the file name (elided in the middle, the full path in the
tooltip), its strength and blocks as text, and for a two-expert model (Wan2.2 A14B) which expert
it goes into. Add… (a file dialog that remembers its folder), Remove, Up and Down edit the list;
files dropped on the panel are added too. The selected entry is the one the strength control,
the block panel and Export edit (:meth:`LoraStack.update_selected`): the differential LoRA gets
its blocks while an accelerator LoRA beside it stays at "all". :class:`ExpertStrengths` is the
per-expert strength pair of the selected entry for two-expert models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.preview.request import EXPERT_CHOICES, LoraEntry
from difflora_gui.qt.theme import snug

#: the project keeps at most this many entries (its path keys are declared per index)
MAX_ENTRIES = 32
VISIBLE_ROWS = 6
LORA_FILTER = "LoRA files (*.safetensors);;All files (*)"
EXPERT_TITLES = {"both": "both experts", "high": "high noise", "low": "low noise"}
COL_ON, COL_FILE, COL_STRENGTH, COL_EXPERT = range(4)


@dataclass(frozen=True)
class StackItem:
    """One row: the entry a render gets, and whether it is switched on."""

    entry: LoraEntry
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        data = self.entry.to_json()
        data.pop("sha256", None)  # hashed again before each render: the file may have changed
        return {**data, "enabled": self.enabled}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackItem:
        values = dict(data)
        enabled = bool(values.pop("enabled", True))
        names = {f.name for f in dataclasses.fields(LoraEntry)}
        return cls(LoraEntry(**{k: v for k, v in values.items() if k in names}), enabled)


def items_to_json(items: Iterable[StackItem]) -> dict[str, dict[str, Any]]:
    """The project's form of the stack: entries by index (``"0"``, ``"1"`` …), so each file is a
    declared section path (``stack.0.file``)."""
    return {str(i): item.to_json() for i, item in enumerate(items)}


def items_from_json(data: Any) -> tuple[list[StackItem], list[str]]:
    """The stack a project holds, and a line per entry that could not be read."""
    stack = data if isinstance(data, Mapping) else {}
    items, problems = [], []
    for key in sorted(stack, key=lambda k: int(k) if str(k).isdigit() else MAX_ENTRIES):
        try:
            items.append(StackItem.from_json(stack[key]))
        except (UserError, TypeError, ValueError) as exc:
            problems.append(str(exc))
    return items, problems


def strength_text(entry: LoraEntry, two_experts: bool) -> str:
    if two_experts and (entry.strength_high is not None or entry.strength_low is not None):
        return f"H {entry.strength_for('high'):+.2f} · L {entry.strength_for('low'):+.2f}"
    return f"{entry.strength:+.2f}"


class LoraStack(QWidget):
    """The list of entries. ``changed(key)`` on every edit (``key`` names it, for undo merging);
    ``selection_changed(index)`` when another entry is selected (-1: none)."""

    changed = Signal(str)
    selection_changed = Signal(int)
    #: the add dialog chose files in this folder
    folder_used = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._items: list[StackItem] = []
        self._two_experts = False
        self._filling = False
        self.start_folder = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("previewStackTable")
        self.table.setHorizontalHeaderLabels(["On", "LoRA", "Strength", "Expert"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_ON, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_FILE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_STRENGTH, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_EXPERT, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.table)
        self.empty_label = QLabel("No LoRA yet: Add… a .safetensors file or drop one on the panel.")
        self.empty_label.setObjectName("mutedLabel")
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("A&dd…")
        self.add_button.setObjectName("previewStackAdd")
        self.add_button.setToolTip("Add LoRA files to the stack")
        self.add_button.clicked.connect(self.browse)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("previewStackRemove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.up_button = QPushButton("Up")
        self.up_button.setObjectName("previewStackUp")
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button = QPushButton("Down")
        self.down_button.setObjectName("previewStackDown")
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        for button in snug(self.add_button, self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._refresh()

    # --- the list ----------------------------------------------------------------------------

    def items(self) -> list[StackItem]:
        return list(self._items)

    def entries(self) -> list[LoraEntry]:
        """The switched-on entries, in order: the request's stack."""
        return [item.entry for item in self._items if item.enabled]

    def set_items(self, items: Iterable[StackItem], *, selected: int = 0) -> None:
        """Show ``items`` (no ``changed`` signal: a restore or an undo)."""
        self._items = list(items)[:MAX_ENTRIES]
        self._refresh(select=selected if self._items else -1)

    def selected_index(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def selected_entry(self) -> LoraEntry | None:
        index = self.selected_index()
        return self._items[index].entry if 0 <= index < len(self._items) else None

    def select(self, index: int) -> None:
        if 0 <= index < self.table.rowCount():
            self.table.selectRow(index)
        else:
            self.table.clearSelection()

    def set_two_experts(self, two: bool) -> None:
        """Show the expert column (and per-expert strengths) for a two-expert model."""
        if two != self._two_experts:
            self._two_experts = two
            self._refresh(select=self.selected_index())

    def add_files(self, paths: Iterable[str | Path]) -> list[str]:
        """Add files at the end (the last added is selected); returns the refusals, one line each."""
        refused = []
        added = 0
        for path in paths:
            path = Path(path)
            if path.suffix.lower() != ".safetensors":
                refused.append(f"{path.name}: not a .safetensors file")
            elif not path.is_file():
                refused.append(f"{path}: no such file")
            elif len(self._items) >= MAX_ENTRIES:
                refused.append(f"{path.name}: the stack holds at most {MAX_ENTRIES} LoRAs")
            else:
                self._items.append(StackItem(LoraEntry(str(path.resolve()))))
                added += 1
        if added:
            self._refresh(select=len(self._items) - 1)
            self.changed.emit("add")
        return refused

    def browse(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add LoRA files", self.start_folder, LORA_FILTER)
        if paths:
            self.start_folder = str(Path(paths[0]).parent)
            self.folder_used.emit(self.start_folder)
        return self.add_files(paths)

    def remove_selected(self) -> None:
        index = self.selected_index()
        if 0 <= index < len(self._items):
            del self._items[index]
            self._refresh(select=min(index, len(self._items) - 1))
            self.changed.emit("remove")

    def move_selected(self, delta: int) -> None:
        index = self.selected_index()
        target = index + delta
        if 0 <= index < len(self._items) and 0 <= target < len(self._items):
            self._items[index], self._items[target] = self._items[target], self._items[index]
            self._refresh(select=target)
            self.changed.emit("move")

    def update_selected(self, key: str, **changes: Any) -> None:
        """Change the selected entry's fields (``strength``, ``selector``, ``expert`` …)."""
        index = self.selected_index()
        if not 0 <= index < len(self._items):
            return
        item = self._items[index]
        entry = dataclasses.replace(item.entry, **changes)
        if entry == item.entry:
            return
        self._items[index] = dataclasses.replace(item, entry=entry)
        self._show_row(index)
        self.changed.emit(f"{key}:{index}")

    # --- drawing -----------------------------------------------------------------------------

    def _refresh(self, select: int | None = None) -> None:
        self._filling = True
        try:
            self.table.setRowCount(len(self._items))
            for row in range(len(self._items)):
                self._show_row(row)
            self.table.setColumnHidden(COL_EXPERT, not self._two_experts)
        finally:
            self._filling = False
        self.empty_label.setVisible(not self._items)
        # as tall as its rows (two to six; more scroll): no empty box under a one-LoRA stack
        rows = max(2, min(len(self._items), VISIBLE_ROWS))
        row_height = self.table.verticalHeader().defaultSectionSize()
        header = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(header + rows * row_height + 2 * self.table.frameWidth())
        if select is not None:
            self.select(select)
        self._update_buttons()

    def _show_row(self, row: int) -> None:
        item = self._items[row]
        entry = item.entry
        filling, self._filling = self._filling, True
        try:
            on = QTableWidgetItem()
            on.setFlags(
                Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
            )
            on.setCheckState(Qt.CheckState.Checked if item.enabled else Qt.CheckState.Unchecked)
            on.setToolTip("Switch this LoRA on or off for the render")
            self.table.setItem(row, COL_ON, on)
            name = QTableWidgetItem(Path(entry.file).name)
            exists = Path(entry.file).is_file()
            blocks = "" if entry.selector == "all" else f"\nblocks: {entry.selector}"
            name.setToolTip(
                entry.file + ("" if exists else "\n(missing: Remove it, or put the file back)") + blocks
            )
            if not exists:
                name.setForeground(Qt.GlobalColor.red)
            self.table.setItem(row, COL_FILE, name)
            strength = strength_text(entry, self._two_experts)
            if entry.selector != "all":
                strength += " ▦"  # blocks or layers are weighted: the tooltip says which
            strength_item = QTableWidgetItem(strength)
            strength_item.setToolTip(f"strength {strength}; blocks: {entry.selector}")
            self.table.setItem(row, COL_STRENGTH, strength_item)
            combo = self.table.cellWidget(row, COL_EXPERT)
            if isinstance(combo, QComboBox):  # kept: a new one per edit flickered in at the row's start
                combo.blockSignals(True)
                combo.setCurrentIndex(EXPERT_CHOICES.index(entry.expert))
                combo.blockSignals(False)
            else:
                self.table.setCellWidget(row, COL_EXPERT, self._expert_combo(entry.expert))
        finally:
            self._filling = filling

    def _expert_combo(self, expert: str) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName("previewStackExpert")
        for choice in EXPERT_CHOICES:
            combo.addItem(EXPERT_TITLES[choice], choice)
        combo.setCurrentIndex(EXPERT_CHOICES.index(expert))
        combo.setToolTip("Which of Wan2.2's two transformers this LoRA goes into")
        combo.currentIndexChanged.connect(lambda i, c=combo: self._on_expert(c, c.itemData(i)))
        return combo

    def _on_expert(self, combo: QComboBox, expert: str) -> None:
        row = next(
            (r for r in range(self.table.rowCount()) if self.table.cellWidget(r, COL_EXPERT) is combo), -1
        )
        if self._filling or not 0 <= row < len(self._items):
            return
        self.select(row)
        self.update_selected("expert", expert=expert)

    def _on_item_changed(self, cell: QTableWidgetItem) -> None:
        if self._filling or cell.column() != COL_ON:
            return
        row = cell.row()
        enabled = cell.checkState() == Qt.CheckState.Checked
        if 0 <= row < len(self._items) and enabled != self._items[row].enabled:
            self._items[row] = dataclasses.replace(self._items[row], enabled=enabled)
            self.changed.emit("enabled")

    def _on_selection(self) -> None:
        self._update_buttons()
        if not self._filling:
            self.selection_changed.emit(self.selected_index())

    def _update_buttons(self) -> None:
        index = self.selected_index()
        self.remove_button.setEnabled(index >= 0)
        self.up_button.setEnabled(index > 0)
        self.down_button.setEnabled(0 <= index < len(self._items) - 1)
        self.add_button.setEnabled(len(self._items) < MAX_ENTRIES)


class ExpertStrengths(QWidget):
    """The selected entry's own strength per expert (Wan2.2): off = the one strength for both."""

    changed = Signal(object, object)  # (strength_high, strength_low); None = the shared strength

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("Per expert:")
        self.check.setObjectName("previewPerExpert")
        self.check.setToolTip("A strength of its own for the high-noise and the low-noise transformer")
        self.high_spin = self._spin("previewStrengthHigh", "high-noise expert strength")
        self.low_spin = self._spin("previewStrengthLow", "low-noise expert strength")
        layout.addWidget(self.check)
        layout.addWidget(QLabel("high"))
        layout.addWidget(self.high_spin, 1)
        layout.addWidget(QLabel("low"))
        layout.addWidget(self.low_spin, 1)
        self._quiet = False
        self.check.toggled.connect(self._emit)
        self.high_spin.valueChanged.connect(self._emit)
        self.low_spin.valueChanged.connect(self._emit)

    @staticmethod
    def _spin(name: str, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setObjectName(name)
        spin.setRange(-100.0, 100.0)
        spin.setSingleStep(0.1)
        spin.setDecimals(2)
        spin.setToolTip(tip)
        return spin

    def show_entry(self, entry: LoraEntry | None) -> None:
        self._quiet = True
        try:
            own = entry is not None and (entry.strength_high is not None or entry.strength_low is not None)
            self.check.setChecked(own)
            self.high_spin.setValue(entry.strength_for("high") if entry is not None else 1.0)
            self.low_spin.setValue(entry.strength_for("low") if entry is not None else 1.0)
            self.high_spin.setEnabled(own)
            self.low_spin.setEnabled(own)
        finally:
            self._quiet = False

    def _emit(self, *_args) -> None:
        own = self.check.isChecked()
        self.high_spin.setEnabled(own)
        self.low_spin.setEnabled(own)
        if self._quiet:
            return
        if own:
            self.changed.emit(float(self.high_spin.value()), float(self.low_spin.value()))
        else:
            self.changed.emit(None, None)
