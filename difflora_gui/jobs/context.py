"""The context a job function receives: progress, log, metrics, partial results, cancellation.

A job is a plain function ``run(params, ctx)``. It never knows whether it runs from the command
line, a test or the GUI: three adapters subclass :class:`JobContext` and override the ``_emit_*``
methods (:mod:`difflora_gui.jobs.cli`, :mod:`difflora_gui.jobs.recording`, and the Qt
``JobController``). Progress is throttled here, once, for all of them.

Besides progress and log lines a job emits typed events (:mod:`difflora_gui.jobs.events`):
``ctx.metric``, ``ctx.artifact``, ``ctx.status``, ``ctx.frame``, or ``ctx.emit(event)``. When an
:class:`~difflora_gui.jobs.eventlog.EventLog` is attached, every event, progress report and log
line is appended to it first.

Stopping: ``cancel()`` asks the job to abort (it raises :class:`JobCancelled` at its next check and
leaves nothing half-written); ``cancel(keep=True)`` asks a *resumable* job to stop and keep what it
can (a training state): such a job checks :attr:`keep_requested`, saves, emits an ``Artifact`` that
says where, and then raises ``JobCancelled``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.events import Artifact, Event, Frame, LogLine, Metric, ProgressEvent, Status

#: progress updates closer together than this are dropped (the last one always goes through)
PROGRESS_INTERVAL_S = 0.1
#: the event log keeps at most one progress report per this many seconds (a new text and a
#: finished report always): a ten-hour training would otherwise log tqdm's redraws ten times a second
EVENT_LOG_PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Progress:
    done: float
    total: float | None
    text: str
    elapsed_s: float
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


class JobContext:
    """Base context; thread-safe for the calls a job makes from its worker thread."""

    def __init__(self, *, progress_interval_s: float = PROGRESS_INTERVAL_S, clock=time.monotonic):
        self._cancel_event = threading.Event()
        self._interval = progress_interval_s
        self._clock = clock
        self._started = clock()
        self._last_emit = -float("inf")
        self._last_text = None
        self._last_logged = -float("inf")
        self._last_logged_text = None
        self._lock = threading.Lock()
        self._keep = False
        self.event_log = None
        #: the lane the scheduler runs the job on (``comfy:gpu-box``, ``device:cuda:1``); None outside it
        self.lane_key: str | None = None
        self.last_progress: Progress | None = None
        self._first_report: tuple[float, float] | None = None

    def attach_event_log(self, log) -> None:
        """Append every event, progress report and log line to ``log`` (an ``EventLog``)."""
        self.event_log = log

    # --- what a job calls --------------------------------------------------------------------

    def progress(self, done: float, total: float | None = None, text: str = "") -> None:
        """Report ``done`` out of ``total`` units (``total=None``: unknown) with a status text."""
        now = self._clock()
        elapsed = now - self._started
        if self._first_report is None:
            self._first_report = (float(done), now)
        eta = None
        first_done, first_at = self._first_report
        if total and done > first_done:
            # the rate since the first report: a resumed run starts at its step, not at 0, and
            # the set-up before the first step (model load, caching) is not taken for work
            eta = max(0.0, (now - first_at) * (total - done) / (done - first_done))
        elif total and done > 0:  # no rate yet: the first report's share of the time since the start
            eta = max(0.0, elapsed * (total - done) / done)
        report = Progress(float(done), float(total) if total is not None else None, text, elapsed, eta)
        with self._lock:
            self.last_progress = report
            finished = total is not None and done >= total
            if not finished and text == self._last_text and now - self._last_emit < self._interval:
                return
            self._last_emit = now
            self._last_text = text
            log_due = now - self._last_logged >= EVENT_LOG_PROGRESS_INTERVAL_S
            to_log = self.event_log is not None and (finished or text != self._last_logged_text or log_due)
            if to_log:
                self._last_logged, self._last_logged_text = now, text
        if to_log:
            self.event_log.append(ProgressEvent(report.done, report.total, text))
        self._emit_progress(report)

    def log(self, text: str) -> None:
        """A line for the log (the CLI prints it, the GUI shows it in the Log dock)."""
        text = str(text)
        if self.event_log is not None:
            self.event_log.append(LogLine(text))
        self._emit_log(text)

    def emit(self, event: Event) -> None:
        """Report a typed event (:mod:`difflora_gui.jobs.events`)."""
        if self.event_log is not None:
            self.event_log.append(event)
        self._emit_event(event)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        """A named number over steps (loss, norm, ...) for plots."""
        self.emit(Metric(str(name), float(value), None if step is None else int(step)))

    def artifact(self, kind: str, path, **meta: Any) -> None:
        """A file the job wrote (``checkpoint``, ``sample``, ``video``, ``image``, ``lora``, ``file`` ...)."""
        self.emit(Artifact(str(kind), str(path), meta))

    def status(self, text: str) -> None:
        """What the job is doing now, in a few words."""
        self.emit(Status(str(text)))

    def frame(self, index: int, image: Any, **meta: Any) -> None:
        """A preview frame; slow viewers only get the newest one."""
        self.emit(Frame(int(index), image, meta))

    def partial(self, result: Any) -> None:
        """An intermediate result: a sample video, a preview frame, an analysis table."""
        self._emit_partial(result)

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the user asked to stop; call it between units of work."""
        if self._cancel_event.is_set():
            raise JobCancelled()

    # --- what the runner calls ---------------------------------------------------------------

    def cancel(self, *, keep: bool = False) -> None:
        """Ask the job to stop; ``keep=True``: a resumable job saves what it can first (a later
        plain ``cancel()`` withdraws that: stop at once)."""
        # a plain stop after "Stop and keep" means "now": it no longer waits to keep anything
        self._keep = bool(keep)
        self._cancel_event.set()

    @property
    def keep_requested(self) -> bool:
        """True after ``cancel(keep=True)``: save a resumable state, say where, then stop."""
        return self._keep and self._cancel_event.is_set()

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    # --- adapters override these -------------------------------------------------------------

    def _emit_progress(self, progress: Progress) -> None:
        pass

    def _emit_log(self, text: str) -> None:
        pass

    def _emit_event(self, event: Event) -> None:
        """Adapters override this for all events; the default hands metrics to ``_emit_metric``."""
        if isinstance(event, Metric):
            self._emit_metric(event.name, event.value, event.step)

    def _emit_metric(self, name: str, value: float, step: int | None) -> None:
        pass

    def _emit_partial(self, result: Any) -> None:
        pass


class NullContext(JobContext):
    """A context that reports nothing; for calling a job function as a plain function."""


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
