"""The numbers behind the Merge workbench's plots, taken from an ``AnalysisResult`` (Qt-free).

* :func:`block_rows`: per block, ‖ΔW_a‖, ‖ΔW_b‖, ‖ΔW_out‖ (Frobenius norms of the block's modules
  taken together) and the cancellation ratio of the whole block: the engine's aggregate over
  every layer group of the block.
* :func:`heatmap`: ‖ΔW_out‖ of each module as a blocks × layer-types matrix.
* :func:`spectrum`: one module's singular values, its kept rank and retained energy.
"""

from __future__ import annotations

from dataclasses import dataclass

from difflora_gui.lora.wan_layout import BLOCK_LAYERS
from difflora_gui.merge.analysis import MERGED, AnalysisResult, GroupRow, ModuleRow, aggregate

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

    def value(self, block: int, layer: str) -> float:
        return self.values[self.blocks.index(block)][self.layers.index(layer)]


def heatmap(result: AnalysisResult, field: str = "norm_out") -> Heatmap:
    """``field`` (default ‖ΔW_out‖) of every in-block module as blocks × layer types."""
    cells: dict[tuple[int, str], float] = {}
    for row in result.rows:
        if row.block is None:
            continue
        cells[(row.block, layer_key(row))] = float(getattr(row, field))
    blocks = sorted({b for b, _ in cells})
    layers = sorted({layer for _, layer in cells}, key=lambda name: (_LAYER_ORDER.get(name, 999), name))
    values = [[cells.get((b, layer), 0.0) for layer in layers] for b in blocks]
    present = [[(b, layer) in cells for layer in layers] for b in blocks]
    return Heatmap(blocks, layers, values, present)


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
