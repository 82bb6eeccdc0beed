"""The linear algebra of the merge: the exact factored SVD, the dense SVD and randomized SVD.

The exact factored SVD (``../shared/reference/feasibility.md`` §6): ΔW = L·R with L out×R and R R×in
has rank ≤ R = r_a + r_b. With the Gram matrices ``L^T L = V_l Λ_l V_l^T`` and
``R R^T = V_r Λ_r V_r^T`` (R×R, float64)::

    L = P_l Λ_l^½ V_l^T,   R = V_r Λ_r^½ P_r^T        (P_l, P_r with orthonormal columns)
    ΔW = P_l · K · P_r^T,  K = Λ_l^½ V_l^T V_r Λ_r^½    (an R×R core)
    K = u·diag(s)·vh  ⇒  ΔW = (L·V_l Λ_l^-½ u) · diag(s) · (vh Λ_r^-½ V_r^T · R)

so the whole SVD costs two R×R Grams of the factors, three R×R decompositions and two products
of a factor with an R×k matrix: no out×in matrix is ever formed. The Grams are formed in float64
from the stored values, which keeps the result exact to float32 precision even when A and B share
most of their factors (where a float32 Gram would lose half the digits).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from difflora_gui.merge.api import Decomposition, ModuleDelta

if TYPE_CHECKING:
    import torch


def _half_factor(gram: torch.Tensor, dim: int):
    """``gram = W W^T`` restricted to its numerically non-zero part: returns (W, W^{-T}) as R×p."""
    import torch

    evals, evecs = torch.linalg.eigh(gram)
    top = float(evals[-1]) if evals.numel() else 0.0
    if top <= 0.0:
        empty = gram.new_zeros((gram.shape[0], 0))
        return empty, empty
    # eigenvalues below the rounding level of a float64 Gram of this size are noise
    keep = evals > top * max(dim, gram.shape[0]) * torch.finfo(torch.float64).eps
    evals, evecs = evals[keep], evecs[:, keep]
    root = evals.sqrt()
    return evecs * root, evecs / root


def factored_core(delta: ModuleDelta):
    """(M_l, s, M_r) with ΔW = (left @ M_l) · diag(s) · (M_r^T @ right), s descending (float64, CPU).

    Cached on the delta: the engine's spectrum report and the compressor share one computation.
    """
    import torch

    cached = delta._cache.get("factored_core")
    if cached is not None:
        return cached
    out_dim, in_dim = delta.shape
    w_l, inv_l = _half_factor(delta.gram_left(), out_dim)
    w_r, inv_r = _half_factor(delta.gram_right(), in_dim)
    if w_l.shape[1] == 0 or w_r.shape[1] == 0:
        rank = delta.gram_left().shape[0]
        core = (w_l.new_zeros((rank, 0)), w_l.new_zeros((0,)), w_l.new_zeros((rank, 0)))
    else:
        u, s, vh = torch.linalg.svd(w_l.T @ w_r, full_matrices=False)
        core = (inv_l @ u, s, inv_r @ vh.T)
    delta._cache["factored_core"] = core
    return core


def exact_singular_values(delta: ModuleDelta) -> torch.Tensor:
    """The exact non-zero spectrum of a factored difference (float64, CPU)."""
    return factored_core(delta)[1]


def factored_svd(delta: ModuleDelta, rank_cap: int) -> Decomposition:
    """The exact SVD of a factored difference, with the first ``rank_cap`` vectors formed."""
    coeff_l, s, coeff_r = factored_core(delta)
    q = max(0, min(int(rank_cap), int(s.shape[0])))
    u = delta.left_times(coeff_l[:, :q])
    vh = delta.times_right(coeff_r[:, :q].T)
    return Decomposition(U=u, S=s, Vh=vh, exact=True)


def dense_svd(delta: ModuleDelta, rank_cap: int) -> Decomposition:
    """The exact SVD of the dense difference (``torch.linalg.svd``, thin); slow for big modules."""
    import torch

    matrix = delta.dense()
    # on CUDA torch picks a Jacobi solver by default, about ten times less accurate than LAPACK's
    driver = "gesvd" if matrix.device.type == "cuda" else None
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False, driver=driver)
    q = max(0, min(int(rank_cap), int(s.shape[0])))
    return Decomposition(U=u[:, :q], S=s.to(device="cpu", dtype=torch.float64), Vh=vh[:q], exact=True)


def randomized_svd(
    delta: ModuleDelta, rank_cap: int, *, oversample: int, niter: int, seed: int
) -> Decomposition:
    """Halko–Martinsson–Tropp randomized SVD with ``q = rank_cap + oversample`` and ``niter`` power iterations.

    Dense differences go through ``torch.svd_lowrank``; factored ones through the same algorithm
    applied to the operator ``left @ (right @ x)`` so ΔW is never formed. Seeded per module
    (``seed`` + the module's index) so a re-run gives the same bits.
    """
    import torch

    out_dim, in_dim = delta.shape
    q = max(1, min(int(rank_cap) + int(oversample), out_dim, in_dim))
    module_seed = (int(seed) * 1_000_003 + delta.index) % (2**63 - 1)
    if not delta.is_factored:
        matrix = delta.dense()
        devices = [matrix.device] if matrix.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=matrix.device.type):
            torch.manual_seed(module_seed)
            u, s, v = torch.svd_lowrank(matrix, q=q, niter=int(niter))
        keep = min(int(rank_cap), q)
        return Decomposition(
            U=u[:, :keep], S=s.to(device="cpu", dtype=torch.float64), Vh=v[:, :keep].T, exact=False
        )

    generator = torch.Generator(device="cpu").manual_seed(module_seed)
    omega = torch.randn(in_dim, q, generator=generator, dtype=torch.float64).to(
        device=delta.device, dtype=delta.dtype
    )
    basis = torch.linalg.qr(delta.matmul(omega)).Q
    for _ in range(int(niter)):
        basis = torch.linalg.qr(delta.rmatmul(basis)).Q
        basis = torch.linalg.qr(delta.matmul(basis)).Q
    small = delta.rmatmul(basis).T  # q×in = basis^T ΔW
    u_small, s, vh = torch.linalg.svd(small, full_matrices=False)
    keep = min(int(rank_cap), int(s.shape[0]))
    u = basis @ u_small[:, :keep]
    return Decomposition(U=u, S=s.to(device="cpu", dtype=torch.float64), Vh=vh[:keep], exact=False)


def residual_norm(delta: ModuleDelta, up: torch.Tensor, down: torch.Tensor, total_sq: float) -> float:
    """‖ΔW − up @ down‖_F without forming out×in matrices (float64 small products)."""
    import torch

    if up.shape[1] == 0:
        return math.sqrt(max(total_sq, 0.0))
    up64 = up.to(torch.float64)
    down64 = down.to(torch.float64)
    # ⟨ΔW, up@down⟩ = trace(up^T ΔW down^T) and ‖up@down‖² = ⟨up^T up, down down^T⟩
    projected = delta.matmul(down64.T, dtype=torch.float64)  # out×k = ΔW down^T
    inner = float((up64 * projected).sum())
    approx_sq = float(((up64.T @ up64) * (down64 @ down64.T)).sum())
    return math.sqrt(max(total_sq - 2.0 * inner + approx_sq, 0.0))
