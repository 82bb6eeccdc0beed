"""The Musubi Tuner training job: stage, cache latents, cache text-encoder outputs, train.

Each step is a child process (:func:`difflora_gui.jobs.process.run_child`): its output becomes
events (:mod:`.output`), "Stop" stops the whole process tree (``accelerate launch`` leaves its
trainer running when only the launcher is signalled), a failure fails the job with the last 50
lines and a hint.

Musubi saves nothing when stopped. So "Stop and keep" (``ctx.keep_requested``) either waits for
the next checkpoint Musubi writes and then stops (``stop_and_keep = next_checkpoint``; at once
when no further checkpoint can come), or stops at once (``now``); either way it keeps the newest
complete checkpoint (and its state), says which, and ends the job as cancelled.
"""

from __future__ import annotations

import re
from pathlib import Path

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.process import ChildProcessFailed, run_child
from difflora_gui.train.backend import common_issues, raise_for_errors
from difflora_gui.train.musubi import commands
from difflora_gui.train.musubi.files import OutputFiles, Settled
from difflora_gui.train.musubi.output import PHASE_STATUS, MusubiOutputParser
from difflora_gui.train.musubi.staging import stage
from difflora_gui.train.musubi.validate import check_checkout, check_models, check_settings
from difflora_gui.train.plan import TrainResult, TrainRun

OOM_HINT = (
    "the GPU ran out of memory: turn on fp8_base (fp8_scaled), swap blocks to the CPU "
    "(blocks_to_swap), keep gradient checkpointing on, or train at a lower resolution"
)
FAILURE_HINT = (
    "the last lines of Musubi's output are in the log; the full command is in the run's description"
)
_OOM = re.compile(r"out of memory|OutOfMemoryError", re.IGNORECASE)


#: the line that names a traceback's exception (``torch.OutOfMemoryError: CUDA out of memory. …``)
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Interrupt): .+")
_SECONDARY = ("subprocess.CalledProcessError", "KeyboardInterrupt")


def cause_of(error: ChildProcessFailed) -> str:
    """The failure in one line. The shared watcher misses a traceback that starts on the line
    of a tqdm bar (the bar ends without a line break, so Musubi's traceback follows it on the
    same line); the exception line at the end of the tail names the error then."""
    for line in reversed(error.tail):
        text = line.strip()
        if line[:1] not in (" ", "\t") and _EXCEPTION_LINE.match(text) and not text.startswith(_SECONDARY):
            if text in error.cause:
                return error.cause
            exit_text = re.search(r"\((exit code -?\d+|killed by \w+)\)$", error.cause)
            return text + (f" ({exit_text.group(1)})" if exit_text else "")
    return error.cause


def hint_for(error: ChildProcessFailed) -> str:
    text = " ".join([error.cause, *error.tail[-10:]])
    return OOM_HINT if _OOM.search(text) else FAILURE_HINT


