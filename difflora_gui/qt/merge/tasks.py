"""The Merge workbench's job functions, ``run(params, ctx)`` (Qt-free; run on the job threads).

The panel names them as ``"difflora_gui.qt.merge.tasks:<function>"`` so that torch, safetensors
and the merge engine are imported on a job thread, never while the window starts.
"""

from __future__ import annotations

from typing import Any

from difflora_gui.jobs.context import JobContext
from difflora_gui.merge import engine
from difflora_gui.merge.params import MergeParams


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
    return _MergeKeepingAnalysis(MergeParams.coerce(params), ctx, write=True).run()


class _MergeKeepingAnalysis(engine._Merge):
    """``run_merge`` with the analysis kept in memory even when no analysis files are asked for.

    ``run_merge`` computes the analysis only when its JSON/CSV files are to be written beside the
    output (``analyze``). The panel shows the plots after every merge, so this thin adapter also
    measures the modules that are not merged and returns the analysis: the LoRA file is the same
    either way (the recipe stored in it leaves ``analyze`` out), and the files are still written
    only when asked. (Candidate for an engine option; see the workbench's report.)
    """

    def _compute(self) -> None:
        wanted = self.params.analyze
        self.params.analyze = True
        try:
            super()._compute()
        finally:
            self.params.analyze = wanted

    def _result(self, output, alpha, analysis, files, elapsed):
        if analysis is None:
            analysis = self._analysis(alpha)
        return super()._result(output, alpha, analysis, files, elapsed)
