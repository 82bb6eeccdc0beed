"""What a LoRA file holds, as a summary: the ``inspect`` command's table and JSON, the GUI's card.

:func:`summarize` opens the file (every header problem is a ``BadFileError``) and, unless told not
to, reads every tensor once to refuse NaN/Inf values and to measure each module's ‖ΔW‖ (from the
factors, never a dense matrix for low-rank modules). A Wan2.2 A14B combo file (both experts in one
file) is summarised per expert (:attr:`LoraSummary.parts`); its own ``modules`` are the union of
both experts' module names, for the targets grid.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from difflora_gui.lora import wan_layout
from difflora_gui.lora.experts import EXPERTS, NO_EXPERT_VARIANTS, ExpertRole
from difflora_gui.lora.model import LoraModule, ModelInfo
from difflora_gui.lora.reader import LoraFile, open_lora
from difflora_gui.lora.selector import GROUP_ORDER, format_blocks
from difflora_gui.lora.writer import METADATA_PREFIX

_JSON_METADATA = ("inputs", "params")
_TEXT_VALUE_LIMIT = 100


@dataclass
class ModuleFacts:
    name: str
    kind: str
    shape: tuple[int, ...]
    rank: int
    alpha: float | None
    scale: float
    dtype: str
    norm: float | None = None  # ‖ΔW‖_F (None when values were not read)


@dataclass
class LoraSummary:
    """Everything ``inspect`` shows about one file; ``to_json()`` for machines, ``card()`` for people."""

    path: str
    file_size: int
    format: str
    format_detail: str
    model: ModelInfo
    modules: list[ModuleFacts]
    num_tensors: int
    dtypes: dict[str, int]
    metadata: dict[str, str]
    values_checked: bool
    notes: list[str] = field(default_factory=list)
    #: which Wan2.2 A14B expert(s) the file is for, and what said so
    expert_role: ExpertRole = field(default_factory=lambda: ExpertRole("both"))
    #: ("high", "low") for a combo file (then :attr:`parts` has one summary per expert), else ()
    experts_in_file: tuple[str, ...] = ()
    parts: dict[str, LoraSummary] = field(default_factory=dict)
    #: the expert of a combo file's part summary (None for a whole file)
    expert: str | None = None

    def part(self, expert: str) -> LoraSummary:
        """The summary of one expert of a combo file; any other file's summary is its own part."""
        if expert not in EXPERTS:
            raise ValueError(f"unknown expert {expert!r} (use 'high' or 'low')")
        return self.parts.get(expert, self)

    @property
    def shows_expert(self) -> bool:
        """Whether the card has an expert row: files that can be A14B experts, or an ignored expert word."""
        model = self.model
        can_have = model.variant not in NO_EXPERT_VARIANTS and model.task != "i2v"
        return can_have or bool(self.expert_role.detail)

    # --- derived facts ---------------------------------------------------------------------------

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def blocks(self) -> list[int]:
        return sorted({b for b in (wan_layout.block_index(m.name) for m in self.modules) if b is not None})

    @property
    def missing_blocks(self) -> list[int]:
        present = set(self.blocks)
        return [b for b in range(self.model.num_blocks) if b not in present]

    @property
    def groups(self) -> dict[str, int]:
        counts = Counter(wan_layout.layer_group(m.name) for m in self.modules)
        return {g: counts[g] for g in GROUP_ORDER if counts[g]}

    @property
    def kinds(self) -> dict[str, int]:
        return dict(Counter(m.kind for m in self.modules))

    @property
    def ranks(self) -> dict[int, int]:
        return dict(sorted(Counter(m.rank for m in self.modules if m.kind == "lora").items()))

    @property
    def alphas(self) -> dict[str, int]:
        counts = Counter(
            "none" if m.alpha is None else _num(m.alpha) for m in self.modules if m.kind == "lora"
        )
        return dict(sorted(counts.items()))

    @property
    def scales(self) -> dict[str, int]:
        return dict(sorted(Counter(_num(m.scale) for m in self.modules if m.kind == "lora").items()))

    @property
    def modules_per_block(self) -> dict[int, int]:
        counts = Counter(wan_layout.block_index(m.name) for m in self.modules)
        return {b: counts[b] for b in self.blocks}

    @property
    def provenance(self) -> dict[str, object]:
        """Our own ``difflora.*`` keys, JSON values decoded."""
        result: dict[str, object] = {}
        for key, value in self.metadata.items():
            if not key.startswith(METADATA_PREFIX):
                continue
            short = key[len(METADATA_PREFIX) :]
            if short in _JSON_METADATA:
                try:
                    result[short] = json.loads(value)
                    continue
                except json.JSONDecodeError:
                    pass
            result[short] = value
        return result

    def block_norms(self) -> dict[int, float]:
        """‖ΔW‖_F of each block (root of the sum of its modules' squared norms)."""
        sums: dict[int, float] = {}
        for m in self.modules:
            b = wan_layout.block_index(m.name)
            if b is not None and m.norm is not None:
                sums[b] = sums.get(b, 0.0) + m.norm**2
        return {b: math.sqrt(v) for b, v in sorted(sums.items())}

    # --- output ----------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "file_name": self.file_name,
            "file_size": self.file_size,
            "format": self.format,
            "format_detail": self.format_detail,
            "model": {**asdict(self.model), "label": self.model.label, "description": self.model.description},
            "expert_role": {
                "role": self.expert_role.role,
                "source": self.expert_role.source,
                "detail": self.expert_role.detail,
                "experts": list(self.expert_role.experts),
                "text": self.expert_role.text,
            },
            "experts_in_file": list(self.experts_in_file),
            "expert": self.expert,
            "num_modules": len(self.modules),
            "num_tensors": self.num_tensors,
            "blocks": self.blocks,
            "missing_blocks": self.missing_blocks,
            "modules_per_block": {str(b): n for b, n in self.modules_per_block.items()},
            "layer_groups": self.groups,
            "kinds": self.kinds,
            "ranks": {str(r): n for r, n in self.ranks.items()},
            "alphas": self.alphas,
            "scales": self.scales,
            "dtypes": self.dtypes,
            "values_checked": self.values_checked,
            "block_norms": {str(b): v for b, v in self.block_norms().items()},
            "metadata": self.metadata,
            "provenance": self.provenance,
            "notes": self.notes,
            "modules": [
                {**asdict(m), "shape": list(m.shape), "group": wan_layout.layer_group(m.name)}
                for m in self.modules
            ],
            "parts": {e: part.to_json() for e, part in self.parts.items()},
        }

    def card(self) -> list[tuple[str, str]]:
        """(label, value) rows: the table ``inspect`` prints and the GUI's LoRA card."""
        model = self.model
        sizes = f"{model.num_blocks} blocks, dim {model.dim}" + (
            f", ffn {model.ffn_dim}" if model.ffn_dim else ""
        )
        rows = [
            ("file", f"{self.file_name} ({_size(self.file_size)})"),
            ("model", f"{model.label} ({sizes})"),
            ("format", self.format_detail),
        ]
        if self.shows_expert:
            role = self.expert_role
            rows.append(("expert", role.text if role.is_single or role.role == "combo" else _both_text(role)))
        if self.parts:
            return self._combo_card(rows)
        rows += self._module_rows()
        provenance = self.provenance
        if provenance:
            rows.append(("made by", _provenance_text(provenance)))
        for note in self.notes:
            rows.append(("note", note))
        return rows

    def _combo_card(self, rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A combo file: each expert's module rows, labelled "high …"/"low …"."""
        for expert, part in self.parts.items():
            rows += [(f"{expert} {label}", value) for label, value in part._module_rows()]
            rows += [(f"{expert} note", note) for note in part.notes if note not in self.notes]
        provenance = self.provenance
        if provenance:
            rows.append(("made by", _provenance_text(provenance)))
        for note in self.notes:
            rows.append(("note", note))
        return rows

    def _module_rows(self) -> list[tuple[str, str]]:
        """The rows on modules, blocks, ranks, dtypes and values."""
        model = self.model
        rows: list[tuple[str, str]] = []
        kinds = ", ".join(f"{k} {n}" for k, n in self.kinds.items())
        rows.append(("modules", f"{len(self.modules)} ({kinds}), {self.num_tensors} tensors"))
        if self.blocks:
            per_block = set(self.modules_per_block.values())
            each = f"; {per_block.pop()} per block" if len(per_block) == 1 else "; modules per block differ"
            missing = f"; missing {format_blocks(self.missing_blocks)}" if self.missing_blocks else ""
            rows.append(
                (
                    "blocks",
                    f"{format_blocks(self.blocks)} ({len(self.blocks)} of {model.num_blocks}){missing}{each}",
                )
            )
        else:
            rows.append(("blocks", "none (only modules outside the blocks)"))
        rows.append(("layer groups", ", ".join(f"{g} {n}" for g, n in self.groups.items())))
        if self.ranks:
            rows.append(("rank", _histogram(self.ranks)))
            rows.append(("alpha", _histogram(self.alphas)))
            rows.append(("scale", _histogram(self.scales) + "  (alpha/rank; 1 without alpha)"))
        rows.append(("dtype", ", ".join(f"{d} ({n} tensors)" for d, n in self.dtypes.items())))
        if self.values_checked:
            norms = [m for m in self.modules if m.norm is not None]
            top = max(norms, key=lambda m: m.norm or 0.0, default=None)
            largest = f"; largest ‖ΔW‖ {top.norm:.4g} in {top.name}" if top is not None else ""
            rows.append(("values", f"all finite{largest}"))
        else:
            rows.append(("values", "not checked"))
        return rows

    def to_text(self, *, modules: bool = False) -> str:
        rows = self.card()
        width = max(len(label) for label, _ in rows)
        lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
        if self.metadata:
            lines.append(f"{'metadata'.ljust(width)}  {len(self.metadata)} keys")
            key_width = min(40, max(len(k) for k in self.metadata))
            for key in sorted(self.metadata):
                lines.append(f"  {key.ljust(key_width)}  {_shorten(self.metadata[key])}")
        else:
            lines.append(f"{'metadata'.ljust(width)}  none")
        if modules:
            lines.append("")
            lines.append(_module_table(self.modules))
        return "\n".join(lines)


def _both_text(role: ExpertRole) -> str:
    """The expert row of a file that names no expert (or whose expert word was ignored)."""
    if role.source == "none" and role.detail and "ignored" in role.detail:
        return f"none: {role.detail}"
    return "not named: one file for both experts, or a one-model LoRA" + (
        f" ({role.detail})" if role.detail and "no expert named" not in role.detail else ""
    )


def _num(value: float) -> str:
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.6g}"


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _histogram(counts: dict) -> str:
    if len(counts) == 1:
        return f"{next(iter(counts))} (uniform)"
    return ", ".join(f"{k}: {n}" for k, n in counts.items()) + " (value: modules)"


