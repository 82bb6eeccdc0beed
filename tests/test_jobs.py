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
