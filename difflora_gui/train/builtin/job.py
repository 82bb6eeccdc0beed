"""The built-in trainer's backend callables: run, validate, describe (what ``plugins/builtin_trainer.py`` names).

* :func:`run_builtin` ``(run, ctx) -> TrainResult`` — the job (a :class:`~difflora_gui.train.plan.TrainRun`
  or its JSON dict);
* :func:`validate_builtin` ``(run) -> [TrainIssue]`` — before launch, without loading any weights:
  the model folder's layout and task, the expert's transformer, the device, the optimizer's package,
  the resolution, the target selector (on the model's config: which modules it selects), the
  clip lengths, and a memory estimate on CUDA when :mod:`difflora_gui.train.memory_fit` is there;
* :func:`describe_builtin` ``(run) -> TrainDescription`` — the plan: device, dtype, items, steps,
  targets and their count, save points and the files written.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.train.backend import ERROR, WARNING, TrainDescription, TrainIssue
from difflora_gui.train.plan import TrainResult, TrainRun


def _as_run(run) -> TrainRun:
    return run if isinstance(run, TrainRun) else TrainRun.from_json(dict(run))


def run_builtin(run, ctx) -> TrainResult:
    """Train one LoRA in this process (see :mod:`difflora_gui.train.builtin.trainer`)."""
    from difflora_gui.train.builtin.settings import backend_settings
    from difflora_gui.train.builtin.trainer import train

    run = _as_run(run)
    return train(run, ctx, backend_settings(run.backend_config))


def _config_model(config: Mapping[str, Any]):
    """A weightless transformer of the folder's config (meta device): names of its Linear layers."""
    import torch
    from diffusers import WanTransformer3DModel

    allowed = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        return WanTransformer3DModel.from_config(allowed)


def _target_issues(run: TrainRun, model_dir: Path) -> tuple[list[TrainIssue], int]:
    from difflora_gui.train.builtin import lora_setup, model_loading

    try:
        model = _config_model(model_loading.transformer_config(model_dir, run.expert))
        targets = lora_setup.select_targets(model, str(run.config.get("targets") or "all"))
    except UserError as exc:
        return [TrainIssue(ERROR, str(exc), "targets")], 0
    return [], len(targets)


def validate_builtin(run) -> list[TrainIssue]:
    from difflora_gui.train.builtin import data, model_loading, optimizers
    from difflora_gui.train.builtin.settings import (
        backend_settings,
        component_dirs,
        problem_field,
        resolve_device,
        resolve_precision,
    )
    from difflora_gui.train.config import is_two_expert

    run = _as_run(run)
    issues: list[TrainIssue] = []
    try:
        values = backend_settings(run.backend_config)
    except UserError as exc:
        return [TrainIssue(ERROR, str(exc), "model")]
    model_dir = Path(values["model"])
    task = run.config["task"]
    if is_two_expert(task) and run.expert is None:
        issues.append(
            TrainIssue(
                ERROR,
                f"{task}: the built-in trainer trains Wan2.2 A14B per expert; choose expert_mode per_expert "
                "(the joint mode is Musubi's)",
                "expert_mode",
            )
        )
    problems = model_loading.layout_problems(model_dir, run.expert, **component_dirs(values))
    issues += [TrainIssue(ERROR, text, problem_field(text, values)) for text in problems]
    if not problems:
        config = model_loading.transformer_config(model_dir, run.expert)
        if task.startswith("i2v") or int(config.get("in_channels", 16)) != 16:
            issues.append(
                TrainIssue(
                    ERROR,
                    f"the built-in trainer trains text-to-video models (task {task}, {config.get('in_channels')} "
                    "latent channels); train I2V with the Musubi backend",
                    "task",
                )
            )
        else:
            target_issues, _count = _target_issues(run, model_dir)
            issues += target_issues + _model_fit_warnings(run, model_dir, config)
    try:
        device = resolve_device(values["device"], run.device)
        precision = resolve_precision(device, values["dtype"], run.config.get("mixed_precision", "bf16"))
    except UserError as exc:
        issues.append(TrainIssue(ERROR, str(exc), "device"))
        precision = None
    problem = optimizers.missing_package(run.config["optimizer"])
    if problem:
        issues.append(TrainIssue(ERROR, problem, "optimizer"))
    else:
        try:
            optimizers.parse_optimizer_args(run.config.get("optimizer_args", []))
        except UserError as exc:
            issues.append(TrainIssue(ERROR, str(exc), "optimizer_args"))
    for name, check in (
        ("resolution", lambda: data.parse_training_resolution(run.config["resolution"])),
        ("target_frames", lambda: data.check_target_frames(run.config.get("target_frames", [1]))),
    ):
        try:
            check()
        except UserError as exc:
            issues.append(TrainIssue(ERROR, str(exc), name))
    if precision is not None and precision.is_cuda and not problems:
        issues += _memory_issues(run, precision)
    issues += _bucket_mismatches(run)
    if precision is not None and not precision.is_cuda and run.config.get("task") != "t2v-1.3B":
        issues.append(
            TrainIssue(WARNING, "training a 14B model on the CPU takes days per hundred steps", "device")
        )
    return issues


