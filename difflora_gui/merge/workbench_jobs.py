"""The Merge workbench's job functions, ``run(params, ctx)`` (Qt-free; run on the job threads).

The panel names them as ``"difflora_gui.merge.workbench_jobs:<function>"`` so that torch, safetensors
and the merge engine are imported on a job thread, never while the window starts.
"""

from __future__ import annotations

from typing import Any

from difflora_gui.jobs.context import JobContext
from difflora_gui.merge import engine


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


def merge(params, ctx: JobContext):
    """Merge and write the output; the result always carries the analysis for the plots."""
    return engine.run_merge(params, ctx, keep_analysis=True)
