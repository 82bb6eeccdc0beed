"""The three Musubi Tuner commands of a run, as argument lists, with every trap handled.

``wan_cache_latents.py`` and ``wan_cache_text_encoder_outputs.py`` (both ``--skip_existing``: a
resume or retry reuses the caches), then ``wan_train_network.py``, run with the chosen Python
directly (one GPU) or through ``accelerate launch`` only for multi-GPU. The training config maps
to Musubi's flags (``musubi-tuner.md`` §0, §3, §11):

* ``--network_alpha`` always (Musubi's default 1 would scale the LoRA by 1/rank);
* optimizer names Musubi resolves: Lion is ``lion_pytorch.Lion`` (a bare ``Lion`` is looked up in
  ``torch.optim`` and fails at run time);
* targets as ``--network_args`` include/exclude patterns (:mod:`.targets`);
* a per-expert Wan2.2 run: its expert's DiT, ``--min/--max_timestep`` and
  ``--preserve_distribution_shape``; joint mode: ``--dit`` (low) + ``--dit_high_noise`` and
  ``--timestep_boundary`` as an integer (875, not 0.875, which argparse refuses);
* ``--lr_warmup_steps`` only for a schedule with warm-up (``constant`` with warm-up raises);
* ``--resume`` restarts Musubi's step count at 0 and trains another ``--max_train_steps``: the
  steps are shortened to what is left, and the output goes to a folder of its own (Musubi numbers
  its checkpoints from 1 again; the job renames them to the real steps).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.train.config import EXPERT_BOUNDARIES, is_two_expert
from difflora_gui.train.musubi.settings import DEFAULT_LOADER_WORKERS, TE_CACHE_BATCH_SIZE
from difflora_gui.train.musubi.staging import toml_path, work_dir
from difflora_gui.train.musubi.targets import CLIP_TASKS, network_targets
from difflora_gui.train.plan import TrainRun

SCRIPTS = ("wan_cache_latents.py", "wan_cache_text_encoder_outputs.py", "wan_train_network.py")
#: our optimizer names -> what Musubi's ``--optimizer_type`` resolves (built-in names or module.Class)
OPTIMIZER_TYPES = {
    "adamw": "AdamW",
    "adamw8bit": "AdamW8bit",
    "lion": "lion_pytorch.Lion",
    "prodigy": "prodigyopt.Prodigy",
    "adafactor": "Adafactor",
}
#: the pip package each optimizer needs in Musubi's Python (bitsandbytes is one of Musubi's own)
OPTIMIZER_PACKAGES = {"lion": "lion-pytorch", "prodigy": "prodigyopt"}
_STATE_STEP = re.compile(r"-step(\d{8})-state$")


def is_i2v(task: str) -> bool:
    return task.startswith("i2v")


def needs_clip(task: str) -> bool:
    return task in CLIP_TASKS


def python_of(backend: dict[str, Any]) -> str:
    """The Python that runs Musubi: the configured one, else this app's."""
    return str(backend.get("python") or "") or sys.executable


def script_path(backend: dict[str, Any], script: str) -> str:
    return str(Path(str(backend.get("musubi_dir") or "")) / "src" / "musubi_tuner" / script)


def _num(value: Any) -> str:
    """A number as Musubi's argparse reads it (``2e-05``, ``16.0``, ``50``)."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def resume_step(run: TrainRun) -> int:
    """The step the resumed state was saved at: ``run.steps_done``, else read from the state
    folder's name (``<name>-step00000500-state``); 0 without a resume."""
    if not run.resume:
        return 0
    if run.steps_done:
        return int(run.steps_done)
    match = _STATE_STEP.search(Path(run.resume).name)
    if match is None:
        raise UserError(
            f"cannot tell the step of the state {run.resume}: give the step it was saved at (steps_done)"
        )
    return int(match.group(1))


def musubi_output_dir(run: TrainRun) -> Path:
    """Where Musubi writes: the output folder, or for a resumed run a folder of its own (its
    step numbers start at 1 again; the job moves each file to the real step in the output folder)."""
    if run.resume:
        return work_dir(run) / f"resume-from-step{resume_step(run):08d}"
    return Path(run.output_dir)


