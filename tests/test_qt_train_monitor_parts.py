"""The Train monitor's parts: what a backend reports (only avr_loss, only loss, a nan), the ETA of a
resumed run, the echo filter of a replayed log, a record without its log, the import cost.

Jobs run the stand-in trainer of :mod:`tests.train_monitor_helpers` through the app's controller.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from difflora_gui.qt.jobs import JobController
from tests.train_monitor_helpers import expected_avr, expected_loss, pair, record_of, submit

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


def test_the_eta_of_a_resumed_run_comes_from_its_step_rate(qtbot):
    """Resumed at step 2000 of 5000 after 10 s of caching: 10 steps in 10 s leave ~50 minutes (the
    job's own estimate, elapsed × remaining / done, would say 30 seconds)."""
    from difflora_gui.jobs.context import Progress
    from difflora_gui.qt.train.run_progress import RunProgress

    row = RunProgress("concept_A")
    qtbot.addWidget(row)
    assert row._eta(Progress(2001, 5000, "step 2001/5000", 10.0, 14.9)) == ""  # one report: no rate yet
    assert row._eta(Progress(2011, 5000, "step 2011/5000", 20.0, 29.7)) == "ETA 49:49"
    assert row._eta(Progress(3, 10, "caching 3/10", 21.0, 1.0)) == ""  # another total: a new start
    assert row._eta(Progress(5000, 5000, "step 5000/5000", 3000.0, 0.0)) == ""


@pytest.mark.parametrize(
    ("expected", "live", "shown"),
    [
        (["a", "b", "c"], ["a", "b", "c", "d"], ["d"]),  # every replayed line came again: dropped
        (["a", "b", "c"], ["b", "c", "d"], ["d"]),  # the GUI had shown "a" before the replay
        (["start", "x 1"], ["start", "x 11", "x 12"], ["start", "x 11", "x 12"]),  # a resume: kept
        ([], ["a"], ["a"]),
        (["a", "b"], ["z", "a"], ["z", "a"]),
    ],
)
def test_the_echo_filter(expected, live, shown):
    from difflora_gui.qt.train.run_log import EchoFilter

    echo = EchoFilter(expected)
    out = [line for text in live for line in echo.feed(text)]
    assert out + echo.release() == shown


def test_a_backend_that_reports_only_avr_loss_gets_it_as_the_curve(qtbot, services, monitor, tmp_path):
    """Musubi prints only ``avr_loss`` (no per-step loss, no lr): one curve per run, no lr plot."""
    runs = pair(tmp_path, 20)
    handles = [submit(services, run, metrics=("avr_loss",)) for run in runs]
    for handle, run in zip(handles, runs, strict=True):
        monitor.watch(handle, run)
    qtbot.waitUntil(lambda: all(h.is_finished for h in handles), timeout=10_000)
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    for run in runs:
        assert monitor.plot.drawn(run.run_id, "raw") == ([], [])
        x, y = monitor.plot.drawn(run.run_id, "smoothed")
        assert x == [float(s) for s in range(1, 21)]
        assert y == pytest.approx([expected_avr(s, run.side) for s in range(1, 21)])
    assert monitor.plot.chart.lr_widget.isHidden()
    assert "backend avr_loss" in monitor.plot._legend[runs[0].run_id].toolTip()


def test_a_backend_that_reports_only_loss_gets_an_ema_and_log_y_and_hiding_work(
    qtbot, services, monitor, tmp_path
):
    from difflora_gui.qt.train.loss_plot import EMA_WEIGHT

    run = pair(tmp_path, 30)[0]
    handle = submit(services, run, metrics=("loss",))
    monitor.watch(handle, run)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    ema, expected = 0.0, []
    for n, step in enumerate(range(1, 31), start=1):  # a debiased EMA, as TensorBoard smooths
        ema = EMA_WEIGHT * ema + (1 - EMA_WEIGHT) * expected_loss(step, "a")
        expected.append(ema / (1 - EMA_WEIGHT**n))
    assert monitor.plot.drawn(run.run_id, "smoothed")[1] == pytest.approx(expected)
    assert monitor.plot.drawn(run.run_id, "smoothed")[1][0] == pytest.approx(expected_loss(1, "a"))
    plot = monitor.plot
    plot.log_box.setChecked(True)
    assert plot.chart.plot.getAxis("left").logMode
    dots = plot.chart.items[run.run_id].marks.points()  # the checkpoint dots follow the log axis
    assert [p.pos().y() for p in dots] == pytest.approx([math.log10(p.data()[1]) for p in dots])
    assert len(dots) == 4  # steps 10, 20, 30 and the final file
    plot.raw_box.setChecked(False)
    items = plot.chart.items[run.run_id]
    raw, smooth = items.raw, items.smooth
    assert not raw.isVisible() and smooth.isVisible()
    plot._legend[run.run_id].click()  # the legend entry hides the run
    assert not smooth.isVisible() and not plot.series[run.run_id].visible


def test_a_diverging_loss_does_not_break_the_curves(qtbot, monitor, tmp_path):
    """nan comes through the event log as "nan": the raw curve has a gap, the EMA skips it."""
    from difflora_gui.jobs.eventlog import EventLog
    from difflora_gui.jobs.events import Metric

    run = pair(tmp_path, 4)[0]
    with EventLog(run.event_log) as log:
        for step, value in enumerate((0.5, float("nan"), 0.4, 0.3), start=1):
            log.append(Metric("loss", value, step))
    monitor.show_record(record_of(run, "failed", 4))
    qtbot.waitUntil(lambda: monitor.plot.is_built, timeout=10_000)
    monitor.plot.redraw()
    x, y = monitor.plot.drawn(run.run_id, "raw")
    assert x == [1.0, 2.0, 3.0, 4.0] and math.isnan(y[1])
    assert monitor.plot.drawn(run.run_id, "smoothed")[0] == [1.0, 3.0, 4.0]
    assert monitor.row(run.run_id).status_label.text() == "failed"


def test_a_record_without_its_event_log_says_so(qtbot, monitor, tmp_path):
    run = pair(tmp_path, 10)[0]
    monitor.show_record(record_of(run, "finished", 10))
    assert "event log is missing" in monitor.log(run.run_id).text()
    assert monitor.row(run.run_id).bar_text == "done · 10/10 steps"


def test_importing_the_monitor_loads_no_plotting_or_heavy_module():
    code = (
        "import sys, difflora_gui.qt.train.run_monitor\n"
        "print([m for m in ('pyqtgraph', 'numpy', 'torch', 'cv2') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_failure_box_splits_a_backends_hint_from_its_cause():
    """Musubi's job raises ChildProcessFailed(program, "cause; hint", tail): the box shows them apart."""
    from difflora_gui.jobs.process import ChildProcessFailed
    from difflora_gui.qt.train.run_log import OOM_HINT, failure_text

    error = ChildProcessFailed(
        "wan_train_network.py", "torch.OutOfMemoryError: CUDA out of memory; turn on fp8_base", ["x"]
    )
    assert failure_text(error, str(error)) == (
        "wan_train_network.py failed: torch.OutOfMemoryError: CUDA out of memory",
        "Turn on fp8_base",
    )
    bare = ChildProcessFailed(
        "python", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB", []
    )
    assert failure_text(bare, str(bare)) == (str(bare), OOM_HINT)
    error.hint = "a hint of its own"
    assert failure_text(error, "message") == ("message", "a hint of its own")
    assert failure_text(RuntimeError("boom"), "RuntimeError: boom") == ("RuntimeError: boom", "")


@pytest.fixture
def musubi(tmp_path):
    """The Musubi backend with its stand-in checkout (tests/fixtures/musubi_standin.py)."""
    from tests.musubi_helpers import backend_config, fake_checkout, model_files, write_items

    checkout = fake_checkout(tmp_path / "Musubi Tuner ü", step_s=0.02)
    backend = backend_config(checkout, model_files(tmp_path / "models"))
    dataset = write_items(tmp_path / "set A ü", ["a", "b", "c"], caption="{name} caption")
    return checkout, backend, dataset


def _musubi_job(services, run):
    from difflora_gui.jobs import JobRequest

    request = JobRequest(
        run.title,
        "difflora_gui.train.musubi.job:run_musubi",
        run,
        device="cpu",
        resumable=True,
        event_log=run.event_log,
    )
    return services.submit(request)


def test_the_musubi_backend_feeds_the_monitor_its_avr_loss_and_checkpoints(
    qtbot, services, monitor, musubi, tmp_path
):
    """Musubi prints only avr_loss, redrawn several times a step: the curve holds each step's last value."""
    from difflora_gui.jobs.eventlog import read_events
    from difflora_gui.jobs.events import Metric
    from tests.musubi_helpers import quick_config, single_run

    _checkout, backend, dataset = musubi
    run = single_run(tmp_path, quick_config(max_train_steps=6, save_every_n_steps=3), backend, dataset)
    run.event_log = str(tmp_path / "logs" / f"{run.name}.jsonl")
    handle = _musubi_job(services, run)
    monitor.watch(handle, run)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60_000)
    assert handle.state == "done", handle.error_text
    newest, reported = {}, 0
    for event in read_events(run.event_log):
        if isinstance(event, Metric) and event.name == "avr_loss":
            newest[event.step] = event.value
            reported += 1
    assert reported > len(newest)  # some steps were reported more than once
    monitor.plot.build_now()
    monitor.plot.redraw()
    assert monitor.plot.drawn(run.run_id, "raw") == ([], [])
    assert monitor.plot.drawn(run.run_id, "smoothed") == (
        [float(step) for step in sorted(newest)],
        pytest.approx([newest[step] for step in sorted(newest)]),
    )
    assert sorted(newest) == [1, 2, 3, 4, 5, 6]
    names = [name for _step, _loss, name in monitor.plot.drawn_marks(run.run_id)]
    assert names == ["diff-step00000003.safetensors", "diff-step00000006.safetensors", "diff.safetensors"]
    assert monitor.row(run.run_id).bar_text == "done · 6/6 steps"


def test_a_musubi_out_of_memory_shows_musubis_hint_apart_from_the_cause(
    qtbot, services, monitor, musubi, tmp_path
):
    from tests.musubi_helpers import quick_config, set_standin, single_run

    checkout, backend, dataset = musubi
    set_standin(checkout, step_s=0.02, fail="oom", fail_at_step=2)
    run = single_run(tmp_path, quick_config(max_train_steps=6), backend, dataset)
    handle = _musubi_job(services, run)
    monitor.watch(handle, run)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60_000)
    assert handle.state == "failed"
    log = monitor.log(run.run_id)
    assert "CUDA out of memory" in log.failure_label.text() and "fp8_base" not in log.failure_label.text()
    assert "fp8_base" in log.hint_label.text()
    assert any(
        "Traceback (most recent call last):" in line for line in log.tail_view.toPlainText().splitlines()
    )
