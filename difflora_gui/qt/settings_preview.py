"""Settings ▸ Preview: compute dtype, memory savers, VAE tiling and slicing, render cache size.

The model it renders with is the Training group's Wan diffusers folder, DiT files and VAE and text
encoder folders (one set of paths for training and preview, edited there); this group names the
model those paths give, live, so a user sees what the preview will load without a second copy of the fields — and, when that is
the demo's tiny random model, that its renders are noise-like clips.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QSpinBox, QWidget

from difflora_gui.qt.fitted_label import FittedLabel
from difflora_gui.settings import AppSettings, setting_bounds

#: the AppSettings fields this group edits
PREVIEW_FIELDS = (
    "preview_dtype",
    "preview_offload",
    "preview_vae_tiling",
    "preview_vae_slicing",
    "preview_cache_mb",
)
#: the Training group's paths the model line names
MODEL_PATH_FIELDS = ("wan_model_dir", "wan_dit", "wan_dit_high_noise", "wan_vae_dir", "wan_text_encoder_dir")

DTYPES = {
    "bf16": (
        "bfloat16",
        "the precision Wan's weights are published in; the choice for GPUs from RTX 30xx on",
    ),
    "fp16": (
        "float16",
        "for GPUs without bfloat16 (RTX 20xx and older); can overflow where bfloat16 does not",
    ),
    "fp32": (
        "float32",
        "twice the memory and slower; a CPU without native bfloat16/float16 (AVX512-BF16, AMX) "
        "computes in float32 whatever is chosen. The VAE always decodes in float32",
    ),
}
OFFLOAD = {
    "none": (
        "None",
        "every part stays on the GPU: the fastest, but it needs VRAM for all of them at once "
        "(the text encoder alone is about 11 GB in bf16)",
    ),
    "model": (
        "Model CPU offload",
        "the text encoder, transformer and VAE move to the GPU one at a time: 1.3B fits 12 GB, "
        "a little slower",
    ),
    "group": (
        "Group offload",
        "each layer streams to the GPU just before it runs: 14B (28 GB of weights in bf16) fits "
        "24 GB, slower still; needs system RAM for the whole model",
    ),
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


#: added to the model line while the Training group's folder is the demo's tiny model
DEMO_MODEL_SUMMARY = (
    "This is the tiny demo model (random weights): its renders are noise-like clips. Point the Wan "
    "diffusers folder under Training at real Wan weights for real results."
)


def preview_problems(values: AppSettings) -> list[str]:
    """The preview settings that are not allowed, one line each naming the setting ('' list: fine)."""
    problems = []
    for f in fields(AppSettings):
        if f.name not in PREVIEW_FIELDS:
            continue
        value = getattr(values, f.name)
        check = f.metadata.get("check")
        if check is not None and (problem := check(value)):
            problems.append(f"Preview {f.name.removeprefix('preview_')}: {problem}")
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(f"Preview render cache: expected {low} to {high} MB, got {value}")
    return problems


def _short(path: str) -> str:
    """A component folder by its last two parts: its own name is often just vae or text_encoder."""
    parts = Path(path).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else path


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def model_summary(
    model_dir: str, dit: str, dit_high: str, vae_dir: str = "", text_encoder_dir: str = ""
) -> str:
    """One line naming the model the preview loads from the Training group's paths."""
    folder = Path(model_dir).name if model_dir else ""
    separate = {"VAE": vae_dir, "text encoder": text_encoder_dir}
    own = [name for name, path in separate.items() if not path]
    elsewhere = "".join(f"; the {name} from {_short(path)}" for name, path in separate.items() if path)
    if dit:
        text = f"the DiT file {Path(dit).name}"
        if dit_high:
            text += f" with the high-noise DiT {Path(dit_high).name}"
        where = f"the diffusers folder {folder}" if folder else "no diffusers folder yet (set one above)"
        if own:
            return f"Renders with {text}; {_and(own)} from {where}{elsewhere}."
        return f"Renders with {text}{elsewhere}; the configs from {where}."
    if folder:
        return f"Renders with the diffusers folder {folder} (its {_and(['transformer', *own])}){elsewhere}."
    return "No model yet: set the Wan diffusers folder under Training above (it serves the preview too)."