def steps_to_train(run: TrainRun) -> int:
    """``--max_train_steps``: the whole run, or what is left of it after the resumed state."""
    left = run.total_steps - resume_step(run)
    if left < 1:
        raise UserError(f"the state {run.resume} is already at step {resume_step(run)} of {run.total_steps}")
    return left


def _check_key_values(items: list[str], what: str) -> list[str]:
    for item in items:
        if str(item).count("=") != 1:
            raise UserError(
                f"{what} item {item!r}: write key=value with exactly one '=' (Musubi splits on it)"
            )
    return [str(item) for item in items]


def cache_latents_command(run: TrainRun) -> list[str]:
    backend, task = run.backend_config, run.config["task"]
    argv = [
        python_of(backend),
        script_path(backend, "wan_cache_latents.py"),
        "--dataset_config",
        str(toml_path(run)),
        "--vae",
        str(backend.get("vae") or ""),
    ]
    if is_i2v(task):
        argv.append("--i2v")
    if needs_clip(task):
        argv += ["--clip", str(backend.get("clip") or "")]
    if backend.get("vae_cache_cpu"):
        argv.append("--vae_cache_cpu")
    argv.append("--skip_existing")
    return argv


def cache_text_command(run: TrainRun) -> list[str]:
    backend = run.backend_config
    argv = [
        python_of(backend),
        script_path(backend, "wan_cache_text_encoder_outputs.py"),
        "--dataset_config",
        str(toml_path(run)),
        "--t5",
        str(backend.get("t5") or ""),
        "--batch_size",
        str(TE_CACHE_BATCH_SIZE),
    ]
    if backend.get("fp8_t5"):
        argv.append("--fp8_t5")
    argv.append("--skip_existing")
    return argv


def launcher(run: TrainRun) -> list[str]:
    """The start of the training command: the Python, or ``accelerate launch`` for multi-GPU."""
    backend = run.backend_config
    script = script_path(backend, "wan_train_network.py")
    if not backend.get("multi_gpu"):
        return [python_of(backend), script]
    return [
        python_of(backend),
        "-m",
        "accelerate.commands.launch",  # `accelerate launch`, from the same Python (no PATH lookup)
        "--num_cpu_threads_per_process",
        "1",
        "--mixed_precision",
        str(run.config["mixed_precision"]),
        "--multi_gpu",
        "--num_processes",
        str(int(backend.get("num_processes") or 2)),
        script,
    ]


def _model_args(run: TrainRun) -> list[str]:
    backend, config, task = run.backend_config, run.config, run.config["task"]
    dit = backend.get("dit_high_noise") if run.expert == "high" else backend.get("dit")
    argv = ["--task", task, "--dit", str(dit or "")]
    joint = is_two_expert(task) and run.expert is None
    if joint:
        argv += ["--dit_high_noise", str(backend.get("dit_high_noise") or "")]
        argv += ["--timestep_boundary", str(EXPERT_BOUNDARIES[task])]
        if backend.get("offload_inactive_dit"):
            argv.append("--offload_inactive_dit")
    argv += ["--dataset_config", str(toml_path(run)), f"--{backend.get('attention') or 'sdpa'}"]
    argv += ["--mixed_precision", str(config["mixed_precision"])]
    if backend.get("fp8_base") or backend.get("fp8_scaled"):
        argv.append("--fp8_base")  # --fp8_scaled asserts --fp8_base
    if backend.get("fp8_scaled"):
        argv.append("--fp8_scaled")
    if int(backend.get("blocks_to_swap") or 0) > 0:
        argv += ["--blocks_to_swap", str(int(backend["blocks_to_swap"]))]
    if config.get("gradient_checkpointing"):
        argv.append("--gradient_checkpointing")
    workers = int(backend.get("max_data_loader_n_workers", DEFAULT_LOADER_WORKERS))
    argv += ["--max_data_loader_n_workers", str(workers)]
    if workers > 0:
        argv.append("--persistent_data_loader_workers")
    return argv


