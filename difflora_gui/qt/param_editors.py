"""The editors of a generated form: one :class:`FieldEditor` per parameter, by type.

:class:`~difflora_gui.qt.param_form.ParamForm` lays them out; see its module for which editor
each parameter type gets.
"""

from __future__ import annotations

import json
import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider
from superqt.utils import signals_blocked

from difflora_gui.errors import UserError
from difflora_gui.params import Param, value_text

_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12
#: decimals kept by a float spin box without a range (shown without trailing zeros)
UNBOUNDED_DECIMALS = 6


def float_decimals(param: Param) -> int:
    """How many decimals a float editor shows: enough for the step, the range and the default."""
    candidates = [2]
    if param.step:
        candidates.append(max(0, -math.floor(math.log10(abs(param.step)))))
    if param.minimum is not None and param.maximum is not None:
        span = float(param.maximum) - float(param.minimum)
        candidates.append(2 if span >= 10 else 3 if span >= 1 else 4)
    if isinstance(param.default, (int, float)) and not isinstance(param.default, bool):
        text = repr(float(param.default))
        if "e" not in text and "." in text:
            candidates.append(len(text.split(".")[1].rstrip("0")))
    return min(max(candidates), 8)


class CompactDoubleSpinBox(QDoubleSpinBox):
    """A double spin box that keeps many decimals but shows ``1.5``, not ``1.500000``."""

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        locale = self.locale()
        text = locale.toString(float(value), "f", self.decimals())
        if not self.isGroupSeparatorShown():
            text = text.replace(locale.groupSeparator(), "")
        point = locale.decimalPoint()
        if point in text:
            text = text.rstrip("0").rstrip(point)
        return text


class PathListEditor(QWidget):
    """A list of paths: Add… (one or more files), Remove (the selected ones)."""

    changed = Signal()

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        self.list = QListWidget()
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setMaximumHeight(96)
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self._add)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def set_paths(self, paths: list[str]) -> None:
        self.list.clear()
        self.list.addItems([str(p) for p in paths])
        self.changed.emit()

    def add_paths(self, paths: list[str]) -> None:
        self.list.addItems([str(p) for p in paths])
        self.changed.emit()

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def _add(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, self.title)
        if paths:
            self.add_paths(paths)


