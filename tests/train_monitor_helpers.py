"""The stand-in trainer job and the helpers of the Train monitor tests (tests/test_qt_train_monitor.py).

The job is a stand-in for a trainer backend (no model is trained): it follows the backends' event
conventions (:mod:`difflora_gui.train.backend`) — status texts, ``progress(step, total)``, metrics
``loss``/``avr_loss``/``lr``/``epoch`` with ``step``, artifacts ``checkpoint``/``sample``/``lora``
with ``meta step``, and after a Stop and keep a ``state`` artifact with ``kept=True`` — and writes
real files (images, a video, checkpoint files) where it says it did.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path

from difflora_gui.errors import JobCancelled
from difflora_gui.fileio import atomic_write_bytes
from difflora_gui.jobs import JobRequest
from difflora_gui.jobs.process import run_child
from difflora_gui.project.records import RunRecord
from difflora_gui.train.plan import TrainResult, TrainRun, plan_pair
from difflora_gui.train.presets import preset_values
from tests.dataset_media_helpers import write_image, write_video

# --- the stand-in trainer job ------------------------------------------------------------------


def expected_loss(step: int, side: str) -> float:
    base = 0.5 if side == "a" else 0.6
    return base * math.exp(-step / 40) + 0.1 + 0.02 * math.sin(step)


def expected_avr(step: int, side: str, start: int = 0) -> float:
    window = range(max(start + 1, step - 9), step + 1)  # a running average of the last 10 steps
    return sum(expected_loss(s, side) for s in window) / len(window)


def expected_lr(step: int) -> float:
    return 2e-5 * min(1.0, step / 10)


def stand_in_training(params, ctx) -> TrainResult:
    """Emits what a trainer backend emits, writing the files it names."""
    run = TrainRun.from_json(params["run"])
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = run.total_steps
    save_every = int(run.config.get("save_every_n_steps") or 0)
    ctx.status("caching latents")
    ctx.log(f"training {run.name} on {run.dataset}")
    ctx.status("training")
    checkpoints, samples = [], []
    gate: threading.Event | None = params.get("gate")
    for step in range(run.steps_done + 1, total + 1):
        if ctx.cancelled:
            done = step - 1
            if ctx.keep_requested:
                state = out / f"{run.name}-step{done:08d}-state"
                state.mkdir(exist_ok=True)
                atomic_write_bytes(state / "state.json", json.dumps({"step": done}).encode())
                ctx.artifact("state", state, step=done, kept=True)
                ctx.log(f"Stop and keep: kept {state}")
            raise JobCancelled()
        metrics = params.get("metrics", ("loss", "avr_loss", "lr"))  # Musubi prints only avr_loss
        if "loss" in metrics:
            ctx.metric("loss", expected_loss(step, run.side), step)
        if "avr_loss" in metrics:
            ctx.metric("avr_loss", expected_avr(step, run.side, run.steps_done), step)
        if "lr" in metrics:
            ctx.metric("lr", expected_lr(step), step)
        if (step - 1) % 20 == 0:
            ctx.metric("epoch", (step - 1) // 20 + 1, step)
        ctx.progress(step, total, f"step {step}/{total}")
        if step % params.get("log_every", 5) == 0:
            ctx.log(f"steps: {step}/{total} avr_loss={expected_avr(step, run.side, run.steps_done):.4f}")
        if save_every and step % save_every == 0:
            checkpoint = out / f"{run.name}-step{step:08d}.safetensors"
            atomic_write_bytes(checkpoint, b"stand-in checkpoint")
            checkpoints.append(str(checkpoint))
            ctx.artifact("checkpoint", checkpoint, step=step)
        if step in params.get("sample_steps", ()):
            sample = out / "sample" / f"{run.name}_{step:06d}_00_sample"
            if run.side == "b":  # Musubi writes videos for video tasks: one of them a clip
                sample = write_video(sample.with_suffix(".mp4"), frames=5, width=64, height=48)
            else:
                sample = write_image(sample.with_suffix(".png"), 64, 48, seed=step)
            samples.append(str(sample))
            ctx.artifact("sample", sample, step=step)
        if gate is not None and step == params.get("hold_at"):
            # wait here (as a slow step would) until the test lets go or stops the run
            while not gate.wait(0.01) and not ctx.cancelled:
                pass
        time.sleep(params.get("delay", 0.0))
    final = out / f"{run.name}.safetensors"
    atomic_write_bytes(final, b"stand-in lora")
    ctx.artifact("lora", final, step=total)
    return TrainResult(run.run_id, run.name, lora=str(final), checkpoints=checkpoints, samples=samples)


# --- runs, jobs and records ---------------------------------------------------------------------


def pair(tmp_path: Path, steps: int, **config) -> list[TrainRun]:
    values = preset_values("quick-test") | {"max_train_steps": steps, "save_every_n_steps": 10} | config
    a_dir, b_dir = tmp_path / "set A ü", tmp_path / "set B é"
    a_dir.mkdir(), b_dir.mkdir()
    runs = plan_pair(values, a_dir, b_dir, tmp_path / "out ü", "concept ü")
    for run in runs:
        run.event_log = str(tmp_path / "logs ü" / f"{run.name}.jsonl")
    return runs


def submit(services, run: TrainRun, *, resumable: bool = True, lane: str = "device", **params):
    request = JobRequest(
        run.title,
        stand_in_training,
        {"run": run.to_json(), **params},
        lane=lane,
        device="cpu",
        resumable=resumable,
        event_log=run.event_log,
    )
    return services.submit(request)


def record_of(run: TrainRun, status: str, steps_done: int) -> RunRecord:
    return RunRecord(
        id=run.run_id,
        name=run.name,
        side=run.side,
        expert=run.expert,
        pair_id=run.pair_id,
        status=status,
        steps_done=steps_done,
        total_steps=run.total_steps,
        output=str(run.output_path()),
        dataset_dir=run.dataset,
        output_dir=run.output_dir,
        event_log=run.event_log,
    )


def curves(monitor, key: str) -> dict[str, tuple[list[float], list[float]]]:
    return {which: monitor.plot.drawn(key, which) for which in ("raw", "smoothed", "lr")}


def failing_child(params, ctx):
    """A real child process that dies of CUDA out of memory, as Musubi does."""
    script = (
        "import sys\n"
        "for i in range(60): print(f'steps: {i}/100', file=sys.stderr)\n"
        "print('Traceback (most recent call last):', file=sys.stderr)\n"
        "print('  File \"wan_train_network.py\", line 1, in <module>', file=sys.stderr)\n"
        "print('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    run_child([sys.executable, "-c", script], ctx)
