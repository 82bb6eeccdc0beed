"""The training loop of the built-in trainer (in-process, diffusers + PEFT).

:func:`train` prepares once (items, VAE latents, text embeddings; then the transformer with its
PEFT adapter, the optimizer and the schedule, restored from a state when resuming) and runs the
steps. Each step draws its items, noise and timesteps from :class:`~.schedule.Schedule` (a pure
function of the step), computes Wan's flow-matching loss (:mod:`.objective`), clips the gradient
and steps the optimizer and the learning-rate schedule. It reports ``progress`` (step of total,
counted from the original start), ``loss``/``avr_loss`` (the running mean over one epoch's worth of
steps, Musubi's)/``lr``/``epoch`` metrics, and writes checkpoints (and states) every
``save_every_n_steps``. Cancel is checked between steps; "Stop and keep" saves a state and a
checkpoint at the current step, says which, and stops.

Slider mode trains one LoRA on (A, B) pairs: with the same ε and t for both items of a pair, the
adapter at +1 learns the A item and at −1 the B item, both gradients in one optimizer step.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.train.backend import METRIC_AVG_LOSS, METRIC_EPOCH, METRIC_LOSS, METRIC_LR
from difflora_gui.train.builtin import encode, lora_setup, optimizers, schedule, state
from difflora_gui.train.builtin.objective import Sample, group_losses
from difflora_gui.train.builtin.outputs import RunFiles, ScheduleLog
from difflora_gui.train.builtin.prepare import Prepared, prepare
from difflora_gui.train.plan import TrainResult

#: latents up to this size are kept on the GPU for the whole run (192p images: 64 kB each)
LATENTS_ON_DEVICE_BYTES = 1 << 30


@dataclass
class _Saved:
    checkpoints: list[str] = field(default_factory=list)
    state: str | None = None
    state_step: int | None = None


class Trainer:
    """One run's training, from :func:`~.prepare.prepare`'s result."""

    def __init__(self, run, ctx, prepared: Prepared):
        import torch

        self.run, self.ctx, self.p = run, ctx, prepared
        self.config = run.config
        self.files = RunFiles(run.output_dir, run.name)
        self.total = run.total_steps
        self.start = prepared.start_step
        self.saved = _Saved(state=run.resume, state_step=self.start if run.resume else None)
        self.log = ScheduleLog(self.files.schedule, keep_until=self.start)
        self.losses: deque = deque(prepared.loss_window, maxlen=prepared.schedule.steps_per_epoch)
        self.layers = lora_setup.lora_layers(prepared.transformer)
        self.device = torch.device(prepared.precision.device)
        self.every = int(self.config.get("save_every_n_steps") or 0)
        self.max_norm = float(self.config.get("max_grad_norm") or 0.0)
        self._embeddings: dict[str, Any] = {}
        self._autocast_dtype = (
            getattr(torch, prepared.precision.autocast) if prepared.precision.autocast else None
        )
        self._epoch = None
        self._noise_hashes: list[str] = []
        self._move_latents()

    def _move_latents(self) -> None:
        """Latents live on the device when they are small (the usual case), else they move per step."""
        total = sum(t.numel() * t.element_size() for t in self.p.latents.values())
        if self.device.type != "cpu" and total <= LATENTS_ON_DEVICE_BYTES:
            self.p.latents = {k: t.to(self.device) for k, t in self.p.latents.items()}

    # --- one step ----------------------------------------------------------------------------

    def _autocast(self):
        import torch

        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def _embedding(self, caption: str):
        if caption not in self._embeddings:
            self._embeddings[caption] = encode.padded(self.p.embeddings[caption]).to(self.device)
        return self._embeddings[caption]

    def _samples(self, plan, side: int) -> list[Sample]:
        out = []
        for index, seed, t in zip(plan.items, plan.noise_seeds, plan.timesteps, strict=True):
            clip = self.p.slots[index][side]
            latent = self.p.latents[encode.clip_id(clip)]
            noise = schedule.make_noise(seed, latent.shape)
            self._noise_hashes.append(schedule.noise_hash(noise))  # on the CPU copy: no device sync
            sample = Sample(
                latent.to(self.device), noise.to(self.device), t, self._embedding(self.p.captions[clip.key])
            )
            out.append(sample)
        return out

    def step(self, step: int) -> float:
        """Train step ``step`` (0-based) and return its loss."""
        plan = self.p.schedule.plan(step)
        slider = self.run.side == "slider"
        sides = ((0, 1.0), (1, -1.0)) if slider else ((0, None),)
        loss_value = 0.0
        for side, multiplier in sides:
            if multiplier is not None:
                lora_setup.set_multiplier(self.layers, multiplier)
            samples = self._samples(plan, side)
            for loss in group_losses(self.p.transformer, samples, self._autocast, 1.0 / len(sides)):
                self._backward(loss)
                loss_value += float(loss.detach())
        if slider:
            lora_setup.set_multiplier(self.layers, 1.0)
        self._optimizer_step()
        self._record(plan, len(sides))
        self._noise_hashes.clear()
        return loss_value

    def _backward(self, loss) -> None:
        if self.p.scaler is not None:
            self.p.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _optimizer_step(self) -> None:
        import torch

        opt, scaler = self.p.optimizer, self.p.scaler
        if scaler is not None:
            scaler.unscale_(opt)
        if self.max_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.p.params, self.max_norm)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        self.p.lr_scheduler.step()
        opt.zero_grad(set_to_none=True)

    def _record(self, plan, sides: int) -> None:
        keys = ["|".join(self.p.slots[i][side].key for side in range(sides)) for i in plan.items]
        self.log.add(
            {
                "step": plan.step + 1,
                "epoch": plan.epoch + 1,
                "items": keys,
                "noise_seeds": [str(s) for s in plan.noise_seeds],
                "noise_hashes": self._noise_hashes[: len(plan.items)],
                "t": list(plan.timesteps),
            }
        )

    # --- saving ------------------------------------------------------------------------------

    def _write_lora(self, path, step: int) -> None:
        from difflora_gui.lora.writer import write_lora

        p = self.p
        modules = lora_setup.lora_modules(p.transformer, p.targets, p.rank, p.alpha)
        metadata = lora_setup.file_metadata(
            self.run,
            step=step,
            seed=int(self.config["seed"]),
            targets=p.targets_text,
            module_count=len(modules),
        )
        write_lora(path, modules, format="comfy", metadata=metadata, warn=self.ctx.log)

    def _write_state(self, step: int) -> str:
        folder = self.files.state(step)
        extra = {"loss_window": list(self.losses)}
        if self.p.scaler is not None:
            extra["grad_scaler"] = self.p.scaler.state_dict()
        state.save_state(
            folder,
            adapter=lora_setup.adapter_state(self.p.transformer),
            optimizer=self.p.optimizer,
            step=step,
            config=self.config,
            extra=extra,
        )
        self.saved.state, self.saved.state_step = str(folder), step
        return str(folder)

    def save_checkpoint(self, step: int, *, with_state: bool, kept: bool = False) -> list[str]:
        path = self.files.checkpoint(step)
        written = []
        meta = {"step": step, "kept": True} if kept else {"step": step}
        if not path.exists():  # check_free refused stale files: an existing one is this run's own
            self._write_lora(path, step)
            self.saved.checkpoints.append(str(path))
            self.ctx.artifact("checkpoint", path, **meta)
        elif kept:  # Stop and keep right after a save: the files are there, say they are kept
            self.ctx.artifact("checkpoint", path, **meta)
        written.append(str(path))
        if with_state:
            folder = self.saved.state if self.saved.state_step == step else self._write_state(step)
            self.ctx.artifact("state", folder, **meta)
            written.append(folder)
        self.log.flush()
        return written

    def keep_and_stop(self, done: int):
        if done == self.start and self.run.resume:
            kept = [self.run.resume]
            self.ctx.artifact("state", self.run.resume, step=done, kept=True)
        else:
            kept = self.save_checkpoint(done, with_state=True, kept=True)
        self.ctx.log(
            f"Stopped at step {done} of {self.total}; kept {' and '.join(kept)} (resume from the state)"
        )
        raise JobCancelled()

    # --- the loop ----------------------------------------------------------------------------

    def _check_stop(self, done: int) -> None:
        if self.ctx.cancelled:
            self.log.flush()
            if self.ctx.keep_requested:
                self.keep_and_stop(done)
            raise JobCancelled()

    def _metrics(self, done: int, loss: float, epoch: int) -> None:
        ctx = self.ctx
        self.losses.append(loss)
        ctx.metric(METRIC_LOSS, loss, step=done)
        ctx.metric(METRIC_AVG_LOSS, sum(self.losses) / len(self.losses), step=done)
        ctx.metric(METRIC_LR, optimizers.current_lr(self.p.optimizer), step=done)
        if epoch != self._epoch:
            self._epoch = epoch
            ctx.metric(METRIC_EPOCH, epoch, step=done)
        ctx.progress(done, self.total, f"step {done}/{self.total}")

    def train(self) -> TrainResult:
        save_state = bool(self.config.get("save_state", True))
        self.p.transformer.train()
        p = self.p
        self.ctx.log(
            f"Training {self.run.name} on {p.precision.device} ({p.precision.weight_dtype}"
            f"{', autocast ' + p.precision.autocast if p.precision.autocast else ''}): {len(p.slots)} items, "
            f"{len(p.targets)} modules ({p.targets_text}), rank {p.rank}, steps {self.start + 1}-{self.total}"
        )
        self.ctx.status("training")
        self.ctx.progress(self.start, self.total, f"step {self.start}/{self.total}")
        for step in range(self.start, self.total):
            self._check_stop(step)
            loss = self.step(step)
            done = step + 1
            if loss != loss:  # NaN: stop before it is saved anywhere
                self.log.flush()
                raise UserError(
                    f"the loss became NaN at step {done}; lower the learning rate or use float32/bf16"
                )
            self._metrics(done, loss, step // self.p.schedule.steps_per_epoch + 1)
            if self.every and done % self.every == 0 and done < self.total:
                self.save_checkpoint(done, with_state=save_state)
        self._write_lora(self.files.final, self.total)
        self.log.flush()
        self.ctx.artifact("lora", self.files.final, step=self.total)
        self.ctx.log(f"Trained {self.run.name}: {self.files.final}")
        return TrainResult(
            run_id=self.run.run_id,
            name=self.run.name,
            lora=str(self.files.final),
            checkpoints=list(self.saved.checkpoints),
            state=self.saved.state,
            steps_done=self.total,
            total_steps=self.total,
        )


def train(run, ctx, backend_values: dict[str, Any]) -> TrainResult:
    """Train ``run`` (a :class:`~difflora_gui.train.plan.TrainRun`) with resolved backend settings."""
    import torch

    threads = int(backend_values.get("num_threads") or 0)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    prepared = None
    try:
        try:
            prepared = prepare(run, ctx, backend_values)
        except JobCancelled:
            if ctx.keep_requested:
                ctx.log(f"Stopped {run.name} before its first step: there is nothing to keep yet")
            raise
        return Trainer(run, ctx, prepared).train()
    finally:
        device = prepared.precision.device if prepared is not None else "cpu"
        del prepared
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        if threads:
            torch.set_num_threads(previous_threads)