def _bucket_mismatches(run: TrainRun) -> list[TrainIssue]:
    """A warning when pairs put A and B in different buckets: their noise cannot be the same tensor.

    Synchronised pairs and slider mode give A and B the same noise seed; ε is only the same when
    both latents have one shape, i.e. both items fall in the same bucket (the same aspect ratio).
    """
    if not run.pair_dataset or run.config.get("pair_mode") not in ("synchronised", "slider"):
        return []
    from difflora_gui.dataset.buckets import bucket_for
    from difflora_gui.dataset.media import probe
    from difflora_gui.errors import BadFileError
    from difflora_gui.train.builtin import data
    from difflora_gui.train.dataset_folder import matched_items

    try:
        resolution = data.parse_training_resolution(run.config["resolution"])
        differ = []
        for own, partner in matched_items(run.dataset, run.pair_dataset):
            a, b = probe(own.path), probe(partner.path)
            if bucket_for(a.width, a.height, resolution) != bucket_for(b.width, b.height, resolution):
                differ.append(own.stem)
    except (UserError, BadFileError):
        return []  # reported by the other checks
    if not differ:
        return []
    return [
        TrainIssue(
            WARNING,
            f"{len(differ)} pair(s) have A and B in different aspect buckets ({', '.join(differ[:3])}): "
            "their latents differ in shape, so A and B cannot get the same noise there",
            "dataset",
        )
    ]


#: (layers, width) of the released Wan transformers, by the config's model size
_SIZES = {"1.3B": (30, 1536), "14B": (40, 5120)}


def _model_fit_warnings(run: TrainRun, model_dir: Path, config: Mapping[str, Any]) -> list[TrainIssue]:
    """Warnings when the folder is a released model of another size or generation than the task says."""
    from difflora_gui.train.builtin import model_loading
    from difflora_gui.train.config import is_two_expert, model_size

    warnings = []
    shape = (
        int(config.get("num_layers", 0)),
        int(config.get("num_attention_heads", 0)) * int(config.get("attention_head_dim", 0)),
    )
    size = model_size(run.config["task"])
    other = next((name for name, dims in _SIZES.items() if dims == shape and name != size), None)
    if other:
        warnings.append(
            TrainIssue(
                WARNING,
                f"{model_dir} holds a Wan {other} transformer but the task is {run.config['task']}: "
                "choose the task of the model (it sets the metadata and the memory estimate)",
                "task",
            )
        )
    index = model_loading.read_model_index(model_dir)
    if model_loading.has_two_experts(index) and not is_two_expert(run.config["task"]):
        warnings.append(
            TrainIssue(
                WARNING,
                f"{model_dir} is a Wan2.2 A14B folder (two experts) but the task {run.config['task']} is "
                "Wan2.1: only its high-noise transformer is trained, without a timestep window; choose t2v-A14B",
                "task",
            )
        )
    return warnings


