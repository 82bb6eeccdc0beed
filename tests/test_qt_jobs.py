"""The GUI job adapter: lanes, QThreads, signals into the GUI thread, cancel, errors, shutdown."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from difflora_gui.errors import UserError
from difflora_gui.jobs import JobRequest
from difflora_gui.qt.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobController


@pytest.fixture
def controller(qtbot):
    jobs = JobController()
    yield jobs
    assert jobs.shutdown(10), "a test job did not stop"


def wait_finished(qtbot, *handles, timeout=10_000):
    qtbot.waitUntil(lambda: all(h.is_finished for h in handles), timeout=timeout)


def counting_job(params, ctx):
    total = params.get("total", 5)
    for step in range(1, total + 1):
        ctx.raise_if_cancelled()
        ctx.progress(step, total, f"step {step}")
        ctx.metric("loss", 1.0 / step, step)
        time.sleep(params.get("delay", 0.0))
    ctx.log("finished counting")
    ctx.partial({"preview": total})
    return total * 10


def test_job_completes_with_progress_log_metric_partial_and_result(qtbot, controller):
    handle = controller.submit(JobRequest("count", counting_job, {"total": 5, "delay": 0.12}))
    states, progress, logs, metrics, partials, results = [], [], [], [], [], []
    handle.state_changed.connect(states.append)
    handle.progressed.connect(progress.append)
    handle.logged.connect(logs.append)
    handle.metric_reported.connect(lambda name, value, step: metrics.append((name, value, step)))
    handle.partial_ready.connect(partials.append)
    handle.succeeded.connect(results.append)
    assert handle.state == QUEUED
    with qtbot.waitSignal(handle.finished, timeout=10_000) as finished:
        pass
    assert finished.args == [DONE]
    assert states == [RUNNING, DONE]
    assert handle.result == 50 and results == [50]
    assert progress[-1].done == 5 and progress[-1].total == 5 and progress[-1].fraction == 1.0
    assert len(progress) >= 3  # throttled to one every 0.1 s, but steps were 0.12 s apart
    assert any(p.eta_s is not None and p.eta_s > 0 for p in progress[:-1])
    assert logs == ["finished counting"]
    assert metrics == [("loss", 1.0 / s, s) for s in range(1, 6)]
    assert partials == [{"preview": 5}]
    assert handle.started_at is not None and handle.ended_at >= handle.started_at + 0.5


def test_signals_arrive_in_the_gui_thread(qtbot, controller):
    gui_thread = QThread.currentThread()
    seen = []

    def job(params, ctx):
        seen.append(("job", QThread.currentThread() is gui_thread))
        ctx.progress(1, 1)
        ctx.log("hello")
        return 1

    handle = controller.submit(JobRequest("threads", job))
    handle.progressed.connect(lambda _p: seen.append(("progress", QThread.currentThread() is gui_thread)))
    handle.logged.connect(lambda _t: seen.append(("log", QThread.currentThread() is gui_thread)))
    wait_finished(qtbot, handle)
    assert ("job", False) in seen  # the function ran on a worker thread...
    assert ("progress", True) in seen and ("log", True) in seen  # ...its reports reached the GUI thread


def test_cancel_mid_run_is_seen_by_the_function(qtbot, controller):
    seen = {}
    started = threading.Event()

    def job(params, ctx):
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ctx.cancelled:
                seen["flag"] = True
                ctx.raise_if_cancelled()
            time.sleep(0.01)
        return "ran to the end"

    handle = controller.submit(JobRequest("long", job))
    qtbot.waitUntil(lambda: handle.state == RUNNING, timeout=5000)
    assert started.wait(5)
    assert handle.cancel() is None
    assert handle.state_text == "cancelling"
    wait_finished(qtbot, handle)
    assert handle.state == CANCELLED
    assert seen == {"flag": True}
    assert handle.result is None


def test_cancelling_a_queued_job_means_it_never_runs(qtbot, controller):
    release = threading.Event()
    ran = []

    def blocker(params, ctx):
        release.wait(5)

    def other(params, ctx):
        ran.append(True)

    first = controller.submit(JobRequest("first", blocker))
    second = controller.submit(JobRequest("second", other))
    assert controller.cancel(second.id)
    assert second.state == CANCELLED
    release.set()
    wait_finished(qtbot, first)
    assert ran == []


def test_errors_are_reported_with_traceback_and_user_errors_as_one_line(qtbot, controller):
    def broken(params, ctx):
        raise ValueError("the tensor shapes differ")

    def refused(params, ctx):
        raise UserError("rank must be at least 1")

    failures = []
    controller.job_failed.connect(failures.append)
    bug = controller.submit(JobRequest("bug", broken))
    user = controller.submit(JobRequest("user", refused, lane="light"))
    messages = []
    bug.failed.connect(lambda message, trace: messages.append((message, trace)))
    wait_finished(qtbot, bug, user)
    assert bug.state == FAILED and user.state == FAILED
    assert bug.error_text == "ValueError: the tensor shapes differ"
    assert "in broken" in bug.traceback and "Traceback" in bug.traceback
    assert messages == [(bug.error_text, bug.traceback)]
    assert user.error_text == "rank must be at least 1"
    assert user.traceback == ""
    assert set(failures) == {bug, user}


def test_a_job_given_as_a_string_that_cannot_be_imported_fails_cleanly(qtbot, controller):
    handle = controller.submit(JobRequest("missing", "difflora_no_such_module:run"))
    wait_finished(qtbot, handle)
    assert handle.state == FAILED
    assert handle.error_text.startswith("ModuleNotFoundError")


def test_even_system_exit_in_a_job_does_not_take_the_app_down(qtbot, controller):
    def exits(params, ctx):
        raise SystemExit(3)

    handle = controller.submit(JobRequest("exit", exits))
    wait_finished(qtbot, handle)
    assert handle.state == FAILED and "SystemExit" in handle.error_text


def _span_job(params, ctx):
    start = time.monotonic()
    time.sleep(params["seconds"])
    params["spans"].append((params["name"], start, time.monotonic()))
    return params["name"]


def test_jobs_in_one_device_lane_never_overlap_and_run_in_order(qtbot, controller):
    spans: list = []
    handles = [
        controller.submit(
            JobRequest(f"gpu {i}", _span_job, {"name": i, "seconds": 0.15, "spans": spans}, device="cuda:0")
        )
        for i in range(4)
    ]
    assert sum(h.state == QUEUED for h in handles) == 4
    wait_finished(qtbot, *handles)
    assert [name for name, _, _ in spans] == [0, 1, 2, 3]  # FIFO
    for (_, _, end), (_, start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two jobs shared the device lane"
    for earlier, later in zip(handles, handles[1:], strict=False):
        assert later.started_at >= earlier.ended_at


def test_different_devices_run_side_by_side(qtbot, controller):
    spans: list = []
    a = controller.submit(JobRequest("cpu", _span_job, {"name": "cpu", "seconds": 0.4, "spans": spans}))
    b = controller.submit(
        JobRequest("gpu", _span_job, {"name": "gpu", "seconds": 0.4, "spans": spans}, device="cuda:0")
    )
    wait_finished(qtbot, a, b)
    (_, start_1, end_1), (_, start_2, end_2) = spans
    assert max(start_1, start_2) < min(end_1, end_2), "lanes of different devices should overlap"
    assert sorted(controller.lane_keys()) == ["device:cpu", "device:cuda:0"]


def test_light_jobs_run_beside_a_device_job(qtbot, controller):
    light_done = threading.Event()
    order = []

    def device_job(params, ctx):
        order.append("device start")
        assert light_done.wait(5), "the light job did not run while the device lane was busy"
        order.append("device end")

    def light_job(params, ctx):
        order.append("light")
        light_done.set()

    heavy = controller.submit(JobRequest("heavy", device_job, device="cuda:0"))
    qtbot.waitUntil(lambda: heavy.state == RUNNING, timeout=5000)
    light = controller.submit(JobRequest("light", light_job, lane="light"))
    wait_finished(qtbot, heavy, light)
    assert heavy.state == DONE and light.state == DONE
    assert order == ["device start", "light", "device end"]


def test_light_lane_runs_two_at_a_time(qtbot, controller):
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def light(params, ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.15)
        with lock:
            running[0] -= 1

    handles = [controller.submit(JobRequest(f"light {i}", light, lane="light")) for i in range(5)]
    wait_finished(qtbot, *handles)
    assert peak[0] == 2


def test_auto_device_jobs_wait_for_device_detection(qtbot):
    known = {"ready": False}
    jobs = JobController(
        resolve_device=lambda name: ("cuda:0" if known["ready"] else None) if name == "auto" else name
    )
    try:
        handle = jobs.submit(JobRequest("auto", lambda params, ctx: "ok", device="auto"))
        qtbot.wait(100)
        assert handle.state == QUEUED and jobs.lane_keys() == []
        known["ready"] = True
        jobs.devices_known()
        wait_finished(qtbot, handle)
        assert handle.request.device == "cuda:0"
        assert handle.lane_key == "device:cuda:0"
    finally:
        assert jobs.shutdown(5)


def test_remove_finished_and_queued_jobs_but_not_running_ones(qtbot, controller):
    release = threading.Event()
    running = controller.submit(JobRequest("running", lambda params, ctx: release.wait(5)))
    queued = controller.submit(JobRequest("queued", lambda params, ctx: None))
    removed = []
    controller.job_removed.connect(removed.append)
    qtbot.waitUntil(lambda: running.state == RUNNING, timeout=5000)
    assert not controller.remove(running.id)
    assert controller.remove(queued.id)
    assert queued.state == CANCELLED and removed == [queued.id]
    release.set()
    wait_finished(qtbot, running)
    assert controller.remove_finished() == 1
    assert controller.jobs() == []


def test_shutdown_cancels_everything_and_waits_for_the_threads(qtbot):
    jobs = JobController()
    stopped = []

    def loop(params, ctx):
        while not ctx.cancelled:
            time.sleep(0.01)
        stopped.append(params)
        ctx.raise_if_cancelled()

    handles = [jobs.submit(JobRequest(f"loop {d}", loop, d, device=d)) for d in ("cpu", "cuda:0")]
    handles.append(jobs.submit(JobRequest("queued", loop, "queued", device="cpu")))
    qtbot.waitUntil(lambda: all(h.state == RUNNING for h in handles[:2]), timeout=5000)
    assert jobs.shutdown(10)
    assert sorted(stopped) == ["cpu", "cuda:0"]
    assert [h.state for h in handles] == [CANCELLED] * 3
    assert not jobs.has_live_threads()
    with pytest.raises(UserError, match="shutting down"):
        jobs.submit(JobRequest("late", loop))


def test_shutdown_reports_a_job_that_ignores_cancel(qtbot):
    jobs = JobController()
    release = threading.Event()
    handle = jobs.submit(JobRequest("stubborn", lambda params, ctx: release.wait(10)))
    qtbot.waitUntil(lambda: handle.state == RUNNING, timeout=5000)
    assert not jobs.shutdown(0.3)
    release.set()
    assert jobs.shutdown(5)
    assert handle.state == DONE  # it returned normally after all


def test_many_short_jobs_in_every_lane_all_finish(qtbot, controller):
    """Thread set-up and tear-down under load (this once crashed with deleteLater-based clean-up)."""

    def quick(params, ctx):
        ctx.progress(1, 1)
        return params

    handles = [
        controller.submit(JobRequest(f"quick {i}", quick, i, lane=lane, device=device))
        for i in range(40)
        for lane, device in (("light", "cpu"), ("device", "cpu"), ("device", "cuda:0"))
    ]
    wait_finished(qtbot, *handles, timeout=60_000)
    assert [h.result for h in handles] == [i for i in range(40) for _ in range(3)]
    assert all(h.state == DONE for h in handles)


# --- typed events, frames, stop modes, the jobs dock ----------------------------------------


def test_typed_events_reach_the_gui_thread_as_event_emitted(qtbot, controller):
    from difflora_gui.jobs.events import Artifact, Metric, Status

    gui_thread = QThread.currentThread()

    def job(params, ctx):
        ctx.status("caching latents")
        ctx.metric("loss", 0.5, 3)
        ctx.artifact("checkpoint", "C:/runs/ä/step-3.safetensors", step=3)
        return "ok"

    handle = controller.submit(JobRequest("events", job))
    events, threads, metrics, seen_by_controller = [], [], [], []
    handle.event_emitted.connect(lambda e: (events.append(e), threads.append(QThread.currentThread())))
    handle.metric_reported.connect(lambda *args: metrics.append(args))
    controller.job_event.connect(lambda h, e: seen_by_controller.append((h, e)))
    wait_finished(qtbot, handle)
    assert events == [
        Status("caching latents"),
        Metric("loss", 0.5, 3),
        Artifact("checkpoint", "C:/runs/ä/step-3.safetensors", {"step": 3}),
    ]
    assert all(thread is gui_thread for thread in threads)
    assert metrics == [("loss", 0.5, 3)]
    assert handle.status_text == "caching latents"
    assert [e for h, e in seen_by_controller if h is handle] == events


def test_frames_are_delivered_newest_only_to_a_slow_viewer(qtbot, controller):
    from difflora_gui.jobs.events import Frame

    produced = 200
    all_made = threading.Event()

    def preview(params, ctx):
        for index in range(produced):
            ctx.frame(index, image=None, step=index)
        all_made.set()
        while not params["done"].wait(0.01):
            ctx.raise_if_cancelled()
        return "rendered"

    done = threading.Event()
    handle = controller.submit(JobRequest("preview", preview, {"done": done}, lane="light"))
    shown = []

    def slow_viewer(event):
        if isinstance(event, Frame):
            shown.append(event.index)
            time.sleep(0.02)  # a viewer much slower than the job

    handle.event_emitted.connect(slow_viewer)
    assert all_made.wait(10)
    qtbot.wait(100)  # let every queued wake-up arrive
    done.set()
    wait_finished(qtbot, handle)
    assert shown, "no frame reached the viewer"
    assert shown[-1] == produced - 1  # the newest frame always arrives...
    assert len(shown) < produced / 4  # ...and a slow viewer never gets the backlog
    assert shown == sorted(shown)


def _resumable_trainer(params, ctx):
    ctx.status("epoch 1/10")
    while not ctx.cancelled:
        time.sleep(0.01)
    params["keep"].append(ctx.keep_requested)
    if ctx.keep_requested:
        ctx.artifact("state", params["state"])
    ctx.raise_if_cancelled()


def test_stop_and_keep_button_reaches_a_resumable_job(qtbot, controller, tmp_path):
    from difflora_gui.jobs.events import Artifact
    from difflora_gui.qt.jobs_dock import JobsDock

    dock = JobsDock(controller)
    qtbot.addWidget(dock)
    dock.resize(480, 400)
    dock.show()
    keep: list = []
    plain_keep: list = []
    state = tmp_path / "state-000100"
    resumable = controller.submit(
        JobRequest("train", _resumable_trainer, {"keep": keep, "state": state}, resumable=True)
    )
    plain = controller.submit(
        JobRequest("merge", _resumable_trainer, {"keep": plain_keep, "state": state}, lane="light")
    )
    row, plain_row = dock.rows[resumable.id], dock.rows[plain.id]
    assert not row.keep_button.isHidden() and plain_row.keep_button.isHidden()
    assert not row.keep_button.isEnabled()  # queued: there is nothing to keep yet
    assert row.cancel_button.text() == "Stop" and row.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: resumable.status_text == "epoch 1/10" and plain.state == RUNNING, timeout=5000)
    assert row.lane_label.text() == "device:cpu" and plain_row.lane_label.text() == "light"
    assert row.status_label.text() == "epoch 1/10"
    assert row.keep_button.isEnabled()
    artifacts = []
    resumable.event_emitted.connect(lambda e: artifacts.append(e) if isinstance(e, Artifact) else None)
    row.keep_button.click()
    assert resumable.state_text == "saving and stopping"
    assert not row.keep_button.isEnabled() and not row.cancel_button.isEnabled()
    plain_row.cancel_button.click()
    wait_finished(qtbot, resumable, plain)
    assert keep == [True] and plain_keep == [False]
    assert resumable.state == CANCELLED and resumable.keep_requested
    assert artifacts == [Artifact("state", str(state))]
    dock.close()


def test_buttons_do_not_move_when_the_status_text_changes(qtbot, controller):
    from difflora_gui.qt.jobs_dock import JobsDock

    dock = JobsDock(controller)
    qtbot.addWidget(dock)
    dock.resize(420, 300)
    dock.show()
    step = threading.Event()
    texts = ["loading", "caching latents for 1000 pairs of frames from a long folder name " * 3, "ok"]

    def job(params, ctx):
        for text in texts:
            ctx.status(text)
            ctx.progress(texts.index(text) + 1, 3, text * 2)
            step.clear()
            while not step.wait(0.01):
                ctx.raise_if_cancelled()

    handle = controller.submit(JobRequest("statuses", job, resumable=True))
    row = dock.rows[handle.id]
    qtbot.waitUntil(lambda: handle.status_text == texts[0], timeout=5000)
    qtbot.wait(50)

    def geometry():
        buttons = (row.cancel_button, row.keep_button, row.remove_button)
        return [b.mapTo(dock, b.rect().topLeft()) for b in buttons] + [b.size() for b in buttons]

    before = geometry()
    for text in texts[1:]:
        step.set()
        qtbot.waitUntil(lambda t=text: handle.status_text == t, timeout=5000)
        qtbot.wait(50)
        assert geometry() == before, f"a button moved for status {text[:20]!r}"
    handle.cancel()
    wait_finished(qtbot, handle)


def test_any_free_gpu_jobs_show_their_lane_once_placed(qtbot, controller):
    controller.devices_known(["cpu", "cuda:0", "cuda:1"])
    release = threading.Event()
    first = controller.submit(JobRequest("a", lambda p, c: release.wait(5), lane="cuda"))
    second = controller.submit(JobRequest("b", lambda p, c: release.wait(5), lane="cuda"))
    third = controller.submit(JobRequest("c", lambda p, c: "ran", lane="cuda"))
    qtbot.waitUntil(lambda: first.state == RUNNING and second.state == RUNNING, timeout=5000)
    assert {first.lane_key, second.lane_key} == {"device:cuda:0", "device:cuda:1"}
    assert third.state == QUEUED and third.lane_key == "device:cuda:*"
    from difflora_gui.qt.jobs_dock import JobRow

    row = JobRow(third, controller)
    qtbot.addWidget(row)
    assert row.detail_label.text() == "waiting for the first free lane of device:cuda:*"
    assert row.lane_label.text() == "device:cuda:*"
    release.set()
    wait_finished(qtbot, first, second, third)
    assert third.result == "ran" and third.lane_key in ("device:cuda:0", "device:cuda:1")


def test_settings_comfyui_servers_become_lanes(qtbot, controller, tmp_path):
    from difflora_gui.plugin_host import PluginHost
    from difflora_gui.qt.devices import DeviceRegistry
    from difflora_gui.qt.services import AppServices
    from difflora_gui.settings import AppSettings, ComfyServer
    from tests.fixtures.comfy_standin import StandinComfy

    studio = StandinComfy(tmp_path / "studio").start()
    try:
        settings = AppSettings(
            comfyui_servers=[
                ComfyServer(name="home", url="http://127.0.0.1:9"),
                ComfyServer(name="old box", url="http://10.0.0.9:8188", enabled=False),
            ]
        )
        services = AppServices(
            host=PluginHost(), jobs=controller, devices=DeviceRegistry(), settings=settings
        )
        assert [k for k in controller.lane_keys() if k.startswith("comfy:")] == ["comfy:home"]
        services.update_settings(comfyui_servers=[ComfyServer(name="studio", url=studio.url)])
        assert [k for k in controller.lane_keys() if k.startswith("comfy:")] == ["comfy:studio"]
        handle = controller.submit(JobRequest("render", lambda p, c: "rendered", lane="comfy"))
        wait_finished(qtbot, handle)
        assert handle.result == "rendered" and handle.lane_key == "comfy:studio"
    finally:
        studio.stop()


def test_after_remove_finished_the_dock_does_not_say_no_jobs_yet(qtbot, controller):
    from difflora_gui.qt.jobs_dock import NO_JOBS_YET, JobsDock

    dock = JobsDock(controller)
    qtbot.addWidget(dock)
    dock.show()
    assert dock.empty_label.isVisibleTo(dock) and dock.empty_label.text() == NO_JOBS_YET
    release = threading.Event()
    handles = [controller.submit(JobRequest(f"quick {i}", lambda params, ctx: None)) for i in range(2)]
    wait_finished(qtbot, *handles)
    running = controller.submit(JobRequest("running", lambda params, ctx: release.wait(5)))
    qtbot.waitUntil(lambda: running.state == RUNNING, timeout=5000)
    assert dock.summary() == "1 running · 0 queued · 2 finished"

    dock.clear_button.click()
    assert dock.summary() == "1 running · 0 queued · 0 finished · 2 removed"
    assert not dock.empty_label.isVisibleTo(dock)
    release.set()
    wait_finished(qtbot, running)
    dock.clear_button.click()
    assert dock.rows == {} and dock.empty_label.isVisibleTo(dock)
    text = dock.empty_label.text()
    assert "No jobs yet" not in text
    assert text == "No running or queued jobs (3 finished jobs removed from the list)."
    dock.close()
