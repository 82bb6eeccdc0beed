"""The Musubi backend's job with the Musubi stand-in (tests/fixtures/musubi_standin.py): real
child processes, real files, the events a GUI sees, stopping, keeping and resuming."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from difflora_gui.jobs.events import Artifact, Status
from difflora_gui.jobs.process import ChildProcessFailed
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.safetensors_header import read_header
from difflora_gui.train.musubi.job import run_musubi
from difflora_gui.train.plan import TrainRun
from tests.musubi_helpers import (
    backend_config,
    fake_checkout,
    model_files,
    quick_config,
    set_standin,
    single_run,
    write_items,
)


@pytest.fixture
def setup(tmp_path):
    checkout = fake_checkout(tmp_path / "Musubi Tuner ü", step_s=0.02)
    models = model_files(tmp_path / "models")
    dataset = write_items(tmp_path / "set A ü", ["a", "b", "c"], caption="{name} caption")
    return checkout, models, dataset


def _artifacts(ctx, kind):
    return [e for e in ctx.events if isinstance(e, Artifact) and e.kind == kind]


def _tree_of(checkout: Path) -> list[psutil.Process]:
    """Processes running one of the fake checkout's scripts (the trainer and its workers)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(checkout) in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _run_in_thread(run, ctx):
    box = {}
    thread = threading.Thread(target=lambda: box.update(outcome=run_sync(run_musubi, run, ctx)))
    thread.start()
    return thread, box


def _wait_for_step(ctx, step, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = ctx.last_progress
        if progress is not None and progress.text.startswith("step ") and progress.done >= step:
            return
        time.sleep(0.02)
    raise AssertionError(f"training did not reach step {step}")


def test_a_run_reports_progress_loss_checkpoints_and_the_final_lora(setup, tmp_path):
    checkout, models, dataset = setup
    before = sorted((p.name, p.stat().st_mtime_ns) for p in dataset.iterdir())
    config = quick_config(max_train_steps=6, save_every_n_steps=3, captions="files")
    run = single_run(tmp_path, config, backend_config(checkout, models), dataset)

    outcome = run_sync(run_musubi, run)

    assert outcome.status == "done", outcome.traceback
    ctx, result = outcome.context, outcome.result
    out = Path(run.output_dir)
    assert result.lora == str(out / "diff.safetensors")
    assert result.checkpoints == [
        str(out / "diff-step00000003.safetensors"),
        str(out / "diff-step00000006.safetensors"),
    ]
    assert [a.meta["step"] for a in _artifacts(ctx, "checkpoint")] == [3, 6]
    assert [a.meta["step"] for a in _artifacts(ctx, "state")] == [3, 6, 6]  # two step states, the end state
    assert [Path(a.path).name for a in _artifacts(ctx, "lora")] == ["diff.safetensors"]
    for path in result.checkpoints:
        assert read_header(path).tensors  # whole files, not announcements
    steps = [p for p in ctx.progress_reports if p.text.startswith("step ")]
    assert steps[-1].done == 6 and steps[-1].total == 6
    losses = {}
    for name, value, step in ctx.metrics:
        if name == "avr_loss":
            losses[step] = value  # a later value of a step supersedes the first drawing
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert losses[6] < losses[1]
    assert ("epoch", 1.0) in {(n, v) for n, v, _s in ctx.metrics}
    statuses = [e.text for e in ctx.events if isinstance(e, Status)]
    assert "caching latents" in statuses and "caching text encoder outputs" in statuses
    caption = out / ".musubi" / "diff" / "data" / "images" / "a.txt"
    assert caption.read_text(encoding="utf-8") == "a caption"
    assert (out / ".musubi" / "diff" / "data" / "images" / "a.png").is_file()  # lower-case suffix
    assert len(list((out / ".musubi" / "diff" / "cache" / "images").glob("*_wan_te.safetensors"))) == 3
    assert sorted((p.name, p.stat().st_mtime_ns) for p in dataset.iterdir()) == before


@pytest.mark.parametrize(
    ("kind", "cause", "hint"),
    [
        ("oom", "CUDA out of memory", "fp8_base"),
        ("traceback", "RuntimeError: stand-in failure", "last lines"),
    ],
)
def test_a_failure_fails_the_job_with_the_tail_and_a_hint(setup, tmp_path, kind, cause, hint):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.02, fail=kind, fail_at_step=2)
    run = single_run(tmp_path, quick_config(max_train_steps=6), backend_config(checkout, models), dataset)

    outcome = run_sync(run_musubi, run)

    assert outcome.status == "failed"
    error = outcome.error
    assert isinstance(error, ChildProcessFailed)
    assert cause in str(error) and hint in str(error)
    assert 0 < len(error.tail) <= 50
    assert any("Traceback (most recent call last):" in line for line in error.tail)  # after a bar
    assert any("hint: " in line and hint in line for line in outcome.context.logs)


