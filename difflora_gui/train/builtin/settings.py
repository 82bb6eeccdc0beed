"""The built-in trainer's own settings (the model folder, the device, precision) and how they resolve.

These are the backend's ``TrainerBackendSpec.params``: a form in the GUI, flags on the command
line; the training config A and B share is :data:`difflora_gui.train.config.TRAIN_CONFIG`.
Import-light: no torch at import (the plugin module reads :data:`BUILTIN_PARAMS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.params import Param
from difflora_gui.train.settings_checks import COMPONENT_FOLDER_PARAMS

DTYPES = ("auto", "float32", "bfloat16", "float16")

BUILTIN_PARAMS = (
    Param(
        "model",
        "path",
        "",
        "a diffusers-format Wan folder (model_index.json, transformer[ and transformer_2], vae, "
        "text_encoder, tokenizer); default: Settings ▸ Wan diffusers folder",
        title="Wan model folder",
    ),
    *COMPONENT_FOLDER_PARAMS,
    Param(
        "device",
        "str",
        "auto",
        "auto (the job's device, else CUDA when present, else the CPU), cpu, cuda or cuda:N",
    ),
    Param(
        "dtype",
        "choice",
        "auto",
        "compute precision: auto (bf16 autocast on CUDA when mixed_precision is bf16, float32 on the CPU), "
        "float32, bfloat16 or float16 (autocast; the LoRA weights stay float32)",
        choices=DTYPES,
        advanced=True,
    ),
    Param(
        "latent_cache",
        "bool",
        True,
        "keep the VAE latents and text embeddings in the output folder's .builtin-cache/ so a resume "
        "or a second run does not encode them again",
        advanced=True,
    ),
    Param(
        "num_threads",
        "int",
        0,
        "CPU threads torch uses while training (0: torch's default)",
        minimum=0,
        advanced=True,
    ),
)


#: AppSettings field -> param
_FROM_SETTINGS = {
    "wan_model_dir": "model",
    "wan_vae_dir": "vae_dir",
    "wan_text_encoder_dir": "text_encoder_dir",
}


def settings_defaults(settings) -> dict[str, Any]:
    """The app's Settings as defaults of :data:`BUILTIN_PARAMS` (the model, VAE and text encoder
    folders; only those that are set)."""
    values = {}
    for field, param in _FROM_SETTINGS.items():
        value = str(getattr(settings, field, "") or "").strip()
        if value:
            values[param] = value
    return values


def backend_settings(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``given`` over the declared defaults, checked (a run's ``backend_config`` may be partial)."""
    values = {param.name: param.default for param in BUILTIN_PARAMS}
    values.update({k: v for k, v in (given or {}).items() if v is not None and v != ""})
    values = {param.name: param.coerce(values[param.name]) for param in BUILTIN_PARAMS}
    if not str(values["model"]).strip():
        raise UserError(
            "the built-in trainer needs a diffusers Wan folder: set Settings ▸ Wan diffusers folder or pass --model"
        )
    return values


def component_dirs(values: Mapping[str, Any]) -> dict[str, str]:
    """The VAE and text encoder folders set instead of the model folder's own ('' for its own)."""
    return {
        "vae_dir": str(values.get("vae_dir") or "").strip(),
        "text_encoder_dir": str(values.get("text_encoder_dir") or "").strip(),
    }


def problem_field(text: str, values: Mapping[str, Any]) -> str:
    """The param a layout problem is about: a VAE or text encoder folder set here, else the model."""
    for name in ("vae_dir", "text_encoder_dir"):
        folder = str(values.get(name) or "").strip()
        if folder and text.startswith(str(Path(folder).expanduser())):
            return name
    return "model"


@dataclass(frozen=True)
class Precision:
    """How a run computes: the device, the dtype the frozen model is stored in, and autocast."""

    device: str  # "cpu", "cuda:0"
    weight_dtype: str  # the frozen transformer's dtype: "float32", "bfloat16", "float16"
    autocast: str | None  # None, "bfloat16" or "float16"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "weight_dtype": self.weight_dtype, "autocast": self.autocast}


def resolve_device(setting: str, job_device: str | None = None) -> str:
    """``auto`` → the job's lane device when it names one, else ``cuda:0`` when CUDA works, else ``cpu``."""
    import torch

    value = str(setting or "auto").strip().lower()
    if value == "auto":
        value = str(job_device or "auto").strip().lower()
    if value == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if value == "cpu":
        return "cpu"
    if value == "cuda":
        value = "cuda:0"
    if value.startswith("cuda:") and value[5:].isdigit():
        if not torch.cuda.is_available():
            raise UserError(f"device {setting!r}: this torch build sees no CUDA GPU (use cpu)")
        if int(value[5:]) >= torch.cuda.device_count():
            raise UserError(f"device {setting!r}: only {torch.cuda.device_count()} CUDA GPU(s) are present")
        return value
    raise UserError(f"unknown device {setting!r} (use auto, cpu, cuda or cuda:N)")


def resolve_precision(device: str, dtype_setting: str, mixed_precision: str) -> Precision:
    """The device's precision: ``auto`` follows the config's ``mixed_precision`` on CUDA, float32 on the CPU.

    Autocast keeps the trained LoRA weights and the optimizer in float32; on CUDA the frozen model
    is stored in the autocast dtype (a 14B model in float32 would need 56 GB).
    """
    setting = str(dtype_setting or "auto")
    if setting == "auto":
        if device.startswith("cuda"):
            setting = {"bf16": "bfloat16", "fp16": "float16"}.get(mixed_precision, "float32")
        else:
            setting = "float32"
    if setting not in DTYPES:
        raise UserError(f"unknown dtype {dtype_setting!r} (use {', '.join(DTYPES)})")
    if setting == "float32":
        return Precision(device, "float32", None)
    weight = setting if device.startswith("cuda") else "float32"
    return Precision(device, weight, setting)
