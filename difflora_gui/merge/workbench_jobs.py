"""The Merge workbench's job functions, ``run(params, ctx)`` (Qt-free; run on the job threads).

The panel names them as ``"difflora_gui.merge.workbench_jobs:<function>"`` so that torch, safetensors
and the merge engine are imported on a job thread, never while the window starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from difflora_gui.jobs.context import JobContext
from difflora_gui.merge import engine
from difflora_gui.merge.result import MergeResult


@dataclass
class WorkbenchMerge:
    """A merge's result and the sha256 of every file it wrote (for the project's merge history)."""

    result: MergeResult
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        return written_files(self.result)


def written_files(result: MergeResult) -> list[str]:
    """Every LoRA file a merge wrote: one, or one per Wan2.2 expert."""
    outputs = list(getattr(result, "outputs", None) or [])
    return outputs or ([result.output] if result.output else [])


def inspect_lora(params: dict[str, Any], ctx: JobContext):
    """Summarise one LoRA file for its input card (every tensor read once: NaN/Inf refused)."""
    from difflora_gui.lora.inspect import summarize

    def progress(done: int, total: int) -> None:
        ctx.raise_if_cancelled()
        ctx.progress(done, total, "reading modules")

    return summarize(params["path"], check_values=True, progress=progress)


def analyze(params, ctx: JobContext):
    """The analysis of the current inputs and targets, nothing written (the Analyze button)."""
    return engine.run_analysis(params, ctx)


def merge(params, ctx: JobContext) -> WorkbenchMerge:
    """Merge and write the output(s); the result always carries the analysis for the plots.

    The written files are hashed here, on the job thread (a 14B LoRA takes a second to hash).
    """
    from difflora_gui.merge.existing_output import sha256_of

    result = engine.run_merge(params, ctx, keep_analysis=True)
    return WorkbenchMerge(result, {path: sha256_of(path) for path in written_files(result)})
