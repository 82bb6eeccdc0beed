"""Child processes of jobs: real subprocesses (the stand-ins in tests/fixtures/), real signals."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs import ChildProcess, ChildProcessFailed, run_child
from difflora_gui.jobs.events import LogLine, Metric, ProgressEvent
from difflora_gui.jobs.line_parsers import DefaultParser, LineSplitter, TqdmParser, find_tqdm_bar, split_lines
from difflora_gui.jobs.process import child_env, program_name
from difflora_gui.jobs.recording import RecordingContext

FIXTURES = Path(__file__).parent / "fixtures"
PY = sys.executable
FAST_STOP = (0.3, 0.3, 2.0)

pytestmark = pytest.mark.timeout(30)


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for init to reap it holds nothing any more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class CancellingContext(RecordingContext):
    """Cancels the job when a log line starts with ``when``."""

    def __init__(self, when: str, **kwargs):
        super().__init__(progress_interval_s=0, **kwargs)
        self._when = when
        self.cancelled_at: float | None = None

    def _emit_log(self, text: str) -> None:
        super()._emit_log(text)
        if text.startswith(self._when) and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


def _pid_after(logs: list[str], prefix: str) -> int:
    return int(next(line for line in logs if line.startswith(prefix)).split()[-1])


# --- stopping the whole tree ---------------------------------------------------------------------


@pytest.mark.parametrize("options", [[], ["--own-session"]], ids=["one group", "grandchild own session"])
def test_a_child_and_grandchild_that_ignore_sigint_are_stopped_with_the_whole_tree(options):
    with ChildProcess([PY, fixture("child_with_grandchild.py"), *options]) as child:
        seen = []
        for line in child.lines(timeout=0.1):
            if line is not None:
                seen.append(line.text)
            if "grandchild running" in seen and any(s.startswith("grandchild pid") for s in seen):
                break
        grandchild = _pid_after(seen, "grandchild pid")
        assert [p.pid for p in child.descendants()] == [grandchild]
        started = time.monotonic()
        step = child.stop(FAST_STOP)
        took = time.monotonic() - started

    # SIGINT is ignored by both; the grandchild also ignores SIGTERM (POSIX), so only kill ends it
    assert step == ("kill" if sys.platform != "win32" else "terminate")
    assert took < 3.0
    assert gone(child.pid) and gone(grandchild)
    assert child.returncode is not None and not child.running()


def test_cancelling_a_job_stops_its_child_tree_and_raises_job_cancelled():
    ctx = CancellingContext("grandchild running")
    with pytest.raises(JobCancelled):
        run_child([PY, fixture("child_with_grandchild.py")], ctx, stop_timeouts=FAST_STOP)
    assert gone(_pid_after(ctx.logs, "child pid")) and gone(_pid_after(ctx.logs, "grandchild pid"))
    assert time.monotonic() - ctx.cancelled_at < 3.5


def test_a_job_cancelled_before_it_starts_starts_nothing():
    ctx = RecordingContext()
    ctx.cancel()
    with pytest.raises(JobCancelled):
        run_child([PY, fixture("launcher.py")], ctx)
    assert ctx.logs == []


# --- launchers that exit before their worker -----------------------------------------------------


def test_a_launcher_that_exits_at_once_does_not_end_the_job_before_its_worker():
    ctx = RecordingContext()
    assert run_child([PY, fixture("launcher.py")], ctx) == 0
    assert ctx.logs[-1] == "worker done"
    assert "launcher exits" in ctx.logs and ctx.logs.index("launcher exits") < ctx.logs.index("worker step 5")
    assert gone(_pid_after(ctx.logs, "worker pid"))


def test_a_worker_that_closed_its_output_is_still_waited_for(tmp_path):
    marker = tmp_path / "worker finished.txt"
    ctx = RecordingContext()
    run_child([PY, fixture("launcher.py"), "--detached", str(marker)], ctx)
    assert marker.read_text(encoding="utf-8") == "worker finished"  # the job ended after the worker
    assert gone(_pid_after(ctx.logs, "worker pid"))
    assert any("waiting for its processes" in event.text for event in ctx.events)


def test_stopping_a_launcher_waits_for_its_worker_to_finish_cleaning_up():
    # like `accelerate launch`: SIGINT ends the launcher at once, the trainer needs a while longer
    ctx = CancellingContext("worker step 2")
    with pytest.raises(JobCancelled):
        run_child([PY, fixture("launcher.py"), "--wait"], ctx, stop_timeouts=(3.0, 1.0, 1.0))
    assert gone(_pid_after(ctx.logs, "worker pid"))
    if sys.platform != "win32":  # CTRL_BREAK_EVENT ends Python at once, without KeyboardInterrupt
        assert ctx.logs[-1] == "worker exits"
        assert time.monotonic() - ctx.cancelled_at >= 0.7


# --- output parsing ------------------------------------------------------------------------------


def test_carriage_return_joined_tqdm_output_becomes_progress_events():
    output = (
        "\r  0%|          | 0/100 [00:00<?, ?it/s]"
        "\r 42%|████▍     | 42/100 [00:03<00:04, 12.1it/s, loss=0.123]"
        "\r100%|██████████| 100/100 [00:08<00:00, 12.1it/s, loss=0.05]INFO:trainer:model saved\n"
    )
    parser = DefaultParser()
    events = [event for line in split_lines(output) for event in parser(line, "stderr")]
    assert events == [
        ProgressEvent(0, 100, ""),
        ProgressEvent(42, 100, ""),
        Metric("loss", 0.123, 42),
        ProgressEvent(100, 100, ""),
        Metric("loss", 0.05, 100),
        LogLine("INFO:trainer:model saved"),
    ]


def test_a_tqdm_child_reports_progress_metrics_and_the_log_line_after_its_bar():
    ctx = RecordingContext(progress_interval_s=0)
    assert run_child([PY, fixture("tqdm_output.py"), "--raw"], ctx) == 0
    assert [(p.done, p.total) for p in ctx.progress_reports] == [(0, 100), (42, 100), (100, 100)]
    assert ctx.metrics == [("loss", 0.123, 42), ("loss", 0.05, 100)]
    assert sorted(ctx.logs) == ["INFO:trainer:model saved", "done"]  # two streams: either order


def test_a_real_tqdm_bar_is_read_from_stderr():
    ctx = RecordingContext(progress_interval_s=0)
    run_child([PY, fixture("tqdm_output.py")], ctx)
    last = ctx.progress_reports[-1]
    assert (last.done, last.total, last.text) == (5, 5, "steps")
    assert ("loss", 0.2, 5) in ctx.metrics
    assert sorted(ctx.logs) == ["INFO:trainer:model saved", "done"]  # no bar redraw is a log line


def test_musubi_bars_and_counters_are_recognised():
    bar = find_tqdm_bar("steps:  50%|█████     | 3/6 [01:15<01:15, 25.18s/it, avr_loss=1.78]INFO:x:y")
    assert (bar.desc, bar.n, bar.total, bar.remaining, bar.rate) == ("steps", 3, 6, "01:15", "25.18s/it")
    assert bar.numbers() == {"avr_loss": 1.78}
    assert bar.postfix == {"avr_loss": "1.78"}
    model = r"D:\models\wan 2.1.safetensors"
    bar = find_tqdm_bar(f"Loading {model}:  45%|████▍     | 369/825 [00:02<00:03, 137.81it/s]")
    assert (bar.desc, bar.n, bar.total) == (f"Loading {model}", 369, 825)
    bar = find_tqdm_bar("4it [00:08,  2.17s/it]")
    assert (bar.n, bar.total) == (4, None)
    bar = find_tqdm_bar("x: 12%|#2        | 1.20k/10.0k [00:01<00:08, 1.1kit/s]")
    assert (bar.n, bar.total) == (1200, 10000)
    assert find_tqdm_bar("INFO:musubi_tuner.networks.lora:create LoRA for U-Net/DiT: 300 modules.") is None
    # a redrawn bar does not repeat its metric; a new value at the same step does come through
    parser = TqdmParser()
    line = "steps:  50%|█████     | 3/6 [01:15<01:15, 25.18s/it, avr_loss=1.78]"
    assert Metric("avr_loss", 1.78, 3) in parser(line)
    assert parser(line) == [ProgressEvent(3, 6, "steps")]
    assert Metric("avr_loss", 1.5, 3) in parser(line.replace("1.78", "1.5"))


def test_lines_split_on_cr_and_lf_across_chunks():
    splitter = LineSplitter()
    assert splitter.feed("a\r") == ["a"]
    assert splitter.feed("\nb\x1b[32mgreen\x1b[0m") == []  # \r\n is one break; colours dropped
    assert splitter.feed("\r\rc\n\n") == ["bgreen", "c"]
    assert splitter.feed("tail without a break") == []
    assert splitter.flush() == ["tail without a break"]


# --- failures ------------------------------------------------------------------------------------


def _failure(mode: str, **kwargs) -> ChildProcessFailed:
    ctx = RecordingContext()
    with pytest.raises(ChildProcessFailed) as caught:
        run_child([PY, fixture("failing_child.py"), mode], ctx, **kwargs)
    return caught.value


def test_a_failing_child_fails_the_job_with_its_last_50_lines():
    error = _failure("traceback")
    assert isinstance(error, UserError)
    assert str(error) == "failing_child.py failed: RuntimeError: boom: ä (exit code 1)"
    assert "\n" not in str(error)
    assert len(error.tail) == 50
    assert error.tail[-1] == "RuntimeError: boom: ä"
    assert "line 60" in error.tail and "line 1" not in error.tail
    assert "Traceback (most recent call last):" in error.tail
    assert error.returncode == 1


def test_cuda_out_of_memory_is_named_as_the_cause():
    error = _failure("oom")
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in error.cause
    assert str(error).startswith("failing_child.py failed: OutOfMemoryError: CUDA out of memory")


def test_a_non_zero_exit_without_a_traceback_fails_with_the_exit_code():
    error = _failure("exit")
    assert str(error) == "failing_child.py failed: exit code 3"
    assert error.tail[-1] == "line 60"


def test_a_traceback_fails_the_job_even_when_the_exit_code_hides_it():
    error = _failure("traceback-exit0")
    assert str(error) == "failing_child.py failed: ValueError: handled but fatal"
    argv = [PY, fixture("failing_child.py"), "traceback-exit0"]
    assert run_child(argv, RecordingContext(), check_output=False) == 0


def test_a_launchers_failure_names_its_workers_error_not_its_own():
    error = _failure("launcher", name="wan_train_network.py")
    assert str(error) == "wan_train_network.py failed: RuntimeError: boom: ä (exit code 1)"
    assert any("CalledProcessError" in line for line in error.tail)


# --- arguments, folders, environment -------------------------------------------------------------


def test_paths_with_spaces_and_non_ascii_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONIOENCODING", raising=False)
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    scripts = tmp_path / "scripts with spaces ü 日本"
    scripts.mkdir()
    script = scripts / "report ä.py"
    shutil.copy(FIXTURES / "child_report.py", script)
    workdir = tmp_path / "work dir ø"
    workdir.mkdir()
    ctx = RecordingContext()
    run_child(
        [PY, script, "arg with spaces", "ünï ☃ 🙂", workdir / "out ä.safetensors"],
        ctx,
        cwd=workdir,
        env={"DIFFLORA_TEST_VAR": "wert ä", "PYTHONIOENCODING": "latin-1"},
    )
    report = json.loads(ctx.logs[0])
    assert report["argv"] == ["arg with spaces", "ünï ☃ 🙂", str(workdir / "out ä.safetensors")]
    assert Path(report["cwd"]).resolve() == workdir.resolve()
    assert report["PYTHONIOENCODING"] == "utf-8"  # the reader decodes UTF-8, so the child writes it
    assert report["PYTHONUNBUFFERED"] == "1"
    assert report["DIFFLORA_TEST_VAR"] == "wert ä"
    assert report["stdout_encoding"].lower().replace("-", "") == "utf8"
    assert ctx.logs[1] == "grüße aus 日本 🙂"


def test_a_command_string_is_refused():
    with pytest.raises(TypeError, match="list of arguments"):
        ChildProcess(f"{PY} -c 'print(1)'")
    with pytest.raises(ValueError):
        ChildProcess([])


def test_a_missing_program_or_folder_is_one_clear_line(tmp_path):
    missing = tmp_path / "no such trainer.exe"
    with pytest.raises(UserError, match="cannot start no such trainer.exe") as caught:
        run_child([missing], RecordingContext())
    assert str(missing) in str(caught.value)
    with pytest.raises(UserError, match="working folder does not exist") as caught:
        run_child([PY, "-c", "pass"], RecordingContext(), cwd=tmp_path / "gone ä")
    assert "gone ä" in str(caught.value)


def test_child_env_and_program_names(monkeypatch):
    monkeypatch.setenv("DIFFLORA_DROP_ME", "1")
    env = child_env({"DIFFLORA_DROP_ME": None, "CUDA_VISIBLE_DEVICES": 1, "HF_HOME": Path("hf cache")})
    assert "DIFFLORA_DROP_ME" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["HF_HOME"] == "hf cache"
    assert program_name([PY, "-X", "utf8", "src/musubi_tuner/wan_train_network.py", "--task", "t2v"]) == (
        "wan_train_network.py"
    )
    assert program_name(["python3", "-m", "musubi_tuner.cache_latents"]) == "musubi_tuner.cache_latents"
    assert program_name(["/opt/venv/bin/accelerate", "launch", "train.py"]) == "accelerate"
    assert program_name([PY, "-c", "print(1)"]) == Path(PY).name


# --- as a job on a lane --------------------------------------------------------------------------


def _tqdm_job(params, ctx):
    return run_child([PY, fixture("tqdm_output.py"), "--raw"], ctx)


def _tree_job(params, ctx):
    return run_child([PY, fixture("child_with_grandchild.py")], ctx, stop_timeouts=FAST_STOP)


def test_a_child_process_job_on_a_lane_writes_its_events_to_the_event_log_and_is_cancelled_there(tmp_path):
    from difflora_gui.jobs.eventlog import read_events
    from difflora_gui.jobs.job import JobRequest
    from difflora_gui.jobs.scheduler import CANCELLED, DONE, Scheduler

    lanes = Scheduler()
    try:
        log_path = tmp_path / "runs" / "run ä" / "events.jsonl"
        request = JobRequest("train", _tqdm_job, lane="device:cuda:0", event_log=log_path)
        job = lanes.submit(request, RecordingContext())
        assert job.wait(10) and job.state == DONE and job.result == 0
        events = read_events(log_path)
        assert Metric("loss", 0.123, 42) in events and Metric("loss", 0.05, 100) in events
        assert ProgressEvent(100, 100, "") in events and LogLine("INFO:trainer:model saved") in events

        ctx = RecordingContext()
        job = lanes.submit(JobRequest("train", _tree_job, lane="device:cuda:0"), ctx)
        deadline = time.monotonic() + 5
        while "grandchild running" not in ctx.logs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lanes.cancel(job) == "requested"
        assert job.wait(5) and job.state == CANCELLED
        assert gone(_pid_after(ctx.logs, "child pid")) and gone(_pid_after(ctx.logs, "grandchild pid"))
    finally:
        assert lanes.shutdown(10)


def test_on_line_gets_every_line_even_after_a_handler_error():
    seen = []

    def on_line(line):
        seen.append((line.stream, line.text))
        if line.text == "worker step 1":
            raise RuntimeError("a broken handler")

    with ChildProcess([PY, fixture("launcher.py")], on_line=on_line) as child:
        assert list(child.lines()) == []  # the lines went to on_line
        assert child.wait(5) == 0
    assert seen[-1] == ("stdout", "worker done") and len(seen) == 8
