"""File ▸ Project settings: the project's name and its own output folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from difflora_gui.project import Project
from difflora_gui.qt.settings_dialog import _FolderField


class ProjectDialog(QDialog):
    def __init__(self, project: Project, default_output: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Project settings")
        self.setObjectName("projectDialog")
        self.resize(560, 180)
        self.name = QLineEdit(project.name)
        self.output_dir = _FolderField("Project output folder", f"Settings: {default_output}")
        self.output_dir.setText(project.output_dir)
        self.errors = QLabel()
        self.errors.setObjectName("validationErrors")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Output folder", self.output_dir)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.try_accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.errors)
        layout.addWidget(buttons)

    @Slot()
    def try_accept(self) -> None:
        folder = self.output_dir.text()
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            self.errors.setText(f"output folder is a file: {folder}")
            return
        if folder and not Path(folder).exists() and not Path(folder).parent.is_dir():
            self.errors.setText(f"output folder cannot be created (its parent does not exist): {folder}")
            return
        self.accept()

    def apply_to(self, project: Project) -> None:
        project.name = self.name.text()
        project.output_dir = self.output_dir.text()
