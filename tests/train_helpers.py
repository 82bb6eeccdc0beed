"""A test-only trainer backend and training fixtures, shared by the train tests.

``tiny-test`` is a real :class:`TrainerBackendSpec` (not a mock): its job trains nothing, but it
follows every convention a backend follows — progress from ``steps_done``, ``loss``/``avr_loss``/
``lr`` metrics, a real LoRA file (our writer, the tiny Wan layout) per checkpoint and at the end,
resumable state folders, "Stop and keep" — so the pair job, the run records and the CLI can be
tested without Musubi or a model. ``tiny-cmd`` does the same through a real child process
(``python -m tests.train_helpers``) and describes its commands, like a command-line backend.

:func:`install_test_backends` writes a plugin module into the per-user plugins folder, so a
``python main.py train`` subprocess finds both backends.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from difflora_gui.errors import JobCancelled
from difflora_gui.params import Param
from difflora_gui.specs import TrainerBackendSpec
from difflora_gui.train.config import PAIR_MODES

ROOT = Path(__file__).resolve().parent.parent
BACKEND = "tiny-test"
CMD_BACKEND = "tiny-cmd"

#: (run name, device, thread start, thread end) of every run of the in-process backend
RUNS: list[dict] = []
_RUNS_LOCK = threading.Lock()

PARAMS = (
    Param("model", "path", "", "the model folder (must exist when given)"),
    Param("dit", "path", "", "a DiT file (must exist when given)"),
    Param("step_delay_s", "float", 0.0, "seconds each step takes (to test stopping)", minimum=0.0),
    Param("fail_at_step", "int", 0, "raise at this step (0: never)", minimum=0),
)

PLUGIN_SOURCE = """
from difflora_gui import hookimpl


@hookimpl
def difflora_register_trainer_backends():
    from tests.train_helpers import backend_specs

    return backend_specs()
