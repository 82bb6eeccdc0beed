"""File ▸ Settings: model folders, Musubi Tuner checkout, ComfyUI servers, default device, output folder."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.settings import AppSettings, default_output_dir

#: files whose presence marks a Musubi Tuner checkout (current layout, then the older flat one)
MUSUBI_MARKERS = ("src/musubi_tuner/wan_train_network.py", "wan_train_network.py")
DEFAULT_COMFYUI = "http://127.0.0.1:8188"


def musubi_problem(folder: str) -> str:
    """Why ``folder`` is not a usable Musubi Tuner checkout ('' if it is, or if it is empty)."""
    if not folder:
        return ""
    path = Path(folder)
    if not path.is_dir():
        return f"Musubi Tuner folder not found: {folder}"
    if not any((path / marker).is_file() for marker in MUSUBI_MARKERS):
        return f"{folder} does not look like a Musubi Tuner checkout (no {MUSUBI_MARKERS[0]})"
    return ""


def url_problem(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"not an http(s) server address: {url!r} (example: {DEFAULT_COMFYUI})"
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"bad port in {url!r}"
    return ""


def validate_settings(values: AppSettings) -> list[str]:
    """Every problem with the values, one line each (empty list = can be saved)."""
    problems = []
    for folder in values.model_folders:
        if not Path(folder).is_dir():
            problems.append(f"model folder not found: {folder}")
    if problem := musubi_problem(values.musubi_tuner_dir):
        problems.append(problem)
    for url in values.comfyui_servers:
        if problem := url_problem(url):
            problems.append(f"ComfyUI server {problem}")
    if values.default_device != "auto" and not (
        values.default_device == "cpu" or values.default_device.startswith("cuda:")
    ):
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


class _PathList(QWidget):
    """A list of strings with Add / Remove (Add opens a folder picker or adds an editable entry)."""

    def __init__(self, *, folders: bool, new_value: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._folders = folders
        self._new_value = new_value  # what "Add" puts in a new row to edit
        self.list = QListWidget()
        self.list.setMaximumHeight(96)
        self.add_button = QPushButton("Add…" if folders else "Add")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        buttons = QVBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def values(self) -> list[str]:
        texts = [self.list.item(i).text().strip() for i in range(self.list.count())]
        return list(dict.fromkeys(t for t in texts if t))

    def set_values(self, values: list[str]) -> None:
        self.list.clear()
        for value in values:
            self.add_value(value)

    def add_value(self, value: str) -> QListWidgetItem:
        item = QListWidgetItem(value)
        if not self._folders:
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        self.list.addItem(item)
        return item

    @Slot()
    def _add(self) -> None:
        if self._folders:
            folder = QFileDialog.getExistingDirectory(self, "Add a model folder")
            if folder:
                self.add_value(folder)
        else:
            item = self.add_value(self._new_value)
            self.list.setCurrentItem(item)
            self.list.editItem(item)

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
        self.resize(680, 520)
        self._settings = settings

        self.model_folders = _PathList(folders=True, new_value="")
        self.musubi_dir = _FolderField("Musubi Tuner checkout", "folder of a kohya-ss/musubi-tuner checkout")
        self.comfyui_servers = _PathList(folders=False, new_value=DEFAULT_COMFYUI)
        self.default_device = QComboBox()
        self.output_dir = _FolderField("Output folder", str(default_output_dir()))
        self.errors = QLabel()
        self.errors.setObjectName("validationErrors")
        self.errors.setWordWrap(True)

        known = ["auto", "cpu", *[d for d in (devices or []) if d not in ("auto", "cpu")]]
        if settings.default_device and settings.default_device not in known:
            known.append(settings.default_device)  # keep a saved device even if not detected now
        self.default_device.addItems(known)
        self.default_device.setToolTip("auto = the first CUDA GPU if there is one, else the CPU")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Model folders", self.model_folders)
        form.addRow("", self._hint("Folders searched for Wan models and LoRA files."))
        form.addRow("Musubi Tuner", self.musubi_dir)
        form.addRow("ComfyUI servers", self.comfyui_servers)
        form.addRow("", self._hint("Used by the Preview section to render through ComfyUI."))
        form.addRow("Default device", self.default_device)
        form.addRow("Output folder", self.output_dir)
        form.addRow("", self._hint("Where new outputs go unless a project sets its own folder."))

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.try_accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(self.errors)
        layout.addWidget(self.buttons)
        self.load(settings)

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("mutedLabel")
        return label

    def load(self, settings: AppSettings) -> None:
        self.model_folders.set_values(settings.model_folders)
        self.musubi_dir.setText(settings.musubi_tuner_dir)
        self.comfyui_servers.set_values(settings.comfyui_servers)
        index = self.default_device.findText(settings.default_device or "auto")
        self.default_device.setCurrentIndex(max(index, 0))
        self.output_dir.setText(settings.output_dir)

    def values(self) -> AppSettings:
        """The edited settings (fields this dialog does not show are kept from the original)."""
        result = AppSettings(
            model_folders=self.model_folders.values(),
            musubi_tuner_dir=self.musubi_dir.text(),
            comfyui_servers=self.comfyui_servers.values(),
            default_device=self.default_device.currentText(),
            output_dir=self.output_dir.text(),
            disabled_plugins=list(self._settings.disabled_plugins),
            recent_projects=list(self._settings.recent_projects),
        )
        return result

    def changes(self) -> dict[str, object]:
        """The edited fields, for ``AppServices.update_settings(**changes)``."""
        values = self.values()
        return {
            "model_folders": values.model_folders,
            "musubi_tuner_dir": values.musubi_tuner_dir,
            "comfyui_servers": values.comfyui_servers,
            "default_device": values.default_device,
            "output_dir": values.output_dir,
        }

    @Slot()
    def try_accept(self) -> None:
        """Save: accept only if the values are valid; otherwise list the problems."""
        problems = validate_settings(self.values())
        if problems:
            self.errors.setText("\n".join(problems))
            return
        self.errors.setText("")
        self.accept()
