"""Synthetic Wan LoRAs with real key names, for tests, benchmarks and the demo project.

Only the low-rank factors are generated (never a dense matrix), so even a 14B rank-16 LoRA of all
400 modules takes well under a second per factor set. Values are seeded: the same arguments give
the same tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from difflora_gui.lora import wan_layout
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.selector import Selector, parse_selector
from difflora_gui.lora.wan_layout import WanVariant


def module_names(
    variant: str | WanVariant = "tiny",
    *,
    task: str = "t2v",
    select: str | Selector = "all",
    outside: bool = False,
) -> list[str]:
    """The LoRA-able Linear modules of a variant chosen by ``select``, in model order."""
    layout = variant if isinstance(variant, WanVariant) else wan_layout.get_variant(variant)
    names = layout.module_names(task, outside=outside)
    return parse_selector(select).select(names)


def make_wan_lora(
    variant: str | WanVariant = "tiny",
    *,
    task: str = "t2v",
    rank: int | Mapping[str, int] | Callable[[str], int] = 4,
    alpha: float | str | None = None,
    select: str | Selector = "all",
    outside: bool = False,
    dtype: str = "float32",
    seed: int = 0,
    up_std: float = 0.05,
    path: str | Path | None = None,
    format: str = "comfy",
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> list[LoraModule]:
    """Generate a LoRA in canonical form and, with ``path``, also write it as a file.

    ``variant``: ``"1.3B"``, ``"14B"``, ``"5B"``, ``"tiny"`` (the config-built test transformer) or a
    :class:`WanVariant`. ``task``: ``"t2v"`` or ``"i2v"`` (adds ``cross_attn.k_img``/``v_img``).
    ``rank``: one rank, or per module (mapping or function of the canonical name). ``alpha``: a
    number, ``"rank"`` (alpha = rank, scale 1) or None (no alpha stored, scale 1). ``select``:
    selector text choosing modules (``"attn blocks=0-9"``). ``outside``: also the Linear layers
    outside the blocks (embeddings, time projection, head). ``dtype`` of the tensors;
    ``format``/``metadata``/``overwrite`` as for :func:`~difflora_gui.lora.writer.write_lora`.
    """
    import torch

    from difflora_gui.lora.writer import normalize_dtype, write_lora

    layout = variant if isinstance(variant, WanVariant) else wan_layout.get_variant(variant)
    torch_dtype = getattr(torch, normalize_dtype(dtype))
    generator = torch.Generator().manual_seed(int(seed))
    modules: list[LoraModule] = []
    for name in module_names(layout, task=task, select=select, outside=outside):
        out_features, in_features = layout.shape(name)
        if callable(rank):
            r = int(rank(name))
        elif isinstance(rank, Mapping):
            r = int(rank[name])
        else:
            r = int(rank)
        r = max(1, min(r, out_features, in_features))
        down = torch.randn(r, in_features, generator=generator) / in_features**0.5
        up = torch.randn(out_features, r, generator=generator) * up_std
        if alpha is None:
            stored_alpha, scale = None, 1.0
        elif alpha == "rank":
            stored_alpha, scale = float(r), 1.0
        else:
            stored_alpha = float(alpha)
            scale = stored_alpha / r
        modules.append(
            LoraModule(
                name=name, down=down.to(torch_dtype), up=up.to(torch_dtype), scale=scale, alpha=stored_alpha
            )
        )
    if path is not None:
        write_lora(path, modules, format=format, dtype=dtype, metadata=metadata, overwrite=overwrite)
    return modules


# --- Wan2.2 A14B expert layouts ------------------------------------------------------------------


def combo_state_dict(
    high: list[LoraModule],
    low: list[LoraModule],
    *,
    format: str = "comfy",
    dtype: str = "float32",
    bare: bool = False,
) -> dict:
    """The tensors of a combo file holding both experts (ai-toolkit ``split_multistage_loras: false``).

    comfy: ``diffusion_model.transformer_1.…`` (high) / ``diffusion_model.transformer_2.…`` (low), or
    without ``diffusion_model.`` when ``bare``; musubi: ``lora_unet_transformer_1_…``; diffusers:
    ``transformer.…`` (high) beside ``transformer_2.…`` (low), as diffusers' Wan2.2 pipeline names them.
    """
    from difflora_gui.lora.writer import normalize_format, to_state_dict

    fmt = normalize_format(format)
    out: dict = {}
    for number, modules in ((1, high), (2, low)):
        for key, tensor in to_state_dict(modules, format=fmt, dtype=dtype).items():
            if fmt == "comfy":
                rest = key[len("diffusion_model.") :]
                key = (
                    f"transformer_{number}.{rest}" if bare else f"diffusion_model.transformer_{number}.{rest}"
                )
            elif fmt == "musubi":
                key = f"lora_unet_transformer_{number}_{key[len('lora_unet_') :]}"
            elif number == 2:
                key = f"transformer_2.{key[len('transformer.') :]}"
            out[key] = tensor
    return out


def make_wan_combo(
    variant: str | WanVariant = "tiny",
    *,
    path: str | Path,
    seed: int = 0,
    format: str = "comfy",
    bare: bool = False,
    dtype: str = "float32",
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
    **options,
) -> dict[str, list[LoraModule]]:
    """Write a combo file of two generated experts (high: ``seed``, low: ``seed + 1``); returns both.

    ``options`` go to :func:`make_wan_lora` (``rank``, ``alpha``, ``select``, ``task`` …).
    """
    from difflora_gui.lora.writer import save_safetensors

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    experts = {
        "high": make_wan_lora(variant, seed=seed, dtype=dtype, **options),
        "low": make_wan_lora(variant, seed=seed + 1, dtype=dtype, **options),
    }
    tensors = combo_state_dict(experts["high"], experts["low"], format=format, dtype=dtype, bare=bare)
    save_safetensors(path, tensors, dict(metadata or {}))
    return experts


def make_wan_split(
    variant: str | WanVariant = "tiny",
    *,
    stem: str | Path,
    seed: int = 0,
    **options,
) -> dict[str, tuple[Path, list[LoraModule]]]:
    """Write the two files ``<stem>_high_noise.safetensors`` / ``<stem>_low_noise.safetensors``.

    High gets ``seed`` and low ``seed + 1``, as in :func:`make_wan_combo`, so the same arguments give
    the same per-expert modules in both layouts. ``options`` go to :func:`make_wan_lora`.
    """
    from difflora_gui.lora.experts import expert_output_path

    base = Path(stem)
    base = base.with_name(base.name + ".safetensors")
    out: dict[str, tuple[Path, list[LoraModule]]] = {}
    for offset, expert in enumerate(("high", "low")):
        target = expert_output_path(base, expert)
        out[expert] = (target, make_wan_lora(variant, seed=seed + offset, path=target, **options))
    return out
