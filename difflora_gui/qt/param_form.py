"""A form generated from a :class:`~difflora_gui.params.ParamSchema`: one editor per parameter.

Every panel that lets a user set a plugin's parameters (merge strategies, trainer backends,
preview backends, dataset tools) builds its form here, so nothing plugin-specific is hard-coded
in a panel. Editors by type:

* ``int`` / ``float`` with both ``minimum`` and ``maximum``: a superqt labelled slider
  (``QLabeledSlider`` / ``QLabeledDoubleSlider``: drag, or type the exact value in its box);
  otherwise a spin box bounded by whichever limit exists;
* ``bool``: a check box; ``choice``: a combo box; ``str``: a line edit; ``path``: a line edit
  with a Browse… button;
* ``list``: a line edit of comma-separated items; ``paths``: a list of paths with Add…/Remove;
  ``dict``: a line edit of JSON; ``config`` (a nested declaration): its own form in a group box;
* ``optional`` numbers and choices get a check box in front: unticked means "not set" (None);
  an optional choice with a ``none_label`` shows "not set" as the first entry of its combo box
  instead; an optional text is "not set" when empty.

Labels come from ``Param.label``, tooltips from ``Param.help``; ``advanced`` parameters are
folded into a ``QCollapsible``; the parameters of each ``group`` get a titled section
(titles from a :class:`~difflora_gui.config.ConfigDeclaration`); a parameter with ``visible_when``
is shown only while its condition holds (and one that does not apply is neither checked nor part
of :meth:`ParamForm.changed_values`). Choices computed at run time are evaluated when the form is
built. ``form=False`` parameters are left out. :meth:`ParamForm.values` returns the plain values,
:meth:`ParamForm.errors` checks them with ``Param.coerce`` and :meth:`ParamForm.changed_values`
gives only those that differ from the defaults (what a recipe or command line needs).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible, QLabeledDoubleSlider, QLabeledSlider
from superqt.utils import signals_blocked

from difflora_gui.errors import UserError
from difflora_gui.params import Param, ParamSchema, schema, value_text

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
        text = editor.text()
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
            else:
                editor.setText("" if value is None else str(value))
        self._sync_enabled()
        self.changed.emit()

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


class ParamForm(QWidget):
    """Editors for every parameter of a schema; advanced ones in a collapsible section.

    ``changed`` fires on every user edit (and after :meth:`set_values`).
    """

    changed = Signal()

    def __init__(
        self,
        params: ParamSchema | tuple[Param, ...],
        values: Mapping[str, Any] | None = None,
        parent: QWidget | None = None,
        *,
        advanced_title: str = "Advanced",
        empty_text: str = "",
    ):
        super().__init__(parent)
        self.declaration = params
        full = params.form_schema() if hasattr(params, "form_schema") else schema(params)
        self.schema = ParamSchema(tuple(p for p in full if p.form))
        self.editors: dict[str, FieldEditor] = {}
        self.labels: dict[str, QLabel] = {}
        self.group_headings: dict[str, QLabel] = {}
        self._rows: dict[str, tuple[QFormLayout, int]] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        advanced_params = [p for p in self.schema if p.advanced]
        advanced_layout: QFormLayout | None = None
        self.advanced: QCollapsible | None = None
        if advanced_params:
            self.advanced = QCollapsible(advanced_title)
            self.advanced.setObjectName("advancedParams")
            holder = QWidget()
            advanced_layout = QFormLayout(holder)
            advanced_layout.setContentsMargins(0, 0, 0, 0)
            advanced_layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            self.advanced.addWidget(holder)
        groups = list(dict.fromkeys(p.group for p in self.schema if not p.advanced))
        sections: dict[str, QFormLayout] = {}
        for key in groups:
            if len(groups) > 1 and key:
                heading = QLabel(self._group_title(key))
                heading.setObjectName("formGroupHeading")
                outer.addWidget(heading)
                self.group_headings[key] = heading
            layout = QFormLayout()
            layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            outer.addLayout(layout)
            sections[key] = layout
        for param in self.schema:
            layout = (
                advanced_layout if param.advanced and advanced_layout is not None else sections[param.group]
            )
            editor = FieldEditor(param)
            editor.changed.connect(self._on_changed)
            label = QLabel(param.label)
            label.setToolTip(param.help)
            label.setBuddy(editor.editor)
            layout.addRow(label, editor)
            self.editors[param.name] = editor
            self.labels[param.name] = label
            self._rows[param.name] = (layout, layout.rowCount() - 1)
        if self.advanced is not None:
            outer.addWidget(self.advanced)
        if not len(self.schema) and empty_text:
            note = QLabel(empty_text)
            note.setObjectName("mutedLabel")
            note.setWordWrap(True)
            outer.addWidget(note)
        self.error_label = QLabel()
        self.error_label.setObjectName("validationErrors")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        if values:
            self.set_values(values)
        self._sync_visibility()
        self._show_errors()

    # --- values ------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """Every parameter's plain value, as shown (not yet checked)."""
        return {name: editor.value() for name, editor in self.editors.items()}

    def value(self, name: str) -> Any:
        return self.editors[name].value()

    def set_values(self, values: Mapping[str, Any]) -> list[str]:
        """Show these values; returns the names the schema does not know (they are ignored)."""
        unknown = [name for name in values if name not in self.editors]
        for name, value in values.items():
            if name in self.editors:
                with signals_blocked(self.editors[name]):
                    self.editors[name].set_value(value)
        self._on_changed()
        return unknown

    def reset_defaults(self) -> None:
        self.set_values(self.schema.defaults())

    def _group_title(self, key: str) -> str:
        title = getattr(self.declaration, "group_title", None)
        return title(key) if title is not None else key.replace("_", " ").capitalize()

    def applicable(self) -> list[str]:
        """The names of the parameters that apply with the values shown (their conditions hold)."""
        return self.schema.applicable(self.values())

    def errors(self) -> dict[str, str]:
        """``{name: message}`` for every value its parameter refuses (of the parameters that apply)."""
        problems = {}
        values = self.values()
        applicable = set(self.schema.applicable(values))
        for name, value in values.items():
            if name not in applicable:
                continue
            try:
                self.schema.get(name).coerce(value)
            except UserError as exc:
                problems[name] = str(exc)
        return problems

    def resolved(self, owner: str = "") -> dict[str, Any]:
        """The checked values (``ParamSchema.resolve``); raises ``UserError`` on a bad value."""
        return self.schema.resolve(self.values(), owner=owner)

    def changed_values(self) -> dict[str, Any]:
        """The values that differ from the defaults (checked; bad ones and those that do not apply
        are left out)."""
        result = {}
        errors = self.errors()
        applicable = set(self.applicable())
        for param in self.schema:
            if param.name in errors or param.name not in applicable:
                continue
            value = param.coerce(self.editors[param.name].value())
            default = None if param.default is None else param.coerce(param.default)
            if value != default:
                result[param.name] = value
        return result

    # --- layout helpers ----------------------------------------------------------------------

    def set_row_visible(self, name: str, visible: bool) -> None:
        """Show or hide one parameter's row (e.g. options that only apply in one mode)."""
        layout, row = self._rows[name]
        layout.setRowVisible(row, visible)

    def is_row_visible(self, name: str) -> bool:
        layout, row = self._rows[name]
        return layout.isRowVisible(row)

    def connect_value(self, name: str, slot: Callable[[Any], None]) -> None:
        """Call ``slot(value)`` whenever one parameter changes."""
        editor = self.editors[name]
        editor.changed.connect(lambda: slot(editor.value()))

    def _on_changed(self) -> None:
        self._sync_visibility()
        self._show_errors()
        self.changed.emit()

    def _sync_visibility(self) -> None:
        """Show each conditional row only while its ``visible_when`` holds."""
        conditional = [p for p in self.schema if p.visible_when is not None]
        if not conditional:
            return
        visible = set(self.schema.visible(self.values()))
        for param in conditional:
            self.set_row_visible(param.name, param.name in visible)

    def _show_errors(self) -> None:
        errors = self.errors()
        for name, label in self.labels.items():
            label.setProperty("invalid", name in errors)
        if errors:
            self.error_label.setText("<br>".join(html.escape(m) for m in errors.values()))
            self.error_label.show()
        else:
            self.error_label.hide()
