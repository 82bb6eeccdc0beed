"""The Musubi Tuner backend's own settings: where Musubi and the Wan files are, and how it runs.

These are the backend's ``params`` (a form in the GUI, flags on the command line); the config
A and B share is :data:`difflora_gui.train.config.TRAIN_CONFIG`. Paths default to the app's
Settings (:func:`settings_defaults`), so a user sets them once.
"""

from __future__ import annotations

from typing import Any

from difflora_gui.params import Param, when

ATTENTIONS = ("sdpa", "flash_attn", "xformers", "flash3")
STOP_AND_KEEP = ("next_checkpoint", "now")
#: what Musubi's docs use for its data loader; Musubi's own default (8) starts eight processes
DEFAULT_LOADER_WORKERS = 2
#: the text-encoder cache's batch size in Musubi's docs
TE_CACHE_BATCH_SIZE = 16

_MULTI = when(multi_gpu=True)

MUSUBI_PARAMS = (
    Param(
        "musubi_dir",
        "path",
        "",
        "the musubi-tuner checkout (the folder with src/musubi_tuner/wan_train_network.py)",
        title="Musubi Tuner folder",
        group="programs",
    ),
    Param(
        "python",
        "path",
        "",
        "the Python that runs Musubi Tuner (its venv's python); empty: this app's Python",
        group="programs",
    ),
    Param(
        "dit",
        "path",
        "",
        "the Wan DiT .safetensors (for Wan2.2 A14B: the low-noise expert)",
        title="DiT",
        group="models",
    ),
    Param(
        "dit_high_noise",
        "path",
        "",
        "Wan2.2 A14B: the high-noise expert's DiT .safetensors",
        title="High-noise DiT",
        group="models",
    ),
    Param("vae", "path", "", "the Wan VAE (Wan2.1's, also for Wan2.2 A14B)", title="VAE", group="models"),
    Param(
        "t5",
        "path",
        "",
        "the umt5-xxl text encoder (models_t5_umt5-xxl-enc-bf16.pth)",
        title="T5",
        group="models",
    ),
    Param("clip", "path", "", "Wan2.1 I2V only: the CLIP image encoder", title="CLIP", group="models"),
    Param(
        "attention",
        "choice",
        "sdpa",
        "attention kernel (sdpa works everywhere; the others need their package installed)",
        choices=ATTENTIONS,
        group="memory",
    ),
    Param("fp8_base", "bool", False, "load the DiT weights in fp8 (about half the memory)", group="memory"),
    Param(
        "fp8_scaled",
        "bool",
        False,
        "block-wise scaled fp8 from fp16/bf16 weights (better quality than plain fp8; needs fp8_base)",
        group="memory",
    ),
    Param("fp8_t5", "bool", False, "run the T5 in fp8 while caching (under ~16 GB of VRAM)", group="memory"),
    Param(
        "blocks_to_swap",
        "int",
        0,
        "transformer blocks kept in CPU memory and swapped in (0: none; at most 39 for 14B, 29 for 1.3B)",
        minimum=0,
        maximum=39,
        group="memory",
    ),
    Param(
        "offload_inactive_dit",
        "bool",
        False,
        "Wan2.2 joint mode: keep the inactive expert in CPU memory (not with block swap)",
        group="memory",
    ),
    Param(
        "vae_cache_cpu",
        "bool",
        False,
        "keep the VAE's cache in CPU memory while caching latents",
        group="memory",
    ),
    Param(
        "max_data_loader_n_workers",
        "int",
        DEFAULT_LOADER_WORKERS,
        "data-loader processes (0: load in the training process)",
        minimum=0,
        group="run",
        advanced=True,
    ),
    Param("multi_gpu", "bool", False, "train on several GPUs through accelerate launch", group="run"),
    Param(
        "num_processes",
        "int",
        2,
        "GPUs (processes) for multi-GPU training",
        minimum=2,
        group="run",
        visible_when=_MULTI,
    ),
    Param(
        "stop_and_keep",
        "choice",
        "next_checkpoint",
        "what Stop and keep does (Musubi saves nothing when stopped): next_checkpoint waits for the "
        "next checkpoint it writes, now stops at once and keeps the newest one written",
        choices=STOP_AND_KEEP,
        group="run",
    ),
    Param(
        "sample_prompts",
        "path",
        "",
        "a prompt file (.txt/.toml/.json) for samples during training (needs the VAE and the T5)",
        group="samples",
        advanced=True,
    ),
    Param(
        "sample_every_n_steps",
        "int",
        0,
        "render the sample prompts every N steps (0: never)",
        minimum=0,
        group="samples",
        advanced=True,
    ),
    Param(
        "extra_args",
        "list",
        [],
        "extra flags appended to wan_train_network.py's command, one argument per item (--flag, value)",
        group="run",
        advanced=True,
    ),
)

#: AppSettings field -> backend param
_FROM_SETTINGS = {
    "musubi_tuner_dir": "musubi_dir",
    "musubi_python": "python",
    "wan_dit": "dit",
    "wan_dit_high_noise": "dit_high_noise",
    "wan_vae": "vae",
    "wan_t5": "t5",
    "wan_clip": "clip",
}


def settings_defaults(settings) -> dict[str, Any]:
    """The backend's defaults from the app's Settings (only the fields that are set)."""
    values = {}
    for field, param in _FROM_SETTINGS.items():
        value = getattr(settings, field, "") or ""
        if str(value).strip():
            values[param] = str(value)
    return values