"""


def backend_specs() -> list[TrainerBackendSpec]:
    common = dict(
        params=PARAMS,
        validate="tests.train_helpers:validate",
        settings_defaults="tests.train_helpers:settings_defaults",
        pair_modes=PAIR_MODES,
    )
    return [
        TrainerBackendSpec(
            name=BACKEND,
            title="Tiny test",
            description="test-only: writes tiny real LoRA files with the conventional events",
            run="tests.train_helpers:run_tiny",
            describe="tests.train_helpers:describe_tiny",
            **common,
        ),
        TrainerBackendSpec(
            name=CMD_BACKEND,
            title="Tiny command",
            description="test-only: the tiny trainer as a child process, with its exact commands",
            run="tests.train_helpers:run_tiny_cmd",
            describe="tests.train_helpers:describe_tiny_cmd",
            **common,
        ),
    ]


def install_test_backends(data_dir: str | Path) -> Path:
    """The plugin module in ``<data_dir>/plugins`` (DIFFLORA_DATA_DIR of the test)."""
    folder = Path(data_dir) / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_trainers.py"
    path.write_text(PLUGIN_SOURCE, encoding="utf-8")
    return path


def register_test_backends(host) -> None:
    """Register both backends in an in-process plugin host."""
    import types

    from difflora_gui import hookimpl

    @hookimpl
    def difflora_register_trainer_backends():
        return backend_specs()

    module = types.ModuleType("tiny_trainers_test_plugin")
    module.difflora_register_trainer_backends = difflora_register_trainer_backends
    host.register(module, "tiny_trainers")


# --- the backend's callables ---------------------------------------------------------------------


def settings_defaults(settings) -> dict:
    return {"model": settings.wan_model_dir, "dit": settings.wan_dit}


def validate(run):
    from difflora_gui.train.backend import ERROR, WARNING, TrainIssue

    issues = []
    for key in ("model", "dit"):
        value = run.backend_config.get(key)
        if value and not Path(value).exists():
            issues.append(TrainIssue(ERROR, f"{key} not found: {value}", key))
    if run.config["network_dim"] > 64:
        issues.append(TrainIssue(WARNING, "a rank above 64 is rarely needed for a concept", "network_dim"))
    return issues


def describe_tiny(run):
    from difflora_gui.train.backend import TrainDescription

    return TrainDescription(
        plan={
            "backend": BACKEND,
            "name": run.name,
            "dataset": run.dataset,
            "output": str(run.output_path()),
            "steps": [run.steps_done, run.total_steps],
            "device": run.device,
            "side": run.side,
            "expert": run.expert,
            "learning_rate": run.config["learning_rate"],
            "backend_config": run.backend_config,
        }
    )


def cmd_argv(run) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.train_helpers",
        "--name",
        run.name,
        "--output_dir",
        run.output_dir,
        "--rank",
        str(run.config["network_dim"]),
        "--start",
        str(run.steps_done),
        "--steps",
        str(run.total_steps),
        "--save_every",
        str(run.config["save_every_n_steps"]),
    ]


def describe_tiny_cmd(run):
    from difflora_gui.train.backend import TrainDescription

    caching = [sys.executable, "-c", "print('cached')", "--dataset", run.dataset]
    return TrainDescription(
        commands=[caching, cmd_argv(run)],
        files={
            str(
                Path(run.output_dir) / f"{run.name}.toml"
            ): f'[[datasets]]\nimage_directory = "{run.dataset}"\n'
        },
        cwd=str(ROOT),
    )


def _as_run(run):
    from difflora_gui.train.plan import TrainRun

    return run if isinstance(run, TrainRun) else TrainRun.from_json(run)


def checkpoint_path(run, step: int) -> Path:
    return Path(run.output_dir) / f"{run.name}-step{step:08d}.safetensors"


def state_path(run, step: int) -> Path:
    return Path(run.output_dir) / f"{run.name}-step{step:08d}-state"


def write_tiny_lora(path: Path, rank: int, seed: int) -> Path:
    from difflora_gui.lora.synthetic import make_wan_lora

    make_wan_lora("tiny", rank=rank, alpha="rank", seed=seed, path=path, select="attn")
    return path


def write_state(run, step: int) -> Path:
    folder = state_path(run, step)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_text(json.dumps({"step": step, "name": run.name}), encoding="utf-8")
    return folder


def run_tiny(run, ctx):
    """The in-process job: steps from ``steps_done`` to the total, the conventional events."""
    from difflora_gui.train.plan import TrainResult

    run = _as_run(run)
    entry = {"name": run.name, "device": run.device, "start": time.monotonic(), "end": None}
    with _RUNS_LOCK:
        RUNS.append(entry)
    backend = run.backend_config
    total, rank = run.total_steps, int(run.config["network_dim"])
    every = int(run.config["save_every_n_steps"])
    result = TrainResult(run.run_id, run.name, total_steps=total, steps_done=run.steps_done)
    Path(run.output_dir).mkdir(parents=True, exist_ok=True)
    ctx.status(f"training {run.name} on {run.device}")
    average = 0.0
    try:
        for step in range(run.steps_done + 1, total + 1):
            if ctx.keep_requested and result.steps_done > run.steps_done:
                state = write_state(run, result.steps_done)
                result.state = result.kept = str(state)
                ctx.artifact("state", state, step=result.steps_done, kept=True)
                ctx.log(f"kept {state} (step {result.steps_done}); resume from it")
                raise JobCancelled()
            ctx.raise_if_cancelled()
            if backend.get("fail_at_step") and step == backend["fail_at_step"]:
                raise RuntimeError(f"planned failure at step {step}")
            time.sleep(float(backend.get("step_delay_s") or 0.0))
            loss = 1.0 / step
            average += (loss - average) / (step - run.steps_done)
            ctx.metric("loss", loss, step=step)
            ctx.metric("avr_loss", average, step=step)
            ctx.metric("lr", run.config["learning_rate"], step=step)
            ctx.progress(step, total, f"step {step}/{total}")
            result.steps_done = step
            if every and step % every == 0 and step < total:
                path = write_tiny_lora(checkpoint_path(run, step), rank, step)
                result.checkpoints.append(str(path))
                ctx.artifact("checkpoint", path, step=step)
                if run.config["save_state"]:
                    state = write_state(run, step)
                    result.state = str(state)
                    ctx.artifact("state", state, step=step)
        final = write_tiny_lora(run.output_path(), rank, total)
        result.lora = str(final)
        ctx.artifact("lora", final, step=total)
        return result
    finally:
        entry["end"] = time.monotonic()


def run_tiny_cmd(run, ctx):
    """The child-process job: runs exactly :func:`describe_tiny_cmd`'s training command."""
    from difflora_gui.jobs.process import run_child
    from difflora_gui.train.plan import TrainResult

    run = _as_run(run)
    Path(run.output_dir).mkdir(parents=True, exist_ok=True)
    run_child(cmd_argv(run), ctx, cwd=ROOT, name="tiny trainer")
    ctx.artifact("lora", run.output_path(), step=run.total_steps)
    return TrainResult(
        run.run_id,
        run.name,
        lora=str(run.output_path()),
        steps_done=run.total_steps,
        total_steps=run.total_steps,
    )


# --- fixtures ------------------------------------------------------------------------------------


def make_pair_folders(base: Path, count: int = 3, size: tuple[int, int] = (32, 32)) -> tuple[Path, Path]:
    """Set A and set B (PNG images with the same names) under ``base`` (a name with a space)."""
    from tests.wan_tiny import write_images

    a_dir, b_dir = base / "set A", base / "set B"
    names = [f"item{i}" for i in range(count)]
    write_images(a_dir, names, size=size, seed=1)
    write_images(b_dir, names, size=size, seed=2)
    return a_dir, b_dir


def _main(argv: list[str]) -> int:
    """``python -m tests.train_helpers``: the tiny trainer as a program (tiny-cmd's child)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--save_every", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    for step in range(args.start + 1, args.steps + 1):
        print(f"step {step}/{args.steps} avr_loss={1.0 / step:.4f}", flush=True)
        if args.save_every and step % args.save_every == 0 and step < args.steps:
            write_tiny_lora(out / f"{args.name}-step{step:08d}.safetensors", args.rank, step)
    write_tiny_lora(out / f"{args.name}.safetensors", args.rank, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
