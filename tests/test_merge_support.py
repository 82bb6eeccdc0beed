"""Shared helpers for the merge tests (no tests here): small Wan-like LoRA pairs and dense references."""

from __future__ import annotations

from pathlib import Path

import torch

from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.wan_layout import WanVariant
from difflora_gui.lora.writer import write_lora
from difflora_gui.merge.params import MergeParams

#: a small Wan-like layout: room for ranks 16 + 32 < every dimension, yet fast (3 blocks, 30 modules)
SMALL = WanVariant("small", num_blocks=3, dim=96, ffn_dim=160, num_heads=2, text_dim=32, image_dim=48)
CREATED = "2026-01-02T03:04:05+00:00"


def names(variant: WanVariant = SMALL, task: str = "t2v") -> list[str]:
    return variant.module_names(task)


def random_factors(out_dim: int, in_dim: int, rank: int, gen: torch.Generator, *, decay: float | None = None):
    up = torch.randn(out_dim, rank, generator=gen, dtype=torch.float64) * 0.05
    down = torch.randn(rank, in_dim, generator=gen, dtype=torch.float64) / in_dim**0.5
    if decay is not None:
        up = up * torch.tensor([decay**i for i in range(rank)], dtype=torch.float64)
    return up, down


def make_modules(
    seed: int,
    *,
    rank: int = 16,
    alpha: float | None = None,
    dtype: torch.dtype = torch.float32,
    decay: float | None = None,
    variant: WanVariant = SMALL,
    only: list[str] | None = None,
) -> list[LoraModule]:
    gen = torch.Generator().manual_seed(seed)
    modules = []
    for name in only or names(variant):
        out_dim, in_dim = variant.shape(name)
        up, down = random_factors(out_dim, in_dim, rank, gen, decay=decay)
        scale = 1.0 if alpha is None else alpha / rank
        modules.append(LoraModule(name, down=down.to(dtype), up=up.to(dtype), scale=scale, alpha=alpha))
    return modules


def write(path: Path, modules: list[LoraModule], *, format: str = "comfy", dtype: str = "float32") -> Path:
    write_lora(path, modules, format=format, dtype=dtype, overwrite=True)
    return path


def by_name(modules: list[LoraModule]) -> dict[str, LoraModule]:
    return {m.name: m for m in modules}


def dense(module: LoraModule | None, shape=None) -> torch.Tensor:
    if module is None:
        return torch.zeros(shape, dtype=torch.float64)
    return module.delta(torch.float64)


def truncated(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """The dense reference: torch.linalg.svd in float64, best rank-k approximation."""
    u, s, vh = torch.linalg.svd(matrix.to(torch.float64), full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k]


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.to(torch.float64) - ref).norm() / ref.norm())


def params(tmp_path: Path, a: Path, b: Path, **kwargs) -> MergeParams:
    values = dict(lora_a=str(a), lora_b=str(b), output=str(tmp_path / "out.safetensors"), created=CREATED)
    values.update(kwargs)
    return MergeParams(**values)