def test_stop_ends_the_whole_process_tree(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.3)
    run = single_run(tmp_path, quick_config(max_train_steps=50), backend_config(checkout, models), dataset)
    ctx = RecordingContext()
    thread, box = _run_in_thread(run, ctx)
    _wait_for_step(ctx, 1)
    running = _tree_of(checkout)
    assert len(running) >= 3  # the trainer and its two data-loader workers

    ctx.cancel()
    thread.join(60)

    assert box["outcome"].status == "cancelled"
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not _tree_of(checkout)
    assert not Path(run.output_path()).exists()


def test_stop_and_keep_waits_for_the_next_checkpoint_and_says_which(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.15, save_pause_s=0.3)
    config = quick_config(max_train_steps=12, save_every_n_steps=4)
    run = single_run(tmp_path, config, backend_config(checkout, models), dataset)
    ctx = RecordingContext()
    thread, box = _run_in_thread(run, ctx)
    _wait_for_step(ctx, 1)

    ctx.cancel(keep=True)
    thread.join(60)

    assert box["outcome"].status == "cancelled"
    out = Path(run.output_dir)
    kept = [a for a in ctx.events if isinstance(a, Artifact) and a.meta.get("kept")]
    assert [(a.kind, Path(a.path).name) for a in kept] == [
        ("checkpoint", "diff-step00000004.safetensors"),
        ("state", "diff-step00000004-state"),
    ]
    assert read_header(out / "diff-step00000004.safetensors").tensors
    assert any("kept" in line and "diff-step00000004.safetensors" in line for line in ctx.logs)
    assert not (out / "diff-step00000008.safetensors").exists()
    assert not _tree_of(checkout)


def test_stop_and_keep_now_keeps_the_newest_checkpoint_at_once(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.15)
    backend = backend_config(checkout, models, stop_and_keep="now")
    run = single_run(tmp_path, quick_config(max_train_steps=40, save_every_n_steps=2), backend, dataset)
    ctx = RecordingContext()
    thread, box = _run_in_thread(run, ctx)
    _wait_for_step(ctx, 3)

    ctx.cancel(keep=True)
    thread.join(60)

    assert box["outcome"].status == "cancelled"
    kept = [
        a for a in ctx.events if isinstance(a, Artifact) and a.meta.get("kept") and a.kind == "checkpoint"
    ]
    assert len(kept) == 1 and kept[0].meta["step"] >= 2
    assert kept[0].meta["step"] < 10  # stopped at once, not after more checkpoints
    assert any("kept" in line for line in ctx.logs)


def test_a_resumed_run_renames_checkpoints_to_real_steps_and_ends_at_the_total(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.1)
    config = quick_config(max_train_steps=8, save_every_n_steps=4)
    first = single_run(tmp_path, config, backend_config(checkout, models), dataset)
    ctx = RecordingContext()
    thread, box = _run_in_thread(first, ctx)
    _wait_for_step(ctx, 1)
    ctx.cancel(keep=True)
    thread.join(60)
    out = Path(first.output_dir)
    state = out / "diff-step00000004-state"
    assert box["outcome"].status == "cancelled" and state.is_dir()
    first_checkpoint = (out / "diff-step00000004.safetensors").read_bytes()

    resumed = TrainRun.from_json({**first.to_json(), "resume": str(state), "steps_done": 4})
    set_standin(checkout, step_s=0.02)
    outcome = run_sync(run_musubi, resumed)

    assert outcome.status == "done", outcome.traceback
    ctx = outcome.context
    assert [a.meta["step"] for a in _artifacts(ctx, "checkpoint")] == [8]
    assert outcome.result.checkpoints == [str(out / "diff-step00000008.safetensors")]
    assert (
        read_header(out / "diff-step00000008.safetensors").metadata["ss_steps"] == "4"
    )  # Musubi's own count
    assert (out / "diff-step00000008-state").is_dir()
    assert (out / "diff-step00000004.safetensors").read_bytes() == first_checkpoint  # never overwritten
    assert outcome.result.lora == str(out / "diff.safetensors") and (out / "diff.safetensors").is_file()
    steps = [p for p in ctx.progress_reports if p.text.startswith("step ")]
    assert steps[0].done == 4 and steps[-1].done == 8 and steps[-1].total == 8
    assert {step for name, _v, step in ctx.metrics if name == "avr_loss"} == {5, 6, 7, 8}
    resume_folder = out / ".musubi" / "diff" / "resume-from-step00000004"
    assert not list(resume_folder.glob("*-step*"))  # every file moved to its real step
    assert not any("made again" in line for line in ctx.logs)  # the caches were kept


