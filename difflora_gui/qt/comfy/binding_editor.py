"""The binding editor: a user's own API-format ComfyUI workflow, with its inputs bound to the
preview's parameters and checked against a server's ``/object_info``.

The dialog never talks to a server itself: the caller fetches ``/object_info`` off the UI thread
and hands the dict in (or the user loads a saved object_info JSON file), so opening it never
blocks the window. Everything it checks comes from :mod:`difflora_gui.comfy.binding`, the same
code the backend runs before it sends a workflow, so what the dialog accepts is what renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.comfy import binding as core
from difflora_gui.comfy.validate import is_link, node_inputs
from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_write_json
from difflora_gui.qt.theme import COLORS
from difflora_gui.qt.wheel_guard import install_wheel_guard

JSON_FILTER = "JSON files (*.json);;All files (*)"
NOT_BOUND = "— not bound —"
_PARAM, _NODE, _INPUT = range(3)
#: input types a value is written into (the rest are links from another node)
_WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


class ElidedCombo(QComboBox):
    """A combo whose shown text is elided at the right (a long class name or input never widens
    the table); the full text is its tooltip and each item's."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(10)
        # the wheel guard only hands the wheel on from an unfocused input; StrongFocus keeps a
        # wheel over it from focusing it first
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.currentIndexChanged.connect(lambda _=None: self.setToolTip(self.currentText()))

    def add(self, text: str, data: Any, tooltip: str = "") -> None:
        self.addItem(text, data)
        self.setItemData(self.count() - 1, tooltip or text, Qt.ItemDataRole.ToolTipRole)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        option.currentText = self.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideRight, field.width()
        )
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def read_object_info(path: str | Path) -> dict[str, Any]:
    """A saved ``/object_info`` answer (the JSON a server returns at ``GET /object_info``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the object_info file: {error}", path=path) from error
    if not isinstance(data, dict) or not all(isinstance(v, Mapping) for v in data.values()):
        raise UserError("not a ComfyUI /object_info answer (node class → its inputs)", path=path)
    return data


def read_bindings(path: str | Path) -> list[core.Binding]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the bindings file: {error}", path=path) from error
    try:
        return core.from_json(data)
    except UserError as error:
        raise UserError(error.problem, path=path) from error


class BindingEditorDialog(QDialog):
    """Open a workflow, pick where each preview parameter goes, OK when the check is clean.

    ``object_info`` is a server's answer fetched by the caller; ``object_info_source`` says whose
    it is ("server gpu-1") for the line above the table."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        object_info: Mapping[str, Any] | None = None,
        object_info_source: str = "",
        workflow_path: str | Path | None = None,
        bindings: Sequence[core.Binding] = (),
    ):
        super().__init__(parent)
        install_wheel_guard()
        self.setWindowTitle("Custom ComfyUI workflow")
        self._workflow: dict[str, Any] | None = None
        self._workflow_path: Path | None = None
        self._object_info: dict[str, Any] = {}
        self._last_dir = ""
        self._build()
        self.set_object_info(object_info or {}, object_info_source)
        if workflow_path is not None:
            self.open_workflow(workflow_path)
        if bindings:
            self.set_bindings(bindings)
        self._refresh()

    # --- layout ---------------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        files = QHBoxLayout()
        self.open_button = QPushButton("Open workflow…")
        self.open_button.setToolTip("A workflow saved in ComfyUI with Export (API)")
        self.open_button.clicked.connect(self._choose_workflow)
        self.workflow_label = QLabel("No workflow yet: open one exported from ComfyUI with Export (API)")
        self.workflow_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        files.addWidget(self.open_button)
        files.addWidget(self.workflow_label, 1)
        layout.addLayout(files)

        info = QHBoxLayout()
        self.object_info_button = QPushButton("Load object_info…")
        self.object_info_button.setToolTip(
            "A saved answer of a server's /object_info, to check the workflow without a server running"
        )
        self.object_info_button.clicked.connect(self._choose_object_info)
        self.object_info_label = QLabel()
        info.addWidget(self.object_info_button)
        info.addWidget(self.object_info_label, 1)
        layout.addLayout(info)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.hide()
        layout.addWidget(self.status)

        self.table = QTableWidget(len(core.PARAMS), 3)
        self.table.setHorizontalHeaderLabels(["Parameter", "Node", "Input"])
        self.table.horizontalHeaderItem(_PARAM).setToolTip("* required: every preview sets it")
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Tab moves between the combos (in reading order), not between the table's cells
        self.table.setTabKeyNavigation(False)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_PARAM, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_NODE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_INPUT, QHeaderView.ResizeMode.Stretch)
        self.node_combos: dict[str, ElidedCombo] = {}
        self.input_combos: dict[str, ElidedCombo] = {}
        for row, param in enumerate(core.PARAMS):
            required = param in core.REQUIRED_PARAMS
            item = QTableWidgetItem(f"{param} *" if required else param)
            kinds = " or ".join(core.PARAM_TYPES[param])
            item.setToolTip(
                f"{param}: takes a {kinds} input" + (" (required: every preview sets it)" if required else "")
            )
            self.table.setItem(row, _PARAM, item)
            node_combo, input_combo = ElidedCombo(), ElidedCombo()
            node_combo.currentIndexChanged.connect(lambda _=None, p=param: self._node_changed(p))
            input_combo.currentIndexChanged.connect(lambda _=None: self._refresh())
            self.table.setCellWidget(row, _NODE, node_combo)
            self.table.setCellWidget(row, _INPUT, input_combo)
            self.node_combos[param] = node_combo
            self.input_combos[param] = input_combo
        layout.addWidget(self.table, 1)

        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.problems.setStyleSheet(f"color: {COLORS['error']};")
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        problems_area = QScrollArea()
        problems_area.setWidgetResizable(True)
        problems_area.setWidget(self.problems)
        problems_area.setMaximumHeight(110)
        problems_area.setFrameShape(QScrollArea.Shape.NoFrame)
        layout.addWidget(problems_area)

        buttons = QHBoxLayout()
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip(
            "Bind what the app recognises in the workflow (rows it cannot tell are left as they are)"
        )
        self.suggest_button.clicked.connect(self.suggest)
        self.load_button = QPushButton("Load bindings…")
        self.load_button.clicked.connect(self._choose_load)
        self.save_button = QPushButton("Save bindings…")
        self.save_button.clicked.connect(self._choose_save)
        self.box = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.box.accepted.connect(self.accept)
        self.box.rejected.connect(self.reject)
        self.ok_button = self.box.button(QDialogButtonBox.StandardButton.Ok)
        for button in (self.suggest_button, self.load_button, self.save_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.box)
        layout.addLayout(buttons)

        chain: list[QWidget] = [self.open_button, self.object_info_button]
        for param in core.PARAMS:
            chain += [self.node_combos[param], self.input_combos[param]]
        chain += [self.suggest_button, self.load_button, self.save_button, self.ok_button]
        chain.append(self.box.button(QDialogButtonBox.StandardButton.Cancel))
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)
        # fits a 1280×720 screen with the window frame and a taskbar
        self.resize(860, 620)

    # --- state ----------------------------------------------------------------------------------------

    def workflow(self) -> dict[str, Any] | None:
        return self._workflow

    def workflow_path(self) -> Path | None:
        return self._workflow_path

    def object_info(self) -> dict[str, Any]:
        return self._object_info

    def problem_lines(self) -> list[str]:
        if self._workflow is None:
            return ["open a workflow exported from ComfyUI with Export (API)"]
        lines = []
        if not self._object_info:
            lines.append("no object_info yet: check against a server, or load a saved object_info JSON file")
        return lines + core.check_bindings(self._workflow, self.bindings(), self._object_info)

    def bindings(self) -> list[core.Binding]:
        found = []
        for param in core.PARAMS:
            node_id = self.node_combos[param].currentData()
            input_name = self.input_combos[param].currentData()
            if node_id is not None and input_name is not None:
                found.append(core.Binding(param, node_id, input_name))
        return found

    def set_bindings(self, bindings: Sequence[core.Binding]) -> None:
        """Show ``bindings``; a parameter they leave out is unbound. A node or input the workflow
        lacks is kept (marked), so the check names it instead of it vanishing silently."""
        by_param = {b.param: b for b in bindings}
        for param in core.PARAMS:
            node_combo = self.node_combos[param]
            entry = by_param.get(param)
            node_combo.blockSignals(True)
            if entry is None:
                node_combo.setCurrentIndex(0)
            else:
                index = node_combo.findData(entry.node_id)
                if index < 0:
                    node_combo.add(f"{entry.node_id} · not in the workflow", entry.node_id)
                    index = node_combo.count() - 1
                node_combo.setCurrentIndex(index)
            node_combo.blockSignals(False)
            node_combo.setToolTip(node_combo.currentText())
            self._fill_inputs(param, entry.input_name if entry else None)
        self._refresh()

    def set_object_info(self, object_info: Mapping[str, Any], source: str = "") -> None:
        self._object_info = dict(object_info)
        if self._object_info:
            where = source or "the server"
            self.object_info_label.setText(f"Checked against {where}: {len(self._object_info)} node classes")
        else:
            self.object_info_label.setText("No object_info yet: the bindings cannot be checked")
        current = self.bindings()
        self._fill_nodes()
        self.set_bindings(current)

    # --- files ----------------------------------------------------------------------------------------

    def open_workflow(self, path: str | Path) -> bool:
        """Show ``path``'s nodes, all unbound; a file that is not API-format is refused (the
        current workflow stays) with the reason in the status line."""
        try:
            workflow = core.load_api_workflow(path)
        except UserError as error:
            self._say(str(error), "error")
            return False
        self._workflow, self._workflow_path = workflow, Path(path)
        self.workflow_label.setText(f"{Path(path).name}: {len(workflow)} nodes")
        self.workflow_label.setToolTip(str(path))
        self._fill_nodes()
        self.set_bindings([])
        self._say("Press Suggest to bind what the app recognises, then check each row", "info")
        return True

    def load_object_info(self, path: str | Path) -> bool:
        try:
            info = read_object_info(path)
        except UserError as error:
            self._say(str(error), "error")
            return False
        self.set_object_info(info, Path(path).name)
        return True

    def save_bindings_to(self, path: str | Path, *, overwrite: bool = False) -> bool:
        try:
            atomic_write_json(path, core.to_json(self.bindings()), overwrite=overwrite)
        except (UserError, OSError) as error:
            self._say(f"Bindings not saved: {error}", "error")
            return False
        self._say(f"Bindings saved to {path}", "info")
        return True

    def load_bindings_from(self, path: str | Path) -> bool:
        try:
            bindings = read_bindings(path)
        except UserError as error:
            self._say(str(error), "error")
            return False
        self.set_bindings(bindings)
        self._say(f"Bindings loaded from {Path(path).name}", "info")
        return True

    def suggest(self) -> None:
        if self._workflow is None:
            self._say("Open a workflow first: Suggest reads its nodes", "warning")
            return
        suggested = core.suggest_bindings(self._workflow, self._object_info)
        # rows it cannot tell keep what the user chose
        kept = {b.param: b for b in self.bindings()}
        kept.update({b.param: b for b in suggested})
        self.set_bindings(list(kept.values()))
        self._say(f"Suggested {len(suggested)} of {len(core.PARAMS)} parameters; check the rest", "info")

    # --- the buttons' file dialogs ------------------------------------------------------------------

    def _open_name(self, title: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, self._last_dir, JSON_FILTER)
        if path:
            self._last_dir = str(Path(path).parent)
        return path

    def _choose_workflow(self) -> None:
        if path := self._open_name("Open an API-format ComfyUI workflow"):
            self.open_workflow(path)

    def _choose_object_info(self) -> None:
        if path := self._open_name("Open a saved object_info JSON file"):
            self.load_object_info(path)

    def _choose_load(self) -> None:
        if path := self._open_name("Load bindings"):
            self.load_bindings_from(path)

    def _choose_save(self) -> None:
        start = self._last_dir
        if self._workflow_path is not None:
            start = str(self._workflow_path.with_name(f"{self._workflow_path.stem}.bindings.json"))
        path, _ = QFileDialog.getSaveFileName(
            self, "Save bindings", start, JSON_FILTER, options=QFileDialog.Option.DontConfirmOverwrite
        )
        if not path:
            return
        self._last_dir = str(Path(path).parent)
        overwrite = False
        if Path(path).exists():
            answer = QMessageBox.question(self, "Replace file?", f"{path} exists already.\n\nReplace it?")
            if answer != QMessageBox.StandardButton.Yes:
                self._say("Save cancelled: nothing was written", "info")
                return
            overwrite = True
        self.save_bindings_to(path, overwrite=overwrite)

    # --- rows -----------------------------------------------------------------------------------------

    def _fill_nodes(self) -> None:
        nodes = self._workflow or {}
        for param in core.PARAMS:
            combo = self.node_combos[param]
            combo.blockSignals(True)
            combo.clear()
            combo.add(NOT_BOUND, None, f"{param} is not set by the preview")
            for node_id in sorted(nodes, key=_node_order):
                class_type = nodes[node_id].get("class_type", "?")
                title = (nodes[node_id].get("_meta") or {}).get("title")
                text = f"{node_id} · {class_type}"
                combo.add(text, node_id, f"{text} — {title}" if title and title != class_type else text)
            combo.blockSignals(False)

    def _input_choices(self, node_id: str) -> list[tuple[str, str]]:
        """(name, tooltip) of the inputs a value can be written into: the node's widget values
        and the optional inputs the server declares; linked inputs come from another node."""
        node = (self._workflow or {}).get(node_id) or {}
        values = node.get("inputs") or {}
        info = self._object_info.get(node.get("class_type"))
        specs = node_inputs(info) if isinstance(info, Mapping) else {}
        names = [n for n, v in values.items() if not is_link(v)]
        names += [n for n, s in specs.items() if n not in values and s.type in _WIDGET_TYPES]
        choices = []
        if any(n.startswith("blocks.") for n in list(values) + list(specs)):
            choices.append((core.BLOCKS_INPUT, "every blocks.N. switch of the node (for block_weights)"))
        for name in dict.fromkeys(names):
            spec = specs.get(name)
            choices.append((name, f"{name}: {spec.type}" if spec else name))
        return choices

    def _fill_inputs(self, param: str, wanted: str | None = None) -> None:
        combo = self.input_combos[param]
        node_id = self.node_combos[param].currentData()
        combo.blockSignals(True)
        combo.clear()
        if node_id is not None:
            choices = self._input_choices(node_id)
            for name, tooltip in choices:
                combo.add(name, name, tooltip)
            if wanted is not None and combo.findData(wanted) < 0:
                combo.add(f"{wanted} (not an input here)", wanted)
            index = combo.findData(wanted) if wanted is not None else self._fitting_input(param, choices)
            combo.setCurrentIndex(max(index, 0))
        combo.setEnabled(node_id is not None)
        combo.blockSignals(False)
        combo.setToolTip(combo.currentText())

    def _fitting_input(self, param: str, choices: list[tuple[str, str]]) -> int:
        """The first input of a type ``param`` takes (a node picked for seed lands on its seed)."""
        for index, (name, _) in enumerate(choices):
            if name == param:
                return index
        for index, (_, tooltip) in enumerate(choices):
            if tooltip.rpartition(": ")[2] in core.PARAM_TYPES[param]:
                return index
        return 0

    def _node_changed(self, param: str) -> None:
        self._fill_inputs(param)
        self._refresh()

    def _refresh(self) -> None:
        lines = self.problem_lines()
        self.problems.setText("\n".join(lines))
        self.problems.setVisible(bool(lines))
        self.ok_button.setEnabled(not lines)
        self.ok_button.setToolTip(lines[0] if lines else "Use these bindings")

    def _say(self, text: str, level: str) -> None:
        color = {"error": COLORS["error"], "warning": COLORS["warning"]}.get(level, COLORS["muted"])
        self.status.setStyleSheet(f"color: {color};")
        self.status.setText(text)
        self.status.setVisible(bool(text))
