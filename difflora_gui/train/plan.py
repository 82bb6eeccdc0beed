"""A training job as data: :class:`TrainRun` (one LoRA to train) and :class:`TrainResult` (what it wrote).

:func:`plan_pair` turns one config and two folders into the runs of a pair: A and B, or for a
Wan2.2 A14B task in per-expert mode four runs (A and B, each high and low, on Musubi's timestep
windows), or in slider mode one run that sees both folders. Every run of a pair gets the same
config: only ``dataset`` (and ``side``/``expert``) differ, by construction.

Output names: ``<name>_A``/``<name>_B`` (``_high``/``_low`` appended per expert, the names ComfyUI
workflows and our merge's expert detection expect); slider mode writes ``<name>_slider``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.project.records import new_record_id
from difflora_gui.train.config import EXPERT_WINDOWS, EXPERTS, TRAIN_CONFIG, is_two_expert

SIDE_SUFFIX = {"a": "A", "b": "B", "slider": "slider", "": ""}
_NAME_RE = re.compile(r'^[^\\/:*?"<>|\x00-\x1f]+$')


def check_output_name(name: str) -> str:
    """``name`` if it can be a file name on Windows too; ``UserError`` otherwise."""
    name = str(name).strip()
    if not name or not _NAME_RE.match(name) or name.endswith((".", " ")):
        raise UserError(f"bad output name {name!r}: use letters, digits, '-', '_' (no \\ / : * ? \" < > |)")
    return name


@dataclass
class TrainRun:
    """One LoRA to train: what every backend's ``run``/``validate``/``describe`` receives.

    ``config`` holds the resolved :data:`TRAIN_CONFIG` values, ``backend_config`` the backend's own
    settings. ``dataset`` is a folder of images/videos (captions ``<stem>.txt`` beside them).
    ``pair_dataset`` is the partner folder of a pair run (B for A, A for B; slider mode: B): a pair
    trains only the items both folders hold (matched by file stem, sorted by stem), so the A and B
    runs see the same pairs in the same order. ``resume`` is a saved state to continue from: the
    run then ends at the original ``config["max_train_steps"]``. ``steps_done`` is how far that
    state had got (the backend may read it from the state itself).
    """

    name: str
    dataset: str
    output_dir: str
    config: dict[str, Any]
    backend: str = ""
    backend_config: dict[str, Any] = field(default_factory=dict)
    side: str = ""
    expert: str | None = None
    pair_dataset: str | None = None
    resume: str | None = None
    steps_done: int = 0
    pair_id: str | None = None
    run_id: str = field(default_factory=new_record_id)
    #: a JSON-lines event log the job appends to (the GUI reopens its plots from it)
    event_log: str | None = None
    #: the device the job trains on ("cpu", "cuda:0" ...), set when it is placed on a lane
    device: str = "auto"

    @property
    def total_steps(self) -> int:
        return int(self.config["max_train_steps"])

    @property
    def title(self) -> str:
        parts = [f"Train {self.name}"]
        if self.resume:
            parts.append(f"(resume at step {self.steps_done})")
        return " ".join(parts)

    def timestep_window(self) -> tuple[int, int] | None:
        """``(min, max)`` timesteps of 0..1000 for a per-expert run, else None."""
        if self.expert is None:
            return None
        return EXPERT_WINDOWS[self.config["task"]][self.expert]

    def output_path(self) -> Path:
        """The final LoRA file this run writes."""
        return Path(self.output_dir) / f"{self.name}.safetensors"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainRun:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class TrainResult:
    """What a run wrote. ``lora`` is the final file (None when stopped before the end); ``kept``
    the file or state a "Stop and keep" kept (and said so); ``state`` the newest resumable state."""

    run_id: str
    name: str
    lora: str | None = None
    checkpoints: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    state: str | None = None
    kept: str | None = None
    steps_done: int = 0
    total_steps: int = 0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_name(name: str, side: str, expert: str | None = None) -> str:
    parts = [check_output_name(name)]
    if SIDE_SUFFIX.get(side):
        parts.append(SIDE_SUFFIX[side])
    if expert:
        parts.append(f"{expert}_noise")
    return "_".join(parts)


def _experts(config: Mapping[str, Any]) -> list[str | None]:
    if is_two_expert(config["task"]) and config.get("expert_mode") == "per_expert":
        return list(EXPERTS)
    return [None]


def _absolute(path: str | Path) -> str:
    """Runs hold absolute folders: a child runs elsewhere and a stored run is reopened from anywhere."""
    return os.path.abspath(os.path.expanduser(str(path)))


def plan_single(
    config: Mapping[str, Any],
    dataset: str | Path,
    output_dir: str | Path,
    name: str,
    *,
    backend: str = "",
    backend_config: Mapping[str, Any] | None = None,
) -> list[TrainRun]:
    """The run(s) of one LoRA on one folder (two for a per-expert Wan2.2 task)."""
    values = TRAIN_CONFIG.to_recipe(dict(config))
    pair_id = new_record_id()
    return [
        TrainRun(
            name=run_name(name, "", expert),
            dataset=_absolute(dataset),
            output_dir=_absolute(output_dir),
            config=dict(values),
            backend=backend,
            backend_config=dict(backend_config or {}),
            expert=expert,
            pair_id=pair_id,
        )
        for expert in _experts(values)
    ]


def plan_pair(
    config: Mapping[str, Any],
    a_dir: str | Path,
    b_dir: str | Path,
    output_dir: str | Path,
    name: str,
    *,
    backend: str = "",
    backend_config: Mapping[str, Any] | None = None,
) -> list[TrainRun]:
    """The runs of a pair, A before B (per expert: A high, A low, B high, B low; slider: one run).

    Every run gets a copy of the same config; A and B runs differ only in ``dataset``/``side``.
    """
    values = TRAIN_CONFIG.to_recipe(dict(config))
    if Path(a_dir).resolve() == Path(b_dir).resolve():
        raise UserError(f"set A and set B are the same folder: {a_dir}")
    pair_id = new_record_id()
    a_dir, b_dir = _absolute(a_dir), _absolute(b_dir)
    common = dict(
        output_dir=_absolute(output_dir),
        backend=backend,
        backend_config=dict(backend_config or {}),
        pair_id=pair_id,
    )
    if values["pair_mode"] == "slider":
        return [
            TrainRun(
                name=run_name(name, "slider", expert),
                dataset=str(a_dir),
                pair_dataset=str(b_dir),
                config=dict(values),
                side="slider",
                expert=expert,
                **common,
            )
            for expert in _experts(values)
        ]
    runs = []
    for side, folder, partner in (("a", a_dir, b_dir), ("b", b_dir, a_dir)):
        for expert in _experts(values):
            runs.append(
                TrainRun(
                    name=run_name(name, side, expert),
                    dataset=str(folder),
                    pair_dataset=str(partner),
                    config=dict(values),
                    side=side,
                    expert=expert,
                    **common,
                )
            )
    return runs


def merge_pairs(runs: list[TrainRun]) -> list[dict[str, str | None]]:
    """What the merge receives from a finished pair: ``[{"a": file, "b": file, "expert": ...}]``,
    one entry per expert (one entry for one model or joint mode); slider runs give none."""
    pairs = []
    for expert in dict.fromkeys(run.expert for run in runs):
        by_side = {run.side: run for run in runs if run.expert == expert}
        if "a" in by_side and "b" in by_side:
            pairs.append(
                {
                    "a": str(by_side["a"].output_path()),
                    "b": str(by_side["b"].output_path()),
                    "expert": expert,
                }
            )
    return pairs