def test_the_parser_reads_musubis_observed_lines():
    """Lines as the reference records them from a real run (musubi-tuner.md §5)."""
    import math

    from difflora_gui.jobs.events import LogLine, Metric, ProgressEvent
    from difflora_gui.train.musubi.output import MusubiOutputParser

    parser = MusubiOutputParser("train", total_steps=16, steps_done=10)
    assert parser("epoch 1/2", "stdout") == [Metric("epoch", 1.0, 10), LogLine("epoch 1/2")]
    first = parser("steps:  17%|█▋        | 1/6 [00:00<00:00, 3563.55it/s, avr_loss=1.74]", "stderr")
    assert first == [ProgressEvent(11, 16, "step 11/16"), Metric("avr_loss", 1.74, 11)]
    bar = "steps:  50%|█████     | 3/6 [01:15<01:15, 25.18s/it, avr_loss=1.78]"
    assert parser(bar, "stderr") == [ProgressEvent(13, 16, "step 13/16"), Metric("avr_loss", 1.78, 13)]
    same_line = bar + "INFO:musubi_tuner.utils.train_utils:saving state at step 3"
    assert parser(same_line, "stderr") == [
        ProgressEvent(13, 16, "step 13/16"),
        LogLine("INFO:musubi_tuner.utils.train_utils:saving state at step 3"),
    ]  # the redrawn bar repeats no metric; the log line after it is kept
    (progress, loss) = parser("steps:  67%|██████▋   | 4/6 [01:40<00:50, 25.00s/it, avr_loss=nan]", "stderr")
    assert progress.done == 14 and math.isnan(loss.value)
    scaled = "steps:  83%|████████▎ | 5/6 [02:05<00:25, 25.00s/it, Keys Scaled=0, Average key norm=0.51, avr_loss=0.0823]"
    assert parser(scaled, "stderr")[1] == Metric("avr_loss", 0.0823, 15)
    loading = "Loading /models/wan2.1 dit.safetensors:  45%|████▍     | 369/825 [00:02<00:03, 137.81it/s]"
    (status,) = parser(loading, "stderr")
    assert isinstance(status, Status) and parser(loading, "stderr") == []  # once, and no step progress
    cache = MusubiOutputParser("cache_latents", items=4)
    assert cache("4it [00:08,  2.17s/it]", "stderr") == [ProgressEvent(4, 4, "caching latents")]
    assert cache("INFO:musubi_tuner.cache_latents:Encoding dataset [0]", "stderr") == [
        LogLine("INFO:musubi_tuner.cache_latents:Encoding dataset [0]")
    ]


def test_stop_and_keep_before_the_last_checkpoint_lets_the_run_finish(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.15)
    run = single_run(
        tmp_path,
        quick_config(max_train_steps=6, save_every_n_steps=3),
        backend_config(checkout, models),
        dataset,
    )
    ctx = RecordingContext()
    thread, box = _run_in_thread(run, ctx)
    _wait_for_step(ctx, 4)

    ctx.cancel(keep=True)
    thread.join(60)

    assert box["outcome"].status == "done"
    assert box["outcome"].result.lora == str(run.output_path())
    assert any("the run finishes" in line for line in ctx.logs)


def test_samples_by_musubis_names_become_sample_artifacts(setup, tmp_path):
    checkout, models, dataset = setup
    set_standin(checkout, step_s=0.02, samples=True)
    prompts = tmp_path / "prompts ü.txt"
    prompts.write_text("a cat --w 256 --h 256\n", encoding="utf-8")
    backend = backend_config(checkout, models, sample_prompts=str(prompts), sample_every_n_steps=2)
    run = single_run(tmp_path, quick_config(max_train_steps=6, save_every_n_steps=0), backend, dataset)

    outcome = run_sync(run_musubi, run)

    assert outcome.status == "done", outcome.traceback
    samples = _artifacts(outcome.context, "sample")
    assert [a.meta["step"] for a in samples] == [2, 4, 6]
    assert all(
        Path(a.path).parent == Path(run.output_dir) / "sample" and Path(a.path).is_file() for a in samples
    )
    assert outcome.result.samples == [a.path for a in samples]
