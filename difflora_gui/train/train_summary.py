"""What ``python main.py train`` prints when its runs end: one line per run and the resume commands."""

from __future__ import annotations

from typing import Any


def outcome_lines(outcomes) -> list[str]:
    """``NAME: finished -> FILE`` / ``stopped at step N (kept X)`` / ``failed: why``, per run."""
    lines = []
    for outcome in outcomes:
        run, result = outcome.run, outcome.result
        if outcome.state == "done":
            lora = result.lora if result is not None and result.lora else run.output_path()
            lines.append(f"{run.name}: finished -> {lora}")
        elif outcome.state == "failed":
            lines.append(f"{run.name}: failed: {outcome.error}")
        else:
            state = _kept_state(outcome)
            kept = f"; kept {state}" if state else "; nothing kept"
            lines.append(f"{run.name}: stopped{kept}")
    return lines


def _kept_state(outcome) -> str:
    return outcome.kept_state


def resume_commands(args, job, outcomes, project) -> list[str]:
    """The command that continues the stopped runs (one for all of them), or none.

    With a project the record knows everything: ``--project P --resume STATE``. Without, the
    command repeats the config as flags (only values other than the declaration's defaults) and
    the backend's settings other than what its defaults and Settings give.
    """
    from difflora_gui.train.pair_job import shell_join

    states = [
        state
        for outcome in outcomes
        if outcome.state == "cancelled"
        for state in [_kept_state(outcome)]
        if state
    ]
    if not states:
        return []
    argv = ["python", "main.py", "train"]
    if project is not None and project.path is not None:
        argv += ["--project", str(project.path), *[part for state in states for part in ("--resume", state)]]
        return [shell_join(argv)]
    first = job.runs[0]
    if args.mode == "pair":
        argv += ["pair", "--a", str(args.set_a), "--b", str(args.set_b)]
    else:
        argv += ["--dataset", str(first.dataset)]
    from difflora_gui.train.train_cli import base_name

    argv += ["--backend", job.spec.name, "--output", str(first.output_dir), "--name", base_name(args)]
    argv += _config_flags(first.config) + _backend_flags(job.spec, first.backend_config)
    if args.device and args.device != "auto":
        argv += ["--device", args.device]
    argv += [part for state in states for part in ("--resume", state)]
    return [shell_join(argv)]


def _config_flags(config: dict[str, Any]) -> list[str]:
    from difflora_gui.config.cli import command_args
    from difflora_gui.train.config import TRAIN_CONFIG

    return command_args(TRAIN_CONFIG, config)


def _backend_flags(spec, backend_config: dict[str, Any]) -> list[str]:
    from difflora_gui.params import value_text
    from difflora_gui.settings import AppSettings
    from difflora_gui.train.backend import backend_values

    baseline = backend_values(spec, {}, AppSettings.load())
    flags = []
    for key, value in backend_config.items():
        if baseline.get(key) != value:
            text = ",".join(value_text(v) for v in value) if isinstance(value, list) else value_text(value)
            flags += ["--backend-param", f"{key}={text}"]
    return flags
