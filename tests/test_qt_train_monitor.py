"""The Train section's run monitor, fed by real jobs through the app's job controller.

The jobs run a stand-in for a trainer backend (:mod:`tests.train_monitor_helpers`) that emits the
backends' conventional events and writes the files it names; runs come from the real pair plan
(:func:`difflora_gui.train.plan.plan_pair`), with spaces and non-ASCII in paths.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from difflora_gui.jobs import JobRequest
from difflora_gui.qt.jobs import CANCELLED, DONE, FAILED, RUNNING, JobController
from difflora_gui.train.plan import TrainRun
from tests.train_monitor_helpers import (
    curves,
    expected_avr,
    expected_loss,
    expected_lr,
    failing_child,
    pair,
    record_of,
    submit,
)

ROOT = Path(__file__).resolve().parent.parent


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def services(qtbot):
    from difflora_gui.plugin_host import PluginHost
    from difflora_gui.qt.devices import DeviceRegistry
    from difflora_gui.qt.services import AppServices
    from difflora_gui.settings import AppSettings

    jobs = JobController()
    yield AppServices(host=PluginHost(), jobs=jobs, devices=DeviceRegistry(), settings=AppSettings())
    assert jobs.shutdown(10), "a test job did not stop"


@pytest.fixture
def monitor(qtbot, services):
    from difflora_gui.qt.train.run_monitor import RunMonitor

    widget = RunMonitor(services)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    yield widget
    widget.shutdown()


# --- tests -------------------------------------------------------------------------------------


def test_a_pair_run_plots_both_runs_shows_eta_samples_checkpoints_and_replays(
    qtbot, services, monitor, tmp_path
):
    steps = 60
    run_a, run_b = pair(tmp_path, steps)
    finished = []
    monitor.run_finished.connect(lambda run_id, state: finished.append((run_id, state)))
    gate = threading.Event()  # A waits at step 20 until the checks of a running run are done
    params = dict(delay=0.01, sample_steps=(30, 60), gate=gate, hold_at=20)
    handle_a = submit(services, run_a, **params)
    handle_b = submit(services, run_b, **params)  # the same CPU lane: it waits for A
    monitor.watch(handle_a, run_a)
    monitor.watch(handle_b, run_b)
    row_a, row_b = monitor.row(run_a.run_id), monitor.row(run_b.run_id)
    assert row_a.name == "concept ü_A" and row_b.name == "concept ü_B"
    assert row_a.name_label.toolTip().startswith("concept ü_A\ndataset: ")

    qtbot.waitUntil(lambda: handle_a.state == RUNNING and row_a.done == 20, timeout=10_000)
    assert row_a.eta_text.startswith("ETA ")  # the job's Progress.eta_s, as the handle words it
    assert row_a.bar_text.startswith("step ") and row_a.bar_text.endswith("%")
    assert row_b.bar_text == "waiting" and row_b.status_label.text() == "waiting for device:cpu"
    assert row_a.keep_button.isEnabled() and not row_b.keep_button.isEnabled()
    assert row_a.status_label.text() == "training · epoch 1"
    assert row_a.bar_text == "step 20/60 · 33%"
    gate.set()

    qtbot.waitUntil(lambda: handle_a.is_finished and handle_b.is_finished, timeout=20_000)
    assert (handle_a.state, handle_b.state) == (DONE, DONE)
    assert finished == [(run_a.run_id, DONE), (run_b.run_id, DONE)]
    assert row_a.bar_text == f"done · {steps}/{steps} steps" and row_a.eta_text == ""
    assert not row_a.stop_button.isEnabled() and not row_a.keep_button.isEnabled()

    # both runs on the plot: every step's raw loss, the backend's avr_loss as the smoothed curve
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    for run in (run_a, run_b):
        drawn = curves(monitor, run.run_id)
        assert drawn["raw"][0] == [float(s) for s in range(1, steps + 1)]
        assert drawn["raw"][1] == pytest.approx([expected_loss(s, run.side) for s in range(1, steps + 1)])
        assert drawn["smoothed"][1] == pytest.approx([expected_avr(s, run.side) for s in range(1, steps + 1)])
        assert drawn["lr"][1] == pytest.approx([expected_lr(s) for s in range(1, steps + 1)])
    # the checkpoints are dots on the smoothed curves, named in their tooltips
    marks = monitor.plot.drawn_marks(run_a.run_id)
    assert [(step, name) for step, _loss, name in marks] == [
        *[(float(s), f"concept ü_A-step{s:08d}.safetensors") for s in (10, 20, 30, 40, 50, 60)],
        (60.0, "concept ü_A.safetensors"),
    ]
    assert [loss for _s, loss, _n in marks[:6]] == pytest.approx(
        [expected_avr(s, "a") for s in range(10, 61, 10)]
    )
    readout = monitor.plot.readout_at(30.2)  # what the pointer shows: both runs at the nearest step
    assert readout.startswith("step 30 · ")
    assert f"A {expected_avr(30, 'a'):.4g}" in readout and f"B {expected_avr(30, 'b'):.4g}" in readout
    chart = monitor.plot.chart.loss_widget
    qtbot.mouseMove(chart.viewport(), chart.viewport().rect().center())
    qtbot.waitUntil(lambda: monitor.plot.chart.readout.text().startswith("step "), timeout=5000)
    legend = [toggle.series.name for toggle in monitor.plot._legend.values()]
    assert legend == ["concept ü_A", "concept ü_B"]
    assert monitor.plot.curve_pen_color(run_a.run_id) != monitor.plot.curve_pen_color(run_b.run_id)

    # samples, newest first, labelled with run and step; thumbnails of the image and the video
    gallery = monitor.gallery
    assert gallery.isVisible()
    assert gallery.labels() == ["A · step 60", "B · step 60", "A · step 30", "B · step 30"]
    qtbot.waitUntil(gallery.idle, timeout=20_000)
    assert gallery.errors == {} and gallery.loaded == 4
    assert [Path(p).suffix for p in gallery.paths()] == [".png", ".mp4", ".png", ".mp4"]
    monitor.resize(480, 700)  # a narrow panel: the samples become a tab after the logs
    qtbot.waitUntil(lambda: monitor.logs.indexOf(gallery) == 2, timeout=5000)
    assert monitor.logs.isTabVisible(2) and monitor.logs.tabText(2) == "Samples (4)"
    monitor.resize(1100, 700)
    qtbot.waitUntil(lambda: monitor.logs.indexOf(gallery) == -1 and gallery.isVisible(), timeout=5000)
    assert monitor.top.indexOf(gallery) == 1 and monitor.logs.count() == 2
    checkpoints = [a.path for a in monitor.artifacts(run_a.run_id, "checkpoint")]
    assert checkpoints == [
        str(Path(run_a.output_dir) / f"concept ü_A-step{s:08d}.safetensors") for s in (10, 20, 30, 40, 50, 60)
    ]
    assert monitor.artifacts(run_b.run_id, "lora")[0].path == str(run_b.output_path())
    assert "steps: 60/60" in monitor.log(run_a.run_id).text()

    # a fresh monitor reopens the finished pair from the project records: the same curves and files
    from difflora_gui.qt.train.run_monitor import RunMonitor

    replayed = RunMonitor(services)
    qtbot.addWidget(replayed)
    for run in (run_a, run_b):
        replayed.show_record(record_of(run, "finished", steps))
    qtbot.waitUntil(lambda: replayed.plot.is_built, timeout=10_000)
    replayed.plot.redraw()
    for run in (run_a, run_b):
        assert curves(replayed, run.run_id) == curves(monitor, run.run_id)
        assert replayed.artifacts(run.run_id) == monitor.artifacts(run.run_id)
        assert replayed.log(run.run_id).text() == monitor.log(run.run_id).text()
    assert replayed.gallery.paths() == gallery.paths()
    assert replayed.row(run_a.run_id).bar_text == f"done · {steps}/{steps} steps"
    assert replayed.row(run_a.run_id).kept_label.text() == "output: concept ü_A.safetensors"
    assert replayed.row(run_a.run_id).stop_button.isHidden()
    replayed.shutdown()


def test_stop_and_keep_cancels_with_keep_and_shows_the_kept_file(qtbot, services, monitor, tmp_path):
    run = pair(tmp_path, 40)[0]
    gate = threading.Event()
    handle = submit(services, run, gate=gate, hold_at=12)
    monitor.watch(handle, run)
    kept = []
    monitor.file_kept.connect(lambda run_id, path: kept.append((run_id, path)))
    row = monitor.row(run.run_id)
    qtbot.waitUntil(lambda: row.done == 12 and row.keep_button.isEnabled(), timeout=10_000)
    # a narrow panel: compact rows (the ETA inside the bar), the samples beside the logs
    assert row.layout_mode == "wide" and row.bar_text == "step 12/40 · 30%" and row.eta_text
    monitor.resize(480, 600)
    qtbot.waitUntil(lambda: row.layout_mode == "compact", timeout=5000)
    assert row.bar_text == f"step 12/40 · {row.eta_text}" and row.eta_label.isHidden()
    assert monitor.minimumSizeHint().width() <= 420  # fits the Train panel's narrowest right column
    monitor.resize(1100, 700)
    qtbot.waitUntil(lambda: row.layout_mode == "wide", timeout=5000)
    assert row.bar_text == "step 12/40 · 30%" and row.eta_label.isVisible()
    row.keep_button.click()
    assert handle.cancel_requested and handle.keep_requested
    assert not row.keep_button.isEnabled() and not row.stop_button.isEnabled()
    assert row.status_label.text() in ("saving and stopping", "stopped after 00:00")
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    assert handle.state == CANCELLED
    state = Path(run.output_dir) / "concept ü_A-step00000012-state"
    assert state.is_dir()
    assert kept == [(run.run_id, str(state))]
    assert row.kept_path == str(state) and row.kept_label.isVisible()
    assert row.kept_label.text() == "kept: concept ü_A-step00000012-state"
    assert str(state) in row.kept_label.toolTip()
    assert row.bar_text == "stopped at step 12/40"
    artifact = monitor.artifacts(run.run_id, "state")[-1]
    assert artifact.meta == {"step": 12, "kept": True}
    assert f"Stop and keep: kept {state}" in monitor.log(run.run_id).text()

    # reopened from the project, the stopped run still says what it kept
    from difflora_gui.qt.train.run_monitor import RunMonitor

    replayed = RunMonitor(services)
    qtbot.addWidget(replayed)
    replayed.show_record(record_of(run, "stopped", 12))
    assert replayed.row(run.run_id).kept_label.text() == "kept: concept ü_A-step00000012-state"
    assert replayed.row(run.run_id).bar_text == "stopped at step 12/40"
    replayed.shutdown()


def test_stop_keeps_nothing_and_keep_is_offered_only_for_resumable_jobs(qtbot, services, monitor, tmp_path):
    run = pair(tmp_path, 40)[0]
    gate = threading.Event()
    handle = submit(services, run, resumable=False, gate=gate, hold_at=5)
    monitor.watch(handle, run)
    row = monitor.row(run.run_id)
    qtbot.waitUntil(lambda: row.done == 5, timeout=10_000)
    assert row.stop_button.isEnabled() and not row.keep_button.isEnabled()
    assert row.keep_button.toolTip().startswith("This backend cannot keep")
    row.stop_button.click()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    assert handle.state == CANCELLED and not handle.keep_requested
    assert row.kept_path == "" and row.kept_label.isHidden()
    assert monitor.artifacts(run.run_id, "state") == []
    assert row.bar_text == "stopped at step 5/40"


def test_a_run_watched_after_it_started_shows_its_past_once(qtbot, services, monitor, tmp_path):
    """The panel was rebuilt while the run went on: the event log fills in what came before."""
    run = pair(tmp_path, 30)[0]
    gate = threading.Event()
    handle = submit(services, run, gate=gate, hold_at=15, sample_steps=(10,))
    qtbot.waitUntil(lambda: handle.progress is not None and handle.progress.done == 15, timeout=10_000)
    monitor.watch(handle, run)
    assert monitor.plot.series[run.run_id].loss_x.tolist() == [float(s) for s in range(1, 16)]
    assert monitor.gallery.count() == 1
    gate.set()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    x, y = monitor.plot.drawn(run.run_id, "raw")
    assert x == [float(s) for s in range(1, 31)]  # no step twice, none missing
    assert [a.kind for a in monitor.artifacts(run.run_id, "checkpoint")] == ["checkpoint"] * 3
    assert monitor.gallery.count() == 1
    expected = [f"training {run.name} on {run.dataset}"] + [
        f"steps: {s}/30 avr_loss={expected_avr(s, 'a'):.4f}" for s in range(5, 31, 5)
    ]
    assert monitor.log(run.run_id).text().splitlines() == expected  # each line once, in order


def test_a_run_watched_right_after_it_was_submitted_shows_each_line_once(qtbot, services, monitor, tmp_path):
    """The job starts (and logs) before the monitor connects: the replayed lines' echoes are dropped."""
    run = pair(tmp_path, 20)[0]
    handle = submit(services, run, log_every=1)
    log_file, deadline = Path(run.event_log), time.monotonic() + 10
    # the job runs ahead; the GUI thread (not processing events here) has delivered none of them
    while time.monotonic() < deadline and not (
        log_file.is_file() and "steps: 10/20" in log_file.read_text("utf-8")
    ):
        time.sleep(0.01)
    monitor.watch(handle, run)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    lines = monitor.log(run.run_id).text().splitlines()
    assert lines == [f"training {run.name} on {run.dataset}"] + [
        f"steps: {s}/20 avr_loss={expected_avr(s, 'a'):.4f}" for s in range(1, 21)
    ]
    assert monitor.log(run.run_id).echo.dropped >= 11  # the replayed lines' echoes did come


