"""Resource lanes: the Qt-free scheduler the CLI and the GUI share (fake devices and servers)."""

from __future__ import annotations

import threading
import time

import pytest

from difflora_gui.errors import UserError
from difflora_gui.jobs.context import JobContext
from difflora_gui.jobs.eventlog import read_events
from difflora_gui.jobs.events import Artifact, LogLine, Status
from difflora_gui.jobs.job import JobRequest, normalize_lane
from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.jobs.scheduler import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Scheduler,
    lane_kind,
    lane_matches,
)
from difflora_gui.specs import PreviewBackendSpec


@pytest.fixture
def scheduler():
    lanes = Scheduler(health_poll_s=0.05)
    yield lanes
    assert lanes.shutdown(10), "a test job did not stop"


class Gate:
    """A job that records when it started, then blocks until released."""

    def __init__(self):
        self.started: dict[str, threading.Event] = {}
        self.release: dict[str, threading.Event] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()

    def request(self, name: str, lane: str, **kwargs) -> JobRequest:
        self.started[name] = threading.Event()
        self.release[name] = threading.Event()
        return JobRequest(name, self._run, name, lane=lane, **kwargs)

    def _run(self, name, ctx):
        with self.lock:
            self.order.append(name)
        self.started[name].set()
        while not self.release[name].wait(0.01):
            ctx.raise_if_cancelled()
        return name


def submit(scheduler, request):
    return scheduler.submit(request, RecordingContext())


def test_two_cuda_lanes_run_side_by_side_while_one_lane_is_fifo(scheduler):
    scheduler.register_devices(["cpu", "cuda:0", "cuda:1"])
    gate = Gate()
    a0 = submit(scheduler, gate.request("a0", "device:cuda:0"))
    a1 = submit(scheduler, gate.request("a1", "device:cuda:0"))
    a2 = submit(scheduler, gate.request("a2", "device:cuda:0"))
    b0 = submit(scheduler, gate.request("b0", "device:cuda:1"))
    # both lanes run at once: each lane's first job is running, both blocking
    assert gate.started["a0"].wait(5) and gate.started["b0"].wait(5)
    assert a0.state == RUNNING and b0.state == RUNNING and a0.lane == "device:cuda:0"
    time.sleep(0.1)
    assert not gate.started["a1"].is_set(), "two jobs shared device:cuda:0"
    assert a1.state == QUEUED and a2.state == QUEUED
    gate.release["a0"].set()
    assert gate.started["a1"].wait(5)
    assert not gate.started["a2"].is_set()
    assert b0.state == RUNNING  # the other card is unaffected
    gate.release["a1"].set()
    gate.release["a2"].set()
    gate.release["b0"].set()
    for job in (a0, a1, a2, b0):
        assert job.wait(5) and job.state == DONE and job.result == job.title
    within_lane = [name for name in gate.order if name.startswith("a")]
    assert within_lane == ["a0", "a1", "a2"]
    assert a1.started_at >= a0.ended_at and a2.started_at >= a1.ended_at


def test_any_free_gpu_picks_a_free_lane_and_then_waits_for_the_first_to_free_up(scheduler):
    scheduler.register_devices(["cpu", "cuda:0", "cuda:1"])
    gate = Gate()
    busy = submit(scheduler, gate.request("busy", "device:cuda:0"))
    assert gate.started["busy"].wait(5)
    anyone = submit(scheduler, gate.request("any", "cuda"))
    assert gate.started["any"].wait(5)
    assert anyone.lane == "device:cuda:1" and anyone.requested_lane == "device:cuda:*"
    waiting = submit(scheduler, gate.request("waiting", "device:cuda:*"))
    time.sleep(0.1)
    assert waiting.state == QUEUED and waiting.lane is None
    gate.release["any"].set()  # cuda:1 frees up first
    assert gate.started["waiting"].wait(5)
    assert waiting.lane == "device:cuda:1"
    assert busy.state == RUNNING
    gate.release["busy"].set()
    gate.release["waiting"].set()
    assert waiting.wait(5) and busy.wait(5)


def test_a_waiting_any_gpu_job_holds_back_later_jobs_of_its_lanes(scheduler):
    """FIFO across kinds: a job for one card queued after an any-GPU job does not jump ahead."""
    scheduler.register_devices(["cuda:0"])
    gate = Gate()
    submit(scheduler, gate.request("first", "device:cuda:0"))
    assert gate.started["first"].wait(5)
    anyone = submit(scheduler, gate.request("any", "cuda"))
    later = submit(scheduler, gate.request("later", "device:cuda:0"))
    gate.release["first"].set()
    assert gate.started["any"].wait(5)
    time.sleep(0.05)
    assert later.state == QUEUED
    gate.release["any"].set()
    gate.release["later"].set()
    assert later.wait(5) and gate.order == ["first", "any", "later"]
    assert anyone.lane == "device:cuda:0"


