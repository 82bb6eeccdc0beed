"""What a trainer backend is, and the checks every run gets before launch.

Backends come from ``difflora_register_trainer_backends`` as
:class:`~difflora_gui.specs.TrainerBackendSpec` (the built-in ones are plugins too:
``plugins/musubi_trainer.py``, ``plugins/builtin_trainer.py``). This module finds them, fills a
run's backend settings (declared defaults < the app's Settings < what the user typed), runs the
checks common to every backend and then the backend's own, and describes a run for ``--dry-run``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.specs import TrainerBackendSpec, resolve_callable
from difflora_gui.train.plan import TrainRun

ERROR = "error"
WARNING = "warning"
TRAINER_HOOK = "difflora_register_trainer_backends"


@dataclass(frozen=True)
class TrainIssue:
    """A problem found before launch: an ``error`` stops the run, a ``warning`` is shown.

    ``field`` names the config or backend field it is about ("" for the run as a whole), so a form
    can mark it; ``text`` is one sentence in the user's terms that says what to do.
    """

    level: str
    text: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


@dataclass
class TrainDescription:
    """What a run will do, without doing it: the exact commands (Musubi: caching and training, in
    order) and the files it writes first (name -> text: the dataset TOML), or an in-process
    backend's plan (a JSON-able dict)."""

    commands: list[list[str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    #: environment variables the commands need beyond this process's (PYTHONIOENCODING ...)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "files": self.files,
            "plan": self.plan,
            "env": self.env,
            "cwd": self.cwd,
        }


def trainer_backends(host) -> dict[str, TrainerBackendSpec]:
    """The registered backends by name (``host`` is a :class:`~difflora_gui.plugin_host.PluginHost`)."""
    return {spec.name: spec for _plugin, spec in host.call_register(TRAINER_HOOK, TrainerBackendSpec)}


def backend_spec(host, name: str) -> TrainerBackendSpec:
    backends = trainer_backends(host)
    if name not in backends:
        known = ", ".join(sorted(backends)) or "none"
        raise UserError(f"unknown trainer backend {name!r}; registered: {known}")
    return backends[name]


def backend_values(
    spec: TrainerBackendSpec, given: Mapping[str, Any] | None = None, settings=None
) -> dict[str, Any]:
    """The backend's settings for a run: declared defaults, then the app's Settings
    (``spec.settings_defaults(settings)``), then ``given`` (a form's or the command line's values;
    empty strings and None do not override)."""
    values = dict(spec.params.defaults())
    if spec.settings_defaults is not None:
        if settings is None:
            from difflora_gui.settings import AppSettings

            settings = AppSettings.load()
        values.update(resolve_callable(spec.settings_defaults)(settings) or {})
    for key, value in (given or {}).items():
        if value is None or value == "":
            continue
        values[key] = value
    resolved = spec.params.resolve(values, owner=f"{spec.name} backend")
    # absolute paths: a child runs in another folder (Musubi in its checkout) where a relative
    # path would name another file, and a copied command must work from anywhere
    for param in spec.params:
        value = resolved.get(param.name)
        if param.type == "path" and value:
            resolved[param.name] = _absolute(value)
        elif param.type == "paths" and value:
            resolved[param.name] = [_absolute(item) for item in value]
    return resolved


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def common_issues(run: TrainRun) -> list[TrainIssue]:
    """Checks for every backend: the folders, the name, pair modes that need both sides."""
    from difflora_gui.train.dataset_folder import list_items, matched_items, unmatched_names

    issues: list[TrainIssue] = []
    try:
        items = list_items(run.dataset)
    except UserError as exc:
        return [TrainIssue(ERROR, str(exc), "dataset")]
    if run.pair_dataset:
        try:
            pairs = matched_items(run.dataset, run.pair_dataset)
        except UserError as exc:
            return [TrainIssue(ERROR, str(exc), "dataset")]
        only_a, only_b = unmatched_names(run.dataset, run.pair_dataset)
        if only_a or only_b:
            issues.append(
                TrainIssue(
                    WARNING,
                    f"{len(only_a) + len(only_b)} item(s) have no partner and are left out "
                    f"({', '.join((only_a + only_b)[:3])}...); {len(pairs)} pairs train",
                    "dataset",
                )
            )
    if run.config.get("captions") == "files":
        missing = [item.path.name for item in items if not item.path.with_suffix(".txt").is_file()]
        if missing:
            issues.append(
                TrainIssue(
                    WARNING,
                    f"{len(missing)} item(s) have no caption file and train with an empty caption "
                    f"({', '.join(missing[:3])})",
                    "captions",
                )
            )
    if not run.resume and run.output_path().exists():
        issues.append(
            TrainIssue(
                ERROR,
                f"{run.output_path()} already exists; choose another name or output folder (nothing is overwritten)",
                "name",
            )
        )
    if run.resume and not Path(run.resume).exists():
        issues.append(TrainIssue(ERROR, f"the state to resume from is gone: {run.resume}", "resume"))
    if run.resume and run.steps_done >= run.total_steps:
        issues.append(
            TrainIssue(
                ERROR,
                f"the state {run.resume} is already at step {run.steps_done} of {run.total_steps}",
                "resume",
            )
        )
    return issues


def check_run(spec: TrainerBackendSpec, run: TrainRun) -> list[TrainIssue]:
    """Every issue of ``run``: the common checks, then the backend's ``validate`` (when they pass)."""
    issues = common_issues(run)
    mode = run.config.get("pair_mode")
    if run.side in ("a", "b", "slider") and mode not in spec.pair_modes:
        issues.append(
            TrainIssue(
                ERROR,
                f"the {spec.title} backend cannot train pair mode {mode!r}; choose one of {', '.join(spec.pair_modes)}",
                "pair_mode",
            )
        )
    if spec.validate is not None and not any(issue.level == ERROR for issue in issues):
        issues.extend(resolve_callable(spec.validate)(run) or [])
    return issues


def raise_for_errors(issues: list[TrainIssue], what: str = "the run") -> None:
    """``UserError`` with the first error (one line; the count of others appended)."""
    errors = [issue for issue in issues if issue.level == ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{what} cannot start: {errors[0].text}{more}")


def describe_run(spec: TrainerBackendSpec, run: TrainRun) -> TrainDescription:
    if spec.describe is None:
        return TrainDescription(plan={"backend": spec.name, "run": run.to_json()})
    return resolve_callable(spec.describe)(run)


#: the metric names every backend emits, so one plot shows any backend's run
METRIC_LOSS = "loss"  # the loss of one step (the built-in trainer; Musubi prints only the average)
METRIC_AVG_LOSS = "avr_loss"  # the running average (Musubi's avr_loss: over one epoch's worth of steps)
METRIC_LR = "lr"
METRIC_EPOCH = "epoch"