def test_a_resumed_run_continues_its_curves(qtbot, services, monitor, tmp_path):
    run = pair(tmp_path, 30)[0]
    gate = threading.Event()
    first = submit(services, run, gate=gate, hold_at=10)
    monitor.watch(first, run)
    row = monitor.row(run.run_id)
    qtbot.waitUntil(lambda: row.done == 10 and row.keep_button.isEnabled(), timeout=10_000)
    row.keep_button.click()
    qtbot.waitUntil(lambda: first.is_finished, timeout=10_000)
    assert row.kept_label.isVisible()
    resumed = TrainRun.from_json(run.to_json() | {"resume": row.kept_path, "steps_done": 10})
    second = submit(services, resumed)
    monitor.watch(second, resumed)
    assert row.kept_label.isHidden() and row.stop_button.isVisible()
    qtbot.waitUntil(lambda: second.is_finished, timeout=10_000)
    assert second.state == DONE and monitor.run_ids() == [run.run_id]
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    assert monitor.plot.drawn(run.run_id, "raw")[0] == [float(s) for s in range(1, 31)]
    assert row.bar_text == "done · 30/30 steps"


def test_a_resumed_run_shown_afresh_starts_with_the_steps_before_the_stop(qtbot, services, monitor, tmp_path):
    """The app was restarted between Stop and keep and Resume: the event log has the first part."""
    from difflora_gui.qt.train.run_monitor import RunMonitor

    run = pair(tmp_path, 30)[0]
    gate = threading.Event()
    first = submit(services, run, gate=gate, hold_at=10)
    monitor.watch(first, run)
    qtbot.waitUntil(lambda: monitor.row(run.run_id).done == 10, timeout=10_000)
    first.cancel(keep=True)
    qtbot.waitUntil(lambda: first.is_finished, timeout=10_000)
    kept = monitor.row(run.run_id).kept_path
    fresh = RunMonitor(services)
    qtbot.addWidget(fresh)
    resumed = TrainRun.from_json(run.to_json() | {"resume": kept, "steps_done": 10})
    second = submit(services, resumed)
    fresh.watch(second, resumed)
    qtbot.waitUntil(lambda: second.is_finished, timeout=10_000)
    fresh.plot.build_now()
    assert fresh.plot.drawn(run.run_id, "raw")[0] == [float(s) for s in range(1, 31)]
    assert [a.meta["step"] for a in fresh.artifacts(run.run_id, "checkpoint")] == [10, 20, 30]
    text = fresh.log(run.run_id).text()
    assert text.count(f"training {run.name}") == 2  # the first job's lines, then the resumed job's

    # showing the finished run's record again: the same lines once, the same curve
    fresh.show_record(record_of(run, "finished", 30))
    fresh.show_record(record_of(run, "finished", 30))
    assert fresh.log(run.run_id).text() == text
    assert fresh.plot.drawn(run.run_id, "raw")[0] == [float(s) for s in range(1, 31)]
    assert fresh.row(run.run_id).bar_text == "done · 30/30 steps"
    fresh.shutdown()


