"""Named starting points for the training config: each is a set of TRAIN_CONFIG values.

A preset fills the form (GUI) or the config (``--preset NAME``); fields it does not name keep the
declaration's defaults, and flags given beside it win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.train.config import TRAIN_CONFIG

_MODEL_CARD = {
    "optimizer": "lion",
    "learning_rate": 2e-5,
    "lr_scheduler": "constant_with_warmup",
    "lr_warmup_steps": 50,
    "network_dim": 16,
    "network_alpha": 16.0,
    "max_train_steps": 5000,
    "batch_size": 1,
    "resolution": "336x192",
    "captions": "empty",
}


@dataclass(frozen=True)
class TrainPreset:
    name: str
    title: str
    description: str
    values: dict[str, Any]


PRESETS = (
    TrainPreset(
        "model-card",
        "Model card (Anime Denser, Wan2.1 14B)",
        "Lion, lr 2e-5, constant_with_warmup with 50 warm-up steps, rank 16, 5000 steps, batch size 1, "
        "192p images, empty captions",
        {"task": "t2v-14B", **_MODEL_CARD},
    ),
    TrainPreset(
        "wan22-a14b-per-expert",
        "Wan2.2 A14B T2V, one LoRA per expert",
        "the model card's settings on Wan2.2 A14B: high-noise and low-noise LoRAs trained on "
        "timesteps 875-1000 and 0-875 (a pair becomes four runs)",
        {"task": "t2v-A14B", "expert_mode": "per_expert", **_MODEL_CARD},
    ),
    TrainPreset(
        "wan22-a14b-joint",
        "Wan2.2 A14B T2V, one file for both experts (Musubi)",
        "the model card's settings with Musubi's joint mode: one LoRA trained across both experts",
        {"task": "t2v-A14B", "expert_mode": "joint", "pair_mode": "independent", **_MODEL_CARD},
    ),
    TrainPreset(
        "musubi-docs",
        "Musubi Tuner docs example (Wan2.1 1.3B)",
        "AdamW8bit, lr 2e-4, rank 32, shift 3.0: the example of Musubi's docs/wan.md",
        {
            "task": "t2v-1.3B",
            "optimizer": "adamw8bit",
            "learning_rate": 2e-4,
            "lr_scheduler": "constant",
            "lr_warmup_steps": 0,
            "network_dim": 32,
            "network_alpha": 32.0,
            "timestep_sampling": "shift",
            "discrete_flow_shift": 3.0,
        },
    ),
    TrainPreset(
        "quick-test",
        "Quick test (tiny, CPU)",
        "30 steps at rank 4 in float32: checks that a dataset and a model train at all, in minutes",
        {
            "task": "t2v-1.3B",
            "optimizer": "adamw",
            "learning_rate": 1e-3,
            "lr_scheduler": "constant",
            "lr_warmup_steps": 0,
            "network_dim": 4,
            "network_alpha": 4.0,
            "max_train_steps": 30,
            "save_every_n_steps": 10,
            "resolution": "64",
            "mixed_precision": "no",
            "gradient_checkpointing": False,
        },
    ),
)
PRESET_NAMES = tuple(preset.name for preset in PRESETS)


def preset(name: str) -> TrainPreset:
    for item in PRESETS:
        if item.name == name:
            return item
    raise UserError(f"unknown training preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")


def preset_values(name: str) -> dict[str, Any]:
    """The full config of preset ``name``: the declaration's defaults with the preset's values, checked."""
    return TRAIN_CONFIG.to_recipe({**TRAIN_CONFIG.defaults(), **preset(name).values})
