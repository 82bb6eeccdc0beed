"""The Compare panel's axis editors: up to three axes, each a kind and its values.

One :class:`AxisRow` per axis (the first runs along the columns, the second down the rows, the
third splits the rows into groups): a kind combo (Strength, Seed, LoRA variant, Blocks, Prompt,
and for a two-expert Wan2.2 model High-/Low-noise strength) and the editor that kind takes:

- numbers (strengths, seeds): one line, a list ``-1,0,1`` or a range ``-3:3:1``;
- LoRA variant: a file list with Add… (the dialog remembers its folder) and Remove;
- blocks: the block-weight presets as checkable items, plus free selectors (``|`` between them);
- prompt: one prompt per line.

A value that does not parse (:meth:`Axis.parse`'s :class:`UserError`) is said under its row and
:meth:`AxesForm.axes` raises it, so the panel gates Render grid with it. The form's state is
plain JSON for the project (variant files by index, so they are declared section paths).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.compare.grid_spec import AXIS_TITLES, MAX_AXES, Axis
from difflora_gui.errors import UserError
from difflora_gui.lora.block_weights import PRESETS
from difflora_gui.qt.merge.run_bar import STATUS_COLORS
from difflora_gui.qt.preview.frame_view import ElidedLabel
from difflora_gui.qt.theme import section_card

#: the kind combo's entries, in order (``""``: no axis)
KIND_TITLES = {
    "": "(none)",
    "strength": "Strength",
    "seed": "Seed",
    "variant": "LoRA variant",
    "blocks": "Blocks",
    "prompt": "Prompt",
    "strength_high": "High-noise strength",
    "strength_low": "Low-noise strength",
}
EXPERT_KINDS = ("strength_high", "strength_low")
NUMBER_KINDS = ("strength", "seed", *EXPERT_KINDS)
#: the axes change the target entry of the stack
LORA_KINDS = ("strength", "variant", "blocks", *EXPERT_KINDS)
PLACEHOLDERS = {
    "strength": "-3:3:1 or -1,0,1",
    "seed": "1,2,3 or 1:4:1",
    "strength_high": "0:2:0.5 or 0,1",
    "strength_low": "0:2:0.5 or 0,1",
}
ROW_TITLES = ("Columns", "Rows", "Row groups")
LORA_FILTER = "LoRA files (*.safetensors);;All files (*)"
LIST_ROWS = 4


class AxisRow(QWidget):
    """One axis: its kind and its values. ``changed()`` on every edit; ``folder_used(folder)``
    when the variant dialog chose files."""

    changed = Signal()
    folder_used = Signal(str)

    def __init__(self, number: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.number = number
        self.start_folder = ""
        self._quiet = 0
        self._two_experts = False
        self._texts: dict[str, str] = {}  # the numbers typed for each number kind
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName(f"compareAxisKind{number}")
        self.kind_combo.setAccessibleName(f"{ROW_TITLES[number]}: what changes")
        self._fill_kinds()
        layout.addWidget(self.kind_combo)
        self.values_edit = QLineEdit()
        self.values_edit.setObjectName(f"compareAxisValues{number}")
        self.values_edit.setAccessibleName(f"{ROW_TITLES[number]}: values")
        self.values_edit.setClearButtonEnabled(True)
        layout.addWidget(self.values_edit)
        self.prompts_edit = QPlainTextEdit()
        self.prompts_edit.setObjectName(f"compareAxisPrompts{number}")
        self.prompts_edit.setPlaceholderText("One prompt per line")
        self.prompts_edit.setTabChangesFocus(True)
        self.prompts_edit.setFixedHeight(self.prompts_edit.fontMetrics().lineSpacing() * 3 + 12)
        layout.addWidget(self.prompts_edit)
        self.variant_box = self._build_variants()
        layout.addWidget(self.variant_box)
        self.blocks_box = self._build_blocks()
        layout.addWidget(self.blocks_box)
        self.error_label = QLabel()
        self.error_label.setObjectName(f"compareAxisError{number}")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {STATUS_COLORS['error']};")
        layout.addWidget(self.error_label)
        self.kind_combo.currentIndexChanged.connect(self._on_kind)
        self.values_edit.textChanged.connect(self._emit)
        self.prompts_edit.textChanged.connect(self._emit)
        self.selectors_edit.textChanged.connect(self._emit)
        self.presets_list.itemChanged.connect(self._emit)
        self._kind = self.kind()
        self._show_editor()

    def _fill_kinds(self) -> None:
        current = self.kind_combo.currentData() if self.kind_combo.count() else ""
        self.kind_combo.blockSignals(True)
        try:
            self.kind_combo.clear()
            for kind, title in KIND_TITLES.items():
                if kind in EXPERT_KINDS and not self._two_experts:
                    continue
                self.kind_combo.addItem(title, kind)
            index = self.kind_combo.findData(current)
            self.kind_combo.setCurrentIndex(max(0, index))
        finally:
            self.kind_combo.blockSignals(False)

    def _build_variants(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.variant_list = QListWidget()
        self.variant_list.setObjectName(f"compareAxisVariants{self.number}")
        self.variant_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.variant_list.setToolTip("The LoRA files the target entry takes, one per column or row")
        self.variant_list.setFixedHeight(self.variant_list.fontMetrics().lineSpacing() * LIST_ROWS + 16)
        layout.addWidget(self.variant_list)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add…")
        self.add_button.setObjectName(f"compareAxisAdd{self.number}")
        self.add_button.setToolTip("Add merged LoRAs or the checkpoints of one run")
        self.add_button.clicked.connect(self.browse)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName(f"compareAxisRemove{self.number}")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        return box

    def _build_blocks(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.presets_list = QListWidget()
        self.presets_list.setObjectName(f"compareAxisPresets{self.number}")
        for name in PRESETS:
            item = QListWidgetItem(name)
            item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.presets_list.addItem(item)
        self.presets_list.setFixedHeight(self.presets_list.fontMetrics().lineSpacing() * 4 + 16)
        self.presets_list.setToolTip("Block-weight presets over the model's blocks (the entry's layers kept)")
        layout.addWidget(self.presets_list)
        self.selectors_edit = QLineEdit()
        self.selectors_edit.setObjectName(f"compareAxisSelectors{self.number}")
        self.selectors_edit.setPlaceholderText("more selectors: attn blocks=0-9 | blocks=10-29@0.5")
        self.selectors_edit.setToolTip("Block selectors of your own, '|' between them")
        layout.addWidget(self.selectors_edit)
        return box

    # --- values ------------------------------------------------------------------------------

    def kind(self) -> str:
        return self.kind_combo.currentData() or ""

    def set_two_experts(self, two: bool) -> None:
        """Offer the per-expert strength kinds (Wan2.2); without them an expert axis becomes none."""
        if two == self._two_experts:
            return
        self._two_experts = two
        self._fill_kinds()
        if self.kind() != self._kind:
            self._on_kind()

    def variant_files(self) -> list[str]:
        return [
            self.variant_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.variant_list.count())
        ]

    def checked_presets(self) -> list[str]:
        items = (self.presets_list.item(i) for i in range(self.presets_list.count()))
        return [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]

    def axis(self) -> Axis | None:
        """The axis this row makes (None: no axis), or ``UserError`` saying what is wrong."""
        kind = self.kind()
        if not kind:
            return None
        if kind in NUMBER_KINDS:
            return Axis.parse(kind, self.values_edit.text())
        if kind == "prompt":
            prompts = [line.strip() for line in self.prompts_edit.toPlainText().splitlines() if line.strip()]
            if not prompts:
                raise UserError("no prompts given: write one prompt per line")
            return Axis.parse(kind, prompts)
        if kind == "variant":
            files = self.variant_files()
            if not files:
                raise UserError("no LoRA files: Add… the merges or checkpoints to compare")
            missing = [f for f in files if not Path(f).is_file()]
            if missing:
                raise UserError(f"{Path(missing[0]).name}: the file is not there any more (Remove it)")
            return Axis(kind, tuple(files))
        values = self.checked_presets()
        values += [part.strip() for part in self.selectors_edit.text().split("|") if part.strip()]
        if not values:
            raise UserError("no blocks chosen: check presets or write selectors")
        return Axis(kind, tuple(values))

    def show_problem(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def state(self) -> dict[str, Any]:
        texts = dict(self._texts)
        if self.kind() in NUMBER_KINDS:
            texts[self.kind()] = self.values_edit.text()
        return {
            "kind": self.kind(),
            "texts": texts,
            "prompts": self.prompts_edit.toPlainText(),
            "files": {str(i): f for i, f in enumerate(self.variant_files())},
            "presets": self.checked_presets(),
            "selectors": self.selectors_edit.text(),
        }

    def set_state(self, data: Mapping[str, Any]) -> None:
        """Show a saved state (no ``changed`` signal)."""
        self._quiet += 1
        try:
            texts = data.get("texts") if isinstance(data.get("texts"), Mapping) else {}
            self._texts = {str(k): str(v) for k, v in texts.items()}
            index = self.kind_combo.findData(str(data.get("kind") or ""))
            self.kind_combo.setCurrentIndex(max(0, index))
            self._kind = self.kind()
            self.values_edit.setText(self._texts.get(self._kind, ""))
            self.prompts_edit.setPlainText(str(data.get("prompts") or ""))
            files = data.get("files") if isinstance(data.get("files"), Mapping) else {}
            ordered = [files[k] for k in sorted(files, key=lambda k: int(k) if str(k).isdigit() else 999)]
            self._set_files([str(f) for f in ordered if f])
            chosen = set(data.get("presets") or ())
            for i in range(self.presets_list.count()):
                item = self.presets_list.item(i)
                item.setCheckState(
                    Qt.CheckState.Checked if item.text() in chosen else Qt.CheckState.Unchecked
                )
            self.selectors_edit.setText(str(data.get("selectors") or ""))
        finally:
            self._quiet -= 1
        self._show_editor()

    def set_axis(self, axis: Axis | None) -> None:
        """Show ``axis`` (a sidecar's): its kind and values in that kind's editor."""
        if axis is None:
            self.set_state({"kind": ""})
            return
        if axis.kind in EXPERT_KINDS and not self._two_experts:
            self.set_two_experts(True)
        from difflora_gui.compare.grid_spec import number_label

        state: dict[str, Any] = {"kind": axis.kind}
        if axis.kind in NUMBER_KINDS:
            text = ",".join(number_label(v) if axis.kind != "seed" else str(v) for v in axis.values)
            state["texts"] = {axis.kind: text}
        elif axis.kind == "prompt":
            state["prompts"] = "\n".join(axis.values)
        elif axis.kind == "variant":
            state["files"] = {str(i): f for i, f in enumerate(axis.values)}
        else:
            state["presets"] = [v for v in axis.values if v.strip().lower() in PRESETS]
            state["selectors"] = " | ".join(v for v in axis.values if v.strip().lower() not in PRESETS)
        self.set_state(state)

    # --- variants ----------------------------------------------------------------------------

    def _set_files(self, files: list[str]) -> None:
        self.variant_list.clear()
        for file in files:
            item = QListWidgetItem(Path(file).name)
            item.setData(Qt.ItemDataRole.UserRole, file)
            item.setToolTip(file if Path(file).is_file() else f"{file}\n(missing: Remove it, or put it back)")
            if not Path(file).is_file():
                item.setForeground(Qt.GlobalColor.red)
            self.variant_list.addItem(item)
        self.remove_button.setEnabled(bool(files))

    def add_files(self, paths) -> list[str]:
        """Add LoRA files to the variant list; the refusals, one line each."""
        files = self.variant_files()
        refused = []
        for path in paths:
            path = Path(path)
            if path.suffix.lower() != ".safetensors":
                refused.append(f"{path.name}: not a .safetensors file")
            elif not path.is_file():
                refused.append(f"{path}: no such file")
            elif str(path.resolve()) in files:
                refused.append(f"{path.name}: in the list already")
            else:
                files.append(str(path.resolve()))
        if len(files) != len(self.variant_files()):
            self._set_files(files)
            self._emit()
        return refused

    def browse(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add LoRA variants", self.start_folder, LORA_FILTER)
        if paths:
            self.start_folder = str(Path(paths[0]).parent)
            self.folder_used.emit(self.start_folder)
        return self.add_files(paths)

    def remove_selected(self) -> None:
        row = self.variant_list.currentRow()
        files = self.variant_files()
        if 0 <= row < len(files):
            del files[row]
            self._set_files(files)
            self.variant_list.setCurrentRow(min(row, len(files) - 1))
            self._emit()

    # --- internals ---------------------------------------------------------------------------

    def _on_kind(self, *_args) -> None:
        if self._kind in NUMBER_KINDS:
            self._texts[self._kind] = self.values_edit.text()
        self._kind = self.kind()
        if self._kind in NUMBER_KINDS:
            self._quiet += 1
            try:
                self.values_edit.setText(self._texts.get(self._kind, ""))
            finally:
                self._quiet -= 1
        self._show_editor()
        self._emit()

    def _show_editor(self) -> None:
        kind = self.kind()
        self.values_edit.setVisible(kind in NUMBER_KINDS)
        self.values_edit.setPlaceholderText(PLACEHOLDERS.get(kind, ""))
        self.prompts_edit.setVisible(kind == "prompt")
        self.variant_box.setVisible(kind == "variant")
        self.blocks_box.setVisible(kind == "blocks")
        if not kind:
            self.show_problem("")

    def _emit(self, *_args) -> None:
        if not self._quiet:
            self.changed.emit()

    def focus_chain(self) -> list[QWidget]:
        return [
            self.kind_combo,
            self.values_edit,
            self.prompts_edit,
            self.variant_list,
            self.add_button,
            self.remove_button,
            self.presets_list,
            self.selectors_edit,
        ]


class AxesForm(QWidget):
    """The three axis rows, which stack entry they change, and the cell count. ``changed()``."""

    changed = Signal()
    folder_used = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        card, layout = section_card("Grid axes")
        outer.addWidget(card)
        self.target_label = ElidedLabel("")
        self.target_label.setObjectName("compareTarget")
        layout.addWidget(self.target_label)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setSpacing(6)
        self.rows: list[AxisRow] = []
        for number in range(MAX_AXES):
            row = AxisRow(number)
            row.changed.connect(self.changed)
            row.folder_used.connect(self.folder_used)
            label = QLabel(f"&{ROW_TITLES[number]}")
            label.setBuddy(row.kind_combo)
            form.addRow(label, row)
            self.rows.append(row)
        layout.addLayout(form)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("compareSummary")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        self.set_target("")

    def set_target(self, name: str, tip: str = "") -> None:
        """Say which stack entry the LoRA axes change (``""``: none in the stack)."""
        if name:
            self.target_label.set_full_text(f"Axes change: {name}")
            self.target_label.setToolTip(
                f"Strength, LoRA variant, blocks and per-expert axes change this stack entry:\n{tip or name}\n"
                "(select another entry in the LoRA stack to change that one)"
            )
        else:
            self.target_label.set_full_text("Axes change: no LoRA yet (add one to the stack for LoRA axes)")

    def set_two_experts(self, two: bool) -> None:
        for row in self.rows:
            row.set_two_experts(two)

    def set_start_folder(self, folder: str) -> None:
        for row in self.rows:
            row.start_folder = folder

    def axes(self) -> list[Axis]:
        """The axes in order (rows set to none are skipped), or the first row's ``UserError``
        (every row shows its own)."""
        found, first = [], None
        for number, row in enumerate(self.rows):
            try:
                axis = row.axis()
            except UserError as exc:
                row.show_problem(str(exc))
                first = first or UserError(f"{ROW_TITLES[number]}: {exc}")
                continue
            row.show_problem("")
            if axis is not None:
                found.append(axis)
        if first is not None:
            raise first
        if not found:
            raise UserError("no axis chosen: pick what changes along the columns (Strength, Seed …)")
        return found

    def show_summary(self, axes: list[Axis] | None, problem: str = "") -> None:
        """``7 strengths × 2 seeds = 14 cells``, or the problem in its place."""
        if axes is None:
            self.summary_label.setText(problem)
            self.summary_label.setStyleSheet(f"color: {STATUS_COLORS['error']};")
            return
        parts = [f"{len(a.values)} {_plural(AXIS_TITLES[a.kind], len(a.values))}" for a in axes]
        count = math.prod(len(a.values) for a in axes)
        self.summary_label.setText(f"{' × '.join(parts)} = {count} cell{'s' if count != 1 else ''}")
        self.summary_label.setStyleSheet(f"color: {STATUS_COLORS['info']};")

    def state(self) -> dict[str, Any]:
        return {str(i): row.state() for i, row in enumerate(self.rows)}

    def set_state(self, data: Mapping[str, Any] | None) -> None:
        data = data if isinstance(data, Mapping) else {}
        for i, row in enumerate(self.rows):
            value = data.get(str(i))
            row.set_state(value if isinstance(value, Mapping) else {})

    def set_axes(self, axes) -> None:
        axes = list(axes)
        for i, row in enumerate(self.rows):
            row.set_axis(axes[i] if i < len(axes) else None)

    def uses_lora(self) -> bool:
        return any(row.kind() in LORA_KINDS for row in self.rows)

    def focus_chain(self) -> list[QWidget]:
        return [widget for row in self.rows for widget in row.focus_chain()]


def _plural(title: str, count: int) -> str:
    if count == 1 or title in ("blocks",):
        return title
    if title == "LoRA":
        return "LoRAs"
    return title + "s"
