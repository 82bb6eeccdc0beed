import threading
import time

from difflora_gui.jobs import JobRequest, RecordingContext, run_sync
from difflora_gui.jobs.cli import CliContext, run_in_terminal
from difflora_gui.jobs.context import format_duration


def counting_job(params, ctx):
    total = params["steps"]
    for step in range(total):
        ctx.raise_if_cancelled()
        ctx.metric("loss", 1.0 / (step + 1), step)
        ctx.progress(step + 1, total, f"step {step + 1}")
    ctx.log("finished")
    ctx.partial({"sample": total})
    return total * 2


def failing_job(params, ctx):
    ctx.progress(1, 3, "working")
    raise RuntimeError("the GPU caught fire")


def test_run_sync_records_everything():
    outcome = run_sync(counting_job, {"steps": 5})
    assert outcome.status == "done" and outcome.result == 10
    ctx = outcome.context
    assert [p.done for p in ctx.progress_reports] == [1, 2, 3, 4, 5]
    assert ctx.progress_reports[-1].fraction == 1.0
    assert ctx.logs == ["finished"]
    assert ctx.metrics[0] == ("loss", 1.0, 0)
    assert ctx.partials == [{"sample": 5}]


def test_cancel_mid_run_is_seen_by_the_job():
    seen = []

    def job(params, ctx):
        for i in range(100):
            seen.append(i)
            ctx.progress(i + 1, 100, f"item {i}")
            ctx.raise_if_cancelled()
        return "never"

    outcome = run_sync(job, None, RecordingContext(cancel_after_progress=3))
    assert outcome.status == "cancelled"
    assert seen == [0, 1, 2]


def test_errors_are_reported_not_raised():
    outcome = run_sync(failing_job, None)
    assert outcome.status == "failed"
    assert isinstance(outcome.error, RuntimeError)
    assert "the GPU caught fire" in outcome.traceback


def test_progress_is_throttled_but_last_update_always_arrives():
    now = [0.0]
    ctx = RecordingContext(progress_interval_s=0.1, clock=lambda: now[0])
    for step in range(1, 1001):
        now[0] += 0.001  # 1000 updates within one second
        ctx.progress(step, 1000, "same text")
    assert 9 <= len(ctx.progress_reports) <= 12
    assert ctx.progress_reports[-1].done == 1000


def test_eta_is_estimated_from_elapsed_time():
    now = [0.0]
    ctx = RecordingContext(progress_interval_s=0, clock=lambda: now[0])
    now[0] = 10.0
    ctx.progress(25, 100)
    assert ctx.progress_reports[-1].eta_s == 30.0
    assert (
        format_duration(30) == "00:30"
        and format_duration(3725) == "1:02:05"
        and format_duration(None) == "--:--"
    )


def test_context_is_usable_from_another_thread():
    ctx = RecordingContext(progress_interval_s=0)
    worker = threading.Thread(target=lambda: [ctx.progress(i, 10) for i in range(1, 11)])
    worker.start()
    worker.join()
    assert len(ctx.progress_reports) == 10


def test_job_request_lanes_and_dotted_functions():
    req = JobRequest("merge", "difflora_gui.jobs.context:format_duration", {"steps": 2}, device="cuda:1")
    assert req.lane_key == "device:cuda:1"
    assert JobRequest("scan", counting_job, lane="light").lane_key == "light"
    assert req.function() is format_duration
    assert JobRequest("a", counting_job).id != JobRequest("b", counting_job).id


def test_cli_adapter_prints_a_progress_bar_with_eta(capsys):
    result = run_in_terminal(counting_job, {"steps": 3}, description="merging")
    err = capsys.readouterr().err
    assert result == 6
    assert "merging" in err and "3/3" in err and "finished" in err


def test_cli_context_quiet_prints_nothing(capsys):
    ctx = CliContext(quiet=True)
    ctx.progress(1, 2)
    ctx.log("x")
    ctx.close()
    assert capsys.readouterr().err == ""


def test_elapsed_time_grows():
    ctx = RecordingContext()
    time.sleep(0.01)
    assert ctx.elapsed_s > 0


# --- the terminal adapter goes through the lane scheduler -------------------------------------


def test_cli_prints_status_and_artifact_events_as_log_lines(capsys, tmp_path):
    out = tmp_path / "slider ä.safetensors"

    def job(params, ctx):
        ctx.status("subtracting B from A")
        ctx.artifact("lora", out)
        ctx.metric("norm", 1.5)
        return "ok"

    assert run_in_terminal(job, None, description="merge") == "ok"
    err = capsys.readouterr().err
    assert "subtracting B from A" in err
    assert f"lora: {out}" in err
    assert "norm" not in err  # numbers for plots are not log lines


