"""The GUI job adapter: :class:`JobController` runs ``run(params, ctx)`` functions on QThreads.

Lanes: every job waits in the lane named by :attr:`JobRequest.lane_key`. A device lane
(``device:cpu``, ``device:cuda:0`` ...) runs one job at a time, first in first out, so two jobs
never share a card; the ``light`` lane runs a few small CPU jobs side by side.

Threads: each running job gets its own ``QThread`` with a worker ``QObject`` moved onto it (the
moveToThread recipe). Unlike superqt's ``new_worker_qthread``, the worker and the thread are not
``deleteLater``-ed: the controller keeps their Python wrappers until ``QThread.wait`` says the
thread is over, and only then lets them go. With ``deleteLater`` plus a Python reference, a C++
object could be deleted from two threads at once (it crashed under load in a stress run).

Signals: the job function talks to a :class:`QtJobContext`, whose ``_emit_*`` methods emit the
worker's signals from the worker thread. Those signals are connected with explicit
``Qt.QueuedConnection`` to slots of the job's :class:`JobHandle`, a QObject living in the GUI
thread, which keeps the job's state and re-emits public signals there. Panels connect
to their own job's handle. No UI code ever runs on a worker thread, and the UI thread never waits
for a job except in :meth:`JobController.shutdown`.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QThread, Signal, Slot

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.context import JobContext, Progress, format_duration
from difflora_gui.jobs.job import JobRequest
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED_STATES = (DONE, FAILED, CANCELLED)

LIGHT_LANE = "light"
#: how many light jobs run at once (device lanes always run one)
LIGHT_LANE_CAPACITY = 2


class _JobWorker(QObject):
    """Runs one job function; lives on the job's QThread. Only emits signals."""

    began = Signal(float)
    progressed = Signal(object)
    logged = Signal(str)
    metric_reported = Signal(str, float, object)
    partial_ready = Signal(object)
    outcome = Signal(str, object, object, str, float)  # state, result, error, traceback, ended_at
    finished = Signal()

    def __init__(self, request: JobRequest, ctx: QtJobContext):
        super().__init__()
        self._request = request
        self._ctx = ctx
        ctx._worker = self

    @Slot()
    def work(self) -> None:
        self.began.emit(time.monotonic())
        state, result, error, trace = DONE, None, None, ""
        try:
            function = self._request.function()  # may import heavy modules: do it off the UI thread
            result = function(self._request.params, self._ctx)
        except JobCancelled:
            state = CANCELLED
        except BaseException as exc:  # a job's failure (even SystemExit) must not take the app down
            state, error, trace = FAILED, exc, traceback.format_exc()
        self._ctx._worker = None
        self.outcome.emit(state, result, error, trace, time.monotonic())
        self.finished.emit()


