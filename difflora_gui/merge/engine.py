"""The differential merge engine (Qt-free): ``run_merge`` and ``run_analysis`` job functions.

Per targeted module::

    ΔW_out = alpha · (w_a·ΔW_a − w_b·ΔW_b)        re-factored to low rank by the compressor

Low-rank inputs stay factored from start to end (see :mod:`difflora_gui.merge.linalg`), so a 14B
merge takes seconds on a CPU instead of an hour on a GPU. Modules are streamed one at a time from
the lazily opened files; only the (small) output factors are kept until the file is written, in
one atomic rename at the end: a cancelled or failed merge writes nothing.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.jobs.context import JobContext, NullContext
from difflora_gui.merge import analysis as an
from difflora_gui.merge.api import ModuleDelta, ModuleStats, ScratchBuffers
from difflora_gui.merge.factors import check_decomposition, check_factors_finite, split_factors
from difflora_gui.merge.params import MergeParams
from difflora_gui.merge.rank import RankPolicy
from difflora_gui.merge.result import (
    MergeResult,
    analysis_paths,
    now_created,
    optimal_residual,
    strategy_text,
)
from difflora_gui.merge.runtime import (
    blas_threads,
    gc_paused,
    merge_workers,
    quiet_logger,
    resolve_device,
    torch_threads,
    warm_up_linalg,
)

if TYPE_CHECKING:
    import torch

    from difflora_gui.lora.model import LoraModule, LoraSource
    from difflora_gui.merge.strategies import ResolvedStrategy

#: the dtype order used to pick the output dtype when the inputs disagree (most precise wins)
_DTYPE_RANK = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}


# --- the job -------------------------------------------------------------------------------------


def run_merge(
    params: MergeParams | dict, ctx: JobContext | None = None, *, keep_analysis: bool = False
) -> MergeResult:
    """Job function: merge, write the output (and the analysis with ``analyze``), return the result.

    ``keep_analysis`` returns the analysis in the result even when no analysis files are written
    (the GUI plots it after every merge); the LoRA file is the same either way.
    """
    return _Merge(
        MergeParams.coerce(params), ctx or NullContext(), write=True, keep_analysis=keep_analysis
    ).run()


def run_analysis(params: MergeParams | dict, ctx: JobContext | None = None) -> an.AnalysisResult:
    """Job function: the same numbers as ``--analyze_blocks`` without writing anything."""
    result = _Merge(MergeParams.coerce(params), ctx or NullContext(), write=False).run()
    assert result.analysis is not None
    return result.analysis


@dataclass
class _Pending:
    """One output module waiting for alpha (compute dtype, √S split, alpha not applied yet)."""

    name: str
    up: torch.Tensor | None
    down: torch.Tensor | None
    dense: torch.Tensor | None
    bias: torch.Tensor | None
    norm: float  # ‖output‖ at alpha 1


class _Merge:
    def __init__(self, params: MergeParams, ctx: JobContext, *, write: bool, keep_analysis: bool = False):
        self.params = params.normalized()
        self.ctx = ctx
        self.write = write
        # measure every module (not only the merged ones) and keep the analysis in the result
        self.analyze = self.params.analyze or not write or keep_analysis
        self.warnings: list[str] = []
        self.pool: ThreadPoolExecutor | None = None
        self.scratch = ScratchBuffers()
        self.workers = 1
        self.threads = 1

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.ctx.log(f"warning: {text}")

    # --- set-up ----------------------------------------------------------------------------------

    def run(self) -> MergeResult:
        import torch

        started = time.perf_counter()
        p = self.params
        if p.created is None:
            p.created = now_created()
        self.policy: RankPolicy = p.rank_policy()
        self.device = resolve_device(p.device)
        warm_up_linalg(self.device)
        self.dtype = getattr(torch, p.dtype)
        output = self._check_outputs()
        from difflora_gui.merge.strategies import resolve_strategy

        self.strategy: ResolvedStrategy = resolve_strategy(p.strategy, p.strategy_params)
        hashing = self._start_hashing(output)
        # Factored modules are small, single-threaded work: one worker per core beats one
        # multi-threaded stream, and single-threaded BLAS makes every re-run give the same bits.
        self.threads = torch.get_num_threads()
        self.workers = merge_workers()
        try:
            with self._open(p.lora_a) as src_a, self._open(p.lora_b) as src_b:
                self.src_a, self.src_b = src_a, src_b
                self._plan()
                with (
                    ThreadPoolExecutor(self.workers, thread_name_prefix="difflora-merge") as pool,
                    torch_threads(1),
                    blas_threads(1),
                    gc_paused(),
                ):
                    self.pool = pool
                    self._compute()
                self.pool = None
                alpha = self._choose_alpha()
                out_modules = self._finalize(alpha)
                analysis = self._analysis(alpha) if self.analyze else None
                files: list[str] = []
                if self.write:
                    self.ctx.raise_if_cancelled()
                    self._write(output, out_modules, alpha, hashing)
                    if p.analyze:
                        json_path, csv_path = analysis_paths(output)
                        analysis.write(json_path, csv_path, overwrite=True)
                        files = [str(json_path), str(csv_path)]
        finally:
            if hashing is not None:
                hashing[0].shutdown(wait=False, cancel_futures=True)
        return self._result(output, alpha, analysis, files, time.perf_counter() - started)

    def _open(self, path: str) -> LoraSource:
        from difflora_gui.lora.reader import open_lora

        return open_lora(path)

    def _check_outputs(self) -> Path | None:
        from difflora_gui.fileio import check_output_path, same_file

        p = self.params
        for label, path in (("A", p.lora_a), ("B", p.lora_b)):
            if not Path(path).is_file():
                raise UserError(f"LoRA {label} not found: {path}")
        if not self.write:
            return None
        if not p.output:
            raise UserError("no --output file given")
        output = Path(p.output)
        if output.suffix.lower() != ".safetensors":
            raise UserError("the output must be a .safetensors file", path=output)
        check_output_path(output, inputs=[p.lora_a, p.lora_b], overwrite=p.overwrite)
        if p.analyze:
            for extra in analysis_paths(output):
                if any(same_file(extra, source) for source in (p.lora_a, p.lora_b)):
                    raise UserError("refusing to overwrite an input file with the analysis", path=extra)
                if extra.exists() and not p.overwrite:
                    raise UserError(
                        "analysis file already exists (use --overwrite to replace it)", path=extra
                    )
        return output

    def _start_hashing(self, output: Path | None):
        """Hash the inputs for the provenance metadata in a thread while the merge computes."""
        if not self.write:
            return None
        from difflora_gui.lora.writer import InputFile

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="difflora-hash")
        futures: list[Future] = [
            pool.submit(InputFile.from_path, self.params.lora_a, "A"),
            pool.submit(InputFile.from_path, self.params.lora_b, "B"),
        ]
        return pool, futures

    def _plan(self) -> None:
        """Pair the modules of A and B, check shapes, pick targets (no tensor is read here)."""
        from difflora_gui.lora import wan_layout
        from difflora_gui.lora.selector import parse_selector

        p = self.params
        a, b = self.src_a, self.src_b
        names_a, names_b = set(a.names()), set(b.names())
        self.names = wan_layout.sorted_names(names_a | names_b)
        self.only_in_a = [n for n in self.names if n not in names_b]
        self.only_in_a_set = set(self.only_in_a)
        self.only_in_b = [n for n in self.names if n not in names_a]
        self.only_in_b_set = set(self.only_in_b)
        for name in self.names:
            if name in names_a and name in names_b:
                shape_a, shape_b = tuple(a.shape(name)), tuple(b.shape(name))
                if shape_a != shape_b:
                    raise UserError(
                        f"module {name} is {_shape(shape_a)} in {a.path} but {_shape(shape_b)} in {b.path}: "
                        f"the two LoRAs are for different models ({a.model.label} vs {b.model.label})"
                    )
        from difflora_gui.fileio import same_file

        if same_file(p.lora_a, p.lora_b):
            self.warn("LoRA A and LoRA B are the same file: their difference is zero")
        model_a, model_b = a.model, b.model
        if (model_a.dim, model_a.variant) != (model_b.dim, model_b.variant) and model_a.variant != "unknown":
            self.warn(f"A is for {model_a.label} but B is for {model_b.label}")
        self.selector = parse_selector(p.targets)
        self.targeted = set(self.selector.select(self.names))
        for label, only in (("A", self.only_in_a), ("B", self.only_in_b)):
            if only:
                shown = ", ".join(only[:6]) + (f" (+{len(only) - 6} more)" if len(only) > 6 else "")
                self.warn(f"{len(only)} module(s) only in {label}, counted as zero in the other: {shown}")
        if p.format != "comfy":
            odd = [n for n in self.names if n in self.targeted and len(self._shape(n)) != 2]
            if odd:
                raise UserError(
                    f"module {odd[0]} is a full-weight or bias change ({_shape(self._shape(odd[0]))}), which only "
                    f"the comfy format can hold; use --format comfy or leave it out of --target_blocks"
                )
        self.save_dtype = p.save_dtype or self._input_dtype()

    def _shape(self, name: str) -> tuple[int, ...]:
        source = self.src_b if name in self.only_in_b_set else self.src_a
        return tuple(source.shape(name))

    def _input_dtype(self) -> str:
        stored = set()
        for source in (self.src_a, self.src_b):
            dtype_of = getattr(source, "dtype", None)
            for name in source.names():
                if dtype_of is not None:
                    stored.add(str(dtype_of(name)).removeprefix("torch."))
                else:
                    stored.add(str(source.load(name).up.dtype).removeprefix("torch."))
                break
        stored = {d if d in _DTYPE_RANK else "bfloat16" for d in stored}  # fp8 inputs: write bfloat16
        if len(stored) == 1:
            chosen = next(iter(stored))
        else:
            chosen = "float32"
        return "float32" if chosen == "float64" else chosen

    # --- reading one module (main thread) ---------------------------------------------------------

    def _load(self, name: str):
        """(module of A or None, module of B or None); lazily mapped tensors, nothing is computed."""
        return (
            self._load_from(self.src_a, name) if name not in self.only_in_b_set else None,
            self._load_from(self.src_b, name) if name not in self.only_in_a_set else None,
        )

    def _load_from(self, source, name: str):
        # Low-rank factors are checked for NaN/Inf on their float64 Gram diagonals (free: the merge
        # computes them anyway) instead of by a separate pass over every value.
        kind = getattr(source, "kind", None)
        if _accepts_check_finite(source) and kind is not None and kind(name) == "lora":
            return source.load(name, check_finite=False)
        return source.load(name)

    def _is_factored(self, name: str) -> bool:
        """Whether the module stays factored (every input is a plain LoRA pair): decides the lane."""
        for source, absent in ((self.src_a, self.only_in_b_set), (self.src_b, self.only_in_a_set)):
            if name in absent:
                continue
            kind = getattr(source, "kind", None)
            if kind is None or kind(name) != "lora" or len(self._shape(name)) != 2:
                return False
        return True

    # --- one module (worker threads; no shared state is changed) ---------------------------------

    def _delta(self, index: int, name: str, mod_a: LoraModule | None, mod_b: LoraModule | None):
        """(ModuleDelta, _DenseChange or None; bias difference or None) for one module."""
        import torch

        p = self.params
        present = [
            (m, w, src)
            for m, w, src in ((mod_a, p.weight_a, self.src_a), (mod_b, -p.weight_b, self.src_b))
            if m is not None
        ]
        bias = None
        for m, w, src in present:
            if m.bias is not None:
                if not bool(torch.isfinite(m.bias).all()):
                    raise BadFileError(
                        src.path, f"module {name}: the bias (.diff_b) contains NaN or Inf values"
                    )
                term = m.bias.to(device=self.device, dtype=self.dtype) * w
                bias = term if bias is None else bias + term
        weighted = [(m, w, src) for m, w, src in present if m.down is not None or m.dense is not None]
        if not weighted:
            return None, bias
        for m, _, src in weighted:
            if not math.isfinite(m.scale):
                raise BadFileError(src.path, f"module {name}: alpha is {m.alpha}")
        shape = tuple(weighted[0][0].shape)
        if all(m.is_low_rank for m, _, _ in weighted):
            delta = ModuleDelta(
                name,
                index,
                shape,
                ups=[m.up for m, _, _ in weighted],
                downs=[m.down for m, _, _ in weighted],
                coefs=[w * m.scale for m, w, _ in weighted],
                dtype=self.dtype,
                device=self.device,
                labels=["a" if m is mod_a else "b" for m, _, _ in weighted],
                scratch=self.scratch,
            )
            delta.input_scales = [m.scale for m, _, _ in weighted]
            delta.input_paths = [src.path for _, _, src in weighted]
            return delta, bias
        dense = None
        parts = []
        for m, w, _ in weighted:
            part = m.delta(dtype=self.dtype, device=self.device)
            parts.append(("a" if m is mod_a else "b", part))
            dense = part * w if dense is None else dense + part * w
        if len(shape) != 2:
            return _DenseChange(name, shape, dense, parts), bias
        delta = ModuleDelta(name, index, shape, dense=dense, dtype=self.dtype, device=self.device)
        delta.dense_parts = parts
        return delta, bias

    def _stats(self, index: int, name: str, delta) -> ModuleStats:
        """Exact input norms and inner product (float64), from Grams when factored."""
        import torch

        from difflora_gui.lora import wan_layout

        p = self.params
        norm_sq = {"a": 0.0, "b": 0.0}
        inner = 0.0
        if isinstance(delta, ModuleDelta) and delta.is_factored:
            check_factors_finite(delta)
            raw = delta.factor_inner_products()  # ⟨up_i down_i, up_j down_j⟩ of the stored factors
            scales, roles = delta.input_scales, delta.labels
            for i, role in enumerate(roles):
                norm_sq[role] = raw[i][i] * scales[i] ** 2
            if len(roles) == 2:
                inner = raw[0][1] * scales[0] * scales[1]
            diff_sq = delta.frobenius_norm() ** 2
        elif delta is not None:
            parts = dict(delta.dense_parts)
            for role, part in parts.items():
                norm_sq[role] = float(torch.linalg.vector_norm(part, dtype=torch.float64)) ** 2
            if len(parts) == 2:
                inner = float((parts["a"].to(torch.float64) * parts["b"].to(torch.float64)).sum())
            diff_sq = (
                float(
                    torch.linalg.vector_norm(
                        delta.dense if isinstance(delta, _DenseChange) else delta.dense(), dtype=torch.float64
                    )
                )
                ** 2
            )
        else:
            diff_sq = 0.0
        norm_a, norm_b = math.sqrt(max(norm_sq["a"], 0.0)), math.sqrt(max(norm_sq["b"], 0.0))
        block, local = wan_layout.split_block(name)
        group = wan_layout.layer_group(name)
        layer = local.split(".", 1)[1] if group != "other" and "." in local else local
        denominator = abs(p.weight_a) * norm_a + abs(p.weight_b) * norm_b
        shape = tuple(self._shape(name))
        return ModuleStats(
            name=name,
            index=index,
            block=block,
            group=group,
            layer=layer,
            shape=shape
            if len(shape) == 2
            else (int(shape[0]) if shape else 1, int(math.prod(shape[1:])) if len(shape) > 1 else 1),
            rank_a=_rank_of(self.src_a, name) if name not in self.only_in_b_set else 0,
            rank_b=_rank_of(self.src_b, name) if name not in self.only_in_a_set else 0,
            norm_a=norm_a,
            norm_b=norm_b,
            norm_diff=math.sqrt(max(diff_sq, 0.0)),
            inner=inner,
            cosine=inner / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else None,
            cancellation=math.sqrt(max(diff_sq, 0.0)) / denominator if denominator > 0 else None,
            factored=isinstance(delta, ModuleDelta) and delta.is_factored,
        )

    def _measure(self, index: int, name: str, mods) -> _Outcome:
        delta, _ = self._delta(index, name, *mods)
        stats = self._stats(index, name, delta)
        grams = delta.export_grams() if isinstance(delta, ModuleDelta) and delta.is_factored else None
        if isinstance(delta, ModuleDelta):
            delta.release()
        return _Outcome(name, stats=stats, grams=grams)

    def _merge_one(self, index: int, name: str, mods, grams, stats) -> _Outcome:
        import torch

        from difflora_gui.merge import linalg

        delta, bias = self._delta(index, name, *mods)
        if grams is not None and isinstance(delta, ModuleDelta):
            delta.import_grams(grams)
        stats = stats or self._stats(index, name, delta)
        row = self._row(stats, an.MERGED, "")
        if delta is None or isinstance(delta, _DenseChange):
            dense = None if delta is None else delta.dense
            norm = 0.0 if dense is None else float(torch.linalg.vector_norm(dense, dtype=torch.float64))
            row.norm_out, row.rank, row.retained_energy, row.residual = norm, 0, 1.0, 0.0
            return self._outcome(name, stats, row, _Pending(name, None, None, dense, bias, norm))
        total_sq = stats.norm_diff**2
        cap = self.policy.cap(delta.max_rank)
        decomposition = self.strategy.compress(delta, cap, dict(self.strategy.compressor_params), self.ctx)
        check_decomposition(name, decomposition, delta.shape)
        spectrum = [float(v) for v in decomposition.S.tolist()]
        k = self.policy.choose(spectrum, total_energy=total_sq, max_rank=decomposition.width)
        k = max(1, min(k, max(decomposition.width, 1)))
        up, down, kept_sq = split_factors(decomposition, k, delta.shape, self.dtype, self.device)
        if decomposition.exact:
            residual = math.sqrt(max(total_sq - kept_sq, 0.0))
        else:
            residual = linalg.residual_norm(delta, up, down, total_sq)
        if delta.is_factored:
            spectrum, sv_exact = [float(v) for v in linalg.exact_singular_values(delta).tolist()], True
        else:
            sv_exact = decomposition.exact
        row.rank, row.retained_energy = k, min(kept_sq / total_sq, 1.0) if total_sq > 0 else 1.0
        row.residual = residual / math.sqrt(total_sq) if total_sq > 0 else 0.0
        row.norm_out = math.sqrt(kept_sq)
        row.singular_values, row.sv_exact = spectrum, sv_exact
        delta.release()
        return self._outcome(name, stats, row, _Pending(name, up, down, None, bias, math.sqrt(kept_sq)))

    def _outcome(self, name, stats, row, pending: _Pending) -> _Outcome:
        # With a fixed alpha the output module is finished here, in the worker: only the written
        # (save dtype) factors are kept. Auto alpha needs every module first, so it keeps them pending.
        if self.params.auto_alpha:
            return _Outcome(name, stats=stats, row=row, pending=pending)
        return _Outcome(name, stats=stats, row=row, final=self._finished(pending, self.params.alpha))

    def _inspect_one(self, index: int, name: str, mods, grams, stats, status: str, reason: str) -> _Outcome:
        from difflora_gui.merge import linalg

        delta, _ = self._delta(index, name, *mods)
        if grams is not None and isinstance(delta, ModuleDelta):
            delta.import_grams(grams)
        stats = stats or self._stats(index, name, delta)
        row = self._row(stats, status, reason)
        if isinstance(delta, ModuleDelta) and delta.is_factored:
            row.singular_values = [float(v) for v in linalg.exact_singular_values(delta).tolist()]
        if isinstance(delta, ModuleDelta):
            delta.release()
        return _Outcome(name, stats=stats, row=row)

    # --- the passes (main thread) ----------------------------------------------------------------

    def _pipeline(self, jobs):
        """Run ``(name, work)`` jobs, factored modules on worker threads, yielding outcomes in order.

        ``work(mods)`` gets the module's tensors. The workers read them themselves when both files
        allow loads from several threads (``thread_safe_loads``); otherwise they are read here, in
        the main thread, which then has to win the GIL back from the workers after every read.
        Dense modules run here, with every torch thread, once the workers are idle. Cancelling
        stops at the next module; running workers are awaited.
        """
        import collections

        window: collections.deque = collections.deque()
        limit = 2 * self.workers
        workers_read = all(getattr(s, "thread_safe_loads", False) for s in (self.src_a, self.src_b))
        try:
            for name, work in jobs:
                self.ctx.raise_if_cancelled()
                if self.pool is not None and self._is_factored(name):
                    if workers_read:
                        window.append(self.pool.submit(self._load_and_run, name, work))
                    else:
                        window.append(self.pool.submit(work, self._load(name)))
                    while len(window) > limit:
                        yield window.popleft().result()
                    continue
                mods = self._load(name)
                while window:
                    yield window.popleft().result()
                with torch_threads(self.threads):
                    outcome = work(mods)
                yield outcome
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()
            for future in window:
                if not future.cancelled():
                    try:
                        future.result()
                    except BaseException:  # the first error is already propagating
                        pass

    def _load_and_run(self, name: str, work):
        return work(self._load(name))

    def _compute(self) -> None:
        p = self.params
        strategy = self.strategy
        targeted = [(i, n) for i, n in enumerate(self.names) if n in self.targeted]
        analyze = self.analyze
        self.stats: dict[str, ModuleStats] = {}
        self.rows: dict[str, an.ModuleRow] = {}
        self.pending: dict[str, _Pending] = {}
        self.final: dict[str, LoraModule] = {}
        self.status: dict[str, tuple[str, str]] = {}
        grams: dict[str, Any] = {}
        work = len(targeted) * (2 if strategy.select is not None else 1)
        if analyze:
            work += len(self.names) - len(targeted)
        done = 0

        # pass 1 (only with a filter): exact stats of every targeted module, then the filter's choice
        if strategy.select is not None:
            jobs = [(n, functools.partial(self._measure, i, n)) for i, n in targeted]
            for outcome in self._pipeline(jobs):
                self.stats[outcome.name] = outcome.stats
                if outcome.grams is not None:
                    grams[outcome.name] = outcome.grams
                done += 1
                self.ctx.progress(done, work, f"measuring {outcome.name}")
            kept = self._select(targeted)
        else:
            kept = {n for _, n in targeted}

        jobs = []
        for index, name in enumerate(self.names):
            is_target = name in self.targeted
            if is_target and name in kept:
                self.status[name] = (an.MERGED, "")
                jobs.append(
                    (
                        name,
                        functools.partial(
                            self._merge_one,
                            index,
                            name,
                            grams=grams.pop(name, None),
                            stats=self.stats.get(name),
                        ),
                    )
                )
                continue
            reason = an.FILTERED if is_target else an.NOT_TARGETED
            status = an.EXCLUDED if p.exclude_non_targeted else an.NULLIFIED
            if len(self._shape(name)) != 2 and status == an.NULLIFIED:
                status = an.EXCLUDED  # a full-weight/bias change has no zero LoRA pair to write
            self.status[name] = (status, reason)
            if analyze:
                jobs.append(
                    (
                        name,
                        functools.partial(
                            self._inspect_one,
                            index,
                            name,
                            grams=grams.pop(name, None),
                            stats=self.stats.get(name),
                            status=status,
                            reason=reason,
                        ),
                    )
                )
        for outcome in self._pipeline(jobs):
            self.stats[outcome.name] = outcome.stats
            self.rows[outcome.name] = outcome.row
            if outcome.pending is not None:
                self.pending[outcome.name] = outcome.pending
            if outcome.final is not None:
                self.final[outcome.name] = outcome.final
            done += 1
            self.ctx.progress(done, work, outcome.name)

    def _select(self, targeted: list[tuple[int, str]]) -> set[str]:
        stats = [self.stats[n] for _, n in targeted]
        chosen = self.strategy.select(stats, dict(self.strategy.filter_params), self.ctx)
        chosen = [str(n) for n in (chosen or [])]
        unknown = sorted(set(chosen) - {s.name for s in stats})
        if unknown:
            raise UserError(
                f"the {self.strategy.info.filter} filter returned module(s) that are not targeted: {', '.join(unknown[:5])}"
            )
        if not chosen:
            raise UserError(
                f"the {self.strategy.info.filter} filter kept none of the {len(stats)} targeted modules; "
                "loosen its threshold"
            )
        self.ctx.log(f"{self.strategy.info.filter}: kept {len(set(chosen))} of {len(stats)} targeted modules")
        return set(chosen)

    def _row(self, stats: ModuleStats, status: str, reason: str) -> an.ModuleRow:
        return an.ModuleRow(
            name=stats.name,
            block=stats.block,
            group=stats.group,
            layer=stats.layer,
            shape=stats.shape,
            rank_a=stats.rank_a,
            rank_b=stats.rank_b,
            status=status,
            reason=reason,
            norm_a=stats.norm_a,
            norm_b=stats.norm_b,
            inner=stats.inner,
            norm_diff=stats.norm_diff,
            weight_a=self.params.weight_a,
            weight_b=self.params.weight_b,
        )

    # --- alpha, output ---------------------------------------------------------------------------

    def _choose_alpha(self) -> float:
        p = self.params
        if not p.auto_alpha:
            return p.alpha
        merged = [n for n, (status, _) in self.status.items() if status == an.MERGED]
        if not merged:
            raise UserError("auto alpha: no module is merged")
        current = sum(self.pending[n].norm for n in merged) / len(merged)
        if current <= 0:
            raise UserError(
                "auto alpha: the difference is zero in every merged module, there is nothing to scale"
            )
        if p.target_norm in ("a", "b", "mean"):
            mean_a = sum(self.stats[n].norm_a for n in merged) / len(merged)
            mean_b = sum(self.stats[n].norm_b for n in merged) / len(merged)
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

    def _finalize(self, alpha: float) -> list[LoraModule]:
        import torch

        from difflora_gui.lora.model import LoraModule

        save = getattr(torch, self.save_dtype)
        modules: list[LoraModule] = []
        null_rank = self.policy.rank if (self.policy.mode == "fixed" and self.policy.rank > 0) else 1
        for name in self.names:
            status, _ = self.status.get(name, (an.NULLIFIED, an.NOT_TARGETED))
            if status == an.EXCLUDED:
                continue
            if status == an.NULLIFIED:
                out_dim, in_dim = self._shape(name)
                k = max(1, min(null_rank, out_dim, in_dim))
                modules.append(
                    LoraModule(
                        name=name,
                        down=torch.zeros(k, in_dim, dtype=save),
                        up=torch.zeros(out_dim, k, dtype=save),
                        scale=1.0,
                        alpha=float(k),
                    )
                )
                continue
            final = self.final.pop(name, None)
            modules.append(final if final is not None else self._finished(self.pending.pop(name), alpha))
        if not modules:
            raise UserError("nothing to write: every module is excluded")
        for row in self.rows.values():
            row.norm_out *= abs(alpha)
            row.norm_diff *= abs(alpha)
            row.singular_values = [v * abs(alpha) for v in row.singular_values]
        return modules

    def _finished(self, item: _Pending, alpha: float) -> LoraModule:
        """The output module: alpha applied (√|alpha| on each factor, the sign on up), in the save dtype."""
        import torch

        from difflora_gui.lora.model import LoraModule

        save = getattr(torch, self.save_dtype)
        bias = None if item.bias is None else (item.bias * alpha).to(device="cpu", dtype=save)
        if bias is not None and self.params.format == "musubi":
            raise UserError(
                f"module {item.name} has a bias difference (.diff_b), which the musubi format cannot hold; "
                "use --format comfy"
            )
        if item.up is None:
            dense = None if item.dense is None else (item.dense * alpha).to(device="cpu", dtype=save)
            return LoraModule(name=item.name, dense=dense, bias=bias, kind="diff")
        root = math.sqrt(abs(alpha))
        up = (item.up * (-root if alpha < 0 else root)).to(device="cpu", dtype=save).contiguous()
        down = (item.down * root).to(device="cpu", dtype=save).contiguous()
        return LoraModule(name=item.name, down=down, up=up, scale=1.0, alpha=float(up.shape[1]), bias=bias)

    def _write(self, output: Path, modules: list[LoraModule], alpha: float, hashing) -> None:
        from difflora_gui.lora.writer import build_metadata, portability_warnings, write_lora

        p = self.params
        for warning in portability_warnings([m.name for m in modules], p.format, task=self.src_a.model.task):
            self.warn(warning)
        try:
            inputs = [future.result() for future in hashing[1]] if hashing is not None else []
        except OSError as exc:  # an input vanished or became unreadable while we merged
            raise UserError(f"cannot read an input again to record its hash: {exc}") from None
        # what made the file: file names only (no user paths in a file that gets shared), and no
        # flags that do not change its content, so a re-run of the recipe gives the same bytes
        recipe = {k: v for k, v in self.recipe().items() if k not in ("overwrite", "analyze")}
        recipe.update(lora_a=Path(p.lora_a).name, lora_b=Path(p.lora_b).name, output=output.name)
        merged = [r for r in self.rows.values() if r.status == an.MERGED]
        extra = {
            "difflora.alpha": repr(float(alpha)),
            "difflora.rank_policy": self.policy.describe(),
            "difflora.modules": f"{len(merged)} merged, "
            f"{sum(1 for s, _ in self.status.values() if s == an.NULLIFIED)} nullified, "
            f"{sum(1 for s, _ in self.status.values() if s == an.EXCLUDED)} excluded",
        }
        energies = [r.retained_energy for r in merged if r.retained_energy is not None]
        if energies:
            extra["difflora.retained_energy"] = f"{sum(energies) / len(energies):.6f}"
        metadata = build_metadata(
            modules=modules,
            title=p.title or output.stem,
            model=self.src_a.model,
            inputs=inputs,
            strategy=strategy_text(self.strategy.info.to_json()),
            params=recipe,
            selector=str(self.selector),
            created=p.created,
            description=f"differential LoRA: {p.describe()}",
            extra=extra,
        )
        # the writer logs the portability warnings too; they were reported above through the job
        with quiet_logger("difflora_gui.lora.writer"):
            write_lora(
                output,
                modules,
                format=p.format,
                dtype=self.save_dtype,
                metadata=metadata,
                inputs=[p.lora_a, p.lora_b],
                overwrite=p.overwrite,
            )

    def recipe(self) -> dict[str, Any]:
        return self.params.to_json()

    def _analysis(self, alpha: float) -> an.AnalysisResult:
        rows = [self.rows[n] for n in self.names if n in self.rows]
        model = self.src_a.model.label
        return an.AnalysisResult(
            lora_a=str(self.params.lora_a),
            lora_b=str(self.params.lora_b),
            model=model,
            alpha=alpha,
            rows=rows,
            strategy=self.strategy.info.to_json(),
            rank_policy=self.policy.describe(),
            targets=str(self.selector),
        )

    def _result(self, output, alpha, analysis, files, elapsed) -> MergeResult:
        merged = [r for r in self.rows.values() if r.status == an.MERGED and r.retained_energy is not None]
        ranks: dict[int, int] = {}
        for row in merged:
            if row.rank:
                ranks[row.rank] = ranks.get(row.rank, 0) + 1
        statuses = list(self.status.values())
        energies = [r.retained_energy for r in merged if r.rank]
        residuals = [r.residual for r in merged if r.rank and r.residual is not None]
        optimal = [optimal_residual(r) for r in merged if r.rank]
        optimal = [v for v in optimal if v is not None]
        return MergeResult(
            output=str(output) if output is not None else None,
            recipe=self.recipe(),
            alpha=alpha,
            merged=sum(1 for s, _ in statuses if s == an.MERGED),
            nullified=sum(1 for s, _ in statuses if s == an.NULLIFIED),
            excluded=sum(1 for s, _ in statuses if s == an.EXCLUDED),
            filtered=sum(1 for _, reason in statuses if reason == an.FILTERED),
            only_in_a=list(self.only_in_a),
            only_in_b=list(self.only_in_b),
            ranks=ranks,
            retained_energy_mean=sum(energies) / len(energies) if energies else None,
            retained_energy_min=min(energies) if energies else None,
            residual_mean=sum(residuals) / len(residuals) if residuals else None,
            elapsed_s=elapsed,
            strategy=self.strategy.info.to_json(),
            save_dtype=self.save_dtype,
            format=self.params.format,
            analysis=analysis,
            analysis_files=files,
            warnings=list(self.warnings),
            optimal_residual_mean=sum(optimal) / len(optimal)
            if optimal and len(optimal) == len(residuals)
            else None,
        )


@dataclass
class _Outcome:
    """What a worker returns for one module."""

    name: str
    stats: ModuleStats | None = None
    row: an.ModuleRow | None = None
    pending: _Pending | None = None
    final: Any = None
    grams: Any = None


_CHECK_FINITE_CACHE: dict[type, bool] = {}


def _accepts_check_finite(source) -> bool:
    kind = type(source)
    if kind not in _CHECK_FINITE_CACHE:
        try:
            _CHECK_FINITE_CACHE[kind] = "check_finite" in inspect.signature(source.load).parameters
        except (TypeError, ValueError):
            _CHECK_FINITE_CACHE[kind] = False
    return _CHECK_FINITE_CACHE[kind]


@dataclass
class _DenseChange:
    """A full-weight change that is not a matrix (modulation, a bias-only module): merged as is."""

    name: str
    shape: tuple[int, ...]
    dense: Any
    dense_parts: list = field(default_factory=list)


def _rank_of(source, name: str) -> int:
    rank = getattr(source, "rank", None)
    return int(rank(name)) if rank is not None else 0


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape) or "scalar"