def test_per_expert_runs_get_four_legend_entries_told_apart(qtbot, services, monitor, tmp_path):
    runs = pair(tmp_path, 6, task="t2v-A14B", expert_mode="per_expert")
    assert [r.name for r in runs] == [
        "concept ü_A_high_noise",
        "concept ü_A_low_noise",
        "concept ü_B_high_noise",
        "concept ü_B_low_noise",
    ]
    handles = [submit(services, run) for run in runs]
    for handle, run in zip(handles, runs, strict=True):
        monitor.watch(handle, run)
    qtbot.waitUntil(lambda: all(h.is_finished for h in handles), timeout=20_000)
    series = [monitor.plot.series[r.run_id] for r in runs]
    assert [s.name for s in series] == [r.name for r in runs]
    assert len({(s.color, s.dashed) for s in series}) == 4
    assert [s.dashed for s in series] == [False, True, False, True]  # low-noise experts dashed
    assert series[0].color == series[1].color != series[2].color == series[3].color
    assert monitor.logs.count() == 4 and monitor.logs.tabText(0) == "concept ü_A_high_noise"
    assert "timesteps 875–1000" in monitor.row(runs[0].run_id).name_label.toolTip()


def test_a_failed_run_shows_the_cause_hint_and_the_output_tail(qtbot, services, monitor, tmp_path):
    from difflora_gui.qt.train.run_log import OOM_HINT

    run = pair(tmp_path, 10)[0]
    handle = services.submit(JobRequest(run.title, failing_child, {}, device="cpu", resumable=True))
    monitor.watch(handle, run)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20_000)
    assert handle.state == FAILED
    log = monitor.log(run.run_id)
    assert log.failed and log.failure_box.isVisible() and monitor.logs.currentWidget() is log
    assert "CUDA out of memory" in log.failure_label.text()
    assert log.hint_label.text() == OOM_HINT
    tail = log.tail_view.toPlainText().splitlines()
    assert len(tail) == 50 and tail[-1].startswith("torch.OutOfMemoryError")
    assert monitor.row(run.run_id).status_label.text().startswith("failed")
    assert monitor.plot.placeholder.text() == "No loss was reported before the run failed."


