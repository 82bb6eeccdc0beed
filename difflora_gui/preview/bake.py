"""Export: bake one LoRA stack entry (strength, block weights, layer filter, experts) into new files.

The baked file at strength 1 applies what the preview applies for the entry: every module of the
source gets the preview's own factor (:func:`difflora_gui.preview.adapters.module_factors`:
``strength_for(expert) × block weight``, 0 where the selector leaves the module out), the factor
the preview writes into the module's PEFT ``scaling`` (its output gains ``factor · B(A x)``). A
module at factor 0 is dropped; any other has the factor folded into its scale (alpha), a negative
factor as a sign flip of ``up``, so the stored factors are the source's own bytes and the source's
dtype is kept. Full-weight (``.diff``) and bias (``.diff_b``) changes, which the preview cannot
show (PEFT holds LoRA pairs only), are kept multiplied by the factor (stored as float32 then,
unless the factor is ±1) for ComfyUI and WanVideoWrapper, which apply them.

The files are written in the comfy format (``diffusion_model.blocks.N.…``), which loads in ComfyUI,
diffusers and WanVideoWrapper, including its block edit. Wan2.2 A14B: a combo file, or a file for
both experts baked with a strength per expert, becomes the two files ``…_high_noise`` /
``…_low_noise`` (:func:`~difflora_gui.lora.experts.expert_output_path`), each with its expert in
the metadata; a file for one expert stays one file, for its own expert or the one the entry puts
it on (as the preview routes it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.fileio import check_output_path, same_file, sha256_file
from difflora_gui.lora.experts import (
    EXPERT_METADATA_KEY,
    EXPERT_TITLES,
    EXPERTS,
    expert_from_name,
    expert_output_path,
)
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.wan_layout import block_index
from difflora_gui.preview.adapters import module_factors
from difflora_gui.preview.request import LoraEntry

#: the error when a bake would write an empty file
NOTHING_LEFT = "nothing left to write: every block is at weight 0 or strength 0"
_EXACT_DTYPES = ("float32", "float16", "bfloat16")


def fold_factor(module: LoraModule, factor: float) -> tuple[LoraModule, bool]:
    """``module`` with its weight change multiplied by ``factor`` (not 0), and whether the file can
    store it in the source's dtype without rounding (alpha and a sign flip are exact; the comfy
    writer bakes the scale of a module outside the blocks into its factors, and a dense change
    scaled or built from LoHa/LoKr factors is new data)."""
    changes: dict[str, Any] = {}
    low_rank = module.down is not None and module.up is not None
    scale = module.scale * abs(factor)
    if low_rank:
        changes["scale"] = scale
        if factor < 0:
            changes["up"] = -module.up
    if module.dense is not None and factor != 1:
        changes["dense"] = module.dense.float() * factor
    if module.bias is not None and factor != 1:
        changes["bias"] = module.bias.float() * factor
    exact = abs(factor) == 1 or (module.dense is None and module.bias is None)
    if module.dense is not None and (low_rank or module.kind in ("loha", "lokr")):
        exact = False  # written as one .diff of the whole change
    if low_rank and block_index(module.name) is None and scale != 1:
        exact = False
    return dataclasses.replace(module, **changes), exact


@dataclasses.dataclass(frozen=True)
class _Target:
    """One file to write: the source part it reads, the expert it is for, the strength's expert."""

    path: Path
    part: Any  # LoraFile or ExpertPart
    expert: str | None  # the expert written into the metadata (None: both experts / one model)
    strength_of: str | None  # the expert whose strength applies (None: a one-transformer model)


def _plan(lora, entry: LoraEntry, out: Path, two_experts: bool) -> list[_Target]:
    if lora.is_combo:
        return [_Target(expert_output_path(out, e), lora.part(e), e, e) for e in EXPERTS]
    role = lora.expert_role
    if role.is_single:
        # as the preview routes it: the entry's expert wins over the file's own
        expert = entry.expert if two_experts and entry.expert != "both" else role.role
        return [_Target(out, lora, expert, expert if two_experts else None)]
    if not two_experts:
        return [_Target(out, lora, None, None)]
    high, low = entry.strength_for("high"), entry.strength_for("low")
    if high == low:
        return [_Target(out, lora, None, "high")]  # one file serves both experts alike
    return [_Target(expert_output_path(out, e), lora, e, e) for e in EXPERTS]


def _check_blocks(lora, names: list[str], num_blocks: int | None) -> None:
    if num_blocks is None:
        return
    beyond = sorted({b for b in (block_index(n) for n in names) if b is not None and b >= num_blocks})
    if beyond:
        raise UserError(
            f"{lora.path.name} has modules in block(s) {beyond[0]}–{beyond[-1]} but the model has "
            f"{num_blocks} blocks (0–{num_blocks - 1}): it is a LoRA for another model"
        )


def _stored_dtype(part, names: list[str]) -> str:
    dtypes = {part.dtype(n) for n in names}
    return dtypes.pop() if len(dtypes) == 1 and next(iter(dtypes)) in _EXACT_DTYPES else "float32"


