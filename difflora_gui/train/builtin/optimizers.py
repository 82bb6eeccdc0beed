"""Optimizers and learning-rate schedules of the built-in trainer, by the config's names.

``adamw`` (torch), ``lion`` (lion-pytorch, the model card's), ``prodigy`` (prodigyopt),
``adamw8bit`` (bitsandbytes) and ``adafactor`` (transformers), each only when its package is
installed — otherwise one line that says which package to install. ``optimizer_args`` are
``key=value`` items whose values are Python literals (``weight_decay=0.01``, ``betas=(0.9,0.99)``),
parsed with ``ast.literal_eval`` as Musubi does. Schedules come from
``diffusers.optimization.get_scheduler`` (constant, constant_with_warmup, cosine, …).
"""

from __future__ import annotations

import ast
import importlib.util
from typing import Any

from difflora_gui.errors import UserError

#: optimizer name -> (module that must be importable, pip package that provides it)
PACKAGES = {
    "adamw": ("torch", "torch"),
    "lion": ("lion_pytorch", "lion-pytorch"),
    "prodigy": ("prodigyopt", "prodigyopt"),
    "adamw8bit": ("bitsandbytes", "bitsandbytes"),
    "adafactor": ("transformers", "transformers"),
}


def parse_optimizer_args(items) -> dict[str, Any]:
    """``["weight_decay=0.01", "betas=(0.9,0.99)"]`` → ``{"weight_decay": 0.01, "betas": (0.9, 0.99)}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"optimizer argument {item!r}: write key=value (weight_decay=0.01)")
        try:
            out[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key] = text.strip()  # a bare word (a string option)
    return out


def missing_package(name: str) -> str | None:
    """The sentence saying what to install for optimizer ``name``, or None when it is available."""
    if name not in PACKAGES:
        return f"unknown optimizer {name!r} (use {', '.join(PACKAGES)})"
    module, package = PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        return f"the {name} optimizer needs the {package} package: pip install {package}"
    return None


def build_optimizer(name: str, params, learning_rate: float, args_list=()):
    problem = missing_package(name)
    if problem:
        raise UserError(problem)
    args = parse_optimizer_args(args_list)
    lr = float(learning_rate)
    try:
        if name == "adamw":
            import torch

            return torch.optim.AdamW(params, lr=lr, **args)
        if name == "lion":
            from lion_pytorch import Lion

            return Lion(params, lr=lr, **args)
        if name == "prodigy":
            from prodigyopt import Prodigy

            return Prodigy(params, lr=lr, **args)
        if name == "adamw8bit":
            import bitsandbytes

            return bitsandbytes.optim.AdamW8bit(params, lr=lr, **args)
        from transformers.optimization import Adafactor

        defaults = {"relative_step": False, "scale_parameter": False, "warmup_init": False}
        return Adafactor(params, lr=lr, **{**defaults, **args})
    except TypeError as exc:
        raise UserError(f"optimizer {name}: bad optimizer_args {args}: {exc}") from None


def build_scheduler(name: str, optimizer, *, warmup_steps: int, total_steps: int):
    from diffusers.optimization import get_scheduler

    warmup = 0 if name == "constant" else int(warmup_steps)
    try:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=int(total_steps))
    except ValueError as exc:
        raise UserError(f"lr_scheduler {name}: {exc}") from None


def advance_scheduler(scheduler, steps: int) -> None:
    """Put a fresh scheduler at ``steps`` (a resume): its lambda is a function of the step alone."""
    import warnings

    with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": on purpose, no optimizer step is replayed
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(int(steps)):
            scheduler.step()


def current_lr(optimizer) -> float:
    """The first group's learning rate (Prodigy: d·lr, the step size it actually takes)."""
    group = optimizer.param_groups[0]
    lr = float(group["lr"])
    if "d" in group and isinstance(group.get("d"), (int, float)):
        return lr * float(group["d"])
    return lr
