"""One action trains a pair: every run checked first, placed on the device lanes, then the merge offer.

:class:`PairJob` takes the runs of :func:`~difflora_gui.train.plan.plan_pair` (or
:func:`~difflora_gui.train.plan.plan_single`) and submits them as :class:`JobRequest`\\ s through a
``submit(request)`` callable: the GUI's ``services.submit``, or :func:`scheduler_submit` around the
command line's scheduler. Placement: with one GPU (or none) every run goes to the one device lane in
order, so A trains before B; with two or more GPUs A's and B's runs go to different cards and train
side by side. The lanes keep the order: a lane runs its jobs first in, first out.

Nothing starts before every run passed its checks (:func:`check_runs`): a pair whose B would fail
after A's hours of training is refused up front. When the runs have finished, :func:`merge_offer`
says what to merge and gives the exact ``python main.py merge`` command (slider mode: the file is
already the differential LoRA, nothing to merge). Qt-free.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.jobs.job import JobRequest
from difflora_gui.specs import TrainerBackendSpec
from difflora_gui.train.backend import WARNING, TrainIssue, check_run, raise_for_errors
from difflora_gui.train.plan import TrainRun, merge_pairs

Submit = Callable[[JobRequest], Any]


def assert_shared_config(runs: Sequence[TrainRun]) -> None:
    """The runs of one pair differ only in their data: one config, one backend, one pair id.

    ``plan_pair`` makes them so; this guards against a caller that edited one run afterwards
    (a differential LoRA of two differently trained LoRAs measures the config, not the concept).
    """
    if not runs:
        raise ValueError("a pair job needs at least one run")
    first = runs[0]
    for run in runs[1:]:
        for what in ("config", "backend", "backend_config", "pair_id"):
            if getattr(run, what) != getattr(first, what):
                raise ValueError(
                    f"the runs of a pair must share one {what}: {first.name} and {run.name} differ"
                )


def check_runs(spec: TrainerBackendSpec, runs: Sequence[TrainRun]) -> list[TrainIssue]:
    """Check every run before any starts; ``UserError`` naming the run for the first error.

    Returns the warnings, each prefixed with its run's name (two runs of a pair often share one:
    it is then listed once).
    """
    warnings: list[TrainIssue] = []
    seen: set[tuple[str, str]] = set()
    for run in runs:
        issues = check_run(spec, run)
        raise_for_errors(issues, what=run.name)
        for issue in issues:
            if issue.level == WARNING and (issue.text, issue.field) not in seen:
                seen.add((issue.text, issue.field))
                warnings.append(TrainIssue(WARNING, f"{run.name}: {issue.text}", issue.field))
    return warnings


def cuda_ids(devices: Iterable[Any]) -> list[str]:
    """The CUDA device ids among ``devices`` (ids or :class:`DeviceInfo`), in order."""
    ids = [getattr(device, "id", device) for device in devices]
    return [str(device) for device in ids if str(device).startswith("cuda:")]


def place_runs(runs: Sequence[TrainRun], devices: Iterable[Any], *, device: str = "auto") -> None:
    """Set each run's ``device``.

    ``device`` other than ``"auto"`` puts every run on that device (the user's choice). Otherwise,
    with no GPU every run trains on the CPU; with one GPU all go to ``cuda:0`` (one lane: in
    order); with at least as many GPUs as runs each run gets its own card; with fewer, the runs of
    side A share one card and those of side B another (per expert: a single LoRA's or a slider's
    experts alternate over the cards). A run that trains on several GPUs itself (backend setting
    ``multi_gpu``) takes the GPU lane alone: the runs then train in turn.
    """
    if device and device != "auto":
        chosen = "cuda:0" if device == "cuda" else device
        for run in runs:
            run.device = chosen
        return
    gpus = cuda_ids(devices)
    if not gpus:
        for run in runs:
            run.device = "cpu"
        return
    if any(run.backend_config.get("multi_gpu") for run in runs):
        # each run already trains on every card (Musubi through accelerate launch): one lane, in turn
        gpus = gpus[:1]
    if len(gpus) >= len(runs):
        for run, gpu in zip(runs, gpus, strict=False):  # more cards than runs
            run.device = gpu
        return
    groups: dict[str, int] = {}
    for run in runs:
        key = run.side if run.side in ("a", "b") else str(run.expert)
        index = groups.setdefault(key, len(groups))
        run.device = gpus[index % len(gpus)]


def request_for(spec: TrainerBackendSpec, run: TrainRun) -> JobRequest:
    """The job of one run, on its device's lane, with its event log."""
    return JobRequest(
        title=run.title,
        run=spec.run,
        params=run,
        lane=spec.lane,
        device=run.device,
        resumable=spec.resumable,
        event_log=run.event_log,
    )


@dataclass
class PairJob:
    """The runs of one pair (or one LoRA) on one backend, checked and placed, ready to submit.

    Between :meth:`prepare` and :meth:`submit` a caller may record the runs in a project
    (:func:`difflora_gui.train.run_records.record_runs` points their event logs there).
    """

    spec: TrainerBackendSpec
    runs: list[TrainRun]
    warnings: list[TrainIssue] = field(default_factory=list)

    @classmethod
    def prepare(
        cls,
        spec: TrainerBackendSpec,
        runs: Sequence[TrainRun],
        *,
        devices: Iterable[Any] | None = None,
        device: str = "auto",
    ) -> PairJob:
        """Check every run (``UserError`` for the first error, nothing submitted) and place them.

        ``devices``: the devices the lanes know (ids or ``DeviceInfo``); None detects them
        (imports torch: the GUI passes the devices it already probed).
        """
        runs = list(runs)
        assert_shared_config(runs)
        warnings = check_runs(spec, runs)
        if devices is None:
            from difflora_gui.jobs.devices import detect_devices

            devices = detect_devices() if device == "auto" else []
        place_runs(runs, devices, device=device)
        return cls(spec, runs, warnings)

    @property
    def parallel(self) -> bool:
        """True when the runs train on more than one device at once."""
        return len({run.device for run in self.runs}) > 1

    def requests(self) -> list[JobRequest]:
        """One request per run, in order (A before B), as the runs are now."""
        return [request_for(self.spec, run) for run in self.runs]

    def submit(self, submit: Submit) -> list[Any]:
        """Submit every run (A before B); returns what ``submit`` returned for each, in order.

        The output folders are made first (a new folder the user named; nothing in it is touched).
        """
        for run in self.runs:
            try:
                Path(run.output_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(
                    f"cannot create the output folder: {exc.strerror or exc}", path=run.output_dir
                ) from None
        return [submit(request) for request in self.requests()]

    def merge_offer(self) -> MergeOffer:
        return merge_offer(self.runs)


def scheduler_submit(scheduler, make_context: Callable[[JobRequest], Any]) -> Submit:
    """A ``submit(request)`` for a bare :class:`~difflora_gui.jobs.scheduler.Scheduler`:
    ``make_context(request)`` gives each job its context (the CLI's progress bar)."""

    def submit(request: JobRequest):
        return scheduler.submit(request, make_context(request))

    return submit


# --- the merge offer -----------------------------------------------------------------------------


def shell_join(argv: Sequence[str], *, windows: bool | None = None) -> str:
    """One copyable command line for the user's shell (``cmd.exe`` quoting on Windows)."""
    windows = os.name == "nt" if windows is None else windows
    items = [str(item) for item in argv]
    return subprocess.list2cmdline(items) if windows else shlex.join(items)


@dataclass
class MergeOffer:
    """What the finished runs offer: the pairs to merge, the merge's arguments, or a note."""

    pairs: list[dict[str, str | None]]
    argv: list[str]  # ``merge`` and its flags (empty when there is nothing to merge)
    output: str = ""
    note: str = ""

    def command(self, *, windows: bool | None = None) -> str:
        """``python main.py merge ...`` as one copyable line ('' when nothing is to merge)."""
        return shell_join(["python", "main.py", *self.argv], windows=windows) if self.argv else ""

    def to_json(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "argv": self.argv, "output": self.output, "note": self.note}


def merge_offer(runs: Sequence[TrainRun]) -> MergeOffer:
    """The merge of a finished pair, with the files filled in.

    One model (or Musubi's joint mode): ``--lora_a A --lora_b B``; Wan2.2 per expert: the four
    expert inputs (``--lora_a_high`` ...), which write ``<output>_high_noise`` and ``_low_noise``.
    The output name is free: it never names an existing merge. Slider runs need no merge.
    """
    from difflora_gui.merge.output_names import default_output_name, numbered_free

    runs = list(runs)
    if any(run.side == "slider" for run in runs):
        files = [str(run.output_path()) for run in runs]
        inspect = "; ".join(shell_join(["python", "main.py", "inspect", file]) for file in files)
        return MergeOffer(
            [],
            [],
            note=(
                "slider mode trained the differential LoRA directly; no merge is needed "
                f"({', '.join(files)}). Look inside it with: {inspect} (the Merge section can still "
                "analyse it and re-factor it to a lower rank)"
            ),
        )
    pairs = merge_pairs(runs)
    if not pairs:
        return MergeOffer([], [], note="a single LoRA has nothing to subtract; train a pair to merge")
    output_dir = Path(runs[0].output_dir)
    experts = [pair["expert"] for pair in pairs]
    output = numbered_free(output_dir / default_output_name(pairs[0]["a"], pairs[0]["b"]), experts)
    argv = ["merge"]
    if experts == [None]:
        argv += ["--lora_a", str(pairs[0]["a"]), "--lora_b", str(pairs[0]["b"])]
    else:
        for side in ("a", "b"):
            for pair in pairs:
                argv += [f"--lora_{side}_{pair['expert']}", str(pair[side])]
    argv += ["--output", str(output)]
    return MergeOffer(pairs, argv, output=str(output))
