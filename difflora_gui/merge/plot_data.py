"""The numbers behind the Merge workbench's plots, taken from an ``AnalysisResult`` (Qt-free).

* :func:`block_rows`: per block, ‖ΔW_a‖, ‖ΔW_b‖, ‖ΔW_out‖ (Frobenius norms of the block's modules
  taken together) and the cancellation ratio of the whole block: the engine's aggregate over
  every layer group of the block.
* :func:`heatmap`: ‖ΔW_out‖ of each module as a blocks × layer-types matrix.
* :func:`spectrum`: one module's singular values, its kept rank and retained energy.
* hover texts (:func:`block_hover`, :func:`cell_hover`, :func:`spectrum_hover`), the titles drawn
  into exported PNGs (:func:`plot_title`) and the exports' default file names (:func:`export_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from difflora_gui.lora.wan_layout import BLOCK_LAYERS
from difflora_gui.merge.analysis import MERGED, AnalysisResult, GroupRow, ModuleRow, aggregate

#: the tab (and title) of each Wan2.2 A14B expert's analysis
EXPERT_HEADINGS = {"high": "High-noise expert", "low": "Low-noise expert"}
#: what an expert's output (and its exports) is named with (ai-toolkit's naming)
EXPERT_SUFFIXES = {"high": "_high_noise", "low": "_low_noise"}

BlockRow = GroupRow  # a block's aggregate over all its layer groups


def block_rows(result: AnalysisResult) -> list[GroupRow]:
    """One row per block present in the analysis, in block order (modules outside blocks are left out)."""
    return sorted(
        (row for row in aggregate(result.rows, per_group=False) if row.block is not None),
        key=lambda r: r.block,
    )


def layer_key(row: ModuleRow) -> str:
    """The module's layer type inside its block: ``self_attn.q``, ``cross_attn.k_img``, ``ffn.0`` …"""
    return f"{row.group}.{row.layer}" if row.group != "other" else row.layer


_LAYER_ORDER = {name: i for i, name in enumerate(BLOCK_LAYERS)}


@dataclass(frozen=True)
class Heatmap:
    blocks: list[int]  # columns (x)
    layers: list[str]  # rows (y), in model order
    values: list[list[float]]  # values[block_index][layer_index]: ‖ΔW_out‖; 0 where absent
    present: list[list[bool]]  # whether the module exists at all
    names: list[list[str | None]]  # the module of each cell (None where absent)

    def value(self, block: int, layer: str) -> float:
        return self.values[self.blocks.index(block)][self.layers.index(layer)]

    def module_at(self, block: int, layer_index: int) -> str | None:
        """The module drawn in a cell (None outside the map or where no module is)."""
        if block not in self.blocks or not 0 <= layer_index < len(self.layers):
            return None
        return self.names[self.blocks.index(block)][layer_index]

    def cell_of(self, name: str) -> tuple[int, int] | None:
        """(block, layer index) of a module's cell."""
        for i, row in enumerate(self.names):
            if name in row:
                return self.blocks[i], row.index(name)
        return None


def heatmap(result: AnalysisResult, field: str = "norm_out") -> Heatmap:
    """``field`` (default ‖ΔW_out‖) of every in-block module as blocks × layer types."""
    cells: dict[tuple[int, str], float] = {}
    names: dict[tuple[int, str], str] = {}
    for row in result.rows:
        if row.block is None:
            continue
        cells[(row.block, layer_key(row))] = float(getattr(row, field))
        names[(row.block, layer_key(row))] = row.name
    blocks = sorted({b for b, _ in cells})
    layers = sorted({layer for _, layer in cells}, key=lambda name: (_LAYER_ORDER.get(name, 999), name))
    values = [[cells.get((b, layer), 0.0) for layer in layers] for b in blocks]
    present = [[(b, layer) in cells for layer in layers] for b in blocks]
    return Heatmap(
        blocks, layers, values, present, [[names.get((b, layer)) for layer in layers] for b in blocks]
    )


@dataclass(frozen=True)
class Spectrum:
    name: str
    values: list[float]  # singular values, largest first (alpha applied)
    rank: int  # how many were kept (0 when the module is not merged)
    retained_energy: float | None
    exact: bool
    status: str

    @property
    def short_label(self) -> str:
        if self.status != MERGED or not self.rank:
            return f"{self.status}; {len(self.values)} singular values"
        energy = f"{100 * self.retained_energy:.2f} %" if self.retained_energy is not None else "?"
        approx = " (estimate)" if not self.exact else ""
        return f"rank {self.rank} of {len(self.values)}: {energy} energy kept{approx}"

    @property
    def label(self) -> str:
        if self.status != MERGED or not self.rank:
            return f"{self.name}: {self.status}, {len(self.values)} singular values"
        energy = f"{100 * self.retained_energy:.2f} %" if self.retained_energy is not None else "?"
        approx = "" if self.exact else " (estimated spectrum)"
        return f"{self.name}: rank {self.rank} of {len(self.values)} keeps {energy} of the energy{approx}"


def spectrum(result: AnalysisResult, name: str) -> Spectrum:
    row = result.row(name)
    return Spectrum(
        name=row.name,
        values=list(row.singular_values),
        rank=int(row.rank) if row.status == MERGED else 0,
        retained_energy=row.retained_energy if row.status == MERGED else None,
        exact=row.sv_exact,
        status=row.status,
    )


