"""Preview backend ``diffusers``: Wan renders in this process with diffusers, the model kept loaded.

Renders Wan2.1 T2V (1.3B, 14B), Wan2.2 A14B (its two experts) and TI2V-5B from a diffusers-format
folder or single-file DiTs, with the LoRA stack as PEFT adapters whose strengths and block weights
change without reloading the model or re-reading a LoRA file; renders are cached by content. The
work is :mod:`difflora_gui.preview.render`; this module stays import-light (no torch, no diffusers).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.params import Param
from difflora_gui.specs import PreviewBackendSpec
from difflora_gui.train.settings_checks import COMPONENT_FOLDER_PARAMS

_RENDER = "difflora_gui.preview.render"

#: the backend's options: the fields of :class:`difflora_gui.preview.model_files.ModelSettings`
PARAMS = (
    Param(
        "model_dir",
        "path",
        "",
        "a diffusers-format Wan folder (model_index.json; Wan2.1 1.3B/14B, Wan2.2 A14B, TI2V-5B); "
        "default: Settings ▸ Wan diffusers folder",
        title="Wan model folder",
    ),
    Param(
        "dit_file",
        "path",
        "",
        "a single-file DiT in place of the folder's transformer (Wan2.2 A14B: the low-noise expert)",
        title="DiT file",
    ),
    Param(
        "dit_high_file",
        "path",
        "",
        "the single-file high-noise DiT of Wan2.2 A14B",
        title="High-noise DiT file",
    ),
    *COMPONENT_FOLDER_PARAMS,
    Param(
        "dtype",
        "choice",
        "bf16",
        "compute precision (the CPU computes in fp32)",
        choices=("bf16", "fp16", "fp32"),
        title="Precision",
    ),
    Param(
        "offload",
        "choice",
        "none",
        "CPU offload so 14B fits 24 GB: model (whole models moved in and out) or group (layer groups)",
        choices=("none", "model", "group"),
        title="CPU offload",
        advanced=True,
    ),
    Param(
        "vae_tiling",
        "bool",
        False,
        "decode the video in tiles (less memory)",
        title="VAE tiling",
        advanced=True,
    ),
    Param(
        "vae_slicing",
        "bool",
        False,
        "decode a batch's clips one at a time (less memory with several; a single clip is left as it is)",
        title="VAE slicing",
        advanced=True,
    ),
    Param(
        "device",
        "str",
        "auto",
        "auto (a CUDA GPU when present, else the CPU), cpu, cuda or cuda:N",
        title="Device",
        advanced=True,
    ),
)


@hookimpl
def difflora_register_preview_backends():
    return [
        PreviewBackendSpec(
            name="diffusers",
            title="Wan (diffusers, in this app)",
            description=(
                "Renders Wan previews in this app with diffusers: the model stays loaded between "
                "renders, LoRA strengths and block weights change without reloading anything, and "
                "renders are cached in the project."
            ),
            params=PARAMS,
            run=f"{_RENDER}:run_preview",
            model_facts=f"{_RENDER}:model_facts_for",
            cached=f"{_RENDER}:cached_preview",
            settings_defaults=f"{_RENDER}:settings_defaults",
            lane="device",
        )
    ]