def test_any_gpu_without_a_gpu_fails_with_one_line(scheduler):
    scheduler.register_devices(["cpu"])
    job = submit(scheduler, JobRequest("render", lambda params, ctx: 1, lane="cuda"))
    assert job.wait(5) and job.state == FAILED
    assert isinstance(job.error, UserError) and "no CUDA GPU was found" in str(job.error)


def test_any_gpu_waits_while_devices_are_not_known_yet(scheduler):
    job = submit(scheduler, JobRequest("train", lambda params, ctx: "ran", lane="cuda"))
    time.sleep(0.05)
    assert job.state == QUEUED
    scheduler.register_devices(["cpu", "cuda:0"])
    assert job.wait(5) and job.result == "ran" and job.lane == "device:cuda:0"


def test_a_comfy_job_waits_for_a_healthy_server(scheduler):
    health = {"home": False, "studio": False}
    scheduler.register_comfy_servers(["home", "studio"], healthy=lambda name: health[name])
    assert {"comfy:home", "comfy:studio"} <= set(scheduler.lane_keys())
    job = submit(scheduler, JobRequest("render", lambda params, ctx: "rendered", lane="comfy"))
    time.sleep(0.15)  # a few health polls: nobody is healthy
    assert job.state == QUEUED
    health["studio"] = True  # noticed by the scheduler's own health poll, no call needed
    assert job.wait(5) and job.result == "rendered"
    assert job.lane == "comfy:studio"


def test_removed_servers_lose_their_lanes(scheduler):
    scheduler.register_comfy_servers(["a", "b"])
    scheduler.register_comfy_servers(["b"])
    assert [k for k in scheduler.lane_keys() if k.startswith("comfy:")] == ["comfy:b"]
    scheduler.register_comfy_servers([])
    job = submit(scheduler, JobRequest("render", lambda params, ctx: 1, lane="comfy:*"))
    assert job.wait(5) and job.state == FAILED and "no ComfyUI server" in str(job.error)


def test_a_queued_job_can_be_cancelled_and_never_runs(scheduler):
    gate = Gate()
    states = []
    first = submit(scheduler, gate.request("first", "device:cpu"))
    second = scheduler.submit(
        gate.request("second", "device:cpu"), RecordingContext(), on_state=lambda job, s: states.append(s)
    )
    assert gate.started["first"].wait(5)
    assert scheduler.cancel(second) == "dequeued"
    assert second.state == CANCELLED and second.wait(0)
    assert states == [QUEUED, CANCELLED]
    gate.release["first"].set()
    assert first.wait(5)
    time.sleep(0.05)
    assert "second" not in gate.order
    assert scheduler.cancel(second) == ""


def test_cancel_of_a_running_job_and_stop_and_keep(scheduler):
    seen = {}

    def trainer(params, ctx):
        while not ctx.cancelled:
            time.sleep(0.01)
        seen["keep"] = ctx.keep_requested
        if ctx.keep_requested:
            ctx.artifact("state", f"{params}/state-000100")
        ctx.raise_if_cancelled()

    plain = submit(scheduler, JobRequest("plain", trainer, None, lane="device:cuda:0"))
    kept_ctx = RecordingContext()
    kept_request = JobRequest("kept", trainer, "/runs/a", lane="device:cuda:1", resumable=True)
    kept = scheduler.submit(kept_request, kept_ctx)
    deadline = time.monotonic() + 5
    while not (plain.state == RUNNING and kept.state == RUNNING) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.cancel(plain) == "requested"
    assert plain.wait(5) and plain.state == CANCELLED and seen == {"keep": False}
    assert scheduler.cancel(kept, keep=True) == "requested"
    assert kept.wait(5) and kept.state == CANCELLED and seen == {"keep": True}
    assert kept_ctx.keep_requested
    assert kept_ctx.events == [Artifact("state", "/runs/a/state-000100")]


