"""The training config A and B share, declared once (form, flags, stored recipe).

A differential LoRA is clean when A and B differ only in their data, so a pair run stores this
config once and the two runs get exactly these values; only the dataset differs. A backend's own
settings (model files, the Musubi checkout) are its ``TrainerBackendSpec.params``, not part of
this config. Names follow Musubi Tuner's flags where one exists (``network_dim``, ``lr_scheduler``),
so a Musubi user recognises every field.
"""

from __future__ import annotations

from difflora_gui.config import ConfigDeclaration
from difflora_gui.params import Param, when

#: Musubi's ``--task`` values this app trains (Musubi has no TI2V-5B training)
TASKS = ("t2v-1.3B", "t2v-14B", "i2v-14B", "t2v-A14B", "i2v-A14B")
#: the Wan2.2 tasks with a high-noise and a low-noise expert
TWO_EXPERT_TASKS = ("t2v-A14B", "i2v-A14B")
EXPERTS = ("high", "low")
#: Musubi's docs: the timestep window (of 0..1000) each expert is trained on, per task
EXPERT_WINDOWS = {
    "t2v-A14B": {"high": (875, 1000), "low": (0, 875)},
    "i2v-A14B": {"high": (900, 1000), "low": (0, 900)},
}
#: Musubi's ``--timestep_boundary`` (an integer of 0..1000) for the joint mode
EXPERT_BOUNDARIES = {"t2v-A14B": 875, "i2v-A14B": 900}
#: per_expert: one LoRA per expert (a pair becomes four runs); joint: Musubi's one file for both
EXPERT_MODES = ("per_expert", "joint")
OPTIMIZERS = ("adamw", "adamw8bit", "lion", "prodigy", "adafactor")
SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "cosine",
    "cosine_with_restarts",
    "linear",
    "polynomial",
)
TIMESTEP_SAMPLINGS = ("shift", "sigma", "uniform", "sigmoid")
PRECISIONS = ("bf16", "fp16", "no")
#: independent: two ordinary runs; synchronised: the same item order, noise and timestep at every
#: step of A and B; slider: one LoRA trained as the difference (+1 on A, -1 on B)
PAIR_MODES = ("synchronised", "independent", "slider")
#: empty: every item gets an empty caption (the model card's choice); files: <stem>.txt beside each item
CAPTION_MODES = ("empty", "files")

_TWO_EXPERTS = when(task=TWO_EXPERT_TASKS)
_WARMUP = when(lambda values: values.get("lr_scheduler") != "constant")

