"""Checks and splits of one module's factors: NaN/Inf from the Grams, a compressor's output,
``√S`` shared between up and down."""

from __future__ import annotations

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.merge.api import ModuleDelta


def check_factors_finite(delta: ModuleDelta) -> None:
    """NaN/Inf anywhere in a factor shows on the diagonal of its float64 Gram matrix (Σx² is not finite)."""
    import torch

    up, down = delta.export_grams()
    edges = [0]
    for rank in delta.input_ranks:
        edges.append(edges[-1] + rank)
    for i, path in enumerate(getattr(delta, "input_paths", [None] * len(delta.input_ranks))):
        lo, hi = edges[i], edges[i + 1]
        if not (
            bool(torch.isfinite(up.diagonal()[lo:hi]).all())
            and bool(torch.isfinite(down.diagonal()[lo:hi]).all())
        ):
            where = f"module {delta.name}: lora_up/lora_down contain NaN or Inf values"
            if path is None:
                raise UserError(where)
            raise BadFileError(path, where)


def check_decomposition(name: str, decomposition, shape: tuple[int, int]) -> None:
    from difflora_gui.merge.api import Decomposition

    if not isinstance(decomposition, Decomposition):
        raise TypeError(
            f"{name}: the compressor returned {type(decomposition).__name__}, not a Decomposition"
        )
    if decomposition.U.shape[0] != shape[0] or decomposition.Vh.shape[1] != shape[1]:
        raise ValueError(
            f"{name}: the compressor returned U {tuple(decomposition.U.shape)} and Vh {tuple(decomposition.Vh.shape)} "
            f"for a {shape[0]}×{shape[1]} module"
        )


def split_factors(decomposition, k: int, shape, dtype, device):
    """(up, down, ‖kept‖²): ``U_k·√S_k`` and ``√S_k·Vh_k``, zero-padded when fewer than k vectors exist."""
    import torch

    width = min(k, decomposition.width)
    s = decomposition.S[:width].to(device="cpu", dtype=torch.float64).clamp_min(0)
    kept_sq = float((s * s).sum())
    root = s.sqrt().to(device=device, dtype=dtype)
    up = decomposition.U[:, :width].to(device=device, dtype=dtype) * root[None, :]
    down = decomposition.Vh[:width].to(device=device, dtype=dtype) * root[:, None]
    if width < k:
        up = torch.cat([up, up.new_zeros((shape[0], k - width))], dim=1)
        down = torch.cat([down, down.new_zeros((k - width, shape[1]))], dim=0)
    return up, down, kept_sq