class PreviewSettings(QWidget):
    """The Preview group's fields; :meth:`values` gives the AppSettings changes they hold."""

    changed = Signal()

    def __init__(self, training=None, parent: QWidget | None = None):
        super().__init__(parent)
        self._training = training
        self.model_label = FittedLabel()
        self.model_label.setObjectName("mutedLabel")
        self.dtype = QComboBox()
        for key, (title, hint) in DTYPES.items():
            self.dtype.addItem(f"{key} ({title})", key)
            self.dtype.setItemData(self.dtype.count() - 1, hint, Qt.ItemDataRole.ToolTipRole)
        self.offload = QComboBox()
        for key, (title, hint) in OFFLOAD.items():
            self.offload.addItem(title, key)
            self.offload.setItemData(self.offload.count() - 1, hint, Qt.ItemDataRole.ToolTipRole)
        self.offload_hint = self._hint("")
        self.dtype_hint = self._hint("")
        self.vae_tiling = QCheckBox("Decode the video in tiles")
        self.vae_tiling.setToolTip(
            "The VAE decodes the clip tile by tile: far less VRAM at 480p/720p, a few seconds slower"
        )
        self.vae_slicing = QCheckBox("Decode the clips of a batch one at a time")
        self.vae_slicing.setToolTip(
            "VAE slicing: a batch of several clips is decoded one clip at a time, so the decode's peak "
            "VRAM is that of one clip. A preview render decodes a single clip, which slicing leaves "
            "exactly as it is (no memory saved, no pixel changed); for one clip, tiling is the saver"
        )
        self.cache_mb = QSpinBox()
        low, high = setting_bounds("preview_cache_mb")
        self.cache_mb.setRange(int(low), int(high))
        self.cache_mb.setSuffix(" MB")
        self.cache_mb.setSingleStep(256)
        self.cache_mb.setMaximumWidth(160)
        self.cache_mb.setToolTip(f"from {low} to {high} MB")
        self.cache_mb.setAccelerated(True)
        for widget in self.inputs():
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a wheel never grabs the focus

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Model", self.model_label)
        form.addRow("Precision", self.dtype)
        form.addRow("", self.dtype_hint)
        form.addRow("Memory savers", self.offload)
        form.addRow("", self.offload_hint)
        form.addRow("VAE tiling", self.vae_tiling)
        form.addRow("VAE slicing", self.vae_slicing)
        form.addRow("Render cache", self.cache_mb)
        form.addRow(
            "",
            self._hint(
                "Renders kept in each project's workspace; asking for one again replays it at once. "
                "The least recently used go first past this size."
            ),
        )

        self.dtype.currentIndexChanged.connect(self._update_hints)
        self.offload.currentIndexChanged.connect(self._update_hints)
        for signal in (
            self.dtype.currentIndexChanged,
            self.offload.currentIndexChanged,
            self.vae_tiling.toggled,
            self.vae_slicing.toggled,
            self.cache_mb.valueChanged,
        ):
            signal.connect(self.changed)
        if training is not None:
            for name in MODEL_PATH_FIELDS:
                training.fields[name].changed.connect(self.refresh_model)
            training.demo_model_changed.connect(self.refresh_model)
        self._update_hints()
        self.refresh_model()

    @staticmethod
    def _hint(text: str) -> QLabel:
        label = FittedLabel(text)
        label.setObjectName("mutedLabel")
        return label

    def inputs(self) -> list[QWidget]:
        """The inputs a wheel guard should cover."""
        return [self.dtype, self.offload, self.cache_mb]

    @Slot()
    def _update_hints(self) -> None:
        self.dtype_hint.setText(_sentence(DTYPES[self.dtype.currentData()][1]))
        self.offload_hint.setText(_sentence(OFFLOAD[self.offload.currentData()][1]))
        self.offload.setToolTip(self.offload_hint.text())
        self.dtype.setToolTip(self.dtype_hint.text())

    @Slot()
    def refresh_model(self) -> None:
        if self._training is None:
            self.model_label.setText("The model comes from the Training settings (Wan diffusers folder).")
            return
        paths = self._training.fields
        summary = model_summary(*(paths[name].text() for name in MODEL_PATH_FIELDS))
        if self._training.demo_model and not paths["wan_dit"].text():
            summary += " " + DEMO_MODEL_SUMMARY
        self.model_label.setText(summary)

    @staticmethod
    def _select(combo: QComboBox, key: str) -> None:
        index = combo.findData(key)
        combo.setCurrentIndex(max(index, 0))

    def load(self, settings: AppSettings) -> None:
        self._select(self.dtype, settings.preview_dtype)
        self._select(self.offload, settings.preview_offload)
        self.vae_tiling.setChecked(settings.preview_vae_tiling)
        self.vae_slicing.setChecked(settings.preview_vae_slicing)
        self.cache_mb.setValue(settings.preview_cache_mb)
        self.refresh_model()

    def values(self) -> dict[str, object]:
        return {
            "preview_dtype": self.dtype.currentData(),
            "preview_offload": self.offload.currentData(),
            "preview_vae_tiling": self.vae_tiling.isChecked(),
            "preview_vae_slicing": self.vae_slicing.isChecked(),
            "preview_cache_mb": self.cache_mb.value(),
        }