TRAIN_PARAMS = (
    Param(
        "task",
        "choice",
        "t2v-14B",
        "the Wan model trained on (Musubi's --task)",
        choices=TASKS,
        group="model",
    ),
    Param(
        "expert_mode",
        "choice",
        "per_expert",
        "Wan2.2 A14B: per_expert trains a high-noise and a low-noise LoRA on their timestep windows "
        "(a pair becomes four runs); joint trains one file for both experts (Musubi only)",
        choices=EXPERT_MODES,
        group="model",
        visible_when=_TWO_EXPERTS,
    ),
    Param(
        "pair_mode",
        "choice",
        "synchronised",
        "how A and B are trained together: synchronised (same order, noise and timesteps; built-in "
        "trainer), independent (two ordinary runs), slider (one LoRA trained as the difference)",
        choices=PAIR_MODES,
        group="pair",
    ),
    Param("seed", "int", 42, "random seed (the same for A and B)", minimum=0, group="schedule"),
    Param("max_train_steps", "int", 5000, "optimizer steps of each run", minimum=1, group="schedule"),
    Param("batch_size", "int", 1, "items per step", minimum=1, group="schedule"),
    Param(
        "save_every_n_steps",
        "int",
        500,
        "write a checkpoint (and a resumable state) every N steps; 0: only at the end",
        minimum=0,
        group="schedule",
    ),
    Param(
        "save_state",
        "bool",
        True,
        "keep a resumable state with each checkpoint (Stop and keep, Resume)",
        group="schedule",
    ),
    Param(
        "optimizer",
        "choice",
        "lion",
        "adamw, adamw8bit (bitsandbytes), lion (lion-pytorch), prodigy (prodigyopt), adafactor",
        choices=OPTIMIZERS,
        group="optimizer",
    ),
    Param("learning_rate", "float", 2e-5, "learning rate", minimum=0.0, group="optimizer"),
    Param(
        "lr_scheduler",
        "choice",
        "constant_with_warmup",
        "learning-rate schedule",
        choices=SCHEDULERS,
        group="optimizer",
    ),
    Param(
        "lr_warmup_steps",
        "int",
        50,
        "warm-up steps (not with the constant schedule)",
        minimum=0,
        group="optimizer",
        visible_when=_WARMUP,
    ),
    Param(
        "optimizer_args",
        "list",
        [],
        "extra optimizer arguments as key=value (weight_decay=0.01, betas=(0.9,0.99))",
        group="optimizer",
        advanced=True,
    ),
    Param(
        "max_grad_norm",
        "float",
        1.0,
        "gradient clipping norm (0: off)",
        minimum=0.0,
        group="optimizer",
        advanced=True,
    ),
    Param("network_dim", "int", 16, "LoRA rank", minimum=1, maximum=1024, group="network", title="Rank"),
    Param(
        "network_alpha",
        "float",
        16.0,
        "LoRA alpha, always passed (Musubi's default of 1 would scale the LoRA by 1/rank)",
        minimum=0.0,
        group="network",
        title="Alpha",
    ),
    Param(
        "targets",
        "str",
        "all",
        "the modules trained, in the selector grammar (all, attn, self_attn, attn blocks=0-19 ...)",
        group="network",
    ),
    Param(
        "resolution",
        "str",
        "336x192",
        "training resolution: one size (192) or WIDTHxHEIGHT (336x192, the model card's 192p); the bucket area",
        group="data",
    ),
    Param(
        "captions",
        "choice",
        "empty",
        "empty: every item gets an empty caption (the model card's choice); files: the <name>.txt beside each item",
        choices=CAPTION_MODES,
        group="data",
    ),
    Param(
        "target_frames",
        "list",
        [1],
        "clip lengths in frames for videos, each 4N+1 (images are one-frame clips)",
        item_type="int",
        minimum=1,
        group="data",
        advanced=True,
    ),
    Param("repeats", "int", 1, "times each item is seen per epoch", minimum=1, group="data", advanced=True),
    Param(
        "timestep_sampling",
        "choice",
        "shift",
        "how training timesteps are drawn",
        choices=TIMESTEP_SAMPLINGS,
        group="noise",
        advanced=True,
    ),
    Param(
        "discrete_flow_shift",
        "float",
        3.0,
        "the shift of the shifted timestep sampling",
        minimum=0.0,
        group="noise",
        advanced=True,
    ),
    Param(
        "mixed_precision",
        "choice",
        "bf16",
        "compute precision on the GPU (the CPU trains in float32)",
        choices=PRECISIONS,
        group="memory",
    ),
    Param(
        "gradient_checkpointing",
        "bool",
        True,
        "recompute activations in the backward pass: much less memory, about 30 % slower",
        group="memory",
    ),
)

TRAIN_CONFIG = ConfigDeclaration(
    params=TRAIN_PARAMS,
    name="training config",
    groups=(
        ("model", "Model"),
        ("pair", "Pair"),
        ("schedule", "Steps and checkpoints"),
        ("optimizer", "Optimizer"),
        ("network", "LoRA"),
        ("data", "Data"),
        ("noise", "Timesteps"),
        ("memory", "Memory"),
    ),
)


def is_two_expert(task: str) -> bool:
    return task in TWO_EXPERT_TASKS


def model_size(task: str) -> str:
    """``"1.3B"`` or ``"14B"`` (A14B experts are 14B each)."""
    return "1.3B" if "1.3B" in task else "14B"


def block_count(task: str) -> int:
    return 30 if model_size(task) == "1.3B" else 40
