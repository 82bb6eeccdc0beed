"""Typed job events and the event log: what a finished run reopens with."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from difflora_gui.jobs.context import JobContext
from difflora_gui.jobs.eventlog import EventLog, iter_timed_events, read_events
from difflora_gui.jobs.events import (
    Artifact,
    Frame,
    LatestOnly,
    LogLine,
    Metric,
    ProgressEvent,
    Status,
    event_from_json,
)


def _events():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    return [
        Status("caching latents"),
        Metric("avr_loss", 0.0823, 10),
        Metric("lr", 2e-4),
        Metric("avr_loss", math.nan, 11),  # a diverging run
        Artifact("checkpoint", "out/run ä/diffA-step00000010.safetensors", {"step": 10, "epoch": 1}),
        Artifact("sample", "out/sample/diffA_e000001_00.mp4", {"prompt": "a cat, film grain", "seed": 42}),
        Frame(3, image, {"job": "preview"}),
        LogLine("INFO:musubi_tuner.training.trainer_base:model saved."),
        ProgressEvent(10, 500, "steps"),
        ProgressEvent(3, None, "caching"),
    ]


def test_event_log_round_trip_gives_the_same_events(tmp_path):
    path = tmp_path / "runs" / "run 1 ü" / "events.jsonl"
    with EventLog(path) as log:
        for event in _events():
            log.append(event)

    reopened = read_events(path)
    assert reopened == _events()
    assert all(type(a) is type(b) for a, b in zip(reopened, _events(), strict=True))
    assert math.isnan(reopened[3].value)
    assert reopened[4].meta == {"step": 10, "epoch": 1}
    # the frame's pixels stay in memory; its size is in the log
    frame_line = json.loads(path.read_text(encoding="utf-8").splitlines()[6])
    assert frame_line["shape"] == [4, 6, 3] and reopened[6].image is None
    # every line is standard JSON (no NaN literal) that another tool can read
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))


def test_a_jobs_calls_land_in_its_event_log_in_order(tmp_path):
    path = tmp_path / "events.jsonl"
    ctx = JobContext(progress_interval_s=0)
    with EventLog(path) as log:
        ctx.attach_event_log(log)
        ctx.status("training")
        ctx.progress(1, 2, "steps")
        ctx.metric("avr_loss", 1.78, 1)
        ctx.log("epoch 1/2")
        ctx.artifact("lora", tmp_path / "slider.safetensors", rank=4)
        ctx.frame(0, np.ones((2, 2, 3), dtype=np.uint8))
    assert read_events(path) == [
        Status("training"),
        ProgressEvent(1, 2, "steps"),
        Metric("avr_loss", 1.78, 1),
        LogLine("epoch 1/2"),
        Artifact("lora", str(tmp_path / "slider.safetensors"), {"rank": 4}),
        Frame(0, None, {}),
    ]


def test_times_are_seconds_since_the_log_opened(tmp_path):
    now = [100.0]
    path = tmp_path / "events.jsonl"
    with EventLog(path, clock=lambda: now[0]) as log:
        log.append(Status("a"))
        now[0] = 102.5
        log.append(Status("b"))
    assert list(iter_timed_events(path)) == [(0.0, Status("a")), (2.5, Status("b"))]


def test_a_torn_last_line_is_skipped_and_appending_again_keeps_the_new_events(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.append(Metric("loss", 1.0, 1))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"event": "metric", "name": "loss", "val')  # the app crashed mid-line
    assert read_events(path) == [Metric("loss", 1.0, 1)]

    with EventLog(path) as log:  # the resumed run appends to the same log
        log.append(Metric("loss", 0.5, 2))
    assert read_events(path) == [Metric("loss", 1.0, 1), Metric("loss", 0.5, 2)]


def test_unknown_and_foreign_lines_are_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event": "status", "text": "ok", "t": 0}\n'
        "5\n"
        "[1, 2]\n"
        '{"event": "from_a_newer_version", "t": 1}\n'
        '{"event": "metric", "name": "loss", "t": 2}\n'  # a required field missing
        "not json at all\n"
        '{"event": "status", "text": "still ok", "t": 3}\n',
        encoding="utf-8",
    )
    assert read_events(path) == [Status("ok"), Status("still ok")]


def test_non_finite_numbers_in_metadata_do_not_break_the_log(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.append(Artifact("file", "grid.csv", {"best": math.inf, "scores": [1.0, math.nan]}))
        log.append(Status("after"))
    events = read_events(path)
    assert events[0].meta == {"best": "inf", "scores": [1.0, "nan"]}
    assert events[1] == Status("after")


def test_event_from_json_rejects_what_is_not_an_event():
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_json({"event": "nope"})
    with pytest.raises(ValueError, match="JSON object"):
        event_from_json([1])
    assert event_from_json({"event": "metric", "name": "loss", "value": "nan", "step": 3}) == Metric(
        "loss", math.nan, 3
    )


def test_metrics_compare_and_hash_by_value():
    assert Metric("loss", 1, 2) == Metric("loss", 1.0, 2)
    assert Metric("loss", math.nan, 2) == Metric("loss", math.nan, 2)
    assert Metric("loss", 1.0, 2) != Metric("loss", 1.0, 3)
    assert len({Metric("loss", math.nan, 2), Metric("loss", math.nan, 2), Metric("loss", 1.0, 2)}) == 2


def test_concurrent_appends_never_interleave_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:

        def write(name):
            for step in range(200):
                log.append(Metric(name, step * 0.5, step))

        threads = [threading.Thread(target=write, args=(f"m{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    events = read_events(path)
    assert len(events) == 800
    for i in range(4):
        assert [e.step for e in events if e.name == f"m{i}"] == list(range(200))


def test_latest_only_hands_a_slow_viewer_the_newest_frame():
    box = LatestOnly()
    assert box.put(Frame(1)) is True  # the viewer needs waking
    assert box.put(Frame(2)) is False
    assert box.put(Frame(3)) is False
    assert box.take() == Frame(3)
    assert box.take() is None
    assert box.dropped == 2


def test_the_event_log_keeps_about_one_progress_report_a_second(tmp_path):
    now = [0.0]
    path = tmp_path / "events.jsonl"
    ctx = JobContext(progress_interval_s=0, clock=lambda: now[0])
    with EventLog(path) as log:
        ctx.attach_event_log(log)
        for step in range(1, 101):  # 100 tqdm redraws over 5 s
            now[0] = step * 0.05
            ctx.progress(step, 100, "steps")
        ctx.progress(1, 10, "saving")
    logged = [(e.done, e.text) for e in read_events(path)]
    assert logged[0] == (1, "steps") and logged[-2:] == [(100, "steps"), (1, "saving")]
    assert 5 <= len(logged) <= 8


def test_metrics_are_flushed_in_batches_while_files_reach_the_disk_at_once(tmp_path):
    path = tmp_path / "events.jsonl"
    now = [0.0]
    with EventLog(path, clock=lambda: now[0]) as log:
        log.append(Metric("loss", 1.0, 1))
        now[0] = 0.1
        log.append(Metric("loss", 0.9, 2))
        assert read_events(path) == []  # a training step does not wait for the disk
        log.append(Artifact("checkpoint", str(tmp_path / "x-step00000002.safetensors"), {"step": 2}))
        assert [e.EVENT for e in read_events(path)] == ["metric", "metric", "artifact"]
        now[0] = 1.0
        log.append(Metric("loss", 0.8, 3))  # the interval passed: flushed
        assert len(read_events(path)) == 4