def _shorten(value: str) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= _TEXT_VALUE_LIMIT else value[: _TEXT_VALUE_LIMIT - 1] + "…"


def _provenance_text(provenance: dict) -> str:
    parts = [f"DiffLoRA Studio {provenance.get('version', '?')}"]
    if "created" in provenance:
        parts.append(str(provenance["created"]))
    if "strategy" in provenance:
        parts.append(f"strategy {provenance['strategy']}")
    if "selector" in provenance:
        parts.append(f"selector '{provenance['selector']}'")
    inputs = provenance.get("inputs")
    if isinstance(inputs, list) and inputs:
        shown = []
        for item in inputs:
            if isinstance(item, dict):
                role = f"{item.get('role')}: " if item.get("role") else ""
                digest = str(item.get("sha256", ""))[:12]
                shown.append(f"{role}{item.get('name', '?')} (sha256 {digest}…)")
        parts.append("inputs " + ", ".join(shown))
    return "; ".join(parts)


def _module_table(modules: list[ModuleFacts]) -> str:
    headers = ["module", "kind", "shape", "rank", "alpha", "scale", "dtype", "‖ΔW‖"]
    rows = [
        [
            m.name,
            m.kind,
            wan_layout.format_shape(m.shape),
            str(m.rank) if m.rank else "-",
            "-" if m.alpha is None else _num(m.alpha),
            _num(m.scale),
            m.dtype,
            "-" if m.norm is None else f"{m.norm:.4g}",
        ]
        for m in modules
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def delta_norm(module: LoraModule) -> float:
    """‖ΔW‖_F, from the factors for low-rank modules (r×r Gram matrices, no dense ΔW)."""
    import torch

    if module.is_low_rank:
        up = module.up.to(torch.float64)  # type: ignore[union-attr]
        down = module.down.to(torch.float64)  # type: ignore[union-attr]
        gram = (up.T @ up) * (down @ down.T)
        return abs(module.scale) * math.sqrt(max(float(gram.sum()), 0.0))
    if module.dense is None:
        return 0.0  # bias only
    return float(module.delta(dtype=torch.float64).norm())


def _notes(lora, modules: list[ModuleFacts]) -> list[str]:
    notes = []
    model = lora.model
    if model.variant == "unknown":
        notes.append(
            "the shapes fit no released Wan size (1.3B, 14B, 5B) but are consistent with a Wan-like layout"
        )
    if model.variant == "14B" and model.task == "t2v" and model.expert is None:
        notes.append(
            "no image cross-attention (k_img/v_img): Wan2.1 T2V, or Wan2.2 T2V/I2V-A14B (same shapes); "
            "nothing names a Wan2.2 expert, so it would be used for both"
        )
    if model.task == "i2v":
        notes.append("image cross-attention (k_img/v_img): Wan2.1 I2V (Wan2.2 I2V has no k_img/v_img)")
    zero_alpha = [m.name for m in modules if m.alpha == 0]
    if zero_alpha:
        notes.append(
            f"alpha 0 in {len(zero_alpha)} modules: read as alpha = rank (musubi/kohya convention); "
            "ComfyUI would apply those modules at strength 0"
        )
    dense = [m.name for m in modules if m.kind in ("diff", "loha", "lokr")]
    if dense:
        notes.append(
            f"{len(dense)} full-weight modules (.diff/LoHa/LoKr), e.g. {dense[0]}: merged on the dense path"
        )
    if lora.format == "musubi":
        from difflora_gui.lora.writer import portability_warnings

        notes += portability_warnings([m.name for m in modules], "musubi", task=model.task)
    return notes


def _module_facts(lora, check_values: bool, step: Callable[[], None]) -> list[ModuleFacts]:
    facts: list[ModuleFacts] = []
    for name in lora.names():
        entry = lora.entry(name)
        alpha = lora.alpha(name)
        norm = None
        scale = lora.scale(name)
        if check_values:
            module = lora.load(name, check_finite=True)
            norm = delta_norm(module)
            scale = module.scale
        facts.append(ModuleFacts(name, entry.kind, entry.shape, entry.rank, alpha, scale, entry.dtype, norm))
        step()
    return facts


def _summary_of(lora, facts: list[ModuleFacts], check_values: bool, **extra) -> LoraSummary:
    dtypes = Counter(info.dtype for info in lora.tensor_infos.values())
    return LoraSummary(
        path=str(lora.path),
        file_size=lora.file_size,
        format=lora.format,
        format_detail=lora.format_detail,
        model=lora.model,
        modules=facts,
        num_tensors=len(lora.tensor_infos),
        dtypes=dict(dtypes.most_common()),
        metadata=dict(lora.metadata),
        values_checked=check_values,
        notes=_notes(lora, facts),
        expert_role=lora.expert_role,
        **extra,
    )


def summarize(
    source: str | Path | LoraFile,
    *,
    check_values: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LoraSummary:
    """Summarise a LoRA file; with ``check_values`` every tensor is read once (NaN/Inf refused).

    ``source``: a path, or an opened file (or one expert's part of a combo file), left open.
    """
    owned = isinstance(source, (str, Path))
    lora = open_lora(source) if owned else source
    try:
        sources = [lora.part(e) for e in lora.experts_in_file] or [lora]
        total = sum(len(s) for s in sources)
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        if not lora.experts_in_file:
            return _summary_of(lora, _module_facts(lora, check_values, step), check_values)
        parts = {
            part.expert: _summary_of(
                part, _module_facts(part, check_values, step), check_values, expert=part.expert
            )
            for part in sources
        }
        union: dict[str, ModuleFacts] = {}
        for part_summary in parts.values():
            for m in part_summary.modules:
                union.setdefault(m.name, dataclasses.replace(m, norm=None))
        modules = [union[n] for n in wan_layout.sorted_names(union)]
        summary = _summary_of(
            lora, modules, check_values, experts_in_file=tuple(lora.experts_in_file), parts=parts
        )
        summary.notes = [n for n in summary.notes if "merged on the dense path" not in n]
        return summary
    finally:
        if owned:
            lora.close()