def test_a_5000_step_run_costs_the_gui_thread_a_few_appends_per_event(qtbot, services, monitor, tmp_path):
    """Every point arrives, but the curves and the log are redrawn in batches (counted, not timed)."""
    steps = 5000
    runs = pair(tmp_path, steps, save_every_n_steps=500)
    handles = [submit(services, run, lane="light", log_every=10) for run in runs]  # side by side
    for handle, run in zip(handles, runs, strict=True):
        monitor.watch(handle, run)
    qtbot.waitUntil(lambda: all(h.is_finished for h in handles), timeout=60_000)
    assert all(h.state == DONE for h in handles)
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    for run in runs:
        assert len(monitor.plot.drawn(run.run_id, "raw")[0]) == steps
        assert len(monitor.plot.drawn(run.run_id, "smoothed")[0]) == steps
    events = monitor.events_handled
    per_run = 3 * steps + steps // 20 + 10 + 1 + 2 + steps // 10 + 1  # metrics, epochs, files, status, logs
    assert events == 2 * per_run
    # at most ~10 redraws a second (a few dozen here), never one per point: even a machine so
    # busy that the run took a minute stays far below one redraw per 20 events
    assert monitor.plot.redraws <= events // 20, (monitor.plot.redraws, events)
    for run in runs:
        log = monitor.log(run.run_id)
        assert log.lines_seen == steps // 10 + 1 and log.flushes <= log.lines_seen // 2
    print(
        f"\n5000-step pair: {events} events, {monitor.handling_s * 1000:.0f} ms in the GUI thread "
        f"({monitor.handling_s / events * 1e6:.1f} µs per event), {monitor.plot.redraws} curve redraws "
        f"taking {monitor.plot.redraw_s * 1000:.0f} ms"
    )


def test_clear_forgets_the_runs_but_leaves_the_jobs_and_other_listeners(qtbot, services, monitor, tmp_path):
    run = pair(tmp_path, 20)[0]
    gate = threading.Event()
    handle = submit(services, run, gate=gate, hold_at=3)
    monitor.watch(handle, run)
    others = []
    handle.logged.connect(others.append)
    qtbot.waitUntil(lambda: handle.progress is not None and handle.progress.done == 3, timeout=10_000)
    monitor.clear()
    assert monitor.run_ids() == [] and monitor.stack.currentWidget() is monitor.empty_label
    handled = monitor.events_handled
    gate.set()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    assert handle.state == DONE and others  # the job went on; the other listener still hears it
    assert monitor.events_handled == handled and monitor.plot.series == {}