def _memory_issues(run: TrainRun, precision) -> list[TrainIssue]:
    """A warning when :func:`difflora_gui.train.memory_fit.estimate` says the run will not fit the GPU."""
    if importlib.util.find_spec("difflora_gui.train.memory_fit") is None:
        return []
    from difflora_gui.dataset.buckets import resolution_size
    from difflora_gui.train import memory_fit
    from difflora_gui.train.builtin import data
    from difflora_gui.train.config import model_size

    try:
        width, height = resolution_size(data.parse_training_resolution(run.config["resolution"]))
        frames = max(data.check_target_frames(run.config.get("target_frames", [1])))
    except UserError:
        return []  # reported as its own error
    size = model_size(run.config["task"])
    dtype = {"bfloat16": "bf16", "float16": "fp16"}.get(precision.weight_dtype, "float32")
    fit = memory_fit.estimate(
        size,
        weight_dtype=dtype,
        width=width,
        height=height,
        frames=frames,
        batch_size=int(run.config.get("batch_size", 1)),
        gradient_checkpointing=bool(run.config.get("gradient_checkpointing", True)),
        device=precision.device,
    )
    if fit.fits:
        return []
    return [
        TrainIssue(
            WARNING,
            f"a {size} model in {dtype} needs about {fit.needed_gb:.0f} GB here and the GPU has "
            f"{fit.available_gb:.0f} GB: lower the resolution or frames, keep gradient checkpointing on, "
            "or train with the Musubi backend (fp8, block swap)",
            "device",
        )
    ]


def describe_builtin(run) -> TrainDescription:
    from difflora_gui.train.builtin import data, model_loading
    from difflora_gui.train.builtin.outputs import RunFiles
    from difflora_gui.train.builtin.prepare import make_schedule
    from difflora_gui.train.builtin.settings import (
        backend_settings,
        component_dirs,
        resolve_device,
        resolve_precision,
    )

    run = _as_run(run)
    values = backend_settings(run.backend_config)
    model_dir = Path(values["model"])
    plan: dict[str, Any] = {"backend": "builtin", "name": run.name, "model": str(model_dir)}
    try:
        device = resolve_device(values["device"], run.device)
        plan["precision"] = resolve_precision(
            device, values["dtype"], run.config.get("mixed_precision")
        ).to_json()
    except UserError as exc:
        plan["precision"] = {"error": str(exc)}
    plan["transformer"] = model_loading.transformer_subfolder(run.expert)
    plan["expert"] = run.expert
    plan["timestep_window"] = list(run.timestep_window()) if run.timestep_window() else None
    plan["side"] = run.side
    try:
        slots = data.run_clips(run, run.config.get("target_frames", [1]))
        plan["items"] = len(slots)
        plan["item_keys"] = [" | ".join(c.key for c in slot) for slot in slots[:20]]
        schedule = make_schedule(run, len(slots))
        plan["steps_per_epoch"] = schedule.steps_per_epoch
        plan["noise_stream"] = "shared by A and B" if schedule.stream == 0 else f"own ({run.side})"
    except UserError as exc:
        plan["items"] = {"error": str(exc)}
    dirs = component_dirs(values)
    plan["vae"] = str(model_loading.component_dir(model_dir, "vae", dirs["vae_dir"]))
    plan["text_encoder"] = str(
        model_loading.component_dir(model_dir, "text_encoder", dirs["text_encoder_dir"])
    )
    if not model_loading.layout_problems(model_dir, run.expert, **dirs):
        issues, count = _target_issues(run, model_dir)
        plan["target_modules"] = count if not issues else {"error": issues[0].text}
    plan["targets"] = run.config.get("targets")
    plan["steps"] = {"start": run.steps_done, "total": run.total_steps}
    files = RunFiles(run.output_dir, run.name)
    every = int(run.config.get("save_every_n_steps") or 0)
    plan["save_steps"] = files.save_steps(run.steps_done, run.total_steps, every)
    plan["output"] = str(files.final)
    plan["schedule_record"] = str(files.schedule)
    plan["resume"] = run.resume
    return TrainDescription(plan=plan)
