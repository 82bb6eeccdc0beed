"""A Wan2.2 A14B two-expert merge: one complete merge per expert, the files written as one set.

Each expert of the :class:`~difflora_gui.merge.experts.ExpertPlan` is merged on its own (its own
modules, its own auto alpha: the experts' norms differ) and written to a temporary file beside its
output. Only when every expert is done are the files renamed to ``<stem>_high_noise.safetensors``
and ``<stem>_low_noise.safetensors``; a failed or cancelled merge leaves neither. Every file of the
set (and its analysis files) is checked before any work starts.

Each file records its own recipe: the pair's, with ``expert`` set to that expert. Re-running the
pair's recipe writes both files again bit for bit; re-running one file's recipe writes that file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.jobs.context import JobContext
from difflora_gui.merge import analysis as an
from difflora_gui.merge.config import EXPERT_INPUTS
from difflora_gui.merge.experts import SHORT, TITLES, ExpertPair, ExpertPlan
from difflora_gui.merge.output import check_outputs, file_recipe
from difflora_gui.merge.params import MergeParams
from difflora_gui.merge.result import MergeResult, analysis_paths, now_created

__all__ = ["expert_params", "run_experts"]


class _ExpertContext:
    """The job's context as one expert's merge sees it: its status and log lines name the expert,
    its progress is its share of the whole job."""

    def __init__(self, ctx: JobContext, expert: str, index: int, count: int):
        self._ctx, self._expert, self._index, self._count = ctx, expert, index, count

    def status(self, text: str) -> None:
        self._ctx.status(f"{TITLES[self._expert]}: {text}")

    def log(self, text: str) -> None:
        text = str(text)
        if text.startswith("warning: "):
            self._ctx.log(f"warning: {TITLES[self._expert]}: {text[len('warning: ') :]}")
        else:
            self._ctx.log(f"{TITLES[self._expert]}: {text}")

    def progress(self, done: float, total: float | None = None, text: str = "") -> None:
        shown = f"{SHORT[self._expert]}: {text}" if text else SHORT[self._expert]
        if total:
            self._ctx.progress(self._index * total + done, self._count * total, shown)
        else:
            self._ctx.progress(done, total, shown)

    def __getattr__(self, name: str) -> Any:  # cancelled, raise_if_cancelled, emit, artifact, ...
        return getattr(self._ctx, name)


def expert_params(params: MergeParams, pair: ExpertPair) -> MergeParams:
    """One expert's merge as a one-model recipe: its two files as A and B, its own output."""
    cleared: dict[str, Any] = dict.fromkeys(EXPERT_INPUTS)
    return replace(
        params,
        **cleared,
        lora_a=pair.a.path,
        lora_b=pair.b.path,
        output=str(pair.output) if pair.output is not None else None,
        expert=pair.expert or "both",
    )


def _stage_path(output: Path) -> Path:
    """A temporary name beside ``output`` for the expert's finished file until the set is complete."""
    return output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")


def _inputs(plan: ExpertPlan) -> list[str]:
    return [path for pair in plan.pairs for path in (pair.a.path, pair.b.path)]


def run_experts(
    params: MergeParams, plan: ExpertPlan, ctx: JobContext, *, write: bool, keep_analysis: bool = False
) -> MergeResult:
    """Merge every expert of ``plan``; with ``write``, write their files as one set."""
    from difflora_gui.merge.engine import _Merge

    started = time.perf_counter()
    p = params if params.created is not None else replace(params, created=now_created())
    for note in plan.notes:
        ctx.log(note)
    for line in plan.describe():
        ctx.log(line)
    warnings = list(plan.warnings)
    for warning in warnings:
        ctx.log(f"warning: {warning}")
    per_expert = {pair.expert: expert_params(p, pair) for pair in plan.pairs}
    if write:
        if not p.output:
            raise UserError("no --output file given")
        for sub in per_expert.values():  # the whole set may be written, before any work
            check_outputs(sub, write=True, inputs=_inputs(plan))
    stages: dict[str, Path] = {}
    results: dict[str, MergeResult] = {}
    hashes: dict[str, str] = {}  # a file both experts use is hashed once
    try:
        for index, pair in enumerate(plan.pairs):
            expert = pair.expert
            assert expert is not None
            sub = per_expert[expert]
            stage = _stage_path(pair.output) if write and pair.output is not None else None
            if stage is not None:
                stages[expert] = stage
            merge = _Merge(
                sub,
                _ExpertContext(ctx, expert, index, len(plan.pairs)),  # type: ignore[arg-type]
                write=write,
                keep_analysis=keep_analysis,
                pair=pair,
                recipe=file_recipe(replace(p, expert=expert), Path(p.output)) if write else None,
                stage=stage,
                known_hashes=hashes,
            )
            result = merge.run()
            result.recipe = replace(p, expert=expert).to_json()
            if result.analysis is not None:
                result.analysis.expert = expert
            results[expert] = result
        ctx.raise_if_cancelled()
        if write:
            _commit(plan, stages, overwrite=p.overwrite)
    finally:
        for stage in stages.values():  # after the commit they are gone; after a failure, removed
            with contextlib.suppress(OSError):
                stage.unlink()
    if write:
        _report_files(p, plan, results, ctx)
    warnings += _expert_warnings(results)
    return _pair_result(p, results, warnings, elapsed=time.perf_counter() - started)