class FieldEditor(QWidget):
    """One parameter's editor. ``value()`` is the plain value (None for an unset optional)."""

    changed = Signal()

    def __init__(self, param: Param, parent: QWidget | None = None):
        super().__init__(parent)
        self.param = param
        self.setObjectName(f"param-{param.name}")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self.set_check: QCheckBox | None = None
        if param.optional and param.type in ("int", "float", "choice", "bool") and not self._none_entry:
            self.set_check = QCheckBox()
            self.set_check.setToolTip("Tick to set a value; unticked means not set")
            self.set_check.toggled.connect(self._on_set_toggled)
            self._layout.addWidget(self.set_check)
        self.editor = self._make_editor()
        self.editor.setToolTip(param.help)
        self._layout.addWidget(self.editor, 1)
        if param.type == "path":
            browse = QPushButton("Browse…")
            browse.setObjectName(f"browse-{param.name}")
            browse.clicked.connect(self._browse)
            self._layout.addWidget(browse)
        self.set_value(param.default)

    # --- building ----------------------------------------------------------------------------

    @property
    def _none_entry(self) -> bool:
        """An optional choice whose "not set" is the combo box's first entry."""
        return self.param.type == "choice" and self.param.optional and bool(self.param.none_label)

    def _make_editor(self) -> QWidget:
        p = self.param
        if p.type == "config":
            from difflora_gui.qt.param_form import ParamForm  # a nested config is a form of its own

            box = QGroupBox(p.label)
            box_layout = QVBoxLayout(box)
            self.nested = ParamForm(p.config)
            self.nested.changed.connect(self._emit_changed)
            box_layout.addWidget(self.nested)
            return box
        if p.type == "paths":
            paths = PathListEditor(p.label)
            paths.changed.connect(self._emit_changed)
            return paths
        bounded = p.minimum is not None and p.maximum is not None
        if p.type == "int":
            if bounded:
                editor = QLabeledSlider(Qt.Orientation.Horizontal)
                editor.setRange(int(math.ceil(p.minimum)), int(math.floor(p.maximum)))
                if p.step:
                    editor.setSingleStep(max(1, int(p.step)))
                editor.valueChanged.connect(self._emit_changed)
                return editor
            spin = QSpinBox()
            spin.setRange(
                int(math.ceil(p.minimum)) if p.minimum is not None else -_INT_LIMIT,
                int(math.floor(p.maximum)) if p.maximum is not None else _INT_LIMIT,
            )
            if p.step:
                spin.setSingleStep(max(1, int(p.step)))
            spin.valueChanged.connect(self._emit_changed)
            return spin
        if p.type == "float":
            decimals = float_decimals(p)
            if bounded:
                editor = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
                editor.setDecimals(decimals)
                editor.setRange(float(p.minimum), float(p.maximum))
                editor.setSingleStep(float(p.step) if p.step else 10.0**-decimals)
                editor.valueChanged.connect(self._emit_changed)
                return editor
            spin = CompactDoubleSpinBox()
            spin.setDecimals(max(decimals, UNBOUNDED_DECIMALS))
            spin.setRange(
                float(p.minimum) if p.minimum is not None else -_FLOAT_LIMIT,
                float(p.maximum) if p.maximum is not None else _FLOAT_LIMIT,
            )
            spin.setSingleStep(float(p.step) if p.step else 0.1)
            spin.valueChanged.connect(self._emit_changed)
            return spin
        if p.type == "bool":
            check = QCheckBox()
            check.toggled.connect(self._emit_changed)
            return check
        if p.type == "choice":
            combo = QComboBox()
            if self._none_entry:
                combo.addItem(p.none_label)
            combo.addItems(list(p.choice_values()))  # choices computed now, when the form is built
            combo.currentIndexChanged.connect(self._emit_changed)
            return combo
        if p.type == "str" and p.choices:
            # named values are offered; a number may be typed instead (see problem())
            combo = QComboBox()
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            combo.addItems(list(p.choice_values()))
            combo.lineEdit().setPlaceholderText(f"{' / '.join(p.choice_values())} or a number")
            combo.currentTextChanged.connect(self._emit_changed)
            return combo
        line = QLineEdit()
        if p.optional:
            line.setPlaceholderText("not set")
        elif p.type == "list":
            line.setPlaceholderText(f"{p.item_type} items, separated by commas")
        line.textChanged.connect(self._emit_changed)
        return line

    # --- value -------------------------------------------------------------------------------

    def is_set(self) -> bool:
        return self.set_check is None or self.set_check.isChecked()

    def value(self) -> Any:
        p = self.param
        if not self.is_set():
            return None
        editor = self.editor
        if p.type == "int":
            return int(editor.value())
        if p.type == "float":
            # sliders compute value = position·step, which carries binary noise: round to what is shown
            return round(float(editor.value()), editor.decimals())
        if p.type == "bool":
            return editor.isChecked()
        if p.type == "choice":
            if self._none_entry and editor.currentIndex() == 0:
                return None
            return editor.currentText()
        if p.type == "config":
            return self.nested.values()
        if p.type == "paths":
            return editor.paths()
        text = editor.currentText().strip() if isinstance(editor, QComboBox) else editor.text()
        if p.type in ("list", "dict"):
            try:
                return p.coerce(text)
            except UserError:
                return text  # shown as typed; errors() says what is wrong
        if p.optional and not text.strip():
            return None
        return text

    def set_value(self, value: Any) -> None:
        """Show ``value`` (converted to the parameter's type when possible; None unsets an optional)."""
        p = self.param
        with signals_blocked(self.editor):
            if self.set_check is not None:
                with signals_blocked(self.set_check):
                    self.set_check.setChecked(value is not None)
            editor = self.editor
            if self._none_entry and value is None:
                editor.setCurrentIndex(0)
                self._sync_enabled()
                self.changed.emit()
                return
            if value is None:
                value = p.default if p.default is not None else self._neutral()
            value = self._displayable(value)
            if p.type == "config":
                self.nested.set_values(value)
            elif p.type == "paths":
                editor.set_paths(value)
            elif p.type == "list":
                editor.setText(", ".join(value_text(item) for item in value))
            elif p.type == "dict":
                editor.setText(json.dumps(value, ensure_ascii=False) if value else "")
            elif p.type in ("int", "float"):
                editor.setValue(value)
            elif p.type == "bool":
                editor.setChecked(bool(value))
            elif p.type == "choice":
                index = editor.findText(str(value))
                editor.setCurrentIndex(index if index >= 0 else (1 if self._none_entry else 0))
            elif isinstance(editor, QComboBox):
                editor.setCurrentText("" if value is None else str(value))
            else:
                editor.setText("" if value is None else str(value))
        self._sync_enabled()
        self.changed.emit()

    def problem(self) -> str:
        """What is wrong with the value beyond its type ("" when fine): a ``str`` field with
        ``choices`` takes one of them or a positive number (at least ``minimum`` when declared)."""
        p = self.param
        if not (p.type == "str" and p.choices) or not self.is_set():
            return ""
        text = str(self.value() or "").strip()
        if p.optional and not text:
            return ""
        if text.lower() in {c.lower() for c in p.choice_values()}:
            return ""
        named = ", ".join(p.choice_values())
        try:
            number = float(text)
        except ValueError:
            return f"{p.label} must be {named} or a positive number, not {text!r}"
        low = p.minimum
        if not math.isfinite(number) or (number <= 0 if low is None else number < low):
            floor = "a positive number" if low is None else f"a number of at least {low:g}"
            return f"{p.label} must be {named} or {floor}, not {text!r}"
        return ""

    def _displayable(self, value: Any) -> Any:
        """``value`` in the editor's type; out-of-range numbers are kept (the editor clamps them)."""
        p = self.param
        try:
            return p.coerce(value)
        except UserError:
            pass
        try:
            if p.type == "int":
                return int(float(value))
            if p.type == "float":
                return float(value)
        except (TypeError, ValueError):
            pass
        return self._neutral()

    def _neutral(self) -> Any:
        p = self.param
        if p.type in ("int", "float"):
            base = p.minimum if p.minimum is not None else 0
            return int(base) if p.type == "int" else float(base)
        if p.type == "bool":
            return False
        if p.type == "choice":
            choices = p.choice_values()
            return choices[0] if choices else ""
        if p.type in ("list", "paths"):
            return []
        if p.type in ("dict", "config"):
            return {}
        return ""

    def _on_set_toggled(self, _checked: bool) -> None:
        self._sync_enabled()
        self._emit_changed()

    def _sync_enabled(self) -> None:
        self.editor.setEnabled(self.is_set())

    def _emit_changed(self, *_args) -> None:
        self.changed.emit()

    def _browse(self) -> None:
        start = self.editor.text() if isinstance(self.editor, QLineEdit) else ""
        path, _ = QFileDialog.getOpenFileName(self, self.param.label, start)
        if path:
            self.editor.setText(path)
