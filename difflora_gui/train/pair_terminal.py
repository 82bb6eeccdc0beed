"""A pair job in the terminal: every run on its lane, a progress bar each, records kept, the merge offer.

The runs go to the command line's scheduler (the same lanes as the GUI's). The first Ctrl+C stops
every run and keeps what it can (a resumable backend saves its state and says which; runs still
waiting are not started); a second one aborts at once. With a project, each run's record follows
it (running, then finished / stopped / failed with its checkpoints and state, read back from its
event log) and the project is saved at every change, so a crash leaves it knowing every run.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.jobs.cli import CliContext
from difflora_gui.jobs.events import Artifact, Event
from difflora_gui.jobs.scheduler import CANCELLED, DONE, FAILED, RUNNING
from difflora_gui.train.pair_job import PairJob, scheduler_submit
from difflora_gui.train.plan import TrainResult, TrainRun

POLL_S = 0.1
#: after the second Ctrl+C, how long the jobs get to stop their child processes
ABORT_WAIT_S = 10.0


class RunContext(CliContext):
    """A progress bar per run; beside another run, on its own line and its log lines prefixed."""

    def __init__(self, *, position: int | None = None, prefix: str = "", **kwargs):
        super().__init__(**kwargs)
        self._position = position
        self._prefix = prefix
        #: every file the run reported (checkpoints, states, the LoRA), also when it had no event log
        self.artifacts: list[Artifact] = []

    def _ensure_bar(self, total):
        from tqdm import tqdm

        if self._bar is None and self._position is not None:
            self._bar = tqdm(
                total=total,
                desc=self._description,
                file=self._stream,
                dynamic_ncols=True,
                leave=True,
                position=self._position,
                disable=self._quiet,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
            )
        return super()._ensure_bar(total)

    def _emit_log(self, text: str) -> None:
        super()._emit_log(f"{self._prefix}{text}" if self._prefix else text)

    def _emit_event(self, event: Event) -> None:
        if isinstance(event, Artifact):
            self.artifacts.append(event)
        super()._emit_event(event)


@dataclass
class RunOutcome:
    run: TrainRun
    state: str  # done, failed, cancelled
    result: TrainResult | None = None
    error: BaseException | None = None
    traceback: str = ""
    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def kept_state(self) -> str:
        """The newest resumable state the run reported ('' if none)."""
        if self.result is not None and self.result.state:
            return self.result.state
        states = [a.path for a in self.artifacts if a.kind == "state"]
        return states[-1] if states else ""

    @property
    def status(self) -> str:
        from difflora_gui.train import run_records

        return {DONE: run_records.FINISHED, FAILED: run_records.FAILED}.get(self.state, run_records.STOPPED)


class _Recorder:
    """Keeps the project's records in step with the jobs (main thread only)."""

    def __init__(self, project, runs):
        self.project = project
        if project is not None:
            from difflora_gui.train.run_records import record_runs

            record_runs(project, runs)
            self.save()

    def save(self) -> None:
        if self.project is not None and self.project.path is not None:
            self.project.save()

    def status(self, run: TrainRun, status: str, **kwargs: Any) -> None:
        if self.project is None:
            return
        from difflora_gui.train.run_records import set_status

        set_status(self.project, run.run_id, status, **kwargs)
        self.save()


def run_pair_in_terminal(
    job: PairJob, *, project=None, quiet: bool = False, scheduler=None
) -> list[RunOutcome]:
    """Run every run of ``job`` and wait for all of them; returns their outcomes in order."""
    from difflora_gui.jobs.cli import terminal_scheduler

    lanes = scheduler if scheduler is not None else terminal_scheduler()
    recorder = _Recorder(project, job.runs)
    parallel = job.parallel
    contexts: dict[int, RunContext] = {}
    runs_by_request: dict[int, TrainRun] = {}

    def make_context(request) -> RunContext:
        run = request.params
        index = len(contexts)
        ctx = RunContext(
            description=run.name,
            quiet=quiet,
            position=index if parallel else None,
            prefix=f"[{run.name}] " if parallel else "",
        )
        contexts[request.id] = ctx
        runs_by_request[request.id] = run
        return ctx

    jobs = job.submit(scheduler_submit(lanes, make_context))
    seen: dict[int, str] = {}
    previous = None
    resumable = job.spec.resumable

    def stop_all(keep: bool) -> None:
        for item in jobs:
            lanes.cancel(item, keep=keep)

    if threading.current_thread() is threading.main_thread():

        def on_sigint(signum, frame):
            if any(ctx.cancelled for ctx in contexts.values()) or not jobs:
                raise KeyboardInterrupt
            stop_all(keep=resumable)
            what = "saving what each run has and stopping" if resumable else "stopping"
            print(f"{what}... (press Ctrl+C again to abort immediately)", file=sys.stderr, flush=True)

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        try:
            while True:
                _follow(jobs, seen, runs_by_request, recorder)
                if all(item.is_finished for item in jobs):
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            stop_all(keep=False)
            deadline = time.monotonic() + ABORT_WAIT_S
            while not all(item.is_finished for item in jobs) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            _follow(jobs, seen, runs_by_request, recorder, aborted=True)
            raise
    finally:
        for ctx in contexts.values():
            ctx.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        for item in jobs:
            lanes.forget(item)
    return [
        RunOutcome(
            runs_by_request[item.id],
            item.state,
            _result(item.result),
            item.error,
            item.traceback,
            list(contexts[item.id].artifacts) if item.id in contexts else [],
        )
        for item in jobs
    ]


def _result(value: Any) -> TrainResult | None:
    if value is None or isinstance(value, TrainResult):
        return value
    if isinstance(value, dict):
        from difflora_gui.train.run_records import _RESULT_FIELDS

        return TrainResult(**{k: v for k, v in value.items() if k in _RESULT_FIELDS})
    return None


def _follow(jobs, seen, runs_by_request, recorder: _Recorder, *, aborted: bool = False) -> None:
    """Record each state a job has reached since the last look."""
    from difflora_gui.train import run_records

    for item in jobs:
        state = item.state
        if seen.get(item.id) == state:
            continue
        seen[item.id] = state
        run = runs_by_request[item.id]
        if state == RUNNING:
            recorder.status(run, run_records.RUNNING)
        elif state == DONE:
            recorder.status(run, run_records.FINISHED, result=_result(item.result), events_log=True)
        elif state == FAILED:
            recorder.status(run, run_records.FAILED, events_log=True, error=str(item.error))
        elif state == CANCELLED or aborted:  # aborted: still running after the wait; its log so far
            recorder.status(run, run_records.STOPPED, events_log=True)
