"""Built-in trainer backend ``builtin``: LoRA training of a diffusers Wan model with PEFT, in this process.

Trains Wan2.1 T2V (1.3B, 14B) and Wan2.2 T2V A14B per expert (``transformer`` is the high-noise
expert, ``transformer_2`` the low-noise one) with Wan's flow-matching objective, on the GPU lane
as a job. It is the backend that can train **synchronised pairs** (A and B draw the same items,
noise and timesteps at every step) and **slider mode** (one LoRA at +1 on A, −1 on B). The work
is :mod:`difflora_gui.train.builtin`; this module stays import-light (no torch).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.specs import TrainerBackendSpec
from difflora_gui.train.builtin.settings import BUILTIN_PARAMS
from difflora_gui.train.config import PAIR_MODES

_JOB = "difflora_gui.train.builtin.job"


@hookimpl
def difflora_register_trainer_backends():
    return [
        TrainerBackendSpec(
            name="builtin",
            title="Built-in (diffusers + PEFT)",
            description=(
                "Trains the LoRA in this app with diffusers and PEFT on a diffusers-format Wan folder: "
                "synchronised pairs (the same noise and timesteps for A and B) and slider mode, "
                "resumable states, comfy-format files."
            ),
            params=BUILTIN_PARAMS,
            run=f"{_JOB}:run_builtin",
            validate=f"{_JOB}:validate_builtin",
            describe=f"{_JOB}:describe_builtin",
            settings_defaults="difflora_gui.train.builtin.settings:settings_defaults",
            pair_modes=PAIR_MODES,
            resumable=True,
        )
    ]
