"""The command-line adapter: a tqdm progress bar with ETA on stderr, log lines above it.

:func:`run_in_terminal` submits the job to the same lane scheduler the GUI uses
(:mod:`difflora_gui.jobs.scheduler`) and waits for it; Status and Artifact events are printed as
log lines.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.context import JobContext, Progress
from difflora_gui.jobs.events import Artifact, Event, Metric, Status
from difflora_gui.jobs.job import JobRequest, is_pattern, normalize_lane
from difflora_gui.jobs.scheduler import CANCELLED, FAILED, Scheduler


class CliContext(JobContext):
    def __init__(self, *, description: str = "", quiet: bool = False, stream=None, **kwargs):
        super().__init__(**kwargs)
        self._description = description
        self._quiet = quiet
        self._stream = stream if stream is not None else sys.stderr
        self._bar = None
        self.partials: list[Any] = []

    def _ensure_bar(self, total):
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=total,
                desc=self._description,
                file=self._stream,
                dynamic_ncols=True,
                leave=True,
                disable=self._quiet,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
            )
        elif total is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()
        return self._bar

    def _emit_progress(self, progress: Progress) -> None:
        total = progress.total
        bar = self._ensure_bar(int(total) if total is not None and float(total).is_integer() else total)
        bar.n = int(progress.done) if float(progress.done).is_integer() else progress.done
        if progress.text:
            bar.set_postfix_str(progress.text, refresh=False)
        bar.refresh()

    def _emit_log(self, text: str) -> None:
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.clear()
            print(text, file=self._stream, flush=True)
            self._bar.refresh()
        else:
            print(text, file=self._stream, flush=True)

    def _emit_event(self, event: Event) -> None:
        if isinstance(event, Status):
            self._emit_log(event.text)
        elif isinstance(event, Artifact):
            self._emit_log(f"{event.kind}: {event.path}")
        elif isinstance(event, Metric):
            self._emit_metric(event.name, event.value, event.step)

    def _emit_partial(self, result: Any) -> None:
        self.partials.append(result)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


_scheduler: Scheduler | None = None
_scheduler_lock = threading.Lock()


def terminal_scheduler() -> Scheduler:
    """The process's scheduler for command-line jobs (made on first use)."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            from difflora_gui.settings import AppSettings

            light = AppSettings.load().max_parallel_light_jobs  # the GUI's setting, so both agree
            _scheduler = Scheduler(thread_prefix="cli-job", light_capacity=light)
        return _scheduler


def lane_for(params: Any, lane: str | None = None) -> str:
    """The lane a command-line job runs on: ``lane`` if given, else its params' ``device``."""
    if lane is not None:
        return normalize_lane(lane)
    device = params.get("device") if isinstance(params, dict) else getattr(params, "device", None)
    if not device:
        return "device:cpu"
    try:
        key = normalize_lane("device", str(device))
    except ValueError:  # not a device name the lanes know: the job itself reports it
        return "device:cpu"
    if key == "device:auto":
        from difflora_gui.jobs.devices import detect_devices

        cuda = [d.id for d in detect_devices() if d.id.startswith("cuda:")]
        key = f"device:{cuda[0] if cuda else 'cpu'}"
    return key


def run_in_terminal(
    run: Callable | str,
    params: Any,
    *,
    description: str = "",
    quiet: bool = False,
    lane: str | None = None,
    resumable: bool = False,
    event_log: str | Path | None = None,
    comfy_servers: Iterable[str] | None = None,
    healthy: Callable[[str], bool] | None = None,
    scheduler: Scheduler | None = None,
):
    """Run a job on its lane with a progress bar and wait for it; Ctrl+C cancels it cleanly.

    The lane is ``lane`` (a lane key, a kind such as ``"cuda"``, or a pattern) or else the device
    named by ``params.device``. ``comfy_servers`` (names, with an optional ``healthy(name)``)
    register the ComfyUI lanes for a ``comfy`` job. The job's exceptions propagate
    (``JobCancelled`` included) so the CLI maps them to exit codes.
    """
    lanes = scheduler if scheduler is not None else terminal_scheduler()
    key = lane_for(params, lane)
    if is_pattern(key) and key.startswith("device:"):
        from difflora_gui.jobs.devices import detect_devices

        lanes.register_devices(d.id for d in detect_devices())
    if key.startswith("comfy:") and (comfy_servers is not None or is_pattern(key)):
        lanes.register_comfy_servers(list(comfy_servers or []), healthy)
    request = JobRequest(
        description or "job", run, params, lane=key, resumable=resumable, event_log=event_log
    )
    ctx = CliContext(description=description, quiet=quiet)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # First Ctrl+C asks the job to stop at its next check (a resumable job: stop and keep);
        # a second one interrupts hard.
        def _on_sigint(signum, frame):
            if ctx.cancelled:
                raise KeyboardInterrupt
            ctx.cancel(keep=resumable)
            what = "saving what it has and stopping" if resumable else "cancelling"
            ctx.log(f"{what}... (press Ctrl+C again to abort immediately)")

        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        job = lanes.submit(request, ctx)
        # a short timeout, not one long wait: on Windows only that lets Ctrl+C in
        while not job.wait(0.1):
            pass
    finally:
        ctx.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        lanes.forget(request.id)
    if job.state == FAILED:
        raise job.error
    if job.state == CANCELLED:
        raise JobCancelled()
    return job.result
