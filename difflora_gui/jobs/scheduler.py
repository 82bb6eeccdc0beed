"""Resource lanes: the Qt-free scheduler the command line and the GUI share.

A lane is a queue with a capacity: ``device:cpu`` and ``device:cuda:N`` (one job at a time per
device, so two jobs never share a card), ``comfy:<server name>`` (one job at a time per ComfyUI
server) and ``light`` (:data:`LIGHT_LANE_CAPACITY` small CPU jobs side by side). A job names one
lane or a kind pattern (``device:cuda:*`` = any free GPU, ``comfy:*`` = any healthy ComfyUI
server): it takes the first free lane that matches, else waits for the first of them to free up.

Order is first in, first out per lane: a waiting job holds back every later job that could take a
lane it waits for, so a stream of small jobs never starves an earlier one.

Each job runs on its own ``threading.Thread`` with the :class:`JobContext` its adapter supplies
(the CLI's progress bar, the Qt controller's signal relay). State changes go to listeners,
``listener(job, state)``, from the thread where they happen: ``running`` and the final state from
the job's own thread, before and after its function; ``queued`` from the submitter's thread; a
queued job's ``cancelled`` from the thread that cancelled it. Adapters hand them on to their own
thread (the Qt adapter queues them into the GUI thread).
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.context import JobContext
from difflora_gui.jobs.job import JobRequest, is_pattern

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED_STATES = (DONE, FAILED, CANCELLED)

LIGHT_LANE = "light"
#: how many light jobs run at once (device and server lanes always run one)
LIGHT_LANE_CAPACITY = 2
#: while a job waits for a healthy server, health is asked again this often
HEALTH_POLL_S = 2.0

Listener = Callable[["Job", str], None]


def lane_kind(key: str) -> str:
    """``cpu``, ``cuda``, ``comfy`` or ``light`` (the part of a lane key that says what it is)."""
    if key == LIGHT_LANE:
        return LIGHT_LANE
    if key.startswith("device:"):
        return "cuda" if key.startswith("device:cuda") else "cpu"
    return key.split(":", 1)[0]


def lane_matches(pattern: str, key: str) -> bool:
    """``pattern`` is a lane key or ends with ``*`` (every key with that prefix)."""
    return key.startswith(pattern[:-1]) if is_pattern(pattern) else key == pattern


def _pattern_kinds(pattern: str) -> set[str]:
    if pattern.startswith("comfy:"):
        return {"comfy"}
    if pattern.startswith("device:cuda"):
        return {"cuda"}
    return {"cpu", "cuda"}  # device:*


@dataclass(eq=False)
class Lane:
    key: str
    capacity: int = 1
    #: asked only when a job takes "any lane of a kind": a lane that is not healthy is skipped
    healthy: Callable[[], bool] | None = None
    running: list[Job] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return lane_kind(self.key)

    @property
    def free(self) -> bool:
        return len(self.running) < self.capacity

    def is_healthy(self) -> bool:
        if self.healthy is None:
            return True
        try:
            return bool(self.healthy())
        except Exception:  # a health check that breaks means "not now", not a crash
            return False


class Job:
    """One submitted request and its context, as the scheduler sees it (thread-safe to read)."""

    def __init__(self, request: JobRequest, context: JobContext, on_state: Listener | None):
        self.request = request
        self.id = request.id
        self.context = context
        self.requested_lane = request.lane_key
        self.lane: str | None = None  # the lane it runs on, once started
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.thread: threading.Thread | None = None
        self._on_state = on_state
        self._done = threading.Event()

    @property
    def title(self) -> str:
        return self.request.title

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def lane_text(self) -> str:
        """The lane it runs on, else what it waits for."""
        return self.lane or self.requested_lane

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is finished; False on timeout."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.title!r} {self.state} on {self.lane_text}>"


class Scheduler:
    """Runs :class:`JobRequest`\\ s on lanes. Every method may be called from any thread."""

    def __init__(
        self,
        *,
        light_capacity: int = LIGHT_LANE_CAPACITY,
        health_poll_s: float = HEALTH_POLL_S,
        thread_prefix: str = "job",
    ):
        self._lock = threading.RLock()
        self._lanes: dict[str, Lane] = {}
        self._pending: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}
        self._listeners: list[Listener] = []
        self._light_capacity = light_capacity
        self._health_poll_s = health_poll_s
        self._thread_prefix = thread_prefix
        self._known_kinds: set[str] = set()
        self._accepting = True
        self._poll_timer: threading.Timer | None = None
        self._thread_ids = itertools.count(1)

    # --- lanes -------------------------------------------------------------------------------

    def add_lane(self, key: str, *, capacity: int | None = None, healthy: Callable[[], bool] | None = None):
        """Register a lane (again: update its health check). Returns the :class:`Lane`."""
        with self._lock:
            lane = self._lanes.get(key)
            if lane is None:
                if capacity is None:
                    capacity = self._light_capacity if key == LIGHT_LANE else 1
                lane = self._lanes[key] = Lane(key, capacity, healthy)
            elif healthy is not None:
                lane.healthy = healthy
        self.refresh()
        return lane

    def set_light_capacity(self, capacity: int) -> None:
        """How many light jobs run side by side (the ``max_parallel_light_jobs`` setting)."""
        capacity = max(1, int(capacity))
        with self._lock:
            self._light_capacity = capacity
            lane = self._lanes.get(LIGHT_LANE)
            if lane is not None:
                lane.capacity = capacity
        self.refresh()

    def remove_lane(self, key: str) -> None:
        """Forget a lane for "any lane of a kind" matching; a job running there finishes normally."""
        with self._lock:
            self._lanes.pop(key, None)
        self.refresh()

    def register_devices(self, device_ids: Iterable[str]) -> None:
        """The devices are known: one lane per device (``cpu``, ``cuda:0`` ...)."""
        with self._lock:
            for device in device_ids:
                self._lanes.setdefault(f"device:{device}", Lane(f"device:{device}"))
            self._known_kinds.update({"cpu", "cuda"})
        self.refresh()

    def register_comfy_servers(
        self, names: Iterable[str], healthy: Callable[[str], bool] | None = None
    ) -> None:
        """The ComfyUI servers from Settings: one lane each; the lanes of servers no longer
        listed are forgotten. ``healthy(name)`` must be quick (a cached answer, not a request)."""
        names = list(names)
        with self._lock:
            for key in [k for k in self._lanes if k.startswith("comfy:")]:
                if key[len("comfy:") :] not in names:
                    del self._lanes[key]
            for name in names:
                check = (lambda n=name: healthy(n)) if healthy is not None else None
                lane = self._lanes.setdefault(f"comfy:{name}", Lane(f"comfy:{name}"))
                lane.healthy = check
            self._known_kinds.add("comfy")
        self.refresh()

    def lane(self, key: str) -> Lane | None:
        with self._lock:
            return self._lanes.get(key)

    def lane_keys(self) -> list[str]:
        with self._lock:
            return list(self._lanes)

    # --- listeners ---------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # --- submitting and cancelling -----------------------------------------------------------

    def submit(self, request: JobRequest, context: JobContext, *, on_state: Listener | None = None) -> Job:
        """Queue ``request`` with the context its function will get; returns the :class:`Job`."""
        job = Job(request, context, on_state)
        with self._lock:
            if not self._accepting:
                raise UserError("the app is shutting down; no new jobs are accepted")
            if request.id in self._jobs:
                raise ValueError(f"job id {request.id} was already submitted")
            if request.wants_auto_device:
                raise ValueError(f"{request.title}: resolve device 'auto' to a device before submitting")
            if not is_pattern(job.requested_lane) and job.requested_lane not in self._lanes:
                # a named lane needs no registration: it is the caller's word that it exists
                self._lanes[job.requested_lane] = Lane(
                    job.requested_lane, self._light_capacity if job.requested_lane == LIGHT_LANE else 1
                )
            self._jobs[job.id] = job
            self._pending.append(job)
        self._notify(job, QUEUED)
        self.refresh()
        return job

    def cancel(self, job: Job | int, *, keep: bool = False) -> str:
        """Stop a job: ``"dequeued"`` (it was waiting and never runs), ``"requested"`` (it runs and
        sees ``ctx.cancelled``; with ``keep=True`` also ``ctx.keep_requested``) or ``""``
        (unknown or already finished)."""
        with self._lock:
            job = self._jobs.get(job) if isinstance(job, int) else job
            if job is None or job.is_finished:
                return ""
            if job in self._pending:
                self._pending.remove(job)
                job.state = CANCELLED
                job.ended_at = time.monotonic()
                dequeued = True
            else:
                dequeued = False
        if dequeued:
            job.context.cancel(keep=keep)
            self._finished(job)
            self.refresh()
            return "dequeued"
        job.context.cancel(keep=keep)
        return "requested"

    def refresh(self) -> None:
        """Start what can start now (call it when a server's health changed)."""
        starts: list[tuple[Job, Lane]] = []
        unplaceable: list[Job] = []
        with self._lock:
            if not self._accepting:
                return
            blocked: set[str] = set()
            waiting_on_health = False
            for job in list(self._pending):
                candidates, unhealthy = self._candidates(job.requested_lane)
                waiting_on_health = waiting_on_health or unhealthy
                if not candidates and not unhealthy and self._kind_is_final(job.requested_lane):
                    self._pending.remove(job)
                    unplaceable.append(job)
                    continue
                free = [lane for lane in candidates if lane.free and lane.key not in blocked]
                if free:
                    lane = free[0]
                    self._pending.remove(job)
                    job.lane = lane.key
                    job.state = RUNNING
                    lane.running.append(job)
                    starts.append((job, lane))
                else:
                    blocked.update(lane.key for lane in candidates)
            self._schedule_health_poll(waiting_on_health and bool(self._pending))
        for job in unplaceable:
            self._fail_unplaceable(job)
        for job, lane in starts:
            self._start_thread(job, lane)

    def _candidates(self, requested: str) -> tuple[list[Lane], bool]:
        """The lanes a job may take now, and whether some matching lane is only unhealthy."""
        if not is_pattern(requested):
            lane = self._lanes.get(requested)
            return ([lane] if lane is not None else []), False
        matching = [lane for key, lane in self._lanes.items() if lane_matches(requested, key)]
        healthy = [lane for lane in matching if lane.is_healthy()]
        return healthy, len(healthy) < len(matching)

    def _kind_is_final(self, requested: str) -> bool:
        return is_pattern(requested) and _pattern_kinds(requested) <= self._known_kinds

    def _schedule_health_poll(self, needed: bool) -> None:
        if not needed or self._poll_timer is not None:
            return
        timer = threading.Timer(self._health_poll_s, self._health_poll)
        timer.daemon = True
        self._poll_timer = timer
        timer.start()

    def _health_poll(self) -> None:
        with self._lock:
            self._poll_timer = None
        self.refresh()

    def _fail_unplaceable(self, job: Job) -> None:
        what = {"comfy:*": "no ComfyUI server is configured", "device:cuda:*": "no CUDA GPU was found"}
        reason = what.get(job.requested_lane, "no such lane")
        job.error = UserError(f"{job.title}: cannot run on {job.requested_lane}: {reason}")
        job.state = FAILED
        job.ended_at = time.monotonic()
        self._finished(job)

    # --- running -----------------------------------------------------------------------------

    def _start_thread(self, job: Job, lane: Lane) -> None:
        thread = threading.Thread(
            target=self._run, args=(job, lane), name=f"{self._thread_prefix}-{job.id}", daemon=True
        )
        job.thread = thread
        thread.start()

    def _run(self, job: Job, lane: Lane) -> None:
        ctx, request = job.context, job.request
        # a job placed by a kind pattern (comfy:*, device:cuda:*) learns which lane it got here
        ctx.lane_key = lane.key
        job.started_at = time.monotonic()
        self._notify(job, RUNNING)
        state, log = DONE, None
        try:
            if ctx.cancelled:  # stopped between being placed and starting
                raise JobCancelled()
            if request.event_log is not None:
                log = _open_event_log(request.event_log)
                ctx.attach_event_log(log)
            function = request.function()  # may import heavy modules: off the caller's thread
            job.result = function(request.params, ctx)
        except JobCancelled:
            state = CANCELLED
        except BaseException as exc:  # a job's failure (even SystemExit) must not take the app down
            state, job.error, job.traceback = FAILED, exc, traceback.format_exc()
            job.result = None
        finally:
            if log is not None:
                log.close()
        job.ended_at = time.monotonic()
        with self._lock:
            job.state = state
            if job in lane.running:
                lane.running.remove(job)
        self._finished(job)
        self.refresh()

    def _finished(self, job: Job) -> None:
        self._notify(job, job.state)
        job._done.set()

    def _notify(self, job: Job, state: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        if job._on_state is not None:
            listeners.insert(0, job._on_state)
        for listener in listeners:
            try:
                listener(job, state)
            except Exception:  # one broken listener must not stop the job or the others
                traceback.print_exc()

    # --- queries -----------------------------------------------------------------------------

    def job(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._pending)

    def running(self) -> list[Job]:
        """Jobs placed on a lane and not finished yet."""
        with self._lock:
            return [job for job in self._jobs.values() if job.state == RUNNING]

    def forget(self, job: Job | int) -> bool:
        """Drop a finished job from :meth:`jobs`."""
        with self._lock:
            job_id = job if isinstance(job, int) else job.id
            found = self._jobs.get(job_id)
            if found is None or not found.is_finished:
                return False
            del self._jobs[job_id]
            return True

    def live_threads(self) -> list[threading.Thread]:
        with self._lock:
            return [j.thread for j in self._jobs.values() if j.thread is not None and j.thread.is_alive()]

    # --- shutting down -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    def stop_accepting(self) -> None:
        """Refuse new jobs and cancel every queued and running one (returns at once)."""
        with self._lock:
            self._accepting = False
            pending = list(self._pending)
            running = [job for job in self._jobs.values() if job.state == RUNNING]
            timer, self._poll_timer = self._poll_timer, None
        if timer is not None:
            timer.cancel()
        for job in pending + running:
            self.cancel(job)

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel everything and wait for the job threads; False if one did not stop in time."""
        self.stop_accepting()
        deadline = time.monotonic() + timeout_s
        while self.running() or self.live_threads():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for thread in self.live_threads():
                thread.join(min(left, 0.05))
            if not self.live_threads():
                time.sleep(0.005)  # a job placed a moment ago whose thread is only starting
        return True

    def reopen(self) -> None:
        """Accept jobs again after a shutdown that was called off."""
        with self._lock:
            self._accepting = True
        self.refresh()


def _open_event_log(path):
    from difflora_gui.jobs.eventlog import EventLog

    try:
        return EventLog(path)
    except OSError as exc:
        raise UserError(f"cannot write the job's event log: {exc.strerror or exc}", path=path) from None