def test_light_lane_runs_a_fixed_number_side_by_side(scheduler):
    lock = threading.Lock()
    running, peak = [0], [0]

    def light(params, ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1

    jobs = [submit(scheduler, JobRequest(f"light {i}", light, lane="light")) for i in range(5)]
    assert all(job.wait(5) for job in jobs)
    assert peak[0] == 2

    scheduler.set_light_capacity(3)  # the max_parallel_light_jobs setting
    peak[0] = 0
    jobs = [submit(scheduler, JobRequest(f"light {i}", light, lane="light")) for i in range(6)]
    assert all(job.wait(5) for job in jobs)
    assert peak[0] == 3


def test_failures_carry_the_exception_and_listeners_see_every_state(scheduler):
    seen = []
    scheduler.add_listener(
        lambda job, state: seen.append((job.title, state, threading.current_thread().name))
    )

    def broken(params, ctx):
        raise RuntimeError("CUDA out of memory (pretend)")

    job = submit(scheduler, JobRequest("broken", broken))
    assert job.wait(5)
    assert job.state == FAILED and isinstance(job.error, RuntimeError)
    assert "in broken" in job.traceback
    assert [(t, s) for t, s, _ in seen] == [("broken", QUEUED), ("broken", RUNNING), ("broken", FAILED)]
    assert seen[1][2] == seen[2][2] == f"job-{job.id}"  # running and the outcome: the job's own thread


def test_the_event_log_gets_the_jobs_events_and_is_closed(scheduler, tmp_path):
    def job(params, ctx):
        ctx.status("caching latents")
        ctx.log("one line")
        ctx.artifact("lora", tmp_path / "out.safetensors")
        return ctx.event_log

    log_path = tmp_path / "runs" / "run-1" / "events.jsonl"
    handle = submit(scheduler, JobRequest("logged", job, event_log=log_path))
    assert handle.wait(5) and handle.state == DONE
    events = read_events(log_path)
    written = Artifact("lora", str(tmp_path / "out.safetensors"))
    assert events == [Status("caching latents"), LogLine("one line"), written]
    assert handle.result._file.closed


def test_an_unwritable_event_log_fails_the_job_naming_the_file(scheduler, tmp_path):
    blocker = tmp_path / "not a folder"
    blocker.write_text("x", encoding="utf-8")
    job = submit(scheduler, JobRequest("logged", lambda p, c: 1, event_log=blocker / "events.jsonl"))
    assert job.wait(5) and job.state == FAILED
    assert isinstance(job.error, UserError) and "not a folder" in str(job.error)


def test_shutdown_cancels_queued_and_running_jobs_and_refuses_new_ones():
    scheduler = Scheduler()
    gate = Gate()
    running = submit(scheduler, gate.request("running", "device:cpu"))
    queued = submit(scheduler, gate.request("queued", "device:cpu"))
    assert gate.started["running"].wait(5)
    assert scheduler.shutdown(5)
    assert running.state == CANCELLED and queued.state == CANCELLED
    assert not scheduler.live_threads()
    with pytest.raises(UserError, match="shutting down"):
        submit(scheduler, gate.request("late", "light"))


def test_shutdown_reports_a_job_that_ignores_cancel():
    scheduler = Scheduler()
    release = threading.Event()
    job = scheduler.submit(JobRequest("stubborn", lambda p, c: release.wait(10)), JobContext())
    while job.state != RUNNING:
        time.sleep(0.01)
    assert not scheduler.shutdown(0.2)
    release.set()
    assert scheduler.shutdown(5) and job.state == DONE


def test_lane_names_kinds_and_patterns():
    assert normalize_lane("device", "cuda") == "device:cuda:0"
    assert normalize_lane("device", "cuda:1") == "device:cuda:1"
    assert normalize_lane("device", "cpu") == "device:cpu"
    assert normalize_lane("cuda") == "device:cuda:*"
    assert normalize_lane("comfy") == "comfy:*"
    assert normalize_lane("comfy:Studio PC") == "comfy:Studio PC"
    assert normalize_lane("light") == "light"
    for bad in ("gpu", "device:tpu", "comfy:"):
        with pytest.raises(ValueError, match="lane must be"):
            normalize_lane(bad)
    with pytest.raises(ValueError, match="device must be"):
        JobRequest("x", print, device="gpu0")
    assert [lane_kind(k) for k in ("device:cpu", "device:cuda:3", "comfy:a", "light")] == [
        "cpu",
        "cuda",
        "comfy",
        "light",
    ]
    assert lane_matches("device:cuda:*", "device:cuda:2") and not lane_matches("device:cuda:*", "device:cpu")
    assert lane_matches("device:*", "device:cpu") and not lane_matches("comfy:*", "device:cpu")
    # plugin specs may declare the new kinds
    for kind in ("device", "light", "comfy", "cuda"):
        assert PreviewBackendSpec("p", "P", "renders", run=print, lane=kind).lane == kind
    with pytest.raises(ValueError, match="lane must be one of"):
        PreviewBackendSpec("p", "P", "renders", run=print, lane="gpu")


def test_a_job_placed_by_a_pattern_learns_its_lane():
    scheduler = Scheduler()
    scheduler.register_comfy_servers(["box a"])
    seen = []
    ctx = JobContext()
    job = scheduler.submit(JobRequest("t", run=lambda params, c: seen.append(c.lane_key), lane="comfy"), ctx)
    assert job.wait(10)
    assert seen == ["comfy:box a"]
    scheduler.shutdown()
