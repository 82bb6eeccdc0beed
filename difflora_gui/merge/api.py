"""The data types merge strategies work with; ``docs/merge-strategies.md`` documents them.

A merge strategy is a *compressor*, a *module filter*, or both (:class:`~difflora_gui.specs.MergeStrategySpec`):

* ``compress(delta, rank_cap, params, ctx) -> Decomposition`` re-factors one module's difference
  (:class:`ModuleDelta`). The engine then keeps ``k <= rank_cap`` singular triplets chosen by the
  shared rank policy (``--rank``, ``--rank_mode``) and splits ``sqrt(S)`` between up and down.
* ``select(stats, params, ctx) -> names`` receives a :class:`ModuleStats` for every targeted module
  and returns the names that take part; the others are nullified or excluded like non-targeted ones.

This module imports torch only inside methods, so importing it stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class Decomposition:
    """A (possibly partial) singular value decomposition ``ΔW ≈ U · diag(S) · Vh``.

    ``U`` is out×q with orthonormal columns, ``Vh`` is q×in with orthonormal rows, ``S`` holds
    p ≥ q singular values in descending order. ``S`` may be longer than ``U`` is wide: a compressor
    that knows the whole spectrum (the exact factored SVD) returns all of it, so the engine can
    choose a rank by energy and report the spectrum, but forms only the vectors it may keep.
    ``exact`` says whether ``S`` is the exact spectrum (False for estimates such as randomized SVD).
    """

    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor
    exact: bool = True

    def __post_init__(self):
        if self.U.ndim != 2 or self.Vh.ndim != 2 or self.S.ndim != 1:
            raise ValueError("Decomposition needs a 2-D U, a 1-D S and a 2-D Vh")
        if self.U.shape[1] != self.Vh.shape[0]:
            raise ValueError(f"U has {self.U.shape[1]} columns but Vh has {self.Vh.shape[0]} rows")
        if self.S.shape[0] < self.U.shape[1]:
            raise ValueError(f"S has {self.S.shape[0]} values but U has {self.U.shape[1]} columns")

    @property
    def width(self) -> int:
        """How many singular vectors were formed (q)."""
        return int(self.U.shape[1])


class ModuleDelta:
    """One module's difference ``ΔW = w_a·ΔW_a − w_b·ΔW_b`` (``--alpha`` is applied later).

    Factored (both inputs low-rank, or one absent)::

        ΔW = left @ right      left: out×R = [c_a·up_a, −c_b·up_b]   right: R×in = [down_a; down_b]

    with ``c = weight·alpha_file/rank`` of each input and ``R = r_a + r_b``. Otherwise ``dense`` holds
    ΔW itself (out×in). Tensors are on ``device`` in the compute dtype. Use the methods rather than
    the raw tensors where you can: they are exact (float64 Gram matrices) and avoid copies.
    """

    def __init__(
        self,
        name: str,
        index: int,
        shape: tuple[int, int],
        *,
        ups: list[torch.Tensor] | None = None,
        downs: list[torch.Tensor] | None = None,
        coefs: list[float] | None = None,
        dense: torch.Tensor | None = None,
        dtype=None,
        device=None,
        labels: list[str] | None = None,
        scratch: ScratchBuffers | None = None,
    ):
        self.name = name
        self.index = index  # position in the merge order; randomized strategies derive seeds from it
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self.device = device
        self._ups = list(ups or [])  # stored input factors (any dtype), scales kept apart in _coefs
        self._downs = list(downs or [])
        self._coefs = [float(c) for c in (coefs or [])]
        self._dense = dense
        self._cache: dict[str, Any] = {}
        self._scratch = scratch
        #: which input each factor pair comes from ("a"/"b"), for reports
        self.labels = list(labels or [])
        if dense is None and not self._ups:
            raise ValueError(f"{name}: a ModuleDelta needs factors or a dense matrix")

    # --- what it is ------------------------------------------------------------------------------

    @property
    def is_factored(self) -> bool:
        return self._dense is None

    @property
    def max_rank(self) -> int:
        """An upper bound of rank(ΔW): R for factored deltas, min(out, in) for dense ones."""
        if self.is_factored:
            return min(sum(int(d.shape[0]) for d in self._downs), *self.shape)
        return min(self.shape)

    @property
    def input_ranks(self) -> list[int]:
        return [int(d.shape[0]) for d in self._downs]

    # --- factored views --------------------------------------------------------------------------

    def _signed_coefs(self):
        import torch

        if "coefs" not in self._cache:
            pieces = [
                torch.full((int(d.shape[0]),), c, dtype=torch.float64)
                for d, c in zip(self._downs, self._coefs, strict=True)
            ]
            self._cache["coefs"] = torch.cat(pieces)
        return self._cache["coefs"]

    def _tall(self, dtype, side: str):
        """[up_a, up_b] (out×R) or [down_a; down_b]^T (in×R): one block of columns per input.

        Both sides are kept tall, so a Gram is ``x^T x`` on a row-major tall matrix (BLAS's fast
        case) and the stack is filled by converting copies, with no intermediate tensors.
        """
        import torch

        key = f"tall:{side}:{dtype}"
        if key not in self._cache:
            factors = self._ups if side == "up" else [d.T for d in self._downs]
            rows = self.shape[0] if side == "up" else self.shape[1]
            shape = (rows, sum(int(f.shape[1]) for f in factors))
            if self._scratch is not None and torch.device(self.device).type == "cpu":
                stack = self._scratch.take(shape, dtype)
            else:
                stack = torch.empty(shape, dtype=dtype, device=self.device)
            column = 0
            for factor in factors:
                width = int(factor.shape[1])
                stack[:, column : column + width].copy_(factor)
                column += width
            self._cache[key] = stack
        return self._cache[key]

    @property
    def left(self) -> torch.Tensor:
        """out×R factor with the scales folded in (compute dtype)."""
        return self._left_as(self.dtype)

    def _left_as(self, dtype):
        self._require_factored()
        key = f"left:{dtype}"
        if key not in self._cache:
            coefs = self._signed_coefs().to(device=self.device, dtype=dtype)
            self._cache[key] = self._tall(dtype, "up") * coefs[None, :]
        return self._cache[key]

    @property
    def right(self) -> torch.Tensor:
        """R×in factor (compute dtype): a copy, never a view of a stack that is reused after release."""
        import torch

        self._require_factored()
        return self._tall(self.dtype, "down").T.clone(memory_format=torch.contiguous_format)

    def _raw_gram(self, side: str) -> torch.Tensor:
        """Gram of the stored factors without scales (float64, CPU): [up_a, up_b]^T[...] or [down;down][...]^T."""
        import torch

        key = f"raw_gram:{side}"
        if key not in self._cache:
            self._cache[key] = _gram(self._tall(torch.float64, side))
        return self._cache[key]

    def gram_left(self) -> torch.Tensor:
        """``left.T @ left`` (R×R) in float64 on the CPU, computed in float64 from the stored values."""
        self._require_factored()
        coefs = self._signed_coefs()
        return self._raw_gram("up") * (coefs[:, None] * coefs[None, :])

    def gram_right(self) -> torch.Tensor:
        """``right @ right.T`` (R×R) in float64 on the CPU."""
        self._require_factored()
        return self._raw_gram("down")

    def factor_inner_products(self) -> list[list[float]]:
        """``⟨up_i @ down_i, up_j @ down_j⟩`` of the stored factor pairs (no scales), exact in float64."""
        self._require_factored()
        up, down = self._raw_gram("up"), self._raw_gram("down")
        edges = [0]
        for d in self._downs:
            edges.append(edges[-1] + int(d.shape[0]))
        count = len(self._downs)
        return [
            [
                float(
                    (
                        up[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
                        * down[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
                    ).sum()
                )
                for j in range(count)
            ]
            for i in range(count)
        ]

    def export_grams(self):
        """The cached Gram matrices (small), to seed a later ModuleDelta of the same module."""
        return self._raw_gram("up"), self._raw_gram("down")

    def import_grams(self, grams) -> None:
        self._cache["raw_gram:up"], self._cache["raw_gram:down"] = grams

    def left_times(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``left @ coeffs`` (out×q) for an R×q matrix; computed in float64, returned in the compute dtype."""
        import torch

        self._require_factored()
        scaled = coeffs.to(device="cpu", dtype=torch.float64) * self._signed_coefs()[:, None]
        return _product(self._tall(torch.float64, "up"), scaled).to(self.dtype)

    def times_right(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``coeffs @ right`` (q×in) for a q×R matrix; computed in float64, returned in the compute dtype."""
        import torch

        self._require_factored()
        coeffs = coeffs.to(device="cpu", dtype=torch.float64)
        return _product(self._tall(torch.float64, "down"), coeffs.T).T.to(self.dtype).contiguous()

    # --- as an operator (randomized methods) ------------------------------------------------------

    def matmul(self, x: torch.Tensor, dtype=None) -> torch.Tensor:
        """``ΔW @ x`` for an in×k matrix (in the compute dtype, or ``dtype``)."""
        dtype = dtype or self.dtype
        x = x.to(device=self.device, dtype=dtype)
        if self.is_factored:
            return self._left_as(dtype) @ (self._tall(dtype, "down").T @ x)
        return self._dense.to(dtype) @ x

    def rmatmul(self, y: torch.Tensor, dtype=None) -> torch.Tensor:
        """``ΔW.T @ y`` for an out×k matrix (in the compute dtype, or ``dtype``)."""
        dtype = dtype or self.dtype
        y = y.to(device=self.device, dtype=dtype)
        if self.is_factored:
            return self._tall(dtype, "down") @ (self._left_as(dtype).T @ y)
        return self._dense.to(dtype).T @ y

    def dense(self) -> torch.Tensor:
        """ΔW as an out×in matrix in the compute dtype (large: avoid it for factored deltas)."""
        if self.is_factored:
            return self.left @ self.right
        return self._dense

    def frobenius_norm(self) -> float:
        """‖ΔW‖_F, exact (from the Gram matrices when factored)."""
        if self.is_factored:
            value = float((self.gram_left() * self.gram_right()).sum())
            return math.sqrt(max(value, 0.0))
        import torch

        return float(torch.linalg.matrix_norm(self._dense.to(torch.float64)))

    def release(self) -> None:
        """Drop cached copies (the engine calls this when it is done with the module)."""
        if self._scratch is not None:
            for key, value in self._cache.items():
                if key.startswith("tall:"):
                    self._scratch.give(value)
        self._cache.clear()
        self._ups, self._downs, self._dense = [], [], None

    def _require_factored(self) -> None:
        if not self.is_factored:
            raise ValueError(f"{self.name}: this difference is dense; use dense(), matmul() or rmatmul()")

    def __repr__(self) -> str:
        kind = f"factored R={self.max_rank}" if self.is_factored else "dense"
        return f"ModuleDelta({self.name!r}, {self.shape[0]}x{self.shape[1]}, {kind})"


class ScratchBuffers:
    """Reusable CPU buffers for the factor stacks of one merge (shared by its worker threads).

    A merge builds two stacks per module, often megabytes each. Fresh allocations of that size
    come straight from the operating system, zeroed page by page on first touch; reusing a few
    buffers of each shape saves that work (measured in a fresh process: the stack copies of a 14B
    merge took 0.18 s longer than in a second merge that reused memory).
    """

    def __init__(self, keep: int = 4):
        import threading

        self._free: dict[tuple, list] = {}
        self._keep = keep
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, int], dtype):
        import torch

        with self._lock:
            free = self._free.get((shape, dtype))
            if free:
                return free.pop()
        return torch.empty(shape, dtype=dtype)

    def give(self, tensor) -> None:
        with self._lock:
            free = self._free.setdefault((tuple(tensor.shape), tensor.dtype), [])
            if len(free) < self._keep:
                free.append(tensor)


def _gram(tall: torch.Tensor) -> torch.Tensor:
    """``tall^T tall`` on the CPU. CPU stacks go through numpy, whose BLAS uses the symmetric
    product here and is about 1.5× faster than torch's general one for these skinny shapes."""
    import torch

    if tall.device.type == "cpu":
        array = tall.numpy()
        return torch.from_numpy(array.T @ array)
    return (tall.T @ tall).cpu()


def _product(tall: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """``tall @ small`` (n×R times R×q, float64) on the tall matrix's device. On the CPU through
    numpy: torch's BLAS call is 4× slower for a product this narrow."""
    import torch

    if tall.device.type == "cpu":
        return torch.from_numpy(tall.numpy() @ small.numpy())
    return tall @ small.to(tall.device)


@dataclass(frozen=True)
class ModuleStats:
    """What a module filter sees of one targeted module (all norms exact, before ``--alpha``).

    ``norm_a``/``norm_b``: ‖ΔW_a‖_F, ‖ΔW_b‖_F of the inputs as they apply at strength 1 (0 when
    absent). ``norm_diff``: ‖w_a·ΔW_a − w_b·ΔW_b‖_F. ``inner``: ⟨ΔW_a, ΔW_b⟩. ``cosine``: their
    cosine similarity (None when one is zero). ``cancellation``: ``norm_diff / (|w_a|·norm_a +
    |w_b|·norm_b)``, from 0 (A and B cancel completely) to 1 (nothing shared, or opposite).
    """

    name: str
    index: int
    block: int | None
    group: str
    layer: str
    shape: tuple[int, int]
    rank_a: int
    rank_b: int
    norm_a: float
    norm_b: float
    norm_diff: float
    inner: float
    cosine: float | None
    cancellation: float | None
    factored: bool = True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclass
class StrategyInfo:
    """How a merge resolved ``--strategy``: the filter (if any) and the compressor, with their params."""

    strategy: str
    compressor: str
    compressor_params: dict[str, Any] = field(default_factory=dict)
    filter: str | None = None
    filter_params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
