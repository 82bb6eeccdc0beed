"""A rank hint from an analysis: the smallest fixed rank that keeps a given share of the energy.

The energy of a module's difference is ‖ΔW‖²_F = Σ σᵢ²; a rank-r truncation keeps the r largest
σᵢ². Over the targeted (merged) modules together, rank r keeps Σ_modules Σ_{i<r} σᵢ² of the total
Σ_modules ‖ΔW‖². The total is each module's exact ‖ΔW‖² (``norm_diff``) when it is known, so a
spectrum that was only partly computed (``sv_exact`` False) can only under-state what a rank
keeps, never over-state it. A block weight w scales a module's difference by w, its energy by
w² (``weight_of``). For a two-expert analysis (``by_expert``) each expert gets its own hint; the
workbench shows the larger rank (one rank field serves both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from difflora_gui.merge.analysis import MERGED, AnalysisResult, ModuleRow

#: the shares of the targeted energy a hint names a rank for
FRACTIONS = (0.90, 0.95, 0.99)
#: the share the hint's headline is about
HEADLINE = 0.99


@dataclass(frozen=True)
class EnergyRanks:
    """For one analysis (one expert): which fixed rank keeps how much of the targeted energy."""

    #: the cumulative share of the energy kept by rank 1, 2, … (index r-1), up to the longest spectrum
    kept: tuple[float, ...]
    #: the modules counted (targeted, with a spectrum)
    modules: int
    #: every spectrum counted is complete (False: shares are lower bounds)
    exact: bool = True
    expert: str | None = None

    @property
    def ranks(self) -> dict[float, int | None]:
        """``{fraction: rank}`` for :data:`FRACTIONS` (None: the listed values do not reach it)."""
        return {f: self.rank_for(f) for f in FRACTIONS}

    def rank_for(self, fraction: float) -> int | None:
        """The smallest rank keeping at least ``fraction`` (None: more than the spectra list)."""
        for rank, share in enumerate(self.kept, start=1):
            if share >= fraction - 1e-12:
                return rank
        return None

    def share_at(self, rank: int) -> float:
        """The share a fixed rank keeps (rank 0 = no truncation: everything)."""
        if rank <= 0 or not self.kept:
            return 1.0 if rank <= 0 else 0.0
        return self.kept[min(rank, len(self.kept)) - 1]


def _targeted(rows: Sequence[ModuleRow]) -> list[ModuleRow]:
    return [r for r in rows if r.status == MERGED and r.singular_values]


def energy_ranks(
    result: AnalysisResult, weight_of: Callable[[str], float] | None = None
) -> EnergyRanks | None:
    """The hint for one analysis (its own rows); None when no targeted module has a spectrum."""
    rows = _targeted(result.rows)
    if not rows:
        return None
    longest = max(len(r.singular_values) for r in rows)
    kept = [0.0] * longest
    total = 0.0
    for row in rows:
        scale = float(weight_of(row.name)) ** 2 if weight_of is not None else 1.0
        squares = sorted((float(s) ** 2 for s in row.singular_values), reverse=True)
        listed = sum(squares)
        total += scale * max(row.norm_diff**2, listed)
        running = 0.0
        for i in range(longest):
            if i < len(squares):
                running += squares[i]
            kept[i] += scale * running
    if total <= 0:
        return None
    shares = tuple(min(k / total, 1.0) for k in kept)
    exact = all(r.sv_exact for r in rows)
    return EnergyRanks(kept=shares, modules=len(rows), exact=exact, expert=result.expert)


def hints_for(
    result: AnalysisResult | None, weight_of: Callable[[str], float] | None = None
) -> list[EnergyRanks]:
    """One hint per expert (high first) for a two-expert analysis, else one; [] without data."""
    if result is None:
        return []
    parts = [result.by_expert[e] for e in result.experts] if result.by_expert else [result]
    return [h for h in (energy_ranks(p, weight_of) for p in parts) if h is not None]


def suggested_rank(hints: Sequence[EnergyRanks], fraction: float = HEADLINE) -> int | None:
    """The rank that keeps ``fraction`` in every hint (the largest of theirs); None if one cannot."""
    ranks = [h.rank_for(fraction) for h in hints]
    if not ranks or any(r is None for r in ranks):
        return None
    return max(r for r in ranks if r is not None)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g} %"


def hint_text(hints: Sequence[EnergyRanks], fraction: float = HEADLINE) -> str:
    """``rank 8 keeps 99 % of the targeted energy`` (with the experts' own ranks when there are two)."""
    if not hints:
        return ""
    rank = suggested_rank(hints, fraction)
    if rank is None:
        longest = max(len(h.kept) for h in hints)
        return f"more than rank {longest} is needed to keep {_percent(fraction)} of the targeted energy"
    text = f"rank {rank} keeps {_percent(fraction)} of the targeted energy"
    if len(hints) > 1:
        text += " (" + ", ".join(f"{h.expert}-noise {h.rank_for(fraction)}" for h in hints) + ")"
    if not all(h.exact for h in hints):
        text += " (at least: some spectra are approximate)"
    return text


def detail_lines(hints: Sequence[EnergyRanks], current_rank: int | None = None) -> list[str]:
    """The other shares (90 %, 95 %) and what the rank now set keeps, for a tooltip or second line."""
    if not hints:
        return []
    lines = []
    for fraction in FRACTIONS:
        rank = suggested_rank(hints, fraction)
        lines.append(f"{_percent(fraction)}: rank {rank if rank is not None else '> listed'}")
    if current_rank is not None:
        share = min(h.share_at(current_rank) for h in hints)
        what = "no truncation" if current_rank <= 0 else f"rank {current_rank}"
        lines.append(f"{what} (set) keeps {_percent(share)}")
    return lines