def _network_args(run: TrainRun) -> list[str]:
    config = run.config
    argv = [
        "--network_module",
        "networks.lora_wan",
        "--network_dim",
        str(int(config["network_dim"])),
        "--network_alpha",
        _num(config["network_alpha"]),
    ]
    targets = network_targets(config["task"], str(config.get("targets") or "all"))
    if targets.network_args:
        argv += ["--network_args", *targets.network_args]
    return argv


def _optimizer_args(run: TrainRun) -> list[str]:
    config = run.config
    argv = ["--optimizer_type", OPTIMIZER_TYPES[config["optimizer"]]]
    extra = _check_key_values(list(config.get("optimizer_args") or []), "optimizer_args")
    if extra:
        argv += ["--optimizer_args", *extra]
    argv += ["--learning_rate", _num(config["learning_rate"]), "--lr_scheduler", config["lr_scheduler"]]
    if config["lr_scheduler"] != "constant" and int(config.get("lr_warmup_steps") or 0) > 0:
        argv += ["--lr_warmup_steps", str(int(config["lr_warmup_steps"]))]
    argv += ["--max_grad_norm", _num(config["max_grad_norm"])]
    return argv


def _timestep_args(run: TrainRun) -> list[str]:
    config = run.config
    argv = [
        "--timestep_sampling",
        config["timestep_sampling"],
        "--discrete_flow_shift",
        _num(config["discrete_flow_shift"]),
    ]
    window = run.timestep_window()
    if window is not None:
        low, high = window
        argv += ["--min_timestep", str(low), "--max_timestep", str(high), "--preserve_distribution_shape"]
    return argv


def _output_args(run: TrainRun) -> list[str]:
    config, backend = run.config, run.backend_config
    argv = ["--max_train_steps", str(steps_to_train(run))]
    every = int(config.get("save_every_n_steps") or 0)
    if every > 0:
        argv += ["--save_every_n_steps", str(every)]
    if config.get("save_state"):
        argv.append("--save_state")
    argv += ["--seed", str(int(config["seed"]))]
    argv += ["--output_dir", str(musubi_output_dir(run)), "--output_name", run.name]
    if run.resume:
        argv += ["--resume", str(run.resume)]
    prompts = str(backend.get("sample_prompts") or "")
    every_sample = int(backend.get("sample_every_n_steps") or 0)
    if prompts and every_sample > 0:
        argv += ["--sample_prompts", prompts, "--sample_every_n_steps", str(every_sample)]
        argv += ["--vae", str(backend.get("vae") or ""), "--t5", str(backend.get("t5") or "")]
        if backend.get("fp8_t5"):
            argv.append("--fp8_t5")
    if needs_clip(config["task"]) and backend.get("clip"):
        argv += ["--clip", str(backend["clip"])]  # Wan2.1 I2V samples need the image encoder
    return argv


def train_command(run: TrainRun) -> list[str]:
    """``wan_train_network.py``'s full command line (the user's extra flags last)."""
    argv = launcher(run)
    argv += _model_args(run)
    argv += _network_args(run)
    argv += _optimizer_args(run)
    argv += _timestep_args(run)
    argv += _output_args(run)
    argv += [str(arg) for arg in run.backend_config.get("extra_args") or []]
    return argv


def commands(run: TrainRun) -> list[list[str]]:
    """The run's commands in order: cache latents, cache text-encoder outputs, train."""
    return [cache_latents_command(run), cache_text_command(run), train_command(run)]


def command_env(run: TrainRun) -> dict[str, str]:
    """Environment for the commands: UTF-8 unbuffered output (stdout is block-buffered when piped,
    and the epoch and checkpoint lines come on stdout), and the run's GPU for a one-GPU run."""
    env = {"PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
    device = str(run.device or "")
    if device.startswith("cuda:") and not run.backend_config.get("multi_gpu"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    return env
