"""The Preview panel's render form: backend and model, prompt, seed, size, length and sampling.

Every field maps to a :class:`~difflora_gui.preview.request.PreviewRequest` field
(:meth:`RenderForm.values`); the LoRA stack is the other half of a request (:mod:`.lora_stack`).
Sizes are multiples of 16 and frame counts 4N+1 (Wan's VAE), enforced by the inputs themselves
(steps of 16 and 4, typed values snapped), so a request built from the form is always valid.
"Accelerator preset" sets steps, guidance, shift and sampler for a lightx2v-style LoRA in the
stack (:data:`~difflora_gui.preview.request.ACCELERATOR_PRESET`). The model line names the model
the chosen backend renders with (``ModelFacts.label``), or says what is missing with a
Settings… button. :class:`RenderBar` is the row of Render, Auto-render, Cancel and the progress,
over the stale line (:func:`difference_text`: what changed since the render on show).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.preview.request import ACCELERATOR_PRESET, SAMPLERS, LoraEntry, PreviewRequest
from difflora_gui.qt.merge.run_bar import StatusLine
from difflora_gui.qt.preview.backend_options import BackendOptions
from difflora_gui.qt.theme import narrow_combo, section_card, snug

#: ``(label, width, height)``; the tiny one is for a quick look (and the test model)
SIZE_PRESETS = (
    ("832×480 (landscape)", 832, 480),
    ("480×832 (portrait)", 480, 832),
    ("1280×720 (HD)", 1280, 720),
    ("Tiny 64×64 (quick check)", 64, 64),
)
SEED_MAX = 2**31 - 1
MAX_SIDE = 2048
MAX_FRAMES = 161
DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "seed": 0,
    "width": 832,
    "height": 480,
    "frames": 33,
    "fps": 16,
    "steps": 30,
    "guidance": 5.0,
    "flow_shift": 3.0,
    "sampler": "unipc",
}
REQUEST_FIELDS = tuple(DEFAULTS)
PROMPT_LINES = 3
RENDER_KEYS = "Ctrl+Return"


def snap_frames(value: int) -> int:
    """The nearest frame count of the form 4N+1 (at least 1)."""
    return max(1, 4 * round((int(value) - 1) / 4) + 1)


def snap_side(value: int) -> int:
    """The nearest multiple of 16 (at least 16)."""
    return max(16, 16 * round(int(value) / 16))


def _strength_text(entry: LoraEntry) -> str:
    if entry.strength_high is not None or entry.strength_low is not None:
        return f"strength H {entry.strength_for('high'):g} / L {entry.strength_for('low'):g}"
    return f"strength {entry.strength:g}"


def entry_text(entry: LoraEntry) -> str:
    text = _strength_text(entry)
    if entry.selector != "all":
        text += f", blocks {entry.selector}"
    if entry.expert != "both":
        text += f", {entry.expert} expert"
    return text


def _entry_changes(old: LoraEntry, new: LoraEntry) -> tuple[list[str], list[str]]:
    """What differs between two settings of one entry, as (before, after) phrases."""
    pairs = [
        (_strength_text(old), _strength_text(new)),
        (f"selector {old.selector}", f"selector {new.selector}"),
        (f"{old.expert} expert", f"{new.expert} expert"),
    ]
    changed = [(a, b) for a, b in pairs if a != b]
    return [a for a, _ in changed], [b for _, b in changed]


def difference_text(shown: PreviewRequest | None, current: PreviewRequest, index: int) -> str:
    """ "shown: strength 1.5; current: strength 2 — Render" when the inputs changed since the shown
    render ("" when they did not); ``index``: the selected entry, described first."""
    if shown is None or shown == current:
        return ""
    parts_shown, parts_now = [], []
    entries = [(i, e) for i, e in enumerate(current.loras)]
    old = list(shown.loras)
    if len(old) != len(current.loras) or [e.file for e in old] != [e.file for e in current.loras]:
        parts_shown.append(f"{len(old)} LoRA{'s' if len(old) != 1 else ''}")
        parts_now.append(f"{len(current.loras)} LoRA{'s' if len(current.loras) != 1 else ''}")
    else:
        entries.sort(key=lambda pair: pair[0] != index)
        for i, entry in entries:
            before, after = _entry_changes(old[i], entry)
            prefix = "" if i == index else f"{Path(entry.file).stem}: "
            parts_shown += [prefix + text for text in before]
            parts_now += [prefix + text for text in after]
    for name in (
        "prompt",
        "negative_prompt",
        "seed",
        "width",
        "height",
        "frames",
        "fps",
        "steps",
        "guidance",
        "flow_shift",
        "sampler",
    ):
        before, after = getattr(shown, name), getattr(current, name)
        if before != after:
            label = name.replace("_", " ")
            if name.endswith("prompt"):
                parts_shown.append(f"an earlier {label}")
                parts_now.append(f"{label} edited")
                continue
            parts_shown.append(f"{label} {before:g}" if isinstance(before, float) else f"{label} {before}")
            parts_now.append(f"{label} {after:g}" if isinstance(after, float) else f"{label} {after}")
    if not parts_now:
        return "the inputs changed since this render — Render"
    return f"shown: {'; '.join(parts_shown[:2])} · current: {'; '.join(parts_now[:2])} — Render"


class _SnappingSpin(QSpinBox):
    """A spin box whose typed value is snapped (4N+1, multiples of 16) when editing ends."""

    def __init__(self, snap, parent: QWidget | None = None):
        super().__init__(parent)
        self._snap = snap
        self.editingFinished.connect(self._apply_snap)

    def _apply_snap(self) -> None:
        snapped = self._snap(self.value())
        if snapped != self.value():
            self.setValue(snapped)


def _prompt_edit(name: str, placeholder: str, lines: int) -> QPlainTextEdit:
    edit = QPlainTextEdit()
    edit.setObjectName(name)
    edit.setPlaceholderText(placeholder)
    edit.setTabChangesFocus(True)  # Tab moves on, as in every form
    metrics = edit.fontMetrics()
    edit.setFixedHeight(metrics.lineSpacing() * lines + 12)
    return edit


class RenderForm(QWidget):
    """The render settings. ``changed(key)`` fires on every edit (``key``: the field changed)."""

    changed = Signal(str)
    #: the user asked for the Settings dialog (the model is not configured)
    settings_requested = Signal()

    def __init__(self, backends: Mapping[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.backends = dict(backends)
        self._quiet = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        card, card_layout = section_card("Render")
        layout.addWidget(card)
        self._build(card_layout)
        self._connect()

    # --- building ----------------------------------------------------------------------------

    def _build(self, layout: QVBoxLayout) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setSpacing(6)
        self.backend_combo = QComboBox()
        self.backend_combo.setObjectName("previewBackendCombo")
        narrow_combo(self.backend_combo, 16)  # a plugin's long backend title must not widen the form
        for name, spec in self.backends.items():
            self.backend_combo.addItem(spec.title, name)
            self.backend_combo.setItemData(
                self.backend_combo.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole
            )
        self._row(form, "&Backend", self.backend_combo)
        model_row = QHBoxLayout()
        self.model_label = QLabel()
        self.model_label.setObjectName("previewModelLabel")
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.settings_button = QPushButton("Settings…")
        self.settings_button.setObjectName("previewSettingsButton")
        self.settings_button.setToolTip("Settings ▸ Models: the Wan folder or files the preview renders with")
        self.settings_button.clicked.connect(self.settings_requested)
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignTop)
        form.addRow("Model", model_row)
        self.options_box = BackendOptions(self.backends)  # the chosen backend's own options
        form.addRow(self.options_box)
        self.prompt_edit = _prompt_edit("previewPrompt", "What the clip shows", PROMPT_LINES)
        self._row(form, "&Prompt", self.prompt_edit)
        self.negative_edit = _prompt_edit("previewNegative", "What it should not show (optional)", 2)
        self._row(form, "&Negative", self.negative_edit)
        seed_row = QHBoxLayout()
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("previewSeed")
        self.seed_spin.setRange(0, SEED_MAX)
        self.dice_button = QToolButton()
        self.dice_button.setObjectName("previewSeedDice")
        self.dice_button.setText("Random")
        self.dice_button.setToolTip("A random seed (the dice)")
        self.dice_button.clicked.connect(self.random_seed)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.dice_button)
        self._row(form, "&Seed", seed_row, buddy=self.seed_spin)
        size_row = QHBoxLayout()
        self.width_spin = self._side_spin("previewWidth")
        self.height_spin = self._side_spin("previewHeight")
        times = QLabel("×")
        self.size_combo = QComboBox()
        self.size_combo.setObjectName("previewSizePreset")
        narrow_combo(self.size_combo, 4)
        self.size_combo.addItem("Preset…", None)
        for label, width, height in SIZE_PRESETS:
            self.size_combo.addItem(label, (width, height))
        self.size_combo.setToolTip("Fill in a common size")
        size_row.addWidget(self.width_spin, 1)
        size_row.addWidget(times)
        size_row.addWidget(self.height_spin, 1)
        size_row.addWidget(self.size_combo)
        self._row(form, "Si&ze", size_row, buddy=self.width_spin)
        length_row = QHBoxLayout()
        self.frames_spin = _SnappingSpin(snap_frames)
        self.frames_spin.setObjectName("previewFrames")
        self.frames_spin.setRange(1, MAX_FRAMES)
        self.frames_spin.setSingleStep(4)
        self.frames_spin.setToolTip("Frames: 4N+1 (1, 5, 9 … 81), as Wan's video VAE needs")
        self.fps_spin = QSpinBox()
        self.fps_spin.setObjectName("previewFps")
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setSuffix(" fps")
        length_row.addWidget(self.frames_spin, 1)
        length_row.addWidget(self.fps_spin, 1)
        self._row(form, "&Frames", length_row, buddy=self.frames_spin)
        sampling_row = QHBoxLayout()
        self.steps_spin = QSpinBox()
        self.steps_spin.setObjectName("previewSteps")
        self.steps_spin.setRange(1, 200)
        self.steps_spin.setSuffix(" steps")
        self.sampler_combo = QComboBox()
        self.sampler_combo.setObjectName("previewSampler")
        self.sampler_combo.addItems(list(SAMPLERS))
        sampling_row.addWidget(self.steps_spin, 1)
        sampling_row.addWidget(self.sampler_combo, 1)
        self._row(form, "S&teps", sampling_row, buddy=self.steps_spin)
        guidance_row = QHBoxLayout()
        self.guidance_spin = self._float_spin(
            "previewGuidance", 0.0, 30.0, 0.5, "Guidance scale (CFG); 1 = none"
        )
        self.guidance_spin.setPrefix("CFG ")
        self.shift_spin = self._float_spin(
            "previewShift", 0.0, 30.0, 0.5, "Flow shift of the sampler's schedule"
        )
        self.shift_spin.setPrefix("shift ")
        guidance_row.addWidget(self.guidance_spin, 1)
        guidance_row.addWidget(self.shift_spin, 1)
        self._row(form, "&Guidance", guidance_row, buddy=self.guidance_spin)
        layout.addLayout(form)
        preset_row = QHBoxLayout()
        self.accelerator_button = QPushButton("&Accelerator LoRA preset")
        self.accelerator_button.setObjectName("previewAcceleratorButton")
        preset = ACCELERATOR_PRESET
        self.accelerator_button.setToolTip(
            f"For a lightx2v-style accelerator LoRA in the stack: {preset['steps']} steps, guidance "
            f"{preset['guidance']:g}, shift {preset['flow_shift']:g}, {preset['sampler']} (Edit ▸ Undo takes it back)"
        )
        self.accelerator_button.clicked.connect(self.apply_accelerator_preset)
        preset_row.addStretch(1)
        preset_row.addWidget(self.accelerator_button)
        layout.addLayout(preset_row)
        self.set_values(DEFAULTS)

    @staticmethod
    def _row(form: QFormLayout, text: str, field, *, buddy: QWidget | None = None) -> None:
        label = QLabel(text)
        label.setBuddy(buddy if buddy is not None else field)
        form.addRow(label, field)

    @staticmethod
    def _side_spin(name: str) -> QSpinBox:
        spin = _SnappingSpin(snap_side)
        spin.setObjectName(name)
        spin.setRange(16, MAX_SIDE)
        spin.setSingleStep(16)
        spin.setToolTip("Pixels, a multiple of 16")
        return spin

    @staticmethod
    def _float_spin(name: str, low: float, high: float, step: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setObjectName(name)
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setDecimals(2)
        spin.setToolTip(tip)
        return spin

    def _connect(self) -> None:
        self.backend_combo.currentIndexChanged.connect(lambda _i: self._emit("backend"))
        self.prompt_edit.textChanged.connect(lambda: self._emit("prompt"))
        self.negative_edit.textChanged.connect(lambda: self._emit("negative_prompt"))
        for key, spin in self.spins().items():
            spin.valueChanged.connect(lambda _v, k=key: self._emit(k))
        self.sampler_combo.currentIndexChanged.connect(lambda _i: self._emit("sampler"))
        self.size_combo.activated.connect(self._on_size_preset)
        self.options_box.connect_form(self)

    def focus_chain(self) -> list[QWidget]:
        """The form's inputs in reading order (for the panel's tab order)."""
        return [
            self.backend_combo,
            self.settings_button,
            *self.options_box.focus_chain(),
            self.prompt_edit,
            self.negative_edit,
            self.seed_spin,
            self.dice_button,
            self.width_spin,
            self.height_spin,
            self.size_combo,
            self.frames_spin,
            self.fps_spin,
            self.steps_spin,
            self.sampler_combo,
            self.guidance_spin,
            self.shift_spin,
            self.accelerator_button,
        ]

    def spins(self) -> dict[str, QSpinBox | QDoubleSpinBox]:
        return {
            "seed": self.seed_spin,
            "width": self.width_spin,
            "height": self.height_spin,
            "frames": self.frames_spin,
            "fps": self.fps_spin,
            "steps": self.steps_spin,
            "guidance": self.guidance_spin,
            "flow_shift": self.shift_spin,
        }

    def _emit(self, key: str) -> None:
        if not self._quiet:
            self.changed.emit(key)

    # --- values ------------------------------------------------------------------------------

    def backend_name(self) -> str:
        return self.backend_combo.currentData() or ""

    def values(self) -> dict[str, Any]:
        """The request fields the form holds (valid by construction), the backend's name and options."""
        spins = self.spins()
        values: dict[str, Any] = {
            "prompt": self.prompt_edit.toPlainText().strip(),
            "negative_prompt": self.negative_edit.toPlainText().strip(),
            "sampler": self.sampler_combo.currentText(),
        }
        for key in ("seed", "fps", "steps"):
            values[key] = int(spins[key].value())
        values["width"] = snap_side(self.width_spin.value())
        values["height"] = snap_side(self.height_spin.value())
        values["frames"] = snap_frames(self.frames_spin.value())
        values["guidance"] = float(self.guidance_spin.value())
        values["flow_shift"] = float(self.shift_spin.value())
        return {**values, "backend": self.backend_name(), "options": self.options_box.stored()}

    def request_fields(self) -> dict[str, Any]:
        values = self.values()
        return {key: values[key] for key in REQUEST_FIELDS}

    def set_values(self, values: Mapping[str, Any], *, quiet: bool = True) -> None:
        """Show ``values`` (missing keys keep what is shown); ``quiet``: no ``changed`` signal."""
        self._quiet += quiet
        try:
            if "backend" in values:
                index = self.backend_combo.findData(values["backend"])
                if index >= 0:
                    self.backend_combo.setCurrentIndex(index)
            self.options_box.take(values, whole=set(DEFAULTS) <= set(values))
            if "prompt" in values and values["prompt"] != self.prompt_edit.toPlainText():
                self.prompt_edit.setPlainText(str(values["prompt"]))
            if "negative_prompt" in values and values["negative_prompt"] != self.negative_edit.toPlainText():
                self.negative_edit.setPlainText(str(values["negative_prompt"]))
            for key, spin in self.spins().items():
                if key in values:
                    try:
                        spin.setValue(type(spin.value())(values[key]))
                    except (TypeError, ValueError):
                        continue  # a damaged project value: the form keeps what it shows
            if "sampler" in values:
                index = self.sampler_combo.findText(str(values["sampler"]))
                if index >= 0:
                    self.sampler_combo.setCurrentIndex(index)
        finally:
            self._quiet -= quiet

    def apply(self, values: Mapping[str, Any], key: str) -> None:
        """Set several fields as one edit (``changed(key)`` once)."""
        self.set_values(values, quiet=True)
        self._emit(key)

    def apply_accelerator_preset(self) -> None:
        self.apply(ACCELERATOR_PRESET, "accelerator preset")

    def random_seed(self) -> None:
        self.apply({"seed": random.randint(0, SEED_MAX)}, "seed")

    def _on_size_preset(self, index: int) -> None:
        size = self.size_combo.itemData(index)
        self.size_combo.setCurrentIndex(0)  # a choice, not a state: the spin boxes show the size
        if size:
            self.apply({"width": size[0], "height": size[1]}, "size")

    # --- the model line ----------------------------------------------------------------------

    def show_model(self, text: str, *, ok: bool) -> None:
        """The model the backend renders with, or (``ok=False``) what is missing and where to set it."""
        self.model_label.setText(text)
        self.model_label.setToolTip(text)
        self.model_label.setStyleSheet("" if ok else "color: #e0b060;")
        self.settings_button.setVisible(not ok)


class RenderBar(QFrame):
    """Render, Auto-render, Cancel and the progress bar (with ETA) in one row that never moves;
    under it the stale line (what changed since the render on show) and the last outcome, each
    one line elided to the width."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sectionCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)
        row = QHBoxLayout()
        self.render_button = QPushButton("&Render")
        self.render_button.setObjectName("previewRenderButton")
        self.render_button.setDefault(True)
        self.render_button.setMinimumWidth(120)
        self.render_button.setShortcut(RENDER_KEYS)
        self.render_button.setToolTip(f"Render the clip with these settings ({RENDER_KEYS})")
        self.auto_check = QCheckBox("A&uto-render")
        self.auto_check.setObjectName("previewAutoRender")
        self.auto_check.setToolTip(
            "Render after every change (the newest request first; older waiting ones are dropped)"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("previewCancelButton")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("previewProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(60)
        snug(self.cancel_button)
        row.addWidget(self.render_button)
        row.addWidget(self.auto_check)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        self.stale_line = StatusLine()
        self.stale_line.setObjectName("previewStale")
        layout.addWidget(self.stale_line)
        self.status_line = StatusLine()
        self.status_line.setObjectName("previewStatus")
        layout.addWidget(self.status_line)
