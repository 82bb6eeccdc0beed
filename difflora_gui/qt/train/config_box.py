"""The Train section's config column: backend, preset, the shared config, the backend's own settings.

One :class:`~difflora_gui.qt.param_form.ParamForm` of :data:`~difflora_gui.train.config.TRAIN_CONFIG`
holds the config A and B share (a pair stores it once); a preset fills it in one undoable step.
The backend chooser lists the registered trainer backends; each brings its own settings form
(``TrainerBackendSpec.params``) whose defaults come from Settings (``backend_values``), and the
pair modes it cannot train are greyed out in the config form. "Show command" opens
:class:`CommandsDialog`: the exact commands of every planned run (Musubi: each argument list,
shell-quoted) or an in-process backend's plan, copyable before anything is launched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.qt.param_form import ParamForm
from difflora_gui.qt.theme import narrow_combo, section_card
from difflora_gui.train.backend import backend_values, trainer_backends
from difflora_gui.train.config import TRAIN_CONFIG
from difflora_gui.train.presets import PRESETS, preset_values

#: the backend a new project starts with when it is registered
DEFAULT_BACKEND = "builtin"


class ConfigBox(QWidget):
    """Backend, preset, the shared config form and the backend's settings form.

    ``changed`` fires on every edit (a re-check is due); ``command_requested`` when the user asks
    for the commands (the panel plans the runs and calls :meth:`show_commands`).
    """

    changed = Signal()
    command_requested = Signal()
    #: the Settings changed the backend form's defaults: a re-check is due (nothing to store)
    defaults_changed = Signal()
    #: the backend's settings form was rebuilt (a new backend, new Settings): the tab order is due
    form_rebuilt = Signal()

    def __init__(self, services, undo_stack, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        self.undo_stack = undo_stack
        self.backends = trainer_backends(services.host)
        #: per backend, the settings the user typed that differ from the Settings-based defaults
        self._backend_edits: dict[str, dict[str, Any]] = {}
        self._backend_name = ""
        self.backend_form: ParamForm | None = None
        self._form_defaults: dict[str, Any] = {}
        self.dialog: CommandsDialog | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self._build_backend())
        layout.addWidget(self._build_config())
        services.settings_changed.connect(self._on_settings_changed)

    # --- building ----------------------------------------------------------------------------

    def _build_backend(self) -> QWidget:
        frame, layout = section_card("Trainer")
        top = QFormLayout()
        top.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.backend_combo = QComboBox()
        self.backend_combo.setObjectName("backendCombo")
        for name, spec in self.backends.items():
            self.backend_combo.addItem(spec.title, name)
            self.backend_combo.setItemData(
                self.backend_combo.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole
            )
        self.backend_combo.currentIndexChanged.connect(self._on_backend_chosen)
        backend_label = QLabel("&Backend")
        backend_label.setBuddy(self.backend_combo)
        top.addRow(backend_label, self.backend_combo)
        layout.addLayout(top)
        self.backend_note = QLabel()
        self.backend_note.setObjectName("mutedLabel")
        self.backend_note.setWordWrap(True)
        layout.addWidget(self.backend_note)
        self.backend_holder = QVBoxLayout()
        self.backend_holder.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.backend_holder)
        self.command_button = QPushButton("Show &command…")
        self.command_button.setObjectName("showCommandButton")
        self.command_button.setToolTip(
            "The exact commands (or the plan) of every run, to read or copy before anything starts"
        )
        self.command_button.clicked.connect(self.command_requested)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.command_button)
        layout.addLayout(row)
        if not self.backends:
            self.backend_note.setText(
                "No trainer backend is installed; see Tools ▸ Plugins (the built-in trainer and "
                "Musubi Tuner are plugins)."
            )
        return frame

    def _build_config(self) -> QWidget:
        frame, layout = section_card("Training config (A and B share it)")
        row = QHBoxLayout()
        row.setSpacing(6)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        narrow_combo(self.preset_combo, 18)  # long preset titles must not widen the form past 1280×720
        for item in PRESETS:
            self.preset_combo.addItem(item.title, item.name)
            self.preset_combo.setItemData(
                self.preset_combo.count() - 1, item.description, Qt.ItemDataRole.ToolTipRole
            )
        self.preset_combo.currentIndexChanged.connect(self._show_preset_note)
        preset_label = QLabel("&Preset")
        preset_label.setBuddy(self.preset_combo)
        self.apply_preset_button = QPushButton("&Apply")
        self.apply_preset_button.setObjectName("applyPresetButton")
        self.apply_preset_button.setToolTip("Fill the config with this preset (Edit ▸ Undo takes it back)")
        self.apply_preset_button.clicked.connect(lambda: self.apply_preset(self.preset_combo.currentData()))
        row.addWidget(preset_label)
        row.addWidget(self.preset_combo, 1)
        row.addWidget(self.apply_preset_button)
        layout.addLayout(row)
        self.preset_note = QLabel()
        self.preset_note.setObjectName("mutedLabel")
        self.preset_note.setWordWrap(True)
        layout.addWidget(self.preset_note)
        self.form = ParamForm(TRAIN_CONFIG)
        self.form.setObjectName("trainConfigForm")
        self.form.set_undo_stack(self.undo_stack)
        self.form.changed.connect(self.changed)
        layout.addWidget(self.form)
        self._show_preset_note()
        return frame

    def _show_preset_note(self) -> None:
        name = self.preset_combo.currentData()
        item = next((p for p in PRESETS if p.name == name), None)
        self.preset_note.setText(item.description if item is not None else "")

    # --- backend -----------------------------------------------------------------------------

    def backend_name(self) -> str:
        return self._backend_name

    def spec(self):
        """The chosen backend's spec (None when no backend is installed)."""
        return self.backends.get(self._backend_name)

    def set_backend(self, name: str, *, record: bool = False) -> None:
        """Show backend ``name`` (its settings form, its pair modes); ``record``: an undo step."""
        if name not in self.backends:
            name = DEFAULT_BACKEND if DEFAULT_BACKEND in self.backends else next(iter(self.backends), "")
        before = self._backend_name
        if name == before:
            return
        self._store_backend_edits()
        self._backend_name = name
        index = self.backend_combo.findData(name)
        if index >= 0 and self.backend_combo.currentIndex() != index:
            self.backend_combo.blockSignals(True)
            self.backend_combo.setCurrentIndex(index)
            self.backend_combo.blockSignals(False)
        self._build_backend_form()
        self._limit_pair_modes()
        if record and before and not self.undo_stack.applying:
            spec_title = self.backends[name].title
            self.undo_stack.record(
                f"Backend: {spec_title}",
                lambda: self.set_backend(before),
                lambda: self.set_backend(name),
            )
        self.changed.emit()

    def _on_backend_chosen(self, index: int) -> None:
        self.set_backend(self.backend_combo.itemData(index), record=True)

    def _settings_defaults(self, spec) -> dict[str, Any]:
        """The backend's settings before any edit: declared defaults, then the app's Settings."""
        try:
            return backend_values(spec, {}, self.services.settings)
        except UserError:  # a Settings value the backend refuses: the declared defaults, shown as errors
            values = dict(spec.params.defaults())
            if spec.settings_defaults is not None:
                from difflora_gui.specs import resolve_callable

                values.update(resolve_callable(spec.settings_defaults)(self.services.settings) or {})
            return values

    def _build_backend_form(self) -> None:
        if self.backend_form is not None:
            self.backend_form.setParent(None)
            self.backend_form.deleteLater()
            self.backend_form = None
        spec = self.spec()
        if spec is None:
            return
        self.backend_note.setText(spec.description)
        self._form_defaults = self._settings_defaults(spec)
        values = {**self._form_defaults, **self._backend_edits.get(spec.name, {})}
        form = ParamForm(spec.params, values, empty_text="This backend has no settings of its own.")
        form.setObjectName("backendForm")
        form.set_undo_stack(self.undo_stack)
        form.changed.connect(self._on_backend_edited)
        self.backend_holder.addWidget(form)
        self.backend_form = form
        self.form_rebuilt.emit()

    def _on_settings_changed(self, _settings) -> None:
        """New Settings are new defaults: the form shows them where the user typed nothing else."""
        self._store_backend_edits()
        self._build_backend_form()
        self.defaults_changed.emit()

    def _on_backend_edited(self) -> None:
        self._store_backend_edits()
        self.changed.emit()

    def _store_backend_edits(self) -> None:
        spec = self.spec()
        if spec is None or self.backend_form is None:
            return
        defaults = self._form_defaults  # what the form started from (Settings may have changed since)
        values = self.backend_form.values()
        self._backend_edits[spec.name] = {
            key: value for key, value in values.items() if _jsonable(value) and value != defaults.get(key)
        }

    def _limit_pair_modes(self) -> None:
        """Grey out the pair modes the backend cannot train; move off one that is chosen."""
        spec = self.spec()
        editor = self.form.editors.get("pair_mode")
        if spec is None or editor is None:
            return
        combo: QComboBox = editor.editor
        model = combo.model()
        allowed = set(spec.pair_modes)
        if isinstance(model, QStandardItemModel):
            for row in range(combo.count()):
                item = model.item(row)
                ok = combo.itemText(row) in allowed
                item.setEnabled(ok)
                item.setToolTip("" if ok else f"the {spec.title} backend cannot train this pair mode")
        if combo.currentText() not in allowed and spec.pair_modes:
            self.form.set_values({"pair_mode": spec.pair_modes[0]})

    def backend_settings(self) -> dict[str, Any]:
        """The backend settings of a run: Settings-based defaults with the form's values (checked)."""
        spec = self.spec()
        if spec is None:
            raise UserError("no trainer backend is installed")
        given = self.backend_form.values() if self.backend_form is not None else {}
        return backend_values(spec, given, self.services.settings)

    # --- config ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The shared config, checked (``UserError`` naming the first bad field)."""
        errors = self.form.errors()
        if errors:
            name, message = next(iter(errors.items()))
            raise UserError(f"{TRAIN_CONFIG.get(name).label}: {message}")
        return TRAIN_CONFIG.to_recipe(self.form.values())

    def apply_preset(self, name: str) -> None:
        """Fill the form with preset ``name`` as one undoable step."""
        if not name:
            return
        before = self.form.values()
        values = preset_values(name)
        index = self.preset_combo.findData(name)
        if index >= 0:
            self.preset_combo.setCurrentIndex(index)
        title = next((p.title for p in PRESETS if p.name == name), name)
        self.form.set_values(values)
        after = self.form.values()
        self._limit_pair_modes()
        after = self.form.values()
        if before != after:
            self.undo_stack.record(
                f"Preset: {title}",
                lambda: self.form.set_values(before),
                lambda: self.form.set_values(after),
            )
        self.services.show_status(f"Preset '{title}' applied (Edit ▸ Undo takes it back)")

    # --- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the project keeps: backend, preset, the config's changed values, backend edits."""
        self._store_backend_edits()
        return {
            "backend": self._backend_name,
            "preset": self.preset_combo.currentData() or "",
            "config": {k: v for k, v in self.form.changed_values().items() if _jsonable(v)},
            "backend_settings": {k: dict(v) for k, v in self._backend_edits.items() if v},
        }

    def set_state(self, data: Mapping[str, Any]) -> None:
        """Show a stored state (a new project: the defaults and the default backend)."""
        edits = data.get("backend_settings")
        self._backend_edits = {k: dict(v) for k, v in edits.items()} if isinstance(edits, dict) else {}
        index = self.preset_combo.findData(data.get("preset") or "model-card")
        self.preset_combo.setCurrentIndex(max(index, 0))
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        self.form.set_values({**TRAIN_CONFIG.defaults(), **config})
        self._backend_name = ""  # rebuild the backend form with the stored edits
        self.set_backend(str(data.get("backend") or DEFAULT_BACKEND))

    # --- commands ----------------------------------------------------------------------------

    def show_commands(self, text: str) -> CommandsDialog:
        """Show (or refresh) the commands dialog with ``text``."""
        if self.dialog is None:
            self.dialog = CommandsDialog(self)
        self.dialog.set_text(text)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class CommandsDialog(QDialog):
    """The commands (or plan) of every planned run, read-only, with a Copy button."""

    def __init__(self, parent: QWidget | None = None, copy: Callable[[str], None] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Training commands")
        self.resize(820, 460)
        layout = QVBoxLayout(self)
        note = QLabel(
            "What Train will run, in order. Nothing has started; copy the commands to run them yourself."
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        self.text_view = QPlainTextEdit()
        self.text_view.setObjectName("commandsText")
        self.text_view.setReadOnly(True)
        self.text_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        layout.addWidget(self.text_view, 1)
        row = QHBoxLayout()
        self.copy_button = QPushButton("&Copy")
        self.copy_button.setObjectName("copyCommandsButton")
        self.copy_button.clicked.connect(self.copy)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addStretch(1)
        row.addWidget(self.copy_button)
        row.addWidget(close)
        layout.addLayout(row)

    def set_text(self, text: str) -> None:
        self.text_view.setPlainText(text)

    def text(self) -> str:
        return self.text_view.toPlainText()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.copy_button.setText("Copied")


def commands_text(spec, runs) -> str:
    """Every planned run's description as text: its commands shell-quoted (one per line, in
    order), the files it writes first, or an in-process backend's plan as JSON."""
    from difflora_gui.train.backend import describe_run
    from difflora_gui.train.pair_job import shell_join

    parts = []
    for run in runs:
        description = describe_run(spec, run)
        lines = [f"# {run.name} ({spec.title}): {run.dataset} → {run.output_path()}"]
        for name, text in description.files.items():
            lines.append(f"# file {name}:")
            lines.extend(f"#   {line}" for line in text.splitlines())
        if description.env:
            lines.append("# environment: " + " ".join(f"{k}={v}" for k, v in description.env.items()))
        if description.cwd:
            lines.append(f"# in the folder {description.cwd}")
        lines.extend(shell_join(argv) for argv in description.commands)
        if description.plan and not description.commands:  # an in-process backend: its plan is what runs
            lines.append(json.dumps(description.plan, indent=2, ensure_ascii=False, default=str))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