class QtJobContext(JobContext):
    """The context a job function gets in the GUI; its reports become queued Qt signals."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._worker: _JobWorker | None = None

    def _emit(self, signal_name: str, *args: Any) -> None:
        worker = self._worker
        if worker is None:  # the job already returned (e.g. a stray thread of the job reports late)
            return
        try:
            getattr(worker, signal_name).emit(*args)
        except RuntimeError:  # the worker's C++ object is gone
            pass

    def _emit_progress(self, progress: Progress) -> None:
        self._emit("progressed", progress)

    def _emit_log(self, text: str) -> None:
        self._emit("logged", text)

    def _emit_metric(self, name: str, value: float, step: int | None) -> None:
        self._emit("metric_reported", name, value, step)

    def _emit_partial(self, result: Any) -> None:
        self._emit("partial_ready", result)


class JobHandle(QObject):
    """One submitted job, as seen from the GUI thread. Connect a panel to its signals.

    Signals are emitted in the GUI thread: ``state_changed(state)``, ``progressed(Progress)``,
    ``logged(text)``, ``metric_reported(name, value, step)``, ``partial_ready(result)``,
    ``succeeded(result)``, ``failed(message, traceback)`` and finally ``finished(state)``.
    """

    state_changed = Signal(str)
    progressed = Signal(object)
    logged = Signal(str)
    metric_reported = Signal(str, float, object)
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
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_text = ""
        self.traceback = ""
        self.queued_at = time.monotonic()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.cancel_requested = False
        self.context: QtJobContext | None = None
        self._controller = controller
        self._thread: QThread | None = None

    # --- what panels use ---------------------------------------------------------------------

    @property
    def lane_key(self) -> str:
        return self.request.lane_key

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def state_text(self) -> str:
        if self.state == RUNNING and self.cancel_requested:
            return "cancelling"
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

    def cancel(self) -> None:
        self._controller.cancel(self.id)

    # --- slots fed by the worker (queued into the GUI thread) --------------------------------

    @Slot(float)
    def _on_began(self, started_at: float) -> None:
        self.started_at = started_at
        self._set_state(RUNNING)

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        self.progress = progress
        self.progressed.emit(progress)

    @Slot(str)
    def _on_log(self, text: str) -> None:
        self.logged.emit(text)
        self._controller.job_logged.emit(self, text)

    @Slot(str, float, object)
    def _on_metric(self, name: str, value: float, step: Any) -> None:
        self.metric_reported.emit(name, value, step)

    @Slot(object)
    def _on_partial(self, result: Any) -> None:
        self.partial_ready.emit(result)

    @Slot(str, object, object, str, float)
    def _on_outcome(self, state: str, result: Any, error: Any, trace: str, ended_at: float) -> None:
        self.ended_at = ended_at
        if self.started_at is None:
            self.started_at = ended_at
        if self._thread is not None:
            self._controller._release_thread(self._thread)
        self.result = result
        if state == FAILED:
            self.error = error
            self.error_text = (
                str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
            )
            self.traceback = "" if isinstance(error, UserError) else trace
        self._finish(state)

    # --- internals ---------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)
        self._controller.job_state_changed.emit(self)

    def _finish(self, state: str) -> None:
        self._set_state(state)
        if state == DONE:
            self.succeeded.emit(self.result)
        elif state == FAILED:
            self.failed.emit(self.error_text, self.traceback)
            self._controller.job_failed.emit(self)
        self.finished.emit(state)
        self._controller._job_ended(self)


class _Lane:
    def __init__(self, key: str, capacity: int):
        self.key = key
        self.capacity = capacity
        self.queue: deque[JobHandle] = deque()
        self.running: list[JobHandle] = []


class JobController(QObject):
    """Queues jobs in lanes and runs them on QThreads. Lives in the GUI thread.

    ``resolve_device(name)`` maps ``"auto"`` to a real device; while it returns ``None`` (devices
    not detected yet) such jobs wait, and :meth:`devices_known` submits them.
    """

    job_added = Signal(object)
    job_state_changed = Signal(object)
    job_removed = Signal(int)
    job_logged = Signal(object, str)
    job_failed = Signal(object)

    def __init__(
        self, parent: QObject | None = None, *, resolve_device: Callable[[str], str | None] | None = None
    ):
        super().__init__(parent)
        self._resolve_device = resolve_device or (lambda name: "cpu" if name == "auto" else name)
        self._jobs: dict[int, JobHandle] = {}
        self._lanes: dict[str, _Lane] = {}
        self._waiting_for_device: list[JobHandle] = []
        self._threads: list[tuple[QThread, _JobWorker]] = []
        self._accepting = True

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
        if request.lane == "device" and request.device == "auto":
            device = self._resolve_device("auto")
            if device is None:
                self._waiting_for_device.append(handle)
                return handle
            request.device = device
        self._enqueue(handle)
        return handle

    def devices_known(self) -> None:
        """Device detection finished: place jobs that asked for the ``auto`` device."""
        waiting, self._waiting_for_device = self._waiting_for_device, []
        for handle in waiting:
            if handle.state != QUEUED:
                continue
            handle.request.device = self._resolve_device("auto") or "cpu"
            self._enqueue(handle)

    def _enqueue(self, handle: JobHandle) -> None:
        lane = self._lane(handle.lane_key)
        lane.queue.append(handle)
        self._pump(lane)

    def _lane(self, key: str) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key, LIGHT_LANE_CAPACITY if key == LIGHT_LANE else 1)
        return lane

    def _pump(self, lane: _Lane) -> None:
        while self._accepting and lane.queue and len(lane.running) < lane.capacity:
            handle = lane.queue.popleft()
            lane.running.append(handle)
            self._start(handle)

    def _start(self, handle: JobHandle) -> None:
        ctx = QtJobContext()
        handle.context = ctx
        thread = QThread()
        thread.setObjectName(f"job-{handle.id}")
        worker = _JobWorker(handle.request, ctx)
        worker.moveToThread(thread)
        thread.started.connect(worker.work)  # runs in the new thread, before its event loop
        # quit() is thread-safe; called directly from the job thread so exec() returns at once
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        queued = Qt.ConnectionType.QueuedConnection
        worker.began.connect(handle._on_began, queued)
        worker.progressed.connect(handle._on_progress, queued)
        worker.logged.connect(handle._on_log, queued)
        worker.metric_reported.connect(handle._on_metric, queued)
        worker.partial_ready.connect(handle._on_partial, queued)
        worker.outcome.connect(handle._on_outcome, queued)
        handle._thread = thread
        # Both wrappers stay here until the thread is over (see the module docstring).
        self._threads.append((thread, worker))
        thread.start()

    def _release_thread(self, thread: QThread) -> None:
        """The job function returned: make sure its thread's event loop ends."""
        thread.quit()

    def _job_ended(self, handle: JobHandle) -> None:
        lane = self._lanes.get(handle.lane_key)
        if lane is not None:
            if handle in lane.running:
                lane.running.remove(handle)
            self._pump(lane)
        handle.context = None
        handle._thread = None
        self._prune_threads()
        # a job is where torch & co. get imported: keep later full collections short (qt.heap)
        freeze_heap_after_heavy_imports()

    def _prune_threads(self) -> None:
        self._threads = [pair for pair in self._threads if _thread_alive(pair[0])]

    # --- cancel / remove ---------------------------------------------------------------------

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job now, or ask a running one to stop (its function sees ``ctx.cancelled``)."""
        handle = self._jobs.get(job_id)
        if handle is None or handle.is_finished:
            return False
        if handle.state == QUEUED and handle.context is None:
            lane = self._lanes.get(handle.lane_key)
            if lane is not None and handle in lane.queue:
                lane.queue.remove(handle)
            if handle in self._waiting_for_device:
                self._waiting_for_device.remove(handle)
            handle.cancel_requested = True
            handle._finish(CANCELLED)
            return True
        handle.cancel_requested = True
        if handle.context is not None:
            handle.context.cancel()
        handle.state_changed.emit(handle.state)
        self.job_state_changed.emit(handle)
        return True

    def remove(self, job_id: int) -> bool:
        """Forget a finished job (a queued one is cancelled first); running jobs stay."""
        handle = self._jobs.get(job_id)
        if handle is None:
            return False
        if handle.state == QUEUED:
            self.cancel(job_id)
        if not handle.is_finished:
            return False
        del self._jobs[job_id]
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
        return [h for lane in self._lanes.values() for h in lane.running]

    def lane_keys(self) -> list[str]:
        return list(self._lanes)

    def has_live_threads(self) -> bool:
        self._prune_threads()
        return bool(self._threads)

    # --- shutting down -----------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every job and wait (processing events) until their threads end.

        Returns ``False`` if some job did not stop within ``timeout_s`` (its function never checks
        ``ctx.cancelled``); the controller then stays in shutdown mode and can be waited on again.
        """
        self._accepting = False
        for handle in list(self._waiting_for_device):
            self.cancel(handle.id)
        for lane in self._lanes.values():
            for handle in list(lane.queue):
                self.cancel(handle.id)
        for handle in self.running_jobs():
            self.cancel(handle.id)
        deadline = time.monotonic() + timeout_s
        while True:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            self._prune_threads()
            if not self._threads and not self.running_jobs():
                return True
            if time.monotonic() >= deadline:
                return False
            for thread, _worker in list(self._threads):
                _wait(thread, 10)

    def reopen(self) -> None:
        """Accept jobs again after a :meth:`shutdown` that the user called off."""
        self._accepting = True
        for lane in self._lanes.values():
            self._pump(lane)

    @property
    def accepting(self) -> bool:
        return self._accepting


def _thread_alive(thread: QThread) -> bool:
    return not (thread.isFinished() and thread.wait(0))


def _wait(thread: QThread, msecs: int) -> bool:
    return thread.wait(msecs)
