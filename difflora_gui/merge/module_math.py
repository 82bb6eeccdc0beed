"""The math of one module: its difference, its exact statistics, its compressed output factors.

Every method of :class:`ModuleMath` works on one module and changes no shared state, so the
engine runs them on worker threads (:mod:`difflora_gui.jobs.pipeline`). Per module::

    ΔW_out = alpha · w_block · (w_a·ΔW_a − w_b·ΔW_b)        re-factored to low rank by the compressor

``w_block`` is the weight of the module's block in the targets selector (``blocks=0-9@0.5``; 1
without one). It is applied with alpha when a module is finished, so the rank, the spectrum and
the input statistics (‖A‖, ‖B‖, ‖A−B‖) are those of the unweighted difference, while ``norm_out``
and auto alpha's "current" norm are of the weighted output (the weights shape, alpha sets the
overall strength).

Low-rank inputs stay factored from start to end (:mod:`difflora_gui.merge.linalg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.merge import analysis as an
from difflora_gui.merge.api import ModuleDelta, ModuleStats, ScratchBuffers
from difflora_gui.merge.factors import check_decomposition, check_factors_finite, split_factors

if TYPE_CHECKING:
    import torch

    from difflora_gui.jobs.context import JobContext
    from difflora_gui.lora.model import LoraModule
    from difflora_gui.merge.params import MergeParams
    from difflora_gui.merge.plan import MergePlan


@dataclass
class Pending:
    """One output module waiting for alpha (compute dtype, √S split, alpha and block weight not applied)."""

    name: str
    up: torch.Tensor | None
    down: torch.Tensor | None
    dense: torch.Tensor | None
    bias: torch.Tensor | None
    norm: float  # ‖output‖ at alpha 1, block weight applied
    weight: float = 1.0  # the block weight, applied with alpha by ModuleMath.finished


@dataclass
class Outcome:
    """What a worker returns for one module."""

    name: str
    stats: ModuleStats | None = None
    row: an.ModuleRow | None = None
    pending: Pending | None = None
    final: Any = None
    grams: Any = None


@dataclass
class DenseChange:
    """A full-weight change that is not a matrix (modulation, a bias-only module): merged as is."""

    name: str
    shape: tuple[int, ...]
    dense: Any
    dense_parts: list = field(default_factory=list)


class ModuleMath:
    """The per-module steps of one merge: ``measure``, ``merge_one``, ``inspect_one``."""

    def __init__(self, params: MergeParams, plan: MergePlan, *, device, dtype, ctx: JobContext):
        self.params = params
        self.plan = plan
        self.device = device
        self.dtype = dtype
        self.ctx = ctx
        self.scratch = ScratchBuffers()

    def delta(self, index: int, name: str, mod_a: LoraModule | None, mod_b: LoraModule | None):
        """(ModuleDelta, DenseChange or None; bias difference or None) for one module."""
        import torch

        p = self.params
        present = [
            (m, w, src)
            for m, w, src in ((mod_a, p.weight_a, self.plan.src_a), (mod_b, -p.weight_b, self.plan.src_b))
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
            return DenseChange(name, shape, dense, parts), bias
        delta = ModuleDelta(name, index, shape, dense=dense, dtype=self.dtype, device=self.device)
        delta.dense_parts = parts
        return delta, bias

    def stats(self, index: int, name: str, delta) -> ModuleStats:
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
            whole = delta.dense if isinstance(delta, DenseChange) else delta.dense()
            diff_sq = float(torch.linalg.vector_norm(whole, dtype=torch.float64)) ** 2
        else:
            diff_sq = 0.0
        norm_a, norm_b = math.sqrt(max(norm_sq["a"], 0.0)), math.sqrt(max(norm_sq["b"], 0.0))
        block, local = wan_layout.split_block(name)
        group = wan_layout.layer_group(name)
        layer = local.split(".", 1)[1] if group != "other" and "." in local else local
        denominator = abs(p.weight_a) * norm_a + abs(p.weight_b) * norm_b
        shape = tuple(self.plan.shape(name))
        rank_a, rank_b = self.plan.ranks(name)
        return ModuleStats(
            name=name,
            index=index,
            block=block,
            group=group,
            layer=layer,
            shape=shape
            if len(shape) == 2
            else (int(shape[0]) if shape else 1, int(math.prod(shape[1:])) if len(shape) > 1 else 1),
            rank_a=rank_a,
            rank_b=rank_b,
            norm_a=norm_a,
            norm_b=norm_b,
            norm_diff=math.sqrt(max(diff_sq, 0.0)),
            inner=inner,
            cosine=inner / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else None,
            cancellation=math.sqrt(max(diff_sq, 0.0)) / denominator if denominator > 0 else None,
            factored=isinstance(delta, ModuleDelta) and delta.is_factored,
        )

    def row(self, stats: ModuleStats, status: str, reason: str) -> an.ModuleRow:
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

    # --- the three kinds of work item -------------------------------------------------------------

    def measure(self, index: int, name: str, mods) -> Outcome:
        """Exact statistics of a targeted module, for a module filter (its Grams are kept for pass 2)."""
        delta, _ = self.delta(index, name, *mods)
        stats = self.stats(index, name, delta)
        grams = delta.export_grams() if isinstance(delta, ModuleDelta) and delta.is_factored else None
        if isinstance(delta, ModuleDelta):
            delta.release()
        return Outcome(name, stats=stats, grams=grams)

    def merge_one(self, index: int, name: str, mods, grams, stats) -> Outcome:
        """Compress one merged module's difference to the rank the policy chooses."""
        import torch

        from difflora_gui.merge import linalg

        delta, bias = self.delta(index, name, *mods)
        if grams is not None and isinstance(delta, ModuleDelta):
            delta.import_grams(grams)
        stats = stats or self.stats(index, name, delta)
        row = self.row(stats, an.MERGED, "")
        weight = self.plan.block_weight(name)
        if delta is None or isinstance(delta, DenseChange):
            dense = None if delta is None else delta.dense
            norm = 0.0 if dense is None else float(torch.linalg.vector_norm(dense, dtype=torch.float64))
            norm *= abs(weight)
            row.norm_out, row.rank, row.retained_energy, row.residual = norm, 0, 1.0, 0.0
            return self._outcome(name, stats, row, Pending(name, None, None, dense, bias, norm, weight))
        policy, strategy = self.plan.policy, self.plan.strategy
        total_sq = stats.norm_diff**2
        cap = policy.cap(delta.max_rank)
        decomposition = strategy.compress(delta, cap, dict(strategy.compressor_params), self.ctx)
        check_decomposition(name, decomposition, delta.shape)
        spectrum = [float(v) for v in decomposition.S.tolist()]
        k = policy.choose(spectrum, total_energy=total_sq, max_rank=decomposition.width)
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
        # the rank, retained energy, residual and spectrum are of the unweighted difference (a block
        # weight scales every singular value alike); the output norm is what the file holds
        norm_out = abs(weight) * math.sqrt(kept_sq)
        row.norm_out = norm_out
        row.singular_values, row.sv_exact = spectrum, sv_exact
        delta.release()
        return self._outcome(name, stats, row, Pending(name, up, down, None, bias, norm_out, weight))

    def _outcome(self, name, stats, row, pending: Pending) -> Outcome:
        # With a fixed alpha the output module is finished here, in the worker: only the written
        # (save dtype) factors are kept. Auto alpha needs every module first, so it keeps them pending.
        if self.params.auto_alpha:
            return Outcome(name, stats=stats, row=row, pending=pending)
        return Outcome(name, stats=stats, row=row, final=self.finished(pending, self.params.alpha))

    def inspect_one(self, index: int, name: str, mods, grams, stats, status: str, reason: str) -> Outcome:
        """The analysis row of a module that is not merged (its spectrum, when factored)."""
        from difflora_gui.merge import linalg

        delta, _ = self.delta(index, name, *mods)
        if grams is not None and isinstance(delta, ModuleDelta):
            delta.import_grams(grams)
        stats = stats or self.stats(index, name, delta)
        row = self.row(stats, status, reason)
        if isinstance(delta, ModuleDelta) and delta.is_factored:
            row.singular_values = [float(v) for v in linalg.exact_singular_values(delta).tolist()]
        if isinstance(delta, ModuleDelta):
            delta.release()
        return Outcome(name, stats=stats, row=row)

    def finished(self, item: Pending, alpha: float) -> LoraModule:
        """The output module in the save dtype, scaled by alpha · block weight (√|scale| on each
        factor, the sign on up; a dense change and the bias are scaled as a whole)."""
        import torch

        from difflora_gui.lora.model import LoraModule

        save = getattr(torch, self.plan.save_dtype)
        alpha = alpha * item.weight  # weight 1: exactly alpha, the same bits as an unweighted merge
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
