"""Per-module and per-block numbers of a differential merge (``--analyze_blocks``, the GUI's Analyze).

Every number is exact: norms and the cosine come from small Gram matrices of the factors, the
spectrum from the exact factored SVD, never from a dense out×in matrix. Pure Python: no torch.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: statuses of a module in the output
MERGED, NULLIFIED, EXCLUDED = "merged", "nullified", "excluded"
#: why a module is not merged
NOT_TARGETED, FILTERED = "not targeted", "filtered"

CSV_COLUMNS = (
    "name",
    "block",
    "group",
    "layer",
    "status",
    "reason",
    "out_features",
    "in_features",
    "rank_a",
    "rank_b",
    "norm_a",
    "norm_b",
    "norm_diff",
    "norm_diff_before_alpha",
    "norm_out",
    "cosine",
    "cancellation",
    "rank",
    "retained_energy",
    "residual",
    "singular_values",
)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _round(value: float | None, digits: int = 9) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


@dataclass
class ModuleRow:
    """One module. Norms are Frobenius norms of ΔW (out×in) as applied at strength 1.

    ``norm_a``/``norm_b``: the inputs (weights not applied); ``norm_diff``: ‖alpha·(w_a·ΔW_a − w_b·ΔW_b)‖
    (the exact difference; :meth:`diff_before_alpha` gives it without alpha, on the footing of
    ``norm_a``/``norm_b``); ``norm_out``: what the output file holds (after truncation; 0 when
    nullified or excluded). ``inner``: ⟨ΔW_a, ΔW_b⟩. ``retained_energy``: ‖out‖²/‖diff‖² of the
    kept singular values; ``residual``: ‖diff − out‖/‖diff‖. ``singular_values``: the difference's
    spectrum (alpha applied; exact when ``sv_exact``), at most r_a + r_b values for low-rank inputs.
    """

    name: str
    block: int | None
    group: str
    layer: str
    shape: tuple[int, int]
    rank_a: int
    rank_b: int
    status: str
    reason: str = ""
    norm_a: float = 0.0
    norm_b: float = 0.0
    inner: float = 0.0
    norm_diff: float = 0.0
    norm_out: float = 0.0
    weight_a: float = 1.0
    weight_b: float = 1.0
    rank: int = 0
    retained_energy: float | None = None
    residual: float | None = None
    singular_values: list[float] = field(default_factory=list)
    sv_exact: bool = True

    @property
    def cosine(self) -> float | None:
        return _ratio(self.inner, self.norm_a * self.norm_b)

    @property
    def cancellation(self) -> float | None:
        """‖w_a·A − w_b·B‖/(|w_a|·‖A‖ + |w_b|·‖B‖): 0 = A and B cancel, 1 = nothing in common."""
        diff = math.sqrt(max(self._weighted_diff_sq(), 0.0))
        return _ratio(diff, abs(self.weight_a) * self.norm_a + abs(self.weight_b) * self.norm_b)

    def diff_before_alpha(self, alpha: float) -> float:
        """‖w_a·ΔW_a − w_b·ΔW_b‖: the difference on the footing of ``norm_a``/``norm_b`` (alpha not applied).

        ``norm_diff`` holds it times |alpha| (the merge scales the rows by alpha). The same number
        also follows from the norms and the inner product (the Gram identity), a little less
        precisely where A and B nearly cancel; of ``norm_diff / |alpha|`` and ``norm_diff`` the one
        that agrees with it is taken, so rows written either way read the same.
        """
        from_gram = math.sqrt(max(self._weighted_diff_sq(), 0.0))
        if not alpha or not math.isfinite(alpha) or abs(alpha) == 1.0:
            return self.norm_diff if alpha else from_gram
        unscaled = self.norm_diff / abs(alpha)
        return unscaled if abs(unscaled - from_gram) <= abs(self.norm_diff - from_gram) else self.norm_diff

    def _weighted_diff_sq(self) -> float:
        wa, wb = self.weight_a, self.weight_b
        return (wa * self.norm_a) ** 2 + (wb * self.norm_b) ** 2 - 2 * wa * wb * self.inner

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["cosine"] = _round(self.cosine)
        data["cancellation"] = _round(self.cancellation)
        for key in ("norm_a", "norm_b", "inner", "norm_diff", "norm_out", "retained_energy", "residual"):
            data[key] = _round(data[key])
        data["singular_values"] = [_round(v, 7) for v in self.singular_values]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModuleRow:
        data = {k: v for k, v in data.items() if k not in ("cosine", "cancellation")}
        data["shape"] = tuple(data["shape"])
        return cls(**data)


@dataclass
class GroupRow:
    """A block × layer-group aggregate: norms of the concatenated modules (so cosines stay exact)."""

    block: int | None
    group: str
    modules: int
    merged: int
    norm_a: float
    norm_b: float
    norm_diff: float
    norm_out: float
    cosine: float | None
    cancellation: float | None
    mean_rank: float | None
    retained_energy: float | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in (
            "norm_a",
            "norm_b",
            "norm_diff",
            "norm_out",
            "cosine",
            "cancellation",
            "mean_rank",
            "retained_energy",
        ):
            data[key] = _round(data[key])
        return data


#: the ``group`` of an aggregate over every layer group of a block
ALL_GROUPS = "all"


def aggregate(rows: Iterable[ModuleRow], *, per_group: bool = True) -> list[GroupRow]:
    """Per (block, group) sums in model order; ``per_group=False``: per block (group ``"all"``)."""
    buckets: dict[tuple[int | None, str], list[ModuleRow]] = {}
    for row in rows:
        buckets.setdefault((row.block, row.group if per_group else ALL_GROUPS), []).append(row)
    groups = []
    for (block, group), members in buckets.items():
        sq_a = sum(r.norm_a**2 for r in members)
        sq_b = sum(r.norm_b**2 for r in members)
        inner = sum(r.inner for r in members)
        sq_diff = sum(r.norm_diff**2 for r in members)
        weighted_sq = sum(max(r._weighted_diff_sq(), 0.0) for r in members)
        merged = [r for r in members if r.status == MERGED]
        merged_diff_sq = sum(r.norm_diff**2 for r in merged)
        wa, wb = members[0].weight_a, members[0].weight_b  # one merge: the same weights everywhere
        groups.append(
            GroupRow(
                block=block,
                group=group,
                modules=len(members),
                merged=len(merged),
                norm_a=math.sqrt(sq_a),
                norm_b=math.sqrt(sq_b),
                norm_diff=math.sqrt(sq_diff),
                norm_out=math.sqrt(sum(r.norm_out**2 for r in members)),
                cosine=_ratio(inner, math.sqrt(sq_a * sq_b)),
                cancellation=_ratio(
                    math.sqrt(weighted_sq), abs(wa) * math.sqrt(sq_a) + abs(wb) * math.sqrt(sq_b)
                ),
                mean_rank=(sum(r.rank for r in merged) / len(merged)) if merged else None,
                retained_energy=_ratio(
                    sum((r.retained_energy or 0.0) * r.norm_diff**2 for r in merged), merged_diff_sq
                )
                if merged
                else None,
            )
        )
    return groups


@dataclass
class AnalysisResult:
    """What ``run_analysis`` returns and ``--analyze_blocks`` writes (JSON and CSV)."""

    lora_a: str
    lora_b: str
    model: str
    alpha: float
    rows: list[ModuleRow]
    strategy: dict[str, Any] = field(default_factory=dict)
    rank_policy: str = ""
    targets: str = ""
    top: int = 10
    #: the Wan2.2 A14B expert this analysis is of ("high" / "low"); None for a one-model LoRA
    expert: str | None = None
    #: a two-expert analysis: one analysis per expert ("high", "low"), each complete; this object's
    #: own ``rows`` are then empty and its other fields describe the pair
    by_expert: dict[str, AnalysisResult] = field(default_factory=dict)

    @property
    def experts(self) -> list[str]:
        """The experts analysed, high first (empty for a one-model analysis)."""
        return [e for e in ("high", "low") if e in self.by_expert]

    @property
    def groups(self) -> list[GroupRow]:
        return aggregate(self.rows)

    def most_distinct(self, count: int | None = None) -> list[ModuleRow]:
        """The modules whose difference is largest (‖diff‖), largest first."""
        count = self.top if count is None else count
        ranked = sorted(self.rows, key=lambda r: (-r.norm_diff, r.name))
        return ranked[:count]

    def row(self, name: str) -> ModuleRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    # --- serialisation ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "lora_a": self.lora_a,
            "lora_b": self.lora_b,
            "model": self.model,
            "alpha": self.alpha,
            "strategy": self.strategy,
            "rank_policy": self.rank_policy,
            "targets": self.targets,
            "modules": [r.to_json() for r in self.rows],
            "groups": [g.to_json() for g in self.groups],
            "most_distinct": [r.name for r in self.most_distinct()],
            "expert": self.expert,
            "by_expert": {e: self.by_expert[e].to_json() for e in self.experts},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnalysisResult:
        return cls(
            lora_a=data["lora_a"],
            lora_b=data["lora_b"],
            model=data.get("model", ""),
            alpha=float(data.get("alpha", 1.0)),
            rows=[ModuleRow.from_json(r) for r in data["modules"]],
            strategy=dict(data.get("strategy", {})),
            rank_policy=data.get("rank_policy", ""),
            targets=data.get("targets", ""),
            expert=data.get("expert"),
            by_expert={e: cls.from_json(d) for e, d in (data.get("by_expert") or {}).items()},
        )

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows:
            data = row.to_json()
            values = []
            for column in CSV_COLUMNS:
                if column == "out_features":
                    value = row.shape[0]
                elif column == "in_features":
                    value = row.shape[1]
                elif column == "singular_values":
                    value = " ".join(f"{v:.7g}" for v in row.singular_values)
                elif column == "norm_diff_before_alpha":
                    value = _round(row.diff_before_alpha(self.alpha))
                else:
                    value = data[column]
                values.append("" if value is None else value)
            writer.writerow(values)
        return buffer.getvalue()

    def write(self, json_path: str | Path, csv_path: str | Path, *, overwrite: bool = True) -> None:
        from difflora_gui.fileio import atomic_write_text

        atomic_write_text(
            json_path, json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", overwrite=overwrite
        )
        atomic_write_text(csv_path, self.to_csv(), overwrite=overwrite)

    # --- text ------------------------------------------------------------------------------------

    def table(self) -> str:
        """The per block × group table and the most distinct modules, as printed by the CLI."""
        headers = [
            "block",
            "group",
            "mods",
            "merged",
            "|dA|",
            "|dB|",
            "|diff|",
            "|out|",
            "cos(A,B)",
            "cancel",
            "rank",
            "energy",
        ]
        lines = []
        for g in self.groups:
            lines.append(
                [
                    "-" if g.block is None else str(g.block),
                    g.group,
                    str(g.modules),
                    str(g.merged),
                    _fmt(g.norm_a),
                    _fmt(g.norm_b),
                    _fmt(g.norm_diff),
                    _fmt(g.norm_out),
                    _fmt(g.cosine, 3, fixed=True),
                    _fmt(g.cancellation, 3, fixed=True),
                    "-" if g.mean_rank is None else f"{g.mean_rank:.3g}",
                    "-" if g.retained_energy is None else f"{g.retained_energy:.4f}",
                ]
            )
        text = [_table(lines, headers)]
        top = self.most_distinct()
        if top:
            text.append("")
            text.append(f"most distinct modules (largest |diff|, {len(top)} of {len(self.rows)}):")
            rows = [
                [
                    r.name,
                    r.status,
                    _fmt(r.norm_diff),
                    _fmt(r.cosine, 3, fixed=True),
                    _fmt(r.cancellation, 3, fixed=True),
                    str(r.rank) if r.status == MERGED else "-",
                    "-" if r.retained_energy is None or r.status != MERGED else f"{r.retained_energy:.4f}",
                ]
                for r in top
            ]
            text.append(_table(rows, ["module", "status", "|diff|", "cos(A,B)", "cancel", "rank", "energy"]))
        return "\n".join(text)


def _fmt(value: float | None, digits: int = 4, *, fixed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if fixed else f"{value:.{digits}g}"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = [
        "  ".join(
            h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ).rstrip()
    ]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append(
            "  ".join(
                c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(out)
