"""Everything a run needs before its first step, done once.

The run's clips (:mod:`.data`), their VAE latents and the text embeddings (:mod:`.encode`; the VAE
and text encoder are freed afterwards), the transformer of the run's expert with the PEFT adapter
on the selected modules, the optimizer and learning-rate schedule, the step schedule — and, when
resuming, the saved adapter, optimizer state and trainer scalars, with the learning-rate schedule
replayed to the state's step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.train.builtin import data, encode, lora_setup, model_loading, optimizers, state
from difflora_gui.train.builtin.outputs import RunFiles
from difflora_gui.train.builtin.schedule import STREAMS, Schedule
from difflora_gui.train.builtin.settings import Precision, component_dirs, resolve_device, resolve_precision
from difflora_gui.train.config import is_two_expert


@dataclass
class Prepared:
    precision: Precision
    slots: list  # [(Clip,) or (A Clip, B Clip)] in item-index order
    latents: dict[str, Any]
    captions: dict[str, str]  # clip key -> caption
    embeddings: dict[str, Any]  # caption -> (length, dim)
    transformer: Any
    targets: dict[str, str]
    targets_text: str
    rank: int
    alpha: float
    params: list
    optimizer: Any
    lr_scheduler: Any
    scaler: Any
    schedule: Schedule
    start_step: int = 0
    loss_window: list = field(default_factory=list)


def run_stream(run) -> int:
    """Synchronised pairs and slider runs share one stream; independent pairs get one per side."""
    if run.config.get("pair_mode") == "independent" and run.side in ("a", "b"):
        return STREAMS[run.side]
    return STREAMS[""]


def make_schedule(run, item_count: int) -> Schedule:
    config = run.config
    return Schedule(
        seed=int(config["seed"]),
        item_count=item_count,
        batch_size=int(config.get("batch_size", 1)),
        repeats=int(config.get("repeats", 1)),
        sampling=str(config.get("timestep_sampling", "shift")),
        shift=float(config.get("discrete_flow_shift", 3.0)),
        window=run.timestep_window(),
        stream=run_stream(run),
    )


def check_model_for_run(run, model_dir: Path, values: dict[str, Any] | None = None) -> None:
    task = run.config["task"]
    if is_two_expert(task) and run.expert is None:
        raise UserError(
            f"{task}: the built-in trainer trains Wan2.2 A14B per expert (expert_mode per_expert); "
            "the joint mode is Musubi's"
        )
    model_loading.check_layout(model_dir, run.expert, **component_dirs(values or {}))
    in_channels = int(model_loading.transformer_config(model_dir, run.expert).get("in_channels", 16))
    if task.startswith("i2v") or in_channels != 16:
        raise UserError(
            f"{model_dir}: the built-in trainer trains text-to-video models (16 latent channels; this one has "
            f"{in_channels}, task {task}); train I2V models with the Musubi backend"
        )


def _encode_all(run, ctx, model_dir: Path, slots, precision, values: dict[str, Any]):
    resolution = data.parse_training_resolution(run.config["resolution"])
    clips = list({encode.clip_id(c): c for slot in slots for c in slot}.values())
    cache = encode.TensorCache(Path(run.output_dir) / encode.CACHE_DIR if values["latent_cache"] else None)
    dirs = component_dirs(values)
    ctx.status("caching latents")
    latents = encode.encode_latents(
        model_dir,
        clips,
        resolution,
        device=precision.device,
        cache=cache,
        check_cancel=ctx.raise_if_cancelled,
        report=lambda done, total: ctx.progress(done, total, f"encoding {done}/{total}"),
        vae_dir=dirs["vae_dir"],
    )
    use_files = run.config.get("captions") == "files"
    captions = {c.key: (c.item.caption() if use_files else "") for c in clips}
    ctx.status("encoding captions")
    embeddings = encode.encode_captions(
        model_dir,
        list(captions.values()),
        device=precision.device,
        cache=cache,
        check_cancel=ctx.raise_if_cancelled,
        text_encoder_dir=dirs["text_encoder_dir"],
    )
    return latents, captions, embeddings


def prepare(run, ctx, values: dict[str, Any]) -> Prepared:
    import torch

    config = run.config
    model_dir = Path(values["model"])
    check_model_for_run(run, model_dir, values)
    precision = resolve_precision(
        resolve_device(values["device"], run.device), values["dtype"], config.get("mixed_precision", "bf16")
    )
    start = 0
    saved = None
    if run.resume:
        saved = state.load_state(run.resume)
        start = int(saved[2]["step"])
        changed = state.changed_fields(saved[2].get("config", {}), config)
        if changed:
            ctx.log(
                f"Resuming with a changed config ({', '.join(changed)}): the result differs from an uninterrupted run"
            )
    every = int(config.get("save_every_n_steps") or 0)
    RunFiles(run.output_dir, run.name).check_free(start, run.total_steps, every, resuming=bool(run.resume))
    slots = data.run_clips(run, config.get("target_frames", [1]))
    latents, captions, embeddings = _encode_all(run, ctx, model_dir, slots, precision, values)
    ctx.raise_if_cancelled()

    ctx.status("loading the transformer")
    transformer = model_loading.load_transformer(model_dir, run.expert, dtype=precision.weight_dtype)
    targets_text = str(config.get("targets") or "all")
    targets = lora_setup.select_targets(transformer, targets_text)
    sched = make_schedule(run, len(slots))
    rank, alpha = int(config["network_dim"]), float(config["network_alpha"])
    params = lora_setup.add_lora(transformer, targets, rank, alpha, sched.init_seed())
    transformer.to(precision.device)  # after the adapter: its init is drawn on the CPU, the same everywhere
    if precision.is_cuda and config.get("gradient_checkpointing", True):
        transformer.enable_gradient_checkpointing()
    optimizer = optimizers.build_optimizer(
        config["optimizer"], params, config["learning_rate"], config.get("optimizer_args", [])
    )
    lr_scheduler = optimizers.build_scheduler(
        config["lr_scheduler"],
        optimizer,
        warmup_steps=int(config.get("lr_warmup_steps", 0)),
        total_steps=run.total_steps,
    )
    scaler = None
    if precision.autocast == "float16" and precision.is_cuda:
        scaler = torch.amp.GradScaler("cuda")
    loss_window: list = []
    if saved is not None:
        adapter, opt_tensors, info = saved
        lora_setup.load_adapter_state(transformer, adapter)
        optimizers.advance_scheduler(lr_scheduler, start)
        state.restore_optimizer(optimizer, opt_tensors, info["optimizer"])
        trainer_info = info.get("trainer", {})
        loss_window = list(trainer_info.get("loss_window", []))
        if scaler is not None and "grad_scaler" in trainer_info:
            scaler.load_state_dict(trainer_info["grad_scaler"])
    return Prepared(
        precision=precision,
        slots=slots,
        latents=latents,
        captions=captions,
        embeddings=embeddings,
        transformer=transformer,
        targets=targets,
        targets_text=targets_text,
        rank=rank,
        alpha=alpha,
        params=params,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        scaler=scaler,
        schedule=sched,
        start_step=start,
        loss_window=loss_window,
    )
