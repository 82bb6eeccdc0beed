"""File ▸ Settings: folders, training files, preview, ComfyUI servers, device, jobs and autosave (AppSettings)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset.kontext_params import model_folder_problem
from difflora_gui.qt.settings_preview import PreviewSettings, preview_problems
from difflora_gui.qt.settings_servers import ServerTable, beside_buttons
from difflora_gui.qt.settings_training import FittedLabel, TrainingSettings
from difflora_gui.settings import (
    DEFAULT_COMFYUI_URL,
    AppSettings,
    ComfyServer,
    default_output_dir,
    device_problem,
    setting_bounds,
)
from difflora_gui.settings import url_problem as url_problem
from difflora_gui.train.settings_checks import musubi_dir_problem, training_problems

DEFAULT_COMFYUI = DEFAULT_COMFYUI_URL
#: under the server table: what a row points at (a running ComfyUI and its LoRA folder)
SERVERS_HINT = (
    f"A running ComfyUI: {DEFAULT_COMFYUI_URL} is where it answers by default (start it with --listen "
    "for another computer to reach it). Shared LoRA folder: that server's models/loras folder as this "
    "computer sees it (a LoRA to render is copied there; ComfyUI has no LoRA upload). The Preview "
    "section's comfyui backend renders on these, one job at a time each; its diffusers backend "
    "renders in this app (Preview above)."
)


def musubi_problem(folder: str) -> str:
    """Why ``folder`` is not a usable Musubi Tuner checkout ('' if it is, or if it is empty)."""
    return musubi_dir_problem(folder)


def server_problems(servers: list[ComfyServer]) -> list[str]:
    """Every problem with the ComfyUI server list, one line each, naming the row."""
    problems = []
    seen: set[str] = set()
    for row, server in enumerate(servers, start=1):
        label = f"ComfyUI server {row}" + (f" ({server.name})" if server.name else "")
        if not server.name:
            problems.append(f"{label}: needs a name")
        elif server.name in seen:
            problems.append(f"{label}: another server has the same name")
        seen.add(server.name)
        if problem := url_problem(server.url):
            problems.append(f"{label}: {problem}")
        if server.lora_dir and not Path(server.lora_dir).is_dir():
            problems.append(f"{label}: shared LoRA folder not found: {server.lora_dir}")
    return problems


def validate_settings(values: AppSettings, saved: AppSettings | None = None) -> list[str]:
    """Every problem with the values, one line each (empty list = can be saved).

    With ``saved`` (the settings the dialog opened with), a training path that is unchanged and
    simply absent (its drive or share is away) is not a problem: the user keeps it for later.
    """
    problems = []
    for folder in values.model_folders:
        if not Path(folder).is_dir():
            problems.append(f"model folder not found: {folder}")
    for problem in training_problems(values):
        kept = saved is not None and getattr(saved, problem.field) == getattr(values, problem.field)
        if not (problem.absent and kept):
            problems.append(problem.text)
    if values.kontext_model_dir and (problem := model_folder_problem(values.kontext_model_dir)):
        problems.append(problem)
    problems.extend(preview_problems(values))
    problems.extend(server_problems(values.comfyui_servers))
    if device_problem(values.default_device):
        problems.append(f"unknown device {values.default_device!r}")
    if values.output_dir:
        out = Path(values.output_dir)
        if out.exists() and not out.is_dir():
            problems.append(f"output folder is a file: {values.output_dir}")
        elif not out.exists() and not out.parent.is_dir():
            problems.append(
                f"output folder cannot be created (its parent does not exist): {values.output_dir}"
            )
    return problems


class _WheelOnlyWhenFocused(QObject):
    """Scrolling the dialog over a spin box or combo box scrolls the dialog, not the value."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()  # ignored + filtered: Qt hands the wheel to the parent (the scroll area)
            return True
        return super().eventFilter(watched, event)


