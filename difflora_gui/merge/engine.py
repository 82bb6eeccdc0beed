"""The differential merge engine (Qt-free): ``run_merge`` and ``run_analysis`` job functions.

Per targeted module::

    ΔW_out = alpha · (w_a·ΔW_a − w_b·ΔW_b)        re-factored to low rank by the compressor

Low-rank inputs stay factored from start to end (see :mod:`difflora_gui.merge.linalg`), so a 14B
merge takes seconds on a CPU instead of an hour on a GPU. Modules are streamed one at a time from
the lazily opened files through an ordered worker pipeline (:mod:`difflora_gui.jobs.pipeline`);
only the (small) output factors are kept until the file is written, in one atomic rename at the
end: a cancelled or failed merge writes nothing.

The parts: :mod:`.plan` (which modules, targets, dtype), :mod:`.module_math` (one module's
difference, statistics and compression), :mod:`.output` (checks, output modules, the file, the
result); this module runs the passes and chooses alpha. A merge changes no process-wide setting:
its workers limit their own OpenMP threads (:func:`~difflora_gui.merge.runtime.merge_worker_threads`).

Wan2.2 A14B experts (:mod:`.experts`): when an input is for one expert (a split file, a combo
file, ``--lora_a_high`` …) the merge subtracts per expert, ΔH = A_H − B_H and ΔL = A_L − B_L, and
writes ``<output stem>_high_noise.safetensors`` and ``_low_noise`` (:mod:`.expert_run`). Each
expert is a complete merge of its own, auto alpha included (one alpha per expert, from that
expert's modules: the experts' norms differ). Inputs without expert information merge as one
model, exactly as before.

Events: ``ctx.status`` for each phase, ``ctx.artifact("lora", path, ...)`` for each written LoRA
(with ``expert=`` in a two-expert merge) and ``ctx.artifact("file", path, role="analysis")`` for
each analysis file.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.jobs.context import JobContext, NullContext
from difflora_gui.jobs.pipeline import WorkerPool
from difflora_gui.merge import analysis as an
from difflora_gui.merge.experts import ExpertPair, expert_part, plan_experts
from difflora_gui.merge.module_math import ModuleMath
from difflora_gui.merge.output import (
    Computed,
    InputHashing,
    build_analysis,
    build_result,
    check_outputs,
    output_modules,
    write_output,
)
from difflora_gui.merge.params import MergeParams
from difflora_gui.merge.plan import make_plan
from difflora_gui.merge.result import MergeResult, analysis_paths, now_created
from difflora_gui.merge.runtime import (
    merge_worker_threads,
    merge_workers,
    numpy_blas_single_threaded,
    resolve_device,
    warm_up_linalg,
)

__all__ = ["analysis_paths", "run_analysis", "run_merge"]


def run_merge(
    params: MergeParams | dict, ctx: JobContext | None = None, *, keep_analysis: bool = False
) -> MergeResult:
    """Job function: merge, write the output (and the analysis with ``analyze``), return the result.

    ``keep_analysis`` returns the analysis in the result even when no analysis files are written
    (the GUI plots it after every merge); the LoRA file is the same either way.
    """
    p = MergeParams.coerce(params).normalized()
    ctx = ctx or NullContext()
    plan = plan_experts(p)
    if plan.two_expert:
        from difflora_gui.merge.expert_run import run_experts

        return run_experts(p, plan, ctx, write=True, keep_analysis=keep_analysis)
    return _Merge(p, ctx, write=True, keep_analysis=keep_analysis, notes=plan.notes).run()


def run_analysis(params: MergeParams | dict, ctx: JobContext | None = None) -> an.AnalysisResult:
    """Job function: the same numbers as ``--analyze_blocks`` without writing anything.

    A two-expert pair gives an analysis with ``by_expert`` (one complete analysis per expert).
    """
    p = MergeParams.coerce(params).normalized()
    ctx = ctx or NullContext()
    plan = plan_experts(p)
    if plan.two_expert:
        from difflora_gui.merge.expert_run import run_experts

        result = run_experts(p, plan, ctx, write=False)
    else:
        result = _Merge(p, ctx, write=False, notes=plan.notes).run()
    assert result.analysis is not None
    return result.analysis


class _Merge:
    """One merge of one pair: a one-model merge, or one expert of a two-expert merge.

    For an expert (``pair`` given), ``params`` are that expert's (its two files as ``lora_a`` /
    ``lora_b``, its output), ``recipe`` is what its file's metadata records, and ``stage`` is the
    temporary file the LoRA is written to (the caller renames it once every expert is done).
    """

    def __init__(
        self,
        params: MergeParams,
        ctx: JobContext,
        *,
        write: bool,
        keep_analysis: bool = False,
        notes: list[str] | None = None,
        pair: ExpertPair | None = None,
        recipe: dict[str, Any] | None = None,
        stage: Path | None = None,
        known_hashes: dict[str, str] | None = None,
    ):
        self.params = params.normalized()
        self.ctx = ctx
        self.write = write
        # measure every module (not only the merged ones) and keep the analysis in the result
        self.analyze = self.params.analyze or not write or keep_analysis
        self.warnings: list[str] = []
        self.notes = list(notes or [])
        self.pair = pair
        self.expert = pair.expert if pair is not None else None
        self.recipe = recipe
        self.stage = stage
        self.known_hashes = known_hashes

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.ctx.log(f"warning: {text}")

    def run(self) -> MergeResult:
        import torch

        from difflora_gui.lora.reader import open_lora
        from difflora_gui.merge.strategies import resolve_strategy

        started = time.perf_counter()
        p = self.params
        if p.created is None:
            p.created = now_created()
        for note in self.notes:
            self.ctx.log(note)
        policy = p.rank_policy()
        device = resolve_device(p.device)
        warm_up_linalg(device)
        output = check_outputs(p, write=self.write, check_exists=self.stage is None)
        strategy = resolve_strategy(p.strategy, p.strategy_params)
        hashing = InputHashing(p, self.known_hashes) if self.write else None
        parts = (self.pair.a.part, self.pair.b.part) if self.pair is not None else (None, None)
        try:
            self.ctx.status("reading the inputs")
            with open_lora(p.lora_a) as file_a, open_lora(p.lora_b) as file_b:
                src_a, src_b = expert_part(file_a, parts[0]), expert_part(file_b, parts[1])
                self.plan = make_plan(p, src_a, src_b, strategy=strategy, policy=policy, warn=self.warn)
                self._warn_blocks_out_of_range()
                self.math = ModuleMath(
                    p, self.plan, device=device, dtype=getattr(torch, p.dtype), ctx=self.ctx
                )
                # Factored modules are small, single-threaded work: one worker per core beats one
                # multi-threaded stream, and single-threaded BLAS makes every re-run give the same bits.
                # numpy's BLAS does the CPU Grams (merge.api); see numpy_blas_single_threaded.
                with (
                    numpy_blas_single_threaded(device.type == "cpu"),
                    WorkerPool(
                        merge_workers(), name="difflora-merge", thread_context=merge_worker_threads
                    ) as pool,
                ):
                    computed = self._compute(pool)
                alpha = self._choose_alpha(computed)
                modules = output_modules(self.plan, computed, alpha, self.math.finished)
                analysis = build_analysis(p, self.plan, computed, alpha) if self.analyze else None
                files: list[str] = []
                if self.write:
                    self.ctx.raise_if_cancelled()
                    self._warn_same_content(hashing, parts)
                    self.ctx.status(f"writing {output.name}")
                    write_output(
                        output,
                        modules,
                        params=p,
                        plan=self.plan,
                        computed=computed,
                        alpha=alpha,
                        hashing=hashing,
                        warn=self.warn,
                        recipe=self.recipe,
                        expert=self.expert,
                        stage=self.stage,
                    )
                if self.write and self.stage is None:  # an expert's file: the caller reports it
                    self.ctx.artifact(
                        "lora",
                        output,
                        merged=computed.count(an.MERGED),
                        alpha=float(alpha),
                        format=p.format,
                        dtype=self.plan.save_dtype,
                    )
                    if p.analyze:
                        json_path, csv_path = analysis_paths(output)
                        analysis.write(json_path, csv_path, overwrite=True)
                        files = [str(json_path), str(csv_path)]
                        for path, kind in ((json_path, "json"), (csv_path, "csv")):
                            self.ctx.artifact("file", path, role="analysis", format=kind)
        finally:
            if hashing is not None:
                hashing.close()
        return build_result(
            p,
            self.plan,
            computed,
            output=output,
            alpha=alpha,
            analysis=analysis,
            files=files,
            elapsed=time.perf_counter() - started,
            warnings=self.warnings,
            expert=self.expert,
        )

    def _warn_blocks_out_of_range(self) -> None:
        """Blocks the targets name that the model does not have (``attn 30-45`` on 40 blocks)."""
        model = self.plan.src_a.model
        beyond = getattr(self.plan.selector, "blocks_out_of_range", None)
        if beyond is None or model.variant == "unknown":  # an unknown layout's block count is a guess
            return
        missing = list(beyond(model.num_blocks))
        if missing:
            from difflora_gui.lora.selector import format_blocks

            self.warn(
                f"--target_blocks names block(s) {format_blocks(missing)}, but {model.label} has "
                f"{model.num_blocks} blocks (0-{model.num_blocks - 1}): those select nothing"
            )

    def _warn_same_content(self, hashing: InputHashing | None, parts: tuple) -> None:
        """A byte-identical copy as A and B (another path, so not refused up front): zero difference."""
        if hashing is None or parts[0] != parts[1]:
            return
        a, b = hashing.result()
        if a.sha256 == b.sha256:
            self.warn(f"{a.name} (A) and {b.name} (B) have the same content: their difference is zero")

    # --- the passes ------------------------------------------------------------------------------

    def _pipeline(self, pool: WorkerPool, jobs):
        """Run ``(name, work)`` jobs, factored modules on the workers, yielding outcomes in order.

        ``work(mods)`` gets the module's tensors. The workers read them themselves when both files
        allow loads from several threads (``thread_safe_loads``); otherwise they are read here, in
        the main thread, as the pipeline takes each item (so only its look-ahead is read ahead).
        Dense modules run here, with every torch thread, once the workers are idle.
        """
        plan = self.plan
        workers_read = plan.workers_read

        def items():
            for name, work in jobs:
                if workers_read and plan.is_factored(name):
                    yield name, work, None
                else:
                    yield name, work, plan.load(name)

        def run(item):
            name, work, mods = item
            return work(plan.load(name) if mods is None else mods)

        return pool.ordered(
            run,
            items(),
            ctx=self.ctx,
            lookahead=2 * pool.workers + 1,
            inline=lambda item: not plan.is_factored(item[0]),
        )

    def _compute(self, pool: WorkerPool) -> Computed:
        p = self.params
        plan, math = self.plan, self.math
        strategy = plan.strategy
        targeted = [(i, n) for i, n in enumerate(plan.names) if n in plan.targeted]
        analyze = self.analyze
        computed = Computed(stats={}, rows={}, pending={}, final={}, status={})
        grams: dict[str, Any] = {}
        work = len(targeted) * (2 if strategy.select is not None else 1)
        if analyze:
            work += len(plan.names) - len(targeted)
        done = 0

        # pass 1 (only with a filter): exact stats of every targeted module, then the filter's choice
        if strategy.select is not None:
            self.ctx.status(f"measuring {len(targeted)} modules for the {strategy.info.filter} filter")
            jobs = [(n, functools.partial(math.measure, i, n)) for i, n in targeted]
            for outcome in self._pipeline(pool, jobs):
                computed.stats[outcome.name] = outcome.stats
                if outcome.grams is not None:
                    grams[outcome.name] = outcome.grams
                done += 1
                self.ctx.progress(done, work, f"measuring {outcome.name}")
            kept = self._select(targeted, computed)
        else:
            kept = {n for _, n in targeted}

        jobs = []
        for index, name in enumerate(plan.names):
            is_target = name in plan.targeted
            if is_target and name in kept:
                computed.status[name] = (an.MERGED, "")
                merge = functools.partial(
                    math.merge_one, index, name, grams=grams.pop(name, None), stats=computed.stats.get(name)
                )
                jobs.append((name, merge))
                continue
            reason = an.FILTERED if is_target else an.NOT_TARGETED
            status = an.EXCLUDED if p.exclude_non_targeted else an.NULLIFIED
            if len(plan.shape(name)) != 2 and status == an.NULLIFIED:
                status = an.EXCLUDED  # a full-weight/bias change has no zero LoRA pair to write
            computed.status[name] = (status, reason)
            if analyze:
                inspect = functools.partial(
                    math.inspect_one,
                    index,
                    name,
                    grams=grams.pop(name, None),
                    stats=computed.stats.get(name),
                    status=status,
                    reason=reason,
                )
                jobs.append((name, inspect))
        merged = sum(1 for s, _ in computed.status.values() if s == an.MERGED)
        if self.write:
            self.ctx.status(
                f"merging {merged} modules" + (f", analysing {len(jobs) - merged}" if analyze else "")
            )
        else:
            self.ctx.status(f"analysing {len(jobs)} modules (nothing is written)")
        for outcome in self._pipeline(pool, jobs):
            computed.stats[outcome.name] = outcome.stats
            computed.rows[outcome.name] = outcome.row
            if outcome.pending is not None:
                computed.pending[outcome.name] = outcome.pending
            if outcome.final is not None:
                computed.final[outcome.name] = outcome.final
            done += 1
            self.ctx.progress(done, work, outcome.name)
        return computed

    def _select(self, targeted: list[tuple[int, str]], computed: Computed) -> set[str]:
        strategy = self.plan.strategy
        stats = [computed.stats[n] for _, n in targeted]
        chosen = strategy.select(stats, dict(strategy.filter_params), self.ctx)
        chosen = [str(n) for n in (chosen or [])]
        unknown = sorted(set(chosen) - {s.name for s in stats})
        if unknown:
            raise UserError(
                f"the {strategy.info.filter} filter returned module(s) that are not targeted: {', '.join(unknown[:5])}"
            )
        if not chosen:
            raise UserError(
                f"the {strategy.info.filter} filter kept none of the {len(stats)} targeted modules; "
                "loosen its threshold"
            )
        self.ctx.log(f"{strategy.info.filter}: kept {len(set(chosen))} of {len(stats)} targeted modules")
        return set(chosen)

    def _choose_alpha(self, computed: Computed) -> float:
        p = self.params
        if not p.auto_alpha:
            return p.alpha
        # workers finish modules in any order; fsum's exactly rounded sums do not depend on it, so
        # a re-run (or the same recipe on the command line) picks the same alpha to the last bit
        merged = [n for n, (status, _) in computed.status.items() if status == an.MERGED]
        if not merged:
            raise UserError("auto alpha: no module is merged")
        current = math.fsum(computed.pending[n].norm for n in merged) / len(merged)
        if current <= 0:
            raise UserError(
                "auto alpha: the difference is zero in every merged module, there is nothing to scale"
            )
        if p.target_norm in ("a", "b", "mean"):
            mean_a = math.fsum(computed.stats[n].norm_a for n in merged) / len(merged)
            mean_b = math.fsum(computed.stats[n].norm_b for n in merged) / len(merged)
            target = {"a": mean_a, "b": mean_b, "mean": 0.5 * (mean_a + mean_b)}[p.target_norm]
            if target <= 0:
                raise UserError(f"auto alpha: LoRA {p.target_norm.upper()} is zero in every merged module")
        else:
            target = float(p.target_norm)
        alpha = target / current
        self.ctx.log(
            f"auto alpha: mean ‖ΔW‖ of the {len(merged)} merged modules is {current:.6g} at alpha 1; "
            f"target {p.target_norm} = {target:.6g} → alpha {alpha:.6g}"
        )
        return alpha