def _expert_warnings(results: dict[str, MergeResult]) -> list[str]:
    """Each expert's warnings for the pair, naming the expert; one both experts share is said once."""
    lines: list[str] = []
    shared = set.intersection(*(set(r.warnings) for r in results.values())) if len(results) > 1 else set()
    for warning in dict.fromkeys(w for r in results.values() for w in r.warnings if w in shared):
        lines.append(f"both experts: {warning}")
    for expert, result in results.items():
        lines += [f"{TITLES[expert]}: {w}" for w in result.warnings if w not in shared]
    return lines


def _commit(plan: ExpertPlan, stages: dict[str, Path], *, overwrite: bool) -> None:
    """Rename every staged file to its output, checking the whole set first."""
    targets = [(stages[pair.expert], pair.output) for pair in plan.pairs if pair.expert in stages]
    if not overwrite:
        for _, output in targets:
            if output is not None and output.exists():  # appeared while the merge ran
                raise UserError("output file already exists (use --overwrite to replace it)", path=output)
    for stage, output in targets:
        os.replace(stage, output)


def _report_files(p: MergeParams, plan: ExpertPlan, results: dict[str, MergeResult], ctx: JobContext) -> None:
    """The artifacts of the written set, and each expert's analysis files beside its LoRA."""
    for pair in plan.pairs:
        expert, result = pair.expert, results[pair.expert]  # type: ignore[index]
        ctx.artifact(
            "lora",
            pair.output,
            expert=expert,
            merged=result.merged,
            alpha=float(result.alpha),
            format=result.format,
            dtype=result.save_dtype,
        )
        if p.analyze and result.analysis is not None and pair.output is not None:
            json_path, csv_path = analysis_paths(pair.output)
            result.analysis.write(json_path, csv_path, overwrite=True)
            result.analysis_files = [str(json_path), str(csv_path)]
            for path, kind in ((json_path, "json"), (csv_path, "csv")):
                ctx.artifact("file", path, role="analysis", format=kind, expert=expert)


def _weighted_mean(results: list[MergeResult], field: str) -> float | None:
    pairs = [(getattr(r, field), r.merged) for r in results if getattr(r, field) is not None]
    total = sum(count for _, count in pairs)
    if not pairs or total == 0:
        return None
    return sum(value * count for value, count in pairs) / total


def _pair_result(
    p: MergeParams, results: dict[str, MergeResult], warnings: list[str], *, elapsed: float
) -> MergeResult:
    """The result of the pair: counts summed, ``by_expert`` holding each expert's complete result."""
    experts = [e for e in ("high", "low") if e in results]
    items = [results[e] for e in experts]
    first = items[0]
    ranks: dict[int, int] = {}
    for result in items:
        for rank, count in result.ranks.items():
            ranks[rank] = ranks.get(rank, 0) + count
    only_a = list(dict.fromkeys(n for r in items for n in r.only_in_a))
    only_b = list(dict.fromkeys(n for r in items for n in r.only_in_b))
    minimums = [r.retained_energy_min for r in items if r.retained_energy_min is not None]
    analysis = None
    if all(r.analysis is not None for r in items):
        analysis = an.AnalysisResult(
            lora_a=p.lora_a or str(first.analysis.lora_a),  # type: ignore[union-attr]
            lora_b=p.lora_b or str(first.analysis.lora_b),  # type: ignore[union-attr]
            model=first.analysis.model,  # type: ignore[union-attr]
            alpha=first.alpha,
            rows=[],
            strategy=dict(first.strategy),
            rank_policy=first.analysis.rank_policy,  # type: ignore[union-attr]
            targets=first.analysis.targets,  # type: ignore[union-attr]
            by_expert={e: results[e].analysis for e in experts},  # type: ignore[misc]
        )
    return MergeResult(
        output=None,
        recipe=p.to_json(),
        alpha=first.alpha,
        merged=sum(r.merged for r in items),
        nullified=sum(r.nullified for r in items),
        excluded=sum(r.excluded for r in items),
        filtered=sum(r.filtered for r in items),
        only_in_a=only_a,
        only_in_b=only_b,
        ranks=ranks,
        retained_energy_mean=_weighted_mean(items, "retained_energy_mean"),
        retained_energy_min=min(minimums) if minimums else None,
        residual_mean=_weighted_mean(items, "residual_mean"),
        elapsed_s=elapsed,
        strategy=dict(first.strategy),
        save_dtype=first.save_dtype,
        format=first.format,
        analysis=analysis,
        analysis_files=[f for r in items for f in r.analysis_files],
        warnings=warnings,
        by_expert=dict(results),
    )