# --- hover texts ---------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _before_alpha(value: float, alpha: float) -> float:
    return value / abs(alpha) if alpha else value


#: the bar series: (GroupRow field, legend label)
BAR_SERIES = (("norm_a", "‖ΔW_a‖"), ("norm_b", "‖ΔW_b‖"), ("norm_out", "‖ΔW_out‖"))


def block_hover(result: AnalysisResult, block: int, series: str | None = None) -> str:
    """What hovering over a block's bars says: its norms, cancellation and each layer group's ‖A−B‖.

    ‖A−B‖ is before alpha (on the footing of ‖A‖ and ‖B‖); ‖out‖ is what the file holds.
    ``series`` (a :data:`BAR_SERIES` field) marks the bar under the pointer.
    """
    rows = [r for r in result.rows if r.block == block]
    if not rows:
        return ""
    (total,) = aggregate(rows, per_group=False)
    diff = math.sqrt(sum(r.diff_before_alpha(result.alpha) ** 2 for r in rows))
    lines = [f"block {block}: {total.merged} of {total.modules} modules merged"]
    for key, label in BAR_SERIES:
        mark = "▶ " if key == series else ""
        lines.append(f"{mark}{label} = {_num(getattr(total, key))}")
    lines.append(f"‖A−B‖ (before alpha) = {_num(diff)}")
    lines.append(f"cancellation = {_num(total.cancellation, 3)}")
    groups = aggregate(rows)
    if len(groups) > 1 or groups[0].group != "other":
        lines.append("‖A−B‖ per layer group:")
        for group in groups:
            members = [r for r in rows if r.group == group.group]
            value = math.sqrt(sum(r.diff_before_alpha(result.alpha) ** 2 for r in members))
            lines.append(f"  {group.group}: {_num(value)}  (cancel {_num(group.cancellation, 3)})")
    return "\n".join(lines)


def cell_hover(result: AnalysisResult, name: str) -> str:
    """What hovering over a heatmap cell says: the module, ‖out‖, ‖A−B‖ before alpha, status."""
    row = result.row(name)
    rank = f", rank {row.rank}" if row.status == MERGED else ""
    return (
        f"{row.name}\n‖ΔW_out‖ = {_num(row.norm_out)}\n"
        f"‖A−B‖ (before alpha) = {_num(row.diff_before_alpha(result.alpha))}\n"
        f"{row.status}{rank}; click: show its spectrum"
    )


def spectrum_hover(spectrum: Spectrum, index: int) -> str:
    """What hovering over singular value ``index`` (1-based) says: its value and the energy up to it."""
    if not 1 <= index <= len(spectrum.values):
        return ""
    values = spectrum.values
    total = sum(v * v for v in values)
    upto = sum(v * v for v in values[:index])
    kept = "kept" if index <= spectrum.rank else "dropped"
    share = f"{100 * upto / total:.2f} %" if total > 0 else "-"
    return f"σ{index} = {_num(values[index - 1], 6)} ({kept})\nenergy of σ1…σ{index}: {share}"


# --- titles and export names ---------------------------------------------------------------------

#: each plot's title in exported images
PLOT_TITLES = {
    "blocks": "‖ΔW‖ per block and cancellation",
    "heatmap": "‖ΔW_out‖ per module (blocks × layers)",
    "spectrum": "Singular values",
}


def inputs_text(result: AnalysisResult) -> str:
    return f"A = {Path(result.lora_a).name or '?'}, B = {Path(result.lora_b).name or '?'}"


def plot_title(plot: str, result: AnalysisResult, module: str = "") -> str:
    """The title drawn into an exported PNG: the plot, the inputs and (two experts) the expert."""
    title = PLOT_TITLES[plot]
    if plot == "spectrum" and module:
        title = f"{title} of {module}"
    parts = [title, inputs_text(result)]
    if result.expert:
        parts.append(EXPERT_HEADINGS.get(result.expert, result.expert).lower())
    return " · ".join(parts)


def expert_stem(base: Path, expert: str | None) -> Path:
    """``base`` with the expert's suffix (``x`` → ``x_high_noise``, ``x_low_noise`` → ``x_high_noise``)."""
    suffix = EXPERT_SUFFIXES.get(expert or "", "")
    if not suffix or base.name.endswith(suffix):
        return base
    name = base.name
    for other in EXPERT_SUFFIXES.values():  # an output named for the other expert: that one's name
        name = name.removesuffix(other)
    return base.with_name(name + suffix)


#: the table export's name ends so; a merge's ``--analyze_blocks`` files end ``.analysis.csv/.json``
CSV_EXPORT_SUFFIX = ".workbench.csv"


def export_path(base: Path, kind: str, expert: str | None = None, *, now: datetime | None = None) -> Path:
    """Default name of an export: ``<base>[_high_noise]-<plot>.png`` or ``<base>[_high_noise].workbench.csv``.

    The CSV never takes the ``<stem>.analysis.csv`` that a later merge with ``--analyze_blocks``
    writes beside its output (and would replace). A name that exists already gets the time
    (``<base>.workbench-20261202-051500.csv``), so the dialog does not start on a file to replace.
    """
    stem = expert_stem(Path(base), expert)
    name = stem.name + (CSV_EXPORT_SUFFIX if kind == "csv" else f"-{kind}.png")
    path = stem.with_name(name)
    if path.exists():
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        dot = name.rfind(".")
        path = stem.with_name(f"{name[:dot]}-{stamp}{name[dot:]}")
    return path