class _PathList(QWidget):
    """A list of folders with Add… (a folder picker) / Remove."""

    def __init__(self, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._caption = caption
        self.list = QListWidget()
        self.list.setMaximumHeight(84)
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        beside_buttons(self, self.list, (self.add_button, self.remove_button))

    def values(self) -> list[str]:
        texts = [self.list.item(i).text().strip() for i in range(self.list.count())]
        return list(dict.fromkeys(t for t in texts if t))

    def set_values(self, values: list[str]) -> None:
        self.list.clear()
        for value in values:
            self.list.addItem(QListWidgetItem(value))

    @Slot()
    def _add(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self._caption)
        if folder:
            self.list.addItem(QListWidgetItem(folder))

    @Slot()
    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


class _FolderField(QWidget):
    def __init__(self, caption: str, hint: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._caption = caption
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(hint)
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming, like QLineEdit
        self.edit.setText(text)

    @Slot()
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self._caption, self.text())
        if folder:
            self.edit.setText(folder)


class SettingsDialog(QDialog):
    """Edits a copy of the settings; :meth:`values` gives the result after Save (``accept``)."""

    def __init__(
        self, settings: AppSettings, devices: list[str] | None = None, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.resize(820, 640)
        self._settings = settings
        self._wheel_guard = _WheelOnlyWhenFocused(self)

        self.model_folders = _PathList("Add a model folder")
        self.training = TrainingSettings()
        self.musubi_dir = self.training.musubi_dir
        self.preview = PreviewSettings(self.training)
        for widget in self.preview.inputs():
            self._guard_wheel(widget)
        self.kontext_dir = _FolderField(
            "FLUX.1 Kontext model folder",
            "diffusers folder of FLUX.1-Kontext-dev (model_index.json, transformer, …)",
        )
        self.comfyui_servers = ServerTable()
        self.default_device = QComboBox()
        self.output_dir = _FolderField("Output folder", str(default_output_dir()))
        self.autosave_interval = self._spin(QSpinBox(), "autosave_interval_s", " s")
        self.light_jobs = self._spin(QSpinBox(), "max_parallel_light_jobs", "")
        self.shutdown_timeout = self._spin(QDoubleSpinBox(), "shutdown_timeout_s", " s")
        self.shutdown_timeout.setDecimals(1)
        self.load_user_plugins = QCheckBox("Load third-party plugins")
        self.load_user_plugins.setToolTip(
            "Plugins from your plugins folder and installed packages; the built-in ones always load. "
            "Takes effect at the next start."
        )
        self.errors = QLabel()
        self.errors.setObjectName("validationErrors")
        self.errors.setWordWrap(True)

        known = ["auto", "cpu", *[d for d in (devices or []) if d not in ("auto", "cpu")]]
        if settings.default_device and settings.default_device not in known:
            known.append(settings.default_device)  # keep a saved device even if not detected now
        self.default_device.addItems(known)
        self.default_device.setToolTip("auto = the first CUDA GPU if there is one, else the CPU")
        self._guard_wheel(self.default_device)

        paths = self._form()
        paths.addRow("Model folders", self.model_folders)
        paths.addRow("", self._hint("Folders searched for Wan models and LoRA files."))
        paths.addRow("Kontext model", self.kontext_dir)
        paths.addRow("", self._hint("FLUX.1 Kontext [dev] in diffusers format, for counterpart generation."))
        paths.addRow("Output folder", self.output_dir)
        paths.addRow("", self._hint("Where new outputs go unless a project sets its own folder."))
        paths.addRow("Default device", self.default_device)

        servers = QVBoxLayout()
        servers.addWidget(self.comfyui_servers)
        servers.addWidget(self._hint(SERVERS_HINT))

        jobs = self._form()
        jobs.addRow("Autosave every", self.autosave_interval)
        jobs.addRow("Light jobs at once", self.light_jobs)
        jobs.addRow("Wait for jobs on quit", self.shutdown_timeout)
        jobs.addRow("Plugins", self.load_user_plugins)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.addWidget(self._group("Folders and device", paths))
        training = QVBoxLayout()
        training.addWidget(self.training)
        content_layout.addWidget(self._group("Training", training))
        preview = QVBoxLayout()
        preview.addWidget(self.preview)
        content_layout.addWidget(self._group("Preview", preview))
        content_layout.addWidget(self._group("ComfyUI servers", servers))
        content_layout.addWidget(self._group("Jobs and saving", jobs))
        content_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(content)  # fits a 1280×720 screen: the content scrolls, the buttons stay

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.try_accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.errors)
        layout.addWidget(self.buttons)
        self.load(settings)

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = FittedLabel(text)
        label.setObjectName("mutedLabel")
        return label

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    @staticmethod
    def _group(title: str, layout) -> QGroupBox:
        group = QGroupBox(title)
        group.setLayout(layout)
        return group

    def _guard_wheel(self, widget: QWidget) -> None:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: a wheel never grabs it
        widget.installEventFilter(self._wheel_guard)

    def _spin(self, spin: QAbstractSpinBox, name: str, suffix: str):
        low, high = setting_bounds(name)
        spin.setRange(low, high)
        spin.setSuffix(suffix)
        spin.setMaximumWidth(140)
        spin.setToolTip(f"from {low} to {high}")
        self._guard_wheel(spin)
        return spin

    def load(self, settings: AppSettings) -> None:
        self.model_folders.set_values(settings.model_folders)
        self.training.load(settings)
        self.preview.load(settings)
        self.kontext_dir.setText(settings.kontext_model_dir)
        self.comfyui_servers.set_servers(settings.comfyui_servers)
        index = self.default_device.findText(settings.default_device or "auto")
        self.default_device.setCurrentIndex(max(index, 0))
        self.output_dir.setText(settings.output_dir)
        self.autosave_interval.setValue(settings.autosave_interval_s)
        self.light_jobs.setValue(settings.max_parallel_light_jobs)
        self.shutdown_timeout.setValue(settings.shutdown_timeout_s)
        self.load_user_plugins.setChecked(settings.load_user_plugins)

    def values(self) -> AppSettings:
        """The edited settings (fields this dialog does not show are kept from the original)."""
        return replace(copy.deepcopy(self._settings), **self.changes())

    def changes(self) -> dict[str, object]:
        """The edited fields, for ``AppServices.update_settings(**changes)``."""
        return {
            "model_folders": self.model_folders.values(),
            **self.training.values(),
            **self.preview.values(),
            "kontext_model_dir": self.kontext_dir.text(),
            "comfyui_servers": self.comfyui_servers.servers(),
            "default_device": self.default_device.currentText(),
            "output_dir": self.output_dir.text(),
            "autosave_interval_s": self.autosave_interval.value(),
            "max_parallel_light_jobs": self.light_jobs.value(),
            "shutdown_timeout_s": self.shutdown_timeout.value(),
            "load_user_plugins": self.load_user_plugins.isChecked(),
        }

    @Slot()
    def try_accept(self) -> None:
        """Save: accept only if the values are valid; otherwise list the problems."""
        problems = validate_settings(self.values(), self._settings)
        if problems:
            self.errors.setText("\n".join(problems))
            return
        self.errors.setText("")
        self.accept()
