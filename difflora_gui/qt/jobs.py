"""The GUI job adapter: :class:`JobController` is a thin Qt layer over the shared lane scheduler.

Lanes and order are the scheduler's (:mod:`difflora_gui.jobs.scheduler`, the same one the command
line uses): ``device:cpu`` and ``device:cuda:N`` run one job at a time, first in first out, so two
jobs never share a card; ``comfy:<server>`` one job per ComfyUI server; ``light`` a few small CPU
jobs side by side. A job may ask for any lane of a kind (``lane="cuda"``: any free GPU).

Threads: each job runs on the scheduler's own ``threading.Thread``. The thread never touches a
widget or a :class:`JobHandle`: everything it reports — state changes, progress, log lines, typed
events — goes through one signal of a relay ``QObject`` that is parented to the controller (so it
lives, in the GUI thread, as long as the controller), connected with explicit
``Qt.QueuedConnection`` to a controller slot. Qt queues each report into the GUI thread's event
loop; there the controller updates the job's handle, which re-emits public signals. Reports from
one job thread arrive in the order they were made. No QObject is created, owned or deleted by a
job thread, so none can be deleted from two threads at once (what the earlier ``deleteLater``
design crashed on). The UI thread never waits for a job except in :meth:`JobController.shutdown`.

Frames: a job's preview frames go through a :class:`~difflora_gui.jobs.events.LatestOnly` slot
per job; only the newest frame is delivered when the GUI is slower than the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, Signal, Slot

from difflora_gui.errors import UserError
from difflora_gui.jobs.context import JobContext, Progress, format_duration
from difflora_gui.jobs.events import Event, Frame, LatestOnly, Metric, Status
from difflora_gui.jobs.job import JobRequest
from difflora_gui.jobs.scheduler import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED_STATES,
    LIGHT_LANE,
    LIGHT_LANE_CAPACITY,
    QUEUED,
    RUNNING,
    Job,
    Scheduler,
)
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.main_thread_gc import install_main_thread_gc

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINISHED_STATES",
    "LIGHT_LANE",
    "LIGHT_LANE_CAPACITY",
    "QUEUED",
    "RUNNING",
    "JobController",
    "JobHandle",
    "QtJobContext",
]


class _Relay(QObject):
    """Carries a job thread's reports into the GUI thread: ``(job id, kind, payload)``."""

    posted = Signal(int, str, object)


class QtJobContext(JobContext):
    """The context a job function gets in the GUI; its reports become queued Qt signals."""

    def __init__(self, job_id: int, relay: _Relay, **kwargs):
        super().__init__(**kwargs)
        self._job_id = job_id
        self._relay = relay
        self._open = True
        self.frames = LatestOnly()

    def _post(self, kind: str, payload: Any = None) -> None:
        if not self._open:  # the job already returned (e.g. a stray thread of the job reports late)
            return
        try:
            self._relay.posted.emit(self._job_id, kind, payload)
        except RuntimeError:  # the controller (and with it the relay) is gone
            pass

    def _emit_progress(self, progress: Progress) -> None:
        self._post("progress", progress)

    def _emit_log(self, text: str) -> None:
        self._post("log", text)

    def _emit_event(self, event: Event) -> None:
        if isinstance(event, Frame):
            if self.frames.put(event):  # else a wake-up is on its way already and takes this one
                self._post("frame")
            return
        self._post("event", event)

    def _emit_partial(self, result: Any) -> None:
        self._post("partial", result)


class JobHandle(QObject):
    """One submitted job, as seen from the GUI thread. Connect a panel to its signals.

    Signals are emitted in the GUI thread: ``state_changed(state)``, ``progressed(Progress)``,
    ``logged(text)``, ``metric_reported(name, value, step)``, ``event_emitted(event)`` (every
    typed event: Metric, Status, Artifact, Frame — frames newest-only), ``partial_ready(result)``,
    ``succeeded(result)``, ``failed(message, traceback)`` and finally ``finished(state)``.
    """

    state_changed = Signal(str)
    progressed = Signal(object)
    logged = Signal(str)
    metric_reported = Signal(str, float, object)
    event_emitted = Signal(object)
    partial_ready = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)
    finished = Signal(str)

    def __init__(self, request: JobRequest, controller: JobController):
        # No Qt parent: the controller keeps it in a dict until it is removed, and after that it
        # lives as long as a panel holds on to it (plain Python ownership, no deleteLater race).
        super().__init__()
        self.request = request
        self.id = request.id
        self.title = request.title
        self.state = QUEUED
        self.progress: Progress | None = None
        self.status_text = ""
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_text = ""
        self.traceback = ""
        self.queued_at = time.monotonic()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.cancel_requested = False
        self.keep_requested = False
        #: the job's context while it runs (None while queued and once finished)
        self.context: QtJobContext | None = None
        self._controller = controller
        self._job: Job | None = None  # the scheduler's job, once the device is known

    # --- what panels use ---------------------------------------------------------------------

    @property
    def lane_key(self) -> str:
        """The lane it runs on, else what it waits for (``device:cuda:*`` = any free GPU)."""
        return self._job.lane_text if self._job is not None else self.request.lane_key

    @property
    def resumable(self) -> bool:
        return self.request.resumable

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def state_text(self) -> str:
        if self.state == RUNNING and self.cancel_requested:
            return "saving and stopping" if self.keep_requested else "cancelling"
        return self.state

    @property
    def eta_text(self) -> str:
        if self.state != RUNNING or self.progress is None or self.progress.eta_s is None:
            return ""
        return f"ETA {format_duration(self.progress.eta_s)}"

    @property
    def elapsed_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started_at

    def cancel(self, *, keep: bool = False) -> None:
        """Stop the job; ``keep=True``: a resumable job saves what it can first ("Stop and keep")."""
        self._controller.cancel(self.id, keep=keep)

    # --- internals (GUI thread) --------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)
        self._controller.job_state_changed.emit(self)

    def _finish(self, state: str) -> None:
        self.context = None
        self._set_state(state)
        if state == DONE:
            self.succeeded.emit(self.result)
        elif state == FAILED:
            self.failed.emit(self.error_text, self.traceback)
            self._controller.job_failed.emit(self)
        self.finished.emit(state)
        self._controller._job_ended(self)


