"""Training runs in the project: a :class:`RunRecord` per run, the pair's config once, resume.

:func:`record_runs` adds one record per :class:`TrainRun` (its config, backend settings, side,
expert, pair id, folders, total steps) and points each run's event log at the project workspace
(``runs/<run id>/events.jsonl``), and stores the pair's config once in the project's ``train``
section (``pairs[<pair id>]``): A and B differ only in their data, so that one config is *the*
config of the pair. Records follow the runs: :func:`apply_event` for each event (the GUI, as
events arrive), :func:`apply_events_log` after the fact (the command line reads the log back),
:func:`apply_result` for the job's result, :func:`set_status` for its end. :func:`resume_run`
turns a stopped run with a saved state back into a :class:`TrainRun` that continues it.

Change a project only from one thread (the GUI thread; the command line's main thread). Qt-free.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact, Event, ProgressEvent
from difflora_gui.project.records import DatasetRecord, RunRecord
from difflora_gui.train.plan import TrainResult, TrainRun

TRAIN_SECTION = "train"
PAIRS_KEY = "pairs"

QUEUED = ""
RUNNING = "running"
FINISHED = "finished"
STOPPED = "stopped"
FAILED = "failed"

_STEP_RE = re.compile(r"-step(\d+)(?:-state)?$")


def _norm(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    path, folder = _norm(path), _norm(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def dataset_id_for(project, folder: str | Path) -> str | None:
    """The project's dataset record the training folder came from (lineage), if any: a source
    folder of the record, or a folder inside its location; the newest record wins."""
    for record in reversed(project.records(DatasetRecord)):
        if any(_norm(source) == _norm(folder) for source in record.sources):
            return record.id
        if record.location and _inside(str(folder), record.location):
            return record.id
    return None


def step_of(path: str | Path) -> int | None:
    """The step in a checkpoint or state name (``<name>-step00000500[-state]``), if it has one."""
    name = Path(path).name
    if name.endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    match = _STEP_RE.search(name)
    return int(match.group(1)) if match else None


def name_of_state(path: str | Path) -> str | None:
    """The run name a state folder belongs to (``<name>-step%08d-state``), if its name says it."""
    name = Path(path).name
    match = _STEP_RE.search(name)
    return name[: match.start()] if match and name.endswith("-state") else None


def record_for(run: TrainRun, project=None) -> RunRecord:
    """A new record of ``run`` (its id is the run's id, so events and records meet)."""
    return RunRecord(
        id=run.run_id,
        name=run.name,
        dataset_id=dataset_id_for(project, run.dataset) if project is not None else None,
        config=dict(run.config),
        backend=run.backend,
        backend_config=dict(run.backend_config),
        side=run.side,
        expert=run.expert,
        pair_id=run.pair_id,
        dataset_dir=str(Path(os.path.abspath(run.dataset))),
        output_dir=str(Path(os.path.abspath(run.output_dir))),
        state=str(run.resume or ""),
        steps_done=int(run.steps_done),
        total_steps=run.total_steps,
        event_log=str(run.event_log or ""),
        meta={"pair_dataset": str(Path(os.path.abspath(run.pair_dataset)))} if run.pair_dataset else {},
    )


def record_runs(project, runs: Sequence[TrainRun]) -> list[RunRecord]:
    """Record ``runs`` in ``project``: event logs in its workspace, one record each, and the
    pair's config once in the ``train`` section. A resumed run keeps its record (its id)."""
    records = []
    for run in runs:
        if not run.event_log:
            run.event_log = str(project.workspace.events_path("run", run.run_id))
        existing = _existing(project, run.run_id)
        if existing is not None:  # a resume: the same record continues
            record = dataclasses.replace(
                existing, status=QUEUED, state=str(run.resume or existing.state), event_log=run.event_log
            )
        else:
            record = record_for(run, project)
        records.append(project.add_record(record))
    store_pair_config(project, runs)
    return records


def store_pair_config(project, runs: Sequence[TrainRun]) -> None:
    """``train.pairs[<pair id>]``: the one config, the backend and its settings, the run ids."""
    if not runs:
        return
    first = runs[0]
    pairs = dict(project.section(TRAIN_SECTION).get(PAIRS_KEY) or {})
    entry = dict(pairs.get(first.pair_id) or {})
    run_ids = list(entry.get("runs") or [])
    run_ids += [run.run_id for run in runs if run.run_id not in run_ids]
    entry.update(
        config=dict(first.config),
        backend=first.backend,
        backend_config=dict(first.backend_config),
        runs=run_ids,
        pair_mode=first.config.get("pair_mode", ""),
        paired=any(run.side in ("a", "b", "slider") for run in runs),
    )
    pairs[first.pair_id or first.run_id] = entry
    project.update_section(TRAIN_SECTION, **{PAIRS_KEY: pairs})


def pair_config(project, pair_id: str) -> dict[str, Any] | None:
    """The config stored once for a pair (None if the project has none for that id)."""
    entry = (project.section(TRAIN_SECTION).get(PAIRS_KEY) or {}).get(pair_id)
    return dict(entry["config"]) if isinstance(entry, dict) and "config" in entry else None


def _existing(project, run_id: str) -> RunRecord | None:
    for record in project.records(RunRecord):
        if record.id == run_id:
            return record
    return None


def run_record(project, run_id: str) -> RunRecord:
    record = _existing(project, run_id)
    if record is None:
        raise UserError(f"this project has no training run {run_id!r}")
    return record


def pair_records(project, pair_id: str) -> list[RunRecord]:
    """The records of one pair, in the order they were added (A before B)."""
    return [record for record in project.records(RunRecord) if record.pair_id == pair_id]


# --- following a run -----------------------------------------------------------------------------


def _step(meta: dict[str, Any], path: str) -> int | None:
    step = meta.get("step")
    if isinstance(step, int) and not isinstance(step, bool):
        return step
    return step_of(path)


def apply_event(record: RunRecord, event: Event) -> bool:
    """Update ``record`` in place from one of its run's events; True if it changed.

    ``checkpoint`` artifacts are listed, the newest ``state`` kept, the ``lora`` becomes the
    output, and progress moves ``steps_done`` (never back: a resumed run counts from its state).
    """
    before = (list(record.checkpoints), record.state, record.output, record.steps_done)
    if isinstance(event, Artifact):
        step = _step(event.meta, event.path)
        if event.kind == "checkpoint" and event.path not in record.checkpoints:
            record.checkpoints.append(event.path)
        elif event.kind == "state":
            record.state = event.path
        elif event.kind == "lora":
            record.output = event.path
        if step is not None and event.kind in ("checkpoint", "state", "lora"):
            record.steps_done = max(record.steps_done, step)
    elif isinstance(event, ProgressEvent) and event.total and event.total == record.total_steps:
        record.steps_done = max(record.steps_done, int(event.done))
    return before != (record.checkpoints, record.state, record.output, record.steps_done)


def apply_events(record: RunRecord, events: Iterable[Event]) -> bool:
    changed = False
    for event in events:
        changed = apply_event(record, event) or changed
    return changed


def apply_events_log(record: RunRecord) -> bool:
    """Update ``record`` from its run's event log (missing log: nothing changes)."""
    from difflora_gui.jobs.eventlog import read_events

    if not record.event_log or not Path(record.event_log).is_file():
        return False
    return apply_events(record, read_events(record.event_log))


def apply_result(record: RunRecord, result: TrainResult | dict[str, Any] | None) -> None:
    """Update ``record`` in place from the job's :class:`TrainResult` (or its JSON)."""
    if result is None:
        return
    if isinstance(result, dict):
        result = TrainResult(**{k: v for k, v in result.items() if k in _RESULT_FIELDS})
    for path in result.checkpoints:
        if path not in record.checkpoints:
            record.checkpoints.append(path)
    if result.lora:
        record.output = result.lora
    if result.state:
        record.state = result.state
    record.steps_done = max(record.steps_done, int(result.steps_done))
    if result.total_steps:
        record.total_steps = int(result.total_steps)
    if result.kept:
        record.meta = {**record.meta, "kept": result.kept}


_RESULT_FIELDS = {f.name for f in dataclasses.fields(TrainResult)}


def set_status(project, run_id: str, status: str, *, result=None, events_log: bool = False, error: str = ""):
    """Put a run's new status (and what it wrote) into the project; returns the new record.

    ``events_log``: also read what the run's event log says (checkpoints, state, steps): a
    stopped or failed run has no result, but its log knows what it wrote. ``error`` (a failed
    run's one line) goes into the record's ``meta``.
    """
    record = dataclasses.replace(run_record(project, run_id))
    record.checkpoints = list(record.checkpoints)
    if events_log:
        apply_events_log(record)
    apply_result(record, result)
    record.status = status
    meta = dict(record.meta)
    if error:
        meta["error"] = error
    elif status in (RUNNING, FINISHED):
        meta.pop("error", None)
    record.meta = meta
    project.add_record(record)
    return record


# --- resuming ------------------------------------------------------------------------------------


def run_from_record(record: RunRecord, *, resume: str | None = None) -> TrainRun:
    """The record's run again, with its id (so the same record and event log continue)."""
    steps = step_of(resume) if resume else None
    return TrainRun(
        name=record.name,
        dataset=record.dataset_dir,
        output_dir=record.output_dir,
        config=dict(record.config),
        backend=record.backend,
        backend_config=dict(record.backend_config),
        side=record.side,
        expert=record.expert,
        pair_dataset=record.meta.get("pair_dataset") or None,
        resume=resume,
        steps_done=(steps if steps is not None else record.steps_done) if resume else 0,
        pair_id=record.pair_id,
        run_id=record.id,
        event_log=record.event_log or None,
    )


def resume_run(record: RunRecord) -> TrainRun:
    """The :class:`TrainRun` that continues a stopped run from its newest state.

    It keeps the record's id, name, config, backend, folders and event log, so the same record
    and plot continue; it ends at the original total step count.
    """
    if record.status == FINISHED and record.output:
        raise UserError(f"{record.name} has finished ({record.output}); there is nothing to resume")
    if not record.state:
        raise UserError(
            f"{record.name} kept no resumable state (save_state was off, or it stopped before its "
            "first save); train it again"
        )
    if not Path(record.state).exists():
        raise UserError(f"the state of {record.name} is gone: {record.state}")
    return run_from_record(record, resume=record.state)


def continue_pair(project, record: RunRecord) -> tuple[list[TrainRun], list[TrainRun]]:
    """``(runs to train, every run of the pair)`` to finish the pair ``record`` belongs to.

    ``record`` resumes from its state; the pair's other runs that have not finished resume from
    theirs, or start again when they kept none; finished runs only take part in the merge offer.
    """
    target = resume_run(record)
    everything, to_train = [], []
    for other in pair_records(project, record.pair_id) if record.pair_id else [record]:
        if other.id == record.id:
            run = target
        elif other.status == FINISHED and other.output and Path(other.output).exists():
            run = run_from_record(other)
            everything.append(run)
            continue
        elif other.state and Path(other.state).exists():
            run = run_from_record(other, resume=other.state)
        else:
            run = run_from_record(other)
        everything.append(run)
        to_train.append(run)
    return to_train, everything


def record_with_state(project, state: str | Path) -> RunRecord | None:
    """The project's run whose newest (or a listed) state is ``state``, if any."""
    wanted = _norm(state)
    for record in reversed(project.records(RunRecord)):
        if record.state and _norm(record.state) == wanted:
            return record
    return None
