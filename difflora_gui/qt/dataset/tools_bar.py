"""The Dataset panel's tools bar: one button per registered dataset tool (``DatasetToolSpec``).

Nothing here knows a tool: a button opens :class:`ToolDialog`, a form generated from the tool's
``params`` (prefilled from the open set where a field's name says what it is: :data:`PREFILL`), and
OK hands the checked values to the panel, which runs ``spec.run`` as a job on ``spec.lane`` and
reloads the set when it finishes (:func:`reload_sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.qt.param_form import ParamForm

#: form fields filled from the open set: field name → context key
PREFILL = {
    "a_dir": "a_dir",
    "src_dir": "a_dir",
    "source": "a_dir",
    "sources": "a_dir",
    "input_dir": "a_dir",
    "b_dir": "b_dir",
    "source_dir": "a_dir",
    "dataset": "dataset_dir",
    "dataset_folder": "dataset_dir",
    "dataset_dir": "dataset_dir",
    "pairs": "pairs_file",
    "pairs_file": "pairs_file",
    "resolution": "resolution",
    "project": "project_file",
}
#: result keys (a tool's summary dict) that name the new folder of a side
RESULT_SIDES = {"a_dir": "a", "set_a": "a", "b_dir": "b", "set_b": "b"}
#: result or parameter keys that name the folder a tool wrote
OUT_KEYS = ("out_dir", "out")


def prefill_values(params, context: Mapping[str, Any]) -> dict[str, Any]:
    """The values for the parameters that the context knows (by :data:`PREFILL`)."""
    values = {}
    for name, param in ((p.name, p) for p in params):
        key = PREFILL.get(name)
        value = context.get(key) if key else None
        if value in (None, ""):
            continue
        if param.type == "paths" and not isinstance(value, (list, tuple)):
            value = [value]
        values[name] = value
    return values


def reload_sources(
    result: Any, params: Mapping[str, Any], sources: Mapping[str, str], spec=None
) -> dict[str, str]:
    """Which folders to import after a tool ran: ``{"a": dir, "b": dir}`` (empty: nothing to reload).

    A tool's summary may name the side folders (``a_dir``/``b_dir``, ``set_a``/``set_b``). Else the
    folder it wrote (``out_dir``/``out`` of its summary or parameters) is a new side: set B when the
    tool read set A (a counterpart tool: one of its fields was set A's folder), else set A (frame
    extraction). A tool whose name says it exports changes nothing in the set."""
    found = dict(sources)
    named = False
    if isinstance(result, Mapping):
        for key, side in RESULT_SIDES.items():
            if result.get(key):
                found[side] = str(result[key])
                named = True
    if not named:
        if spec is not None and "export" in spec.name:
            return {}
        summary = result if isinstance(result, Mapping) else {}
        out = next(
            (summary.get(k) or params.get(k) for k in OUT_KEYS if summary.get(k) or params.get(k)), None
        )
        if not out or not Path(str(out)).is_dir():
            return {}
        reads_a = bool(sources.get("a")) and any(
            PREFILL.get(name) == "a_dir" and str(value) == str(sources["a"]) for name, value in params.items()
        )
        found["b" if reads_a else "a"] = str(out)
    return found if found.get("a") else {}


class ToolDialog(QDialog):
    """A tool's form; ``values()`` are its checked parameters after OK."""

    def __init__(self, spec, context: Mapping[str, Any], parent=None):
        super().__init__(parent)
        self.spec = spec
        self.setWindowTitle(spec.title)
        self.setObjectName(f"toolDialog-{spec.name}")
        layout = QVBoxLayout(self)
        about = QLabel(spec.description)
        about.setWordWrap(True)
        layout.addWidget(about)
        self.form = ParamForm(spec.params, empty_text="This tool has no settings.")
        # what the user set last time in this project (the Kontext instruction …), then what the
        # section knows now (its folders), which wins
        saved = dict(context.get("saved_tools", {}).get(spec.name, {}))
        saved = {k: v for k, v in saved.items() if k in self.form.editors}
        if saved:
            try:
                self.form.set_values(saved)
            except (UserError, ValueError, TypeError):  # a stored value this version no longer takes
                pass
        self.form.set_values(prefill_values(self.form.schema, context))
        # parameters kept out of the form that the Dataset section fills in (the dataset folder …)
        hidden = [p for p in spec.params if p.name not in self.form.editors]
        self.hidden_values = prefill_values(hidden, context)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setMinimumWidth(460)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(560, min(680, 160 + 38 * max(1, len(self.form.schema))))

    def values(self) -> dict[str, Any]:
        """The checked values (``UserError`` on a bad one), with the hidden ones the section fills in."""
        return {**self.form.resolved(owner=self.spec.name), **self.hidden_values}

    def accept(self) -> None:
        try:
            self.values()
        except UserError as exc:
            QMessageBox.warning(self, self.spec.title, str(exc))
            return
        super().accept()