class _StopControl:
    """The context ``run_child`` sees: the job's, except that during "Stop and keep" with
    ``next_checkpoint`` it reports "not cancelled" until Musubi's next checkpoint is complete."""

    def __init__(self, ctx, run: TrainRun, parser: MusubiOutputParser | None = None):
        self._ctx = ctx
        self._run = run
        self._parser = parser
        self._target: int | None = None  # the real step of the checkpoint waited for
        self._waiting = False
        self._finishing = False
        self.stop_now_reason = ""

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled()

    @property
    def cancelled(self) -> bool:
        ctx = self._ctx
        if not ctx.cancelled:
            return False
        if not ctx.keep_requested or self._parser is None:
            return True
        if self._run.backend_config.get("stop_and_keep") == "now":
            return True
        if not self._waiting:
            self._waiting = True
            self._target = self._next_checkpoint_step()
            if self._target is None:
                self.stop_now_reason = "no further checkpoint can come"
                return True
            if self._target >= self._run.total_steps:
                ctx.log("Stop and keep: the next checkpoint is the run's last step; the run finishes")
                ctx.status("finishing: the next checkpoint is the last step")
                self._finishing = True
            ctx.log(f"Stop and keep: waiting for Musubi's checkpoint at step {self._target}, then stopping")
            ctx.status(f"stopping after the checkpoint at step {self._target}")
        return not self._finishing and self._target_reached()

    def _next_checkpoint_step(self) -> int | None:
        files = self._parser.files
        every = int(self._run.config.get("save_every_n_steps") or 0)
        if files is None or every <= 0:
            return None
        pending = [files.real_step(item.step) for item in files.pending if item.kind == "checkpoint"]
        if pending:
            return min(pending)
        step = self._parser.step  # Musubi's own count
        done = {c.step for c in files.checkpoints}
        if step > 0 and step % every == 0 and files.real_step(step) not in done:
            target = step  # drawn, about to be saved
        else:
            target = (step // every + 1) * every
        if target > commands.steps_to_train(self._run):
            return None
        return files.real_step(target)

    def _target_reached(self) -> bool:
        files = self._parser.files
        reached = [c for c in files.checkpoints if c.step >= self._target]
        if not reached:
            return False
        if self._run.config.get("save_state"):
            return files.state_at(reached[0].step) is not None
        return True


def _run_step(argv, control, parser, run: TrainRun) -> None:
    backend = run.backend_config
    try:
        run_child(
            argv, control, parser=parser, cwd=backend.get("musubi_dir") or None, env=commands.command_env(run)
        )
    except ChildProcessFailed as error:
        hint, cause = hint_for(error), cause_of(error)
        control.log(f"{error.program} failed: {cause}")
        control.log(f"hint: {hint}")
        raise ChildProcessFailed(error.program, f"{cause}; {hint}", error.tail, error.returncode) from None


_STEP_FILE = re.compile(r"-step(\d{8})(\.safetensors|-state)$")


def _existing(run: TrainRun, files: OutputFiles | None) -> list[Settled]:
    """The complete checkpoints and states in the output folder (an earlier run's included)."""
    pending = {item.path for item in files.pending} if files is not None else set()
    found = list(files.checkpoints + files.states) if files is not None else []
    known = {s.path for s in found}
    try:
        paths = sorted(Path(run.output_dir).iterdir())
    except OSError:
        paths = []
    for path in paths:
        match = _STEP_FILE.search(path.name)
        if match is None or path in pending or path in known or path.name[: match.start()] != run.name:
            continue
        kind = "state" if match.group(2) == "-state" else "checkpoint"
        found.append(Settled(kind, path, int(match.group(1))))
    if run.resume and Path(run.resume).exists():
        found.append(Settled("state", Path(run.resume), commands.resume_step(run)))
    return found


def _keep(ctx, run: TrainRun, files: OutputFiles | None, reason: str = "") -> Settled | None:
    """Say which file a "Stop and keep" keeps (the newest complete checkpoint, and its state)."""
    found = _existing(run, files)
    checkpoints = [s for s in found if s.kind == "checkpoint"]
    states = [s for s in found if s.kind == "state"]
    kept = max(checkpoints, key=lambda s: s.step, default=None) or max(
        states, key=lambda s: s.step, default=None
    )
    why = f" ({reason})" if reason else ""
    if kept is None:
        ctx.log(f"Stop and keep{why}: Musubi had written no checkpoint yet; nothing is kept")
        return None
    state = next((s for s in states if s.step == kept.step), None) if kept.kind == "checkpoint" else kept
    ctx.artifact(kept.kind, kept.path, step=kept.step, kept=True)
    text = f"Stop and keep{why}: kept {kept.path} (step {kept.step})"
    if state is not None and state is not kept:
        ctx.artifact("state", state.path, step=state.step, kept=True)
        text += f" and its state {state.path} (resume from it)"
    ctx.log(text)
    return kept


def _preflight(run: TrainRun) -> None:
    from difflora_gui.train.backend import TrainIssue

    issues: list[TrainIssue] = common_issues(run)
    issues += check_checkout(run.backend_config)
    if not issues:
        issues += check_settings(run) + check_models(run)
    raise_for_errors(issues, f"the Musubi Tuner run {run.name}")


def run_musubi(run: TrainRun | dict, ctx) -> TrainResult:
    """Train one LoRA with Musubi Tuner (the job of the ``musubi`` trainer backend)."""
    run = TrainRun.from_json(run) if isinstance(run, dict) else run
    _preflight(run)
    offset = commands.resume_step(run)
    ctx.status("staging the dataset")
    staged = stage(run, ctx)
    parser = None
    files: OutputFiles | None = None
    control = _StopControl(ctx, run)
    try:
        for phase, argv in (
            ("cache_latents", commands.cache_latents_command(run)),
            ("cache_text", commands.cache_text_command(run)),
        ):
            ctx.status(PHASE_STATUS[phase])
            _run_step(argv, control, MusubiOutputParser(phase, items=staged.items), run)
        out = commands.musubi_output_dir(run)
        out.mkdir(parents=True, exist_ok=True)
        files = OutputFiles(out, Path(run.output_dir), run.name, offset=offset, total_steps=run.total_steps)
        parser = MusubiOutputParser("train", total_steps=run.total_steps, steps_done=offset, files=files)
        control = _StopControl(ctx, run, parser)
        ctx.status("training" if not offset else f"training (resumed at step {offset})")
        ctx.progress(offset, run.total_steps, f"step {offset}/{run.total_steps}")
        _run_step(commands.train_command(run), control, parser, run)
    except JobCancelled:
        if ctx.keep_requested:
            if files is not None:
                for event in files.settle():  # what completed in the last moment
                    ctx.emit(event)
            _keep(ctx, run, files, control.stop_now_reason)
        raise
    for event in files.settle(exited=True) + files.scan_samples(final=True):
        ctx.emit(event)
    lora = files.lora.path if files.lora is not None else None
    if lora is None and (Path(files.musubi_dir) / f"{run.name}.safetensors").is_file():
        raise UserError(f"Musubi finished without announcing its final file {run.name}.safetensors")
    if lora is None:
        raise UserError(f"Musubi Tuner exited without writing {run.output_path()}")
    states = sorted(files.states, key=lambda s: s.step)
    return TrainResult(
        run_id=run.run_id,
        name=run.name,
        lora=str(lora),
        checkpoints=[str(c.path) for c in sorted(files.checkpoints, key=lambda s: s.step)],
        samples=[str(s.path) for s in files.samples],
        state=str(states[-1].path) if states else None,
        steps_done=run.total_steps,
        total_steps=run.total_steps,
        stopped=False,
    )
