"""Settings ▸ Training: the Musubi Tuner checkout, its Python and the Wan model files.

Each path is checked as it is typed (:mod:`difflora_gui.train.settings_checks`, file system only)
and its problem is shown under the field. A value that was already saved and whose path is simply
absent now (a drive or share that is away) is shown as a note and does not stop a save: the user
keeps the path for when the drive is back.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.train.settings_checks import FIELDS_BY_NAME, field_problem, is_absent

#: how long typing pauses before a field is checked (a network path can take a moment to stat)
CHECK_DELAY_MS = 250
MODEL_FILTER = "Wan model files (*.safetensors *.pth);;All files (*)"
PYTHON_FILTER = (
    "Python (python.exe pythonw.exe);;Programs (*.exe);;All files (*)"
    if sys.platform == "win32"
    else "All files (*)"
)


class BrowseMemory:
    """Where a file dialog starts: the field's own value, else the folder last chosen for that
    kind of file in this dialog (model files usually sit side by side, as in ComfyUI's models/)."""

    def __init__(self):
        self._last: dict[str, str] = {}

    def start(self, kind: str, value: str) -> str:
        if value:
            path = Path(value)
            if path.exists() or path.parent.is_dir():
                return str(path)
        return self._last.get(kind, "")

    def chose(self, kind: str, path: str) -> None:
        chosen = Path(path)
        self._last[kind] = str(chosen if chosen.is_dir() else chosen.parent)


class CheckedPathField(QWidget):
    """A path with Browse… and its problem under it, for one training setting of AppSettings."""

    changed = Signal()

    def __init__(
        self,
        name: str,
        *,
        folder: bool,
        hint: str,
        memory: BrowseMemory,
        file_filter: str = MODEL_FILTER,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.name = name
        self._folder = folder
        self._filter = file_filter
        self._memory = memory
        kind = FIELDS_BY_NAME[name].kind
        self._kind = "model" if kind == "dit" else kind  # DiT, VAE, T5 and CLIP share a folder memory
        self._original = ""
        self._problem = ""
        self._kept = False
        self.edit = QLineEdit()
        self.edit.setObjectName(f"{name}Edit")
        self.edit.setPlaceholderText(hint)
        self.edit.setClearButtonEnabled(True)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setVisible(False)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(CHECK_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.edit.textChanged.connect(self._timer.start)
        self.edit.textChanged.connect(self.changed)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.problem_label)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming, like QLineEdit
        self.edit.setText(text)
        self.refresh()

    def load(self, value: str) -> None:
        """Show a saved value (the one an absent path is kept for)."""
        self._original = value.strip()
        self.setText(value)

    def problem(self) -> str:
        """The field's problem now ('' when fine)."""
        self.refresh()
        return self._problem

    def kept(self) -> bool:
        """The problem is only that a saved, unchanged path is absent now (it does not stop a save)."""
        self.refresh()
        return self._kept

    @Slot()
    def refresh(self) -> None:
        self._timer.stop()
        value = self.text()
        self._problem = field_problem(self.name, value)
        self._kept = bool(self._problem) and value == self._original and is_absent(value)
        if not self._problem:
            self.problem_label.setVisible(False)
            self.problem_label.setText("")
            self.edit.setToolTip("")
            return
        text = self._problem
        if self._kept:
            text += " — kept as saved (a drive or share may be away); it is checked again before training"
        # the dialog's look: error text in red (validationErrors), a kept path as a muted note
        self.problem_label.setObjectName("mutedLabel" if self._kept else "validationErrors")
        self.problem_label.style().unpolish(self.problem_label)
        self.problem_label.style().polish(self.problem_label)
        self.problem_label.setText(text)
        self.problem_label.setVisible(True)
        self.edit.setToolTip(text)

    @Slot()
    def _browse(self) -> None:
        caption = FIELDS_BY_NAME[self.name].label
        start = self._memory.start(self._kind, self.text())
        if self._folder:
            chosen = QFileDialog.getExistingDirectory(self, caption, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, caption, start, self._filter)
        if chosen:
            self._memory.chose(self._kind, chosen)
            self.setText(str(Path(chosen)))  # native separators on Windows


class TrainingSettings(QWidget):
    """The Training group's fields; :attr:`fields` maps AppSettings field names to them."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.memory = BrowseMemory()

        def field(name: str, hint: str, *, folder: bool = False, file_filter: str = MODEL_FILTER):
            return CheckedPathField(
                name, folder=folder, hint=hint, memory=self.memory, file_filter=file_filter
            )

        self.musubi_dir = field("musubi_tuner_dir", "folder of a kohya-ss/musubi-tuner checkout", folder=True)
        self.musubi_python = field("musubi_python", "empty: this app's Python", file_filter=PYTHON_FILTER)
        self.dit = field("wan_dit", "wan2.1_t2v_1.3B_bf16.safetensors, … (Wan2.2 A14B: the low-noise expert)")
        self.dit_high_noise = field("wan_dit_high_noise", "Wan2.2 A14B only: the high-noise expert")
        self.vae = field("wan_vae", "Wan2.1_VAE.pth or wan_2.1_vae.safetensors (also for Wan2.2 A14B)")
        self.t5 = field("wan_t5", "models_t5_umt5-xxl-enc-bf16.pth")
        self.clip = field(
            "wan_clip", "Wan2.1 I2V only: models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
        )
        self.model_dir = field(
            "wan_model_dir", "diffusers folder (model_index.json, transformer/, vae/, …)", folder=True
        )
        self.fields: dict[str, CheckedPathField] = {
            f.name: f
            for f in (
                self.musubi_dir,
                self.musubi_python,
                self.dit,
                self.dit_high_noise,
                self.vae,
                self.t5,
                self.clip,
                self.model_dir,
            )
        }

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(
            self._hint(
                "Musubi Tuner trains with its own files; the built-in trainer uses the "
                "diffusers folder. Runs can override each path."
            )
        )
        for name, widget in self.fields.items():
            form.addRow(FIELDS_BY_NAME[name].label, widget)
            if name == "musubi_python":
                form.addRow(
                    "",
                    self._hint(
                        "The python.exe of Musubi's venv (for example "
                        "musubi-tuner\\.venv\\Scripts\\python.exe)."
                    ),
                )
            if name == "wan_clip":
                form.addRow("", self._hint("Model files: .safetensors or .pth, as Musubi's docs list them."))
            if name == "wan_model_dir":
                form.addRow(
                    "",
                    self._hint(
                        "For the built-in trainer and the preview "
                        "(for example Wan-AI/Wan2.1-T2V-1.3B-Diffusers)."
                    ),
                )

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("mutedLabel")
        label.setWordWrap(True)
        return label

    def load(self, settings) -> None:
        for name, widget in self.fields.items():
            widget.load(str(getattr(settings, name, "") or ""))

    def values(self) -> dict[str, str]:
        return {name: widget.text() for name, widget in self.fields.items()}
