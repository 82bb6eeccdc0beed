"""Settings ▸ Training: the Musubi Tuner checkout, its Python and the Wan model files.

Each path is checked as it is typed (:mod:`difflora_gui.train.settings_checks`, file system only)
and its problem is shown under the field. A value that was already saved and whose path is simply
absent now (a drive or share that is away) is shown as a note and does not stop a save: the user
keeps the path for when the drive is back.

Each of the three things a new user has to fetch has a hint saying what to point it at: the Musubi
Tuner clone and its venv's Python, and the Wan diffusers folders one downloads (whose VAE and text
encoder may also sit in folders of their own). When the diffusers
folder is the demo's tiny random model, a note says so (its renders are noise-like clips) and
where real weights go.
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

from difflora_gui.demo import tiny_model
from difflora_gui.qt.fitted_label import FittedLabel
from difflora_gui.qt.theme import COLORS
from difflora_gui.train.settings_checks import FIELDS_BY_NAME, field_problem, is_absent

#: how long typing pauses before a field is checked (a network path can take a moment to stat)
CHECK_DELAY_MS = 250
MODEL_FILTER = "Wan model files (*.safetensors *.pth);;All files (*)"
PYTHON_FILTER = (
    "Python (python.exe pythonw.exe);;Programs (*.exe);;All files (*)"
    if sys.platform == "win32"
    else "All files (*)"
)

#: shown under the Wan diffusers folder while it is the demo's tiny random model
DEMO_MODEL_NOTE = (
    "This is the tiny demo model (random weights): renders are noise-like clips. For real results "
    "point this at a Wan diffusers folder, e.g. Wan2.1-T2V-1.3B-Diffusers — see README ▸ Configure "
    "real models."
)
MUSUBI_DIR_HINT = (
    "Your clone of Musubi Tuner (git clone https://github.com/kohya-ss/musubi-tuner), set up with its "
    "own venv as its README says: the folder that holds src/musubi_tuner/."
)
MUSUBI_PYTHON_HINT = (
    "The python of that venv: musubi-tuner\\.venv\\Scripts\\python.exe on Windows, "
    "musubi-tuner/.venv/bin/python on Linux."
)
WAN_FOLDER_HINT = (
    "For the built-in trainer and the preview: a Wan diffusers folder downloaded from Hugging Face — "
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers (the one to start with), Wan-AI/Wan2.1-T2V-14B-Diffusers, "
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers (two experts) or Wan-AI/Wan2.2-TI2V-5B-Diffusers (preview only)."
)

VAE_FOLDER_HINT = (
    "Empty: the diffusers folder's vae/. Or a VAE folder of its own (config.json and *.safetensors, "
    "like a download's vae/ kept elsewhere), for the preview and the built-in trainer."
)
TEXT_ENCODER_FOLDER_HINT = (
    "Empty: the diffusers folder's text_encoder/. Or a UMT5 folder of its own (config.json and "
    "*.safetensors); its tokenizer comes from it when it holds one, else from the diffusers folder's "
    "tokenizer/."
)


def is_demo_model_dir(folder: str | Path) -> bool:
    """Whether ``folder`` is the demo's tiny random model: by its name, or by the label its
    ``README.txt`` starts with (a copy the user renamed)."""
    if not str(folder).strip():
        return False
    path = Path(str(folder).strip())
    if path.name == tiny_model.MODEL_FOLDER_NAME:
        return True
    label = tiny_model.LABEL.encode("utf-8")
    try:
        with open(path / tiny_model.README_NAME, "rb") as readme:
            return readme.read(len(label)) == label
    except OSError:
        return False


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

    #: the Wan diffusers folder became, or stopped being, the demo's tiny model (:attr:`demo_model`)
    demo_model_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.memory = BrowseMemory()
        self.demo_model = False

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
        self.vae_dir = field("wan_vae_dir", "empty: the diffusers folder's vae/", folder=True)
        self.text_encoder_dir = field(
            "wan_text_encoder_dir", "empty: the diffusers folder's text_encoder/", folder=True
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
                self.vae_dir,
                self.text_encoder_dir,
            )
        }

        self.demo_note = FittedLabel(DEMO_MODEL_NOTE)
        self.demo_note.setObjectName("demoModelNote")
        self.demo_note.setStyleSheet(
            f"QLabel#demoModelNote {{ color: {COLORS['warning']}; border: 1px solid {COLORS['warning']}; "
            "border-radius: 3px; padding: 4px 6px; }"
        )

        form = QFormLayout(self)
        self._form = form
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
            if name == "musubi_tuner_dir":
                form.addRow("", self._hint(MUSUBI_DIR_HINT))
            if name == "musubi_python":
                form.addRow("", self._hint(MUSUBI_PYTHON_HINT))
            if name == "wan_clip":
                form.addRow("", self._hint("Model files: .safetensors or .pth, as Musubi's docs list them."))
            if name == "wan_model_dir":
                form.addRow("", self.demo_note)
                form.addRow("", self._hint(WAN_FOLDER_HINT))
            if name == "wan_vae_dir":
                form.addRow("", self._hint(VAE_FOLDER_HINT))
            if name == "wan_text_encoder_dir":
                form.addRow("", self._hint(TEXT_ENCODER_FOLDER_HINT))
        # the folder is looked at (its README) once typing pauses, as the fields' own checks are
        self._demo_timer = QTimer(self)
        self._demo_timer.setSingleShot(True)
        self._demo_timer.setInterval(CHECK_DELAY_MS)
        self._demo_timer.timeout.connect(self.refresh_demo_note)
        self.model_dir.edit.textChanged.connect(self._demo_timer.start)
        form.setRowVisible(self.demo_note, False)  # the whole row, so no gap is left while hidden

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = FittedLabel(text)
        label.setObjectName("mutedLabel")
        return label

    @Slot()
    def refresh_demo_note(self) -> None:
        """Show the demo note while the Wan diffusers folder is the demo's tiny model."""
        self._demo_timer.stop()
        demo = is_demo_model_dir(self.model_dir.text())
        self._form.setRowVisible(self.demo_note, demo)
        if demo != self.demo_model:
            self.demo_model = demo
            self.demo_model_changed.emit(demo)

    def load(self, settings) -> None:
        for name, widget in self.fields.items():
            widget.load(str(getattr(settings, name, "") or ""))
        self.refresh_demo_note()

    def values(self) -> dict[str, str]:
        return {name: widget.text() for name, widget in self.fields.items()}