def _metadata(part, modules, entry: LoraEntry, target: _Target, sha256: str, dtype: str) -> dict[str, str]:
    from difflora_gui.lora.writer import METADATA_PREFIX, InputFile, build_metadata

    source = Path(entry.file)
    kept = {
        k: v
        for k, v in part.metadata.items()
        if not k.startswith(METADATA_PREFIX)
        and k not in ("ss_network_dim", "ss_network_alpha", EXPERT_METADATA_KEY)
    }
    title = part.metadata.get("modelspec.title") or source.stem
    if target.expert is not None:
        title = f"{title} ({EXPERT_TITLES[target.expert]})"
    strength = entry.strength_for(target.strength_of)
    params = {
        "strength": strength,
        "strength_high": entry.strength_high,
        "strength_low": entry.strength_low,
        "entry_strength": entry.strength,
        "entry_expert": entry.expert,
        "dtype": dtype,
        "format": "comfy",
    }
    return {
        **kept,
        **build_metadata(
            modules=modules,
            title=title,
            model=part.model,
            inputs=[InputFile(source.name, sha256, "source")],
            strategy="bake",
            params=params,
            selector=entry.selector,
            expert=target.expert,
            extra={f"{METADATA_PREFIX}bake": json.dumps({"strength": strength, "selector": entry.selector})},
        ),
    }


def _baked_modules(part, entry: LoraEntry, target: _Target, ctx) -> tuple[list, bool]:
    modules: list[LoraModule] = []
    exact = True
    names = part.names()
    factors = module_factors(entry, names, target.strength_of)  # the preview's own factors
    for index, name in enumerate(names):
        if ctx is not None:
            ctx.raise_if_cancelled()
        if factors[name] == 0:
            continue
        module, module_exact = fold_factor(part.load(name), factors[name])
        modules.append(module)
        exact = exact and module_exact
        if ctx is not None:
            ctx.progress(index + 1, len(names), f"baking {target.path.name}")
    return modules, exact


def bake_entry(
    entry: LoraEntry,
    out: str | Path,
    *,
    num_blocks: int | None = None,
    overwrite: bool = False,
    two_experts: bool = False,
    ctx=None,
) -> list[Path]:
    """Write ``entry`` baked (see the module docstring) to ``out``, or to its two expert files.

    ``num_blocks``: the model's block count (a file with blocks beyond it is refused);
    ``two_experts``: the model is Wan2.2 A14B (a file for both experts gets each expert's strength).
    Nothing is written when any output exists (unless ``overwrite``), is the source, or when
    every module is at factor 0 (:data:`NOTHING_LEFT`). Returns the written paths.
    """
    from difflora_gui.lora.reader import open_lora
    from difflora_gui.lora.selector import parse_selector
    from difflora_gui.lora.writer import write_lora

    out = Path(out)
    source = Path(entry.file)
    parse_selector(entry.selector)  # a bad selector fails before the file is opened
    with open_lora(source) as lora:
        targets = _plan(lora, entry, out, two_experts)
        for target in targets:
            check_output_path(target.path, inputs=[source], overwrite=overwrite)
            named = expert_from_name(target.path)
            if target.expert is not None and named is not None and named != target.expert:
                raise UserError(
                    f"{target.path.name}: the name says {EXPERT_TITLES[named]} but the file would hold the "
                    f"{EXPERT_TITLES[target.expert]}; choose a name without high/low or with the right one"
                )
        for target in targets:
            _check_blocks(lora, target.part.names(), num_blocks)
        sha256 = entry.sha256 or sha256_file(source)
        baked = []
        for target in targets:
            modules, exact = _baked_modules(target.part, entry, target, ctx)
            if modules:
                dtype = _stored_dtype(target.part, [m.name for m in modules]) if exact else "float32"
                baked.append((target, modules, dtype))
        if not baked:
            raise UserError(f"{source.name}: {NOTHING_LEFT}")
        written: list[Path] = []
        try:
            for target, modules, dtype in baked:
                existed = target.path.exists()
                metadata = _metadata(target.part, modules, entry, target, sha256, dtype)
                write_lora(
                    target.path,
                    modules,
                    format="comfy",
                    dtype=dtype,
                    metadata=metadata,
                    inputs=[source],
                    overwrite=overwrite,
                    warn=None if ctx is None else ctx.log,
                )
                if not existed:
                    written.append(target.path)
        except BaseException:
            for path in written:  # a pair is written whole or not at all (new files only)
                if not same_file(path, source):
                    path.unlink(missing_ok=True)
            raise
    return [target.path for target, _m, _d in baked]


def run_bake(params: Mapping[str, Any], ctx) -> dict[str, Any]:
    """The export job: ``{"entry": LoraEntry json, "out": path, "two_experts": bool,
    "num_blocks": int | None, "overwrite": bool}``; reports each written file as a ``lora`` artifact."""
    if not isinstance(params, Mapping) or "entry" not in params or not params.get("out"):
        raise UserError("an export needs the LoRA entry and the output file (out)")
    raw = params["entry"]
    entry = raw if isinstance(raw, LoraEntry) else LoraEntry(**dict(raw))
    if ctx is not None:
        ctx.status(f"baking {Path(entry.file).name}")
    paths = bake_entry(
        entry,
        params["out"],
        num_blocks=params.get("num_blocks"),
        overwrite=bool(params.get("overwrite", False)),
        two_experts=bool(params.get("two_experts", False)),
        ctx=ctx,
    )
    experts = []
    for path in paths:
        from difflora_gui.lora.reader import read_header

        meta = read_header(path).metadata
        experts.append(meta.get(EXPERT_METADATA_KEY) or None)
        if ctx is not None:
            ctx.artifact("lora", path, expert=experts[-1], source=str(entry.file))
    return {"files": [str(p) for p in paths], "experts": experts}
