"""Stop, Stop and keep, and resume of the built-in trainer: a resumed run equals an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.reader import open_lora
from difflora_gui.train.builtin.outputs import read_schedule
from tests.test_train_builtin_helpers import JOB, quick_config, setup_folders, single_run, train


class StopAt(RecordingContext):
    """Asks the job to stop (and keep) once it reports ``step`` steps done."""

    def __init__(self, step: int, *, keep: bool):
        super().__init__()
        self.stop_step, self.keep = step, keep

    def _emit_progress(self, progress):
        super()._emit_progress(progress)
        if progress.done == self.stop_step and progress.total and progress.total > self.stop_step:
            self.cancel(keep=self.keep)


def _tensors(path):
    return load_file(str(path))


@pytest.mark.parametrize(
    "optimizer, scheduler",
    [("adamw", "cosine"), ("lion", "constant_with_warmup"), ("prodigy", "constant"), ("adafactor", "linear")],
)
def test_stop_and_keep_at_10_then_resume_to_20_equals_an_uninterrupted_run(tmp_path, optimizer, scheduler):
    folders = setup_folders(tmp_path)
    lr = {"adamw": 2e-3, "lion": 2e-4, "prodigy": 1.0, "adafactor": 1e-3}[optimizer]
    config = quick_config(
        max_train_steps=20,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        lr_warmup_steps=4,
        learning_rate=lr,
        save_every_n_steps=0,
    )
    straight = single_run(folders, config, name="straight")
    train(straight)

    first = single_run(folders, config, name="stopped")
    ctx = StopAt(10, keep=True)
    outcome = run_sync(JOB, first, ctx)
    assert outcome.status == "cancelled", outcome.traceback
    out = first.output_path().parent
    state_dir = out / "stopped-step00000010-state"
    checkpoint = out / "stopped-step00000010.safetensors"
    kept = [(a.kind, a.path) for a in ctx.events if isinstance(a, Artifact) and a.meta.get("kept")]
    assert kept == [("checkpoint", str(checkpoint)), ("state", str(state_dir))]
    assert any(str(state_dir) in line and "step 10" in line for line in ctx.logs)
    assert not first.output_path().exists()
    assert sorted(p.name for p in state_dir.iterdir()) == [
        "lora.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]

    resumed = dataclasses.replace(first, resume=str(state_dir), steps_done=10)
    outcome = train(resumed)
    steps = [p for p in outcome.context.progress_reports if p.text.startswith("step")]
    assert steps[0].done == 10 and steps[-1].done == 20
    assert [step for name, _value, step in outcome.context.metrics if name == "loss"] == list(range(11, 21))

    a, b = _tensors(straight.output_path()), _tensors(resumed.output_path())
    assert a.keys() == b.keys()
    # bitwise: the schedule is a function of the step, the optimizer state and lr schedule are restored exactly
    assert all(torch.equal(a[k], b[k]) for k in a), max(float((a[k] - b[k]).abs().max()) for k in a)
    assert json.loads(open_lora(resumed.output_path()).metadata["difflora.train"])["step"] == 20
    # the schedule record of the resumed run continues the stopped one exactly
    assert read_schedule(out / "stopped.schedule.jsonl") == [
        dict(record) for record in read_schedule(out / "straight.schedule.jsonl")
    ]


def test_stop_without_keep_leaves_only_whole_files_and_a_rerun_refuses_them(tmp_path):
    folders = setup_folders(tmp_path)
    run = single_run(folders, quick_config(max_train_steps=30, save_every_n_steps=5), name="cut")
    ctx = StopAt(12, keep=False)
    outcome = run_sync(JOB, run, ctx)
    assert outcome.status == "cancelled"
    out = run.output_path().parent
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".builtin-cache",
        "cut-step00000005-state",
        "cut-step00000005.safetensors",
        "cut-step00000010-state",
        "cut-step00000010.safetensors",
        "cut.schedule.jsonl",
    ]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for step in (5, 10):
        assert len(open_lora(out / f"cut-step{step:08d}.safetensors").names()) == 20
        assert json.loads((out / f"cut-step{step:08d}-state" / "state.json").read_text())["step"] == step
    assert [r["step"] for r in read_schedule(out / "cut.schedule.jsonl")] == list(range(1, 13))
    assert not [a for a in ctx.events if isinstance(a, Artifact) and a.meta.get("kept")]

    again = run_sync(
        JOB, single_run(folders, quick_config(max_train_steps=30, save_every_n_steps=5), name="cut")
    )
    assert again.status == "failed" and isinstance(again.error, UserError)
    assert "cut-step00000005.safetensors already exists" in str(again.error)


def test_a_state_from_another_optimizer_is_refused(tmp_path):
    folders = setup_folders(tmp_path)
    run = single_run(folders, quick_config(max_train_steps=4, save_every_n_steps=2), name="opt")
    train(run)
    state_dir = run.output_path().parent / "opt-step00000002-state"
    other = single_run(
        folders, quick_config(max_train_steps=4, optimizer="lion", learning_rate=1e-4), name="opt2"
    )
    outcome = run_sync(JOB, dataclasses.replace(other, resume=str(state_dir), steps_done=2))
    assert outcome.status == "failed" and "AdamW" in str(outcome.error) and "Lion" in str(outcome.error)


def test_stop_and_keep_right_after_a_checkpoint_keeps_that_checkpoint_and_state(tmp_path):
    folders = setup_folders(tmp_path)
    run = single_run(folders, quick_config(max_train_steps=12, save_every_n_steps=4), name="edge")
    ctx = StopAt(8, keep=True)
    assert run_sync(JOB, run, ctx).status == "cancelled"
    out = run.output_path().parent
    kept = [
        (a.kind, a.path, a.meta["step"]) for a in ctx.events if isinstance(a, Artifact) and a.meta.get("kept")
    ]
    assert kept == [("checkpoint", str(out / "edge-step00000008.safetensors"), 8),
                    ("state", str(out / "edge-step00000008-state"), 8)]  # fmt: skip
    assert sorted(p.name for p in out.glob("edge-step*")) == [
        "edge-step00000004-state", "edge-step00000004.safetensors",
        "edge-step00000008-state", "edge-step00000008.safetensors",
    ]  # fmt: skip