def test_cli_jobs_run_on_the_lane_of_their_device_in_the_shared_scheduler(capsys, tmp_path):
    from difflora_gui.jobs.eventlog import read_events
    from difflora_gui.jobs.events import Status
    from difflora_gui.jobs.scheduler import Scheduler

    lanes = Scheduler()
    placed = []
    lanes.add_listener(lambda job, state: placed.append((job.lane, state, threading.current_thread().name)))

    def job(params, ctx):
        ctx.status("on a worker thread")
        return threading.current_thread().name

    log = tmp_path / "events.jsonl"
    name = run_in_terminal(job, {"device": "cuda:1"}, quiet=True, scheduler=lanes, event_log=log)
    assert name.startswith("job-") and name != threading.main_thread().name
    assert ("device:cuda:1", "running", name) in placed
    assert read_events(log) == [Status("on a worker thread")]
    assert lanes.jobs() == []  # the terminal forgets its finished jobs
    run_in_terminal(job, {"device": "cuda"}, quiet=True, scheduler=lanes)
    assert placed[-1][0] == "device:cuda:0"
    run_in_terminal(job, None, quiet=True, scheduler=lanes)
    assert placed[-1][0] == "device:cpu"
    run_in_terminal(job, None, quiet=True, scheduler=lanes, lane="light")
    assert placed[-1][0] == "light"
    assert lanes.shutdown(5)


def test_cli_job_errors_propagate_with_their_traceback():
    import pytest

    with pytest.raises(RuntimeError, match="the GPU caught fire") as caught:
        run_in_terminal(failing_job, None, quiet=True)
    assert "failing_job" in str(caught.traceback[-1].name)


def test_cli_comfy_job_without_servers_is_one_clear_error():
    import pytest

    from difflora_gui.errors import UserError
    from difflora_gui.jobs.scheduler import Scheduler

    with pytest.raises(UserError, match="no ComfyUI server is configured"):
        run_in_terminal(counting_job, {"steps": 1}, quiet=True, lane="comfy", scheduler=Scheduler())


CTRL_C_SCRIPT = """
import sys, time
from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.cli import run_in_terminal

def job(params, ctx):
    print("started", flush=True)
    while not ctx.cancelled:
        time.sleep(0.01)
    print("keep" if ctx.keep_requested else "abort", flush=True)
    ctx.raise_if_cancelled()

try:
    run_in_terminal(job, None, quiet=True, resumable=sys.argv[1] == "resumable")
except JobCancelled:
    print("cancelled", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_cancels_a_terminal_job_and_stops_and_keeps_a_resumable_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if os.name == "nt":
        pytest.skip("sends SIGINT to a child process (POSIX)")
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    for mode, expected in (("resumable", "keep"), ("plain", "abort")):
        child = subprocess.Popen(
            [sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, cwd=root
        )
        try:
            assert child.stdout.readline().strip() == "started"
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        assert out.split() == [expected, "cancelled"]
        assert child.returncode == 130


def test_a_plain_stop_after_stop_and_keep_stops_at_once():
    ctx = RecordingContext()
    ctx.cancel(keep=True)
    assert ctx.keep_requested
    ctx.cancel()  # the user gave up waiting for the next checkpoint
    assert ctx.cancelled and not ctx.keep_requested


def test_a_traceback_right_after_a_progress_bar_names_the_exception_not_the_raising_line():
    from difflora_gui.jobs.line_parsers import FailureWatch

    watch = FailureWatch()
    lines = [
        "steps:  50%|█████     | 3/6 [01:15<01:15, 25.18s/it, avr_loss=1.78]Traceback (most recent call last):",
        '  File "trainer_base.py", line 2050, in train',
        "    raise OutOfMemoryError(",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ]
    for line in lines:
        watch.feed(line, "stderr")
    assert watch.failed
    assert watch.cause() == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_the_eta_of_a_resumed_run_comes_from_its_own_rate_not_from_step_zero():
    now = [0.0]
    ctx = RecordingContext(clock=lambda: now[0])
    now[0] = 30.0  # loading the model and caching took 30 s
    ctx.progress(1000, 2000)  # resumed at step 1000: no rate yet
    now[0] = 40.0
    ctx.progress(1010, 2000)  # 1 step/s since the first report
    assert ctx.last_progress.eta_s == 990.0