class JobController(QObject):
    """Submits jobs to a :class:`Scheduler` and mirrors them as :class:`JobHandle`\\ s. GUI thread.

    ``resolve_device(name)`` maps ``"auto"`` to a real device; while it returns ``None`` (devices
    not detected yet) such jobs wait, and :meth:`devices_known` submits them.
    """

    job_added = Signal(object)
    job_state_changed = Signal(object)
    job_removed = Signal(int)
    job_logged = Signal(object, str)
    job_failed = Signal(object)
    #: every typed event of every job: ``(handle, event)``
    job_event = Signal(object, object)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        resolve_device: Callable[[str], str | None] | None = None,
        scheduler: Scheduler | None = None,
    ):
        super().__init__(parent)
        # job threads must never run the cyclic collector: it would destroy Qt objects there
        install_main_thread_gc()
        self._resolve_device = resolve_device or (lambda name: "cpu" if name == "auto" else name)
        self.scheduler = scheduler if scheduler is not None else Scheduler()
        self._jobs: dict[int, JobHandle] = {}
        self._waiting_for_device: list[JobHandle] = []
        self._accepting = True
        self._relay = _Relay(self)
        self._relay.posted.connect(self._on_posted, Qt.ConnectionType.QueuedConnection)

    # --- lanes -------------------------------------------------------------------------------

    def register_devices(self, device_ids: Iterable[str]) -> None:
        """One lane per device (for jobs that take "any free GPU")."""
        self.scheduler.register_devices(device_ids)

    def register_comfy_servers(self, names: Iterable[str], healthy: Callable[[str], bool] | None = None):
        """One lane per ComfyUI server; ``healthy(name)`` must be a quick, cached answer."""
        self.scheduler.register_comfy_servers(names, healthy)

    # --- submitting --------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> JobHandle:
        """Queue a job and return its handle (connect to it right away: it starts later)."""
        if not self._accepting:
            raise UserError("the app is shutting down; no new jobs are accepted")
        if request.id in self._jobs:
            raise ValueError(f"job id {request.id} was already submitted")
        handle = JobHandle(request, self)
        self._jobs[request.id] = handle
        self.job_added.emit(handle)
        if request.wants_auto_device:
            device = self._resolve_device("auto")
            if device is None:
                self._waiting_for_device.append(handle)
                return handle
            request.device = device
        self._schedule(handle)
        return handle

    def devices_known(self, device_ids: Iterable[str] | None = None) -> None:
        """Device detection finished: register the devices' lanes (when given) and place the
        jobs that asked for the ``auto`` device."""
        if device_ids is not None:
            self.register_devices(device_ids)
        waiting, self._waiting_for_device = self._waiting_for_device, []
        for handle in waiting:
            if handle.state != QUEUED:
                continue
            handle.request.device = self._resolve_device("auto") or "cpu"
            self._schedule(handle)

    def _schedule(self, handle: JobHandle) -> None:
        ctx = QtJobContext(handle.id, self._relay)
        try:
            handle._job = self.scheduler.submit(handle.request, ctx, on_state=self._on_scheduler_state)
        except UserError as exc:  # the scheduler is shutting down under us
            handle.error, handle.error_text = exc, str(exc)
            handle._finish(FAILED)

    def _on_scheduler_state(self, job: Job, state: str) -> None:
        """Any thread: hand the state change to the GUI thread."""
        if state == QUEUED:
            return  # the handle starts queued; nothing to tell
        try:
            self._relay.posted.emit(job.id, "state", state)
        except RuntimeError:
            pass
        if state in FINISHED_STATES:
            ctx = job.context
            if isinstance(ctx, QtJobContext):
                ctx._open = False  # reports after the outcome are dropped (a stray thread of the job)

    # --- reports, in the GUI thread ----------------------------------------------------------

    @Slot(int, str, object)
    def _on_posted(self, job_id: int, kind: str, payload: Any) -> None:
        handle = self._jobs.get(job_id)
        if handle is None or handle.is_finished:
            return
        if kind == "state":
            self._on_state(handle, payload)
        elif kind == "progress":
            handle.progress = payload
            handle.progressed.emit(payload)
        elif kind == "log":
            handle.logged.emit(payload)
            self.job_logged.emit(handle, payload)
        elif kind == "event":
            self._on_event(handle, payload)
        elif kind == "frame":
            ctx = handle._job.context if handle._job is not None else None
            frame = ctx.frames.take() if isinstance(ctx, QtJobContext) else None
            if frame is not None:
                self._on_event(handle, frame)
        elif kind == "partial":
            handle.partial_ready.emit(payload)

    def _on_event(self, handle: JobHandle, event: Event) -> None:
        if isinstance(event, Metric):
            handle.metric_reported.emit(event.name, event.value, event.step)
        elif isinstance(event, Status):
            handle.status_text = event.text
        handle.event_emitted.emit(event)
        self.job_event.emit(handle, event)

    def _on_state(self, handle: JobHandle, state: str) -> None:
        job = handle._job
        if state == RUNNING:
            handle.started_at = job.started_at
            handle.context = job.context
            handle._set_state(RUNNING)
            return
        handle.ended_at = job.ended_at if job.ended_at is not None else time.monotonic()
        if handle.started_at is None:
            handle.started_at = job.started_at if job.started_at is not None else handle.ended_at
        handle.result = job.result
        if state == FAILED:
            error = job.error
            handle.error = error
            handle.error_text = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            handle.traceback = "" if isinstance(error, UserError) else job.traceback
        handle._finish(state)

    def _job_ended(self, handle: JobHandle) -> None:
        # a job is where torch & co. get imported: keep later full collections short (qt.heap).
        # Only when nothing else runs: a freeze would also make a running job's objects immortal.
        if not self.scheduler.running():
            freeze_heap_after_heavy_imports()

    # --- cancel / remove ---------------------------------------------------------------------

    def cancel(self, job_id: int, *, keep: bool = False) -> bool:
        """Cancel a queued job now, or ask a running one to stop (its function sees
        ``ctx.cancelled``; with ``keep=True`` a resumable job also sees ``ctx.keep_requested``)."""
        handle = self._jobs.get(job_id)
        if handle is None or handle.is_finished:
            return False
        keep = keep and handle.resumable
        if handle in self._waiting_for_device:
            self._waiting_for_device.remove(handle)
            outcome = "dequeued"
        elif handle._job is not None:
            outcome = self.scheduler.cancel(handle._job, keep=keep)
        else:
            outcome = ""
        handle.cancel_requested = True
        handle.keep_requested = handle.keep_requested or keep
        if outcome == "dequeued":
            handle.ended_at = time.monotonic()
            handle._finish(CANCELLED)
            return True
        handle.state_changed.emit(handle.state)
        self.job_state_changed.emit(handle)
        return True

    def remove(self, job_id: int) -> bool:
        """Forget a finished job (a queued one is cancelled first); running jobs stay."""
        handle = self._jobs.get(job_id)
        if handle is None:
            return False
        if handle.state == QUEUED and handle.context is None:
            self.cancel(job_id)
        if not handle.is_finished:
            return False
        del self._jobs[job_id]
        if handle._job is not None:
            self.scheduler.forget(handle._job)
        self.job_removed.emit(job_id)
        return True

    def remove_finished(self) -> int:
        finished = [job_id for job_id, h in self._jobs.items() if h.is_finished]
        for job_id in finished:
            self.remove(job_id)
        return len(finished)

    # --- queries -----------------------------------------------------------------------------

    def job(self, job_id: int) -> JobHandle | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[JobHandle]:
        return list(self._jobs.values())

    def active_jobs(self) -> list[JobHandle]:
        """Jobs queued or running."""
        return [h for h in self._jobs.values() if not h.is_finished]

    def running_jobs(self) -> list[JobHandle]:
        return [h for h in self._jobs.values() if h.state == RUNNING]

    def lane_keys(self) -> list[str]:
        return self.scheduler.lane_keys()

    def has_live_threads(self) -> bool:
        return bool(self.scheduler.live_threads())

    # --- shutting down -----------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every job and wait (processing events) until their threads end.

        Returns ``False`` if some job did not stop within ``timeout_s`` (its function never checks
        ``ctx.cancelled``); the controller then stays in shutdown mode and can be waited on again.
        """
        self._accepting = False
        for handle in self.active_jobs():
            self.cancel(handle.id)
        self.scheduler.stop_accepting()
        deadline = time.monotonic() + timeout_s
        while True:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            threads = self.scheduler.live_threads()
            if not threads and not self.scheduler.running():
                # the last outcomes are queued; deliver them before saying "all stopped"
                QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
                if not self.active_jobs():
                    return True
            if time.monotonic() >= deadline:
                return False
            for thread in threads:
                thread.join(0.01)

    def reopen(self) -> None:
        """Accept jobs again after a :meth:`shutdown` that the user called off."""
        self._accepting = True
        self.scheduler.reopen()

    @property
    def accepting(self) -> bool:
        return self._accepting
