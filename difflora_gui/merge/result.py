"""What a merge returns (:class:`MergeResult`) and where its analysis files go."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from difflora_gui.merge import analysis as an

EXPERT_TITLES = {"high": "high-noise expert", "low": "low-noise expert"}


def analysis_paths(output: str | Path) -> tuple[Path, Path]:
    """Where ``--analyze_blocks`` writes its JSON and CSV: beside the output, same stem."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return output.with_name(f"{stem}.analysis.json"), output.with_name(f"{stem}.analysis.csv")


def now_created() -> str:
    """A creation time for the recipe and metadata (UTC, whole seconds)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class MergeResult:
    """What ``run_merge`` returns: the output, the recipe to re-run it bit for bit, and a summary."""

    output: str | None
    recipe: dict[str, Any]
    alpha: float
    merged: int
    nullified: int
    excluded: int
    filtered: int
    only_in_a: list[str]
    only_in_b: list[str]
    ranks: dict[int, int]
    retained_energy_mean: float | None
    retained_energy_min: float | None
    residual_mean: float | None
    elapsed_s: float
    strategy: dict[str, Any]
    save_dtype: str
    format: str
    analysis: an.AnalysisResult | None = None
    analysis_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the mean residual an exact SVD would leave at the same ranks (known from the exact spectrum of
    #: factored modules); reported beside ``residual_mean`` for approximate compressors
    optimal_residual_mean: float | None = None
    #: the Wan2.2 A14B expert this file is for ("high" / "low"); None for a one-model merge
    expert: str | None = None
    #: a two-expert merge: one complete result per expert written ("high", "low"); this object then
    #: describes the pair (``output`` None, counts summed, ``analysis`` with ``by_expert``, ``alpha``
    #: the first expert's: with auto alpha each expert has its own, in ``by_expert``)
    by_expert: dict[str, MergeResult] = field(default_factory=dict)

    @property
    def experts(self) -> list[str]:
        return [e for e in ("high", "low") if e in self.by_expert]

    @property
    def outputs(self) -> list[str]:
        """Every LoRA file written: the one output, or one per expert (high first)."""
        if self.by_expert:
            return [self.by_expert[e].output for e in self.experts if self.by_expert[e].output]
        return [self.output] if self.output else []

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("analysis", "by_expert")}
        data["ranks"] = {str(k): v for k, v in sorted(self.ranks.items())}
        data["analysis"] = self.analysis.to_json() if self.analysis is not None else None
        data["by_expert"] = {e: self.by_expert[e].to_json() for e in self.experts}
        data["outputs"] = self.outputs
        return data

    def summary(self) -> str:
        """What the CLI prints after a merge; a two-expert merge lists both files, then each expert."""
        if self.by_expert:
            lines = [
                "wrote " + " and ".join(self.outputs) if self.outputs else "analysis only (nothing written)",
                f"modules: {self.merged} merged, {self.nullified} nullified, {self.excluded} excluded "
                f"(all experts); time: {self.elapsed_s:.2f} s",
            ]
            for expert in self.experts:
                lines.append(f"{EXPERT_TITLES[expert]}:")
                lines += [f"  {line}" for line in self.by_expert[expert].summary().splitlines()]
            return "\n".join(lines)
        ranks = ", ".join(f"{count}×rank {rank}" for rank, count in sorted(self.ranks.items())) or "-"
        lines = [
            f"wrote {self.output} ({self.format}, {self.save_dtype})"
            if self.output
            else "analysis only (nothing written)",
            f"modules: {self.merged} merged, {self.nullified} nullified, {self.excluded} excluded"
            + (
                f" ({self.filtered} of them by the {self.strategy.get('filter')} filter)"
                if self.filtered
                else ""
            ),
            f"ranks: {ranks}",
        ]
        if self.retained_energy_mean is not None:
            lines.append(
                f"retained energy: mean {self.retained_energy_mean:.4f}, min {self.retained_energy_min:.4f}"
                + (
                    f"; residual ‖diff−out‖/‖diff‖ mean {self.residual_mean:.3g}"
                    if self.residual_mean is not None
                    else ""
                )
                + (
                    f" (an exact SVD: {self.optimal_residual_mean:.3g})"
                    if self.optimal_residual_mean is not None
                    and self.strategy.get("compressor") != "full_svd"
                    else ""
                )
            )
        lines.append(
            f"alpha: {self.alpha:.6g}; strategy: {strategy_text(self.strategy)}; time: {self.elapsed_s:.2f} s"
        )
        if self.only_in_a or self.only_in_b:
            lines.append(
                f"modules in only one input (the other counted as zero): {len(self.only_in_a)} only in A, "
                f"{len(self.only_in_b)} only in B"
            )
        for path in self.analysis_files:
            lines.append(f"analysis: {path}")
        return "\n".join(lines)


def strategy_text(info: dict[str, Any]) -> str:
    if info.get("filter") and info.get("filter") != info.get("compressor"):
        return f"{info['filter']} → {info['compressor']}"
    return str(info.get("compressor", ""))


def optimal_residual(row: an.ModuleRow) -> float | None:
    """‖diff − best rank-k‖/‖diff‖ from an exact, complete spectrum (None when it is not known)."""
    if not row.sv_exact or not row.singular_values:
        return None
    total = sum(v * v for v in row.singular_values)
    if total <= 0:
        return 0.0
    if abs(total - row.norm_diff**2) > 1e-6 * total:  # not the whole spectrum
        return None
    kept = sum(v * v for v in row.singular_values[: row.rank])
    return math.sqrt(max(total - kept, 0.0) / total)
