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

A ``str`` parameter with ``choices`` gets an editable combo box: the choices are offered, and a
number may be typed instead (checked as it is typed). A new form starts from each field's
``form_default`` (the GUI's recommendation where it has one; ``changed_values`` still compares
with the command line's ``default``). With :meth:`ParamForm.set_undo_stack` every user edit is an
undoable step (typing in one field, or dragging one slider, merges into one step).

Labels come from ``Param.label``, tooltips from ``Param.help``; ``advanced`` parameters are
folded into a ``QCollapsible`` (▸ while folded, ▾ while open); the parameters of each ``group`` get a titled section
(titles from a :class:`~difflora_gui.config.ConfigDeclaration`); a parameter with ``visible_when``
is shown only while its condition holds (and one that does not apply is neither checked nor part
of :meth:`ParamForm.changed_values`). Choices computed at run time are evaluated when the form is
built. ``form=False`` parameters are left out. :meth:`ParamForm.values` returns the plain values,
:meth:`ParamForm.errors` checks them with ``Param.coerce`` and :meth:`ParamForm.changed_values`
gives only those that differ from the defaults (what a recipe or command line needs).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QFontMetrics, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible
from superqt.utils import signals_blocked

from difflora_gui.errors import UserError
from difflora_gui.params import Param, ParamSchema, schema
from difflora_gui.qt.param_editors import (
    UNBOUNDED_DECIMALS,
    CompactDoubleSpinBox,
    FieldEditor,
    PathListEditor,
    float_decimals,
)

__all__ = [
    "ARROW_COLLAPSED",
    "ARROW_EXPANDED",
    "UNBOUNDED_DECIMALS",
    "AdvancedSection",
    "CompactDoubleSpinBox",
    "FieldEditor",
    "ParamForm",
    "PathListEditor",
    "float_decimals",
]


#: the Advanced section's arrows: pointing at the title while folded, down at the fields while open
ARROW_COLLAPSED, ARROW_EXPANDED = "▸", "▾"


def _arrow_icon(symbol: str, widget: QWidget) -> QIcon:
    # drawn at the text's height (superqt sizes its icons by point size, -1 for pixel-sized fonts)
    size = max(QFontMetrics(widget.font()).height(), 10)
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(widget.palette().color(QPalette.ColorRole.ButtonText))
    painter.drawText(QRect(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, symbol)
    painter.end()
    return QIcon(pixmap)


class AdvancedSection(QCollapsible):
    """A collapsible whose arrow points the right way: ▸ while folded, ▾ while open."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(title, parent)
        button = self.toggleButton()
        self.setCollapsedIcon(_arrow_icon(ARROW_COLLAPSED, button))
        self.setExpandedIcon(_arrow_icon(ARROW_EXPANDED, button))
        button.setToolTip("Show or hide the advanced settings")

    def arrow(self) -> str:
        """The arrow the toggle shows now (for tests and screen readers)."""
        shown = self.toggleButton().icon().cacheKey()
        return ARROW_EXPANDED if shown == self.expandedIcon().cacheKey() else ARROW_COLLAPSED


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
        self._context: dict[str, Any] = {}
        self.group_headings: dict[str, QLabel] = {}
        self._rows: dict[str, tuple[QFormLayout, int]] = {}
        self._undo = None
        self._shown: dict[str, Any] = {}  # each field's value after the last change (undo's "before")
        self.notes: dict[str, QWidget] = {}
        self._field_rows: dict[str, tuple[QVBoxLayout, QHBoxLayout]] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        advanced_params = [p for p in self.schema if p.advanced]
        advanced_layout: QFormLayout | None = None
        self.advanced: QCollapsible | None = None
        if advanced_params:
            self.advanced = AdvancedSection(advanced_title)
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
        self._form_layouts = [*sections.values(), *([advanced_layout] if advanced_layout is not None else [])]
        for param in self.schema:
            layout = (
                advanced_layout if param.advanced and advanced_layout is not None else sections[param.group]
            )
            editor = FieldEditor(param)
            editor.set_value(param.form_default)
            editor.changed.connect(self._on_changed)
            editor.changed.connect(lambda name=param.name: self._on_field_edited(name))
            label = QLabel(param.label)
            label.setToolTip(param.help)
            label.setBuddy(editor.editor)
            # the field cell: the editor, room for a note beside it and one under it (set_field_note)
            field = QWidget()
            field.setObjectName(f"field-{param.name}")
            column = QVBoxLayout(field)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            field_row = QHBoxLayout()
            field_row.setContentsMargins(0, 0, 0, 0)
            field_row.setSpacing(6)
            field_row.addWidget(editor, 1)
            column.addLayout(field_row)
            self._field_rows[param.name] = (column, field_row)
            layout.addRow(label, field)
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
        self.error_label.setTextFormat(Qt.TextFormat.RichText)  # escaped messages joined by <br>
        self.error_label.setObjectName("validationErrors")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        if values:
            self.set_values(values)
        self._shown = self.values()
        self._sync_visibility()
        self._show_errors()

    # --- values ------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """Every parameter's plain value, as shown (not yet checked)."""
        return {name: editor.value() for name, editor in self.editors.items()}

    def value(self, name: str) -> Any:
        return self.editors[name].value()

    def wrap_long_rows(self) -> None:
        """Put a field under its label where the form is too narrow for both on one line (a form
        in a side column), so the form never sets its column's minimum width by its widest row."""
        for layout in self._form_layouts:
            layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)

    def set_values(self, values: Mapping[str, Any]) -> list[str]:
        """Show these values; returns the names the schema does not know (they are ignored)."""
        unknown = [name for name in values if name not in self.editors]
        for name, value in values.items():
            if name in self.editors:
                with signals_blocked(self.editors[name]):
                    self.editors[name].set_value(value)
                self._shown[name] = self.editors[name].value()
        self._on_changed()
        return unknown

    def reset_defaults(self) -> None:
        """Back to where a new form starts (``form_defaults``: the GUI's recommendations)."""
        self.set_values(self.schema.form_defaults())

    # --- undo and notes ----------------------------------------------------------------------

    def set_undo_stack(self, stack) -> None:
        """Record every user edit on ``stack`` (an :class:`~difflora_gui.qt.undo.UndoStack`)."""
        self._undo = stack
        self._shown = self.values()  # a nested config's edits are steps of its field, as a whole

    def _on_field_edited(self, name: str) -> None:
        before, after = self._shown.get(name), self.editors[name].value()
        self._shown[name] = after
        if self._undo is None or self._undo.applying or before == after:
            return
        label = self.schema.get(name).label
        self._undo.record(
            f"{label}: {before!r} → {after!r}",
            lambda: self._restore(name, before),
            lambda: self._restore(name, after),
            merge_key=f"form-{id(self)}-{name}",
        )

    def _restore(self, name: str, value: Any) -> None:
        editor = self.editors[name]
        with signals_blocked(editor):
            editor.set_value(value)
        self._shown[name] = editor.value()
        self._on_changed()

    def set_field_note(self, name: str, widget: QWidget, *, beside: bool = False) -> None:
        """Show ``widget`` (a hint such as the rank hint) with one field: under its editor, or beside it.

        A second note for the same field replaces the first."""
        column, row = self._field_rows[name]
        old = self.notes.pop(name, None)
        if old is not None and old is not widget:
            old.setParent(None)
        (row if beside else column).addWidget(widget)
        self.notes[name] = widget

    def _group_title(self, key: str) -> str:
        title = getattr(self.declaration, "group_title", None)
        return title(key) if title is not None else key.replace("_", " ").capitalize()

    def applicable(self) -> list[str]:
        """The names of the parameters that apply with the values shown (their conditions hold)."""
        return self.schema.applicable(self._condition_values())

    def errors(self) -> dict[str, str]:
        """``{name: message}`` for every value its parameter refuses (of the parameters that apply)."""
        problems = {}
        values = self.values()
        applicable = set(self.schema.applicable({**self._context, **values}))
        for name, value in values.items():
            if name not in applicable:
                continue
            try:
                self.schema.get(name).coerce(value)
            except UserError as exc:
                problems[name] = str(exc)
                continue
            problem = self.editors[name].problem()
            if problem:
                problems[name] = problem
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

    def set_context(self, values: Mapping[str, Any]) -> None:
        """Values of fields outside this form that its conditions read (a declaration split into
        one form per group: a field here may depend on one in another form)."""
        self._context = dict(values)
        self._on_changed()

    def _condition_values(self) -> dict[str, Any]:
        return {**self._context, **self.values()}

    def _on_changed(self) -> None:
        self._sync_visibility()
        self._show_errors()
        self.changed.emit()

    def _sync_visibility(self) -> None:
        """Show each conditional row only while its ``visible_when`` holds."""
        conditional = [p for p in self.schema if p.visible_when is not None]
        if not conditional:
            return
        visible = set(self.schema.visible(self._condition_values()))
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