class ToolsBar(QWidget):
    """A button per dataset tool; ``run_requested(spec, values)`` after its dialog's Run.

    The buttons go onto a second line when the section is narrow (1280×720 with the docks open,
    or plugins adding tools) instead of widening the panel past the window: rows of plain
    QHBoxLayouts, rebuilt when the width changes how many fit. (superqt's QFlowLayout keeps its
    items in a Python list and frees them in ``__del__``, which crashed the app's event loop.)"""

    run_requested = Signal(object, dict)

    SPACING = 6

    def __init__(self, specs: Mapping[str, Any], context, parent=None):
        super().__init__(parent)
        self._context = context  # a callable: the open set's prefill context
        self._column = QVBoxLayout(self)
        self._column.setContentsMargins(0, 0, 0, 0)
        self._column.setSpacing(3)
        title = QLabel("Tools")
        title.setObjectName("cardHeading")
        self._items: list[QWidget] = [title]
        self.buttons: dict[str, QPushButton] = {}
        for name, spec in specs.items():
            button = QPushButton(spec.title + "…")
            button.setObjectName(f"tool-{name}")
            button.setToolTip(spec.description + f"\n(runs on the {spec.lane} lane)")
            button.clicked.connect(lambda _checked=False, s=spec: self.open_tool(s))
            self._items.append(button)
            self.buttons[name] = button
        if not specs:
            note = QLabel("No dataset tools are installed (they come from plugins).")
            note.setObjectName("mutedLabel")
            self._items.append(note)
        self._rows: tuple[int, ...] = ()
        self._arrange(10**6)  # one row until the bar knows its width
        self.dialog: ToolDialog | None = None

    def _row_lengths(self, width: int) -> tuple[int, ...]:
        """How many items go on each row at ``width`` (at least one per row)."""
        rows, used = [0], 0
        for item in self._items:
            need = item.sizeHint().width()
            if rows[-1] and used + self.SPACING + need > width:
                rows.append(0)
                used = 0
            used += (self.SPACING if rows[-1] else 0) + need
            rows[-1] += 1
        return tuple(rows)

    def _arrange(self, width: int) -> None:
        rows = self._row_lengths(width)
        if rows == self._rows:
            return
        self._rows = rows
        while self._column.count():
            row = self._column.takeAt(0).layout()
            if row is not None:
                while row.count():
                    row.takeAt(0)
                row.deleteLater()
        items = iter(self._items)
        for length in rows:
            row = QHBoxLayout()
            row.setSpacing(self.SPACING)
            for _ in range(length):
                row.addWidget(next(items))
            row.addStretch(1)
            self._column.addLayout(row)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # as narrow as its widest item: the rows, not the bar, set how wide the panel must be
        hint = super().minimumSizeHint()
        return QSize(max(item.sizeHint().width() for item in self._items), hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self.minimumSizeHint().width(), super().sizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange(event.size().width())

    def open_tool(self, spec) -> bool:
        """Show the tool's form; True when the user pressed Run (the panel then runs it)."""
        self.dialog = dialog = ToolDialog(spec, self._context(), self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        self.run_requested.emit(spec, dialog.values())
        return True

    def set_running(self, name: str, running: bool) -> None:
        button = self.buttons.get(name)
        if button is not None:
            button.setEnabled(not running)
