"""The shared rank policy: how many singular triplets of a module's difference are kept.

``fixed``: ``--rank N`` per module (``--rank 0``: no truncation, every non-zero singular value).
The dynamic modes choose per module from the spectrum, with the semantics of kohya's
``resize_lora.py`` (``--dynamic_method``), capped by ``--rank`` when it is above 0:

* ``energy``: the smallest k whose singular values keep ``Σ_{i<k} s_i² ≥ energy·‖ΔW‖_F²``
  (kohya's ``sv_fro`` with ``param = sqrt(energy)``);
* ``sv_ratio``: keep ``s_i > s_0 / ratio``;
* ``sv_cumulative``: the smallest k with ``Σ_{i<k} s_i ≥ param·Σ s_i``.

Pure Python on sequences of floats: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from difflora_gui.errors import UserError

RANK_MODES = ("fixed", "energy", "sv_ratio", "sv_cumulative")

#: singular values at or below this fraction of the largest count as zero (rank 0 = "all non-zero")
ZERO_SV_RTOL = 1e-6


@dataclass(frozen=True)
class RankPolicy:
    mode: str = "fixed"
    rank: int = 4  # fixed: the rank (0 = no truncation); dynamic modes: the cap (0 = no cap)
    energy: float = 0.99
    sv_ratio: float = 10.0
    sv_cumulative: float = 0.9

    def __post_init__(self):
        if self.mode not in RANK_MODES:
            raise UserError(f"unknown rank mode {self.mode!r}; use one of {', '.join(RANK_MODES)}")
        if self.rank < 0:
            raise UserError(f"--rank must be 0 (no truncation / no cap) or positive, got {self.rank}")
        if not 0.0 < self.energy <= 1.0:
            raise UserError(f"--energy must be in (0, 1], got {self.energy:g}")
        if not self.sv_ratio >= 1.0:
            raise UserError(f"--sv_ratio must be >= 1 (keep s > s_max/ratio), got {self.sv_ratio:g}")
        if not 0.0 < self.sv_cumulative <= 1.0:
            raise UserError(f"--sv_cumulative must be in (0, 1], got {self.sv_cumulative:g}")

    def cap(self, max_rank: int) -> int:
        """The most singular vectors this policy can keep for a module of rank ≤ ``max_rank``."""
        return max(1, min(self.rank, max_rank) if self.rank > 0 else max_rank)

    def choose(
        self, singular_values: Sequence[float], total_energy: float | None = None, max_rank: int = 0
    ) -> int:
        """The rank to keep (≥ 1) from descending singular values.

        ``total_energy`` is ‖ΔW‖_F² when known exactly (the spectrum may be partial); otherwise the
        sum of the squares given. ``max_rank`` bounds the result (0: the length of the spectrum).
        """
        s = [max(float(v), 0.0) for v in singular_values]
        available = len(s) if max_rank <= 0 else min(len(s), max_rank)
        if available <= 0 or s[0] <= 0.0:
            return 1  # a zero difference: one zero pair keeps the module's shape
        cap = available if self.rank <= 0 else min(self.rank, available)
        if self.mode == "fixed":
            if self.rank > 0:
                return max(1, cap)
            nonzero = sum(1 for v in s[:available] if v > s[0] * ZERO_SV_RTOL)
            return max(1, nonzero)
        if self.mode == "energy":
            total = total_energy if total_energy and total_energy > 0 else sum(v * v for v in s)
            k = _first_reaching([v * v for v in s[:available]], self.energy * total)
        elif self.mode == "sv_ratio":
            k = sum(1 for v in s[:available] if v > s[0] / self.sv_ratio)
        else:  # sv_cumulative
            k = _first_reaching(s[:available], self.sv_cumulative * sum(s))
        return max(1, min(k, cap))

    def describe(self) -> str:
        cap = f", at most {self.rank}" if self.rank > 0 else ""
        if self.mode == "fixed":
            return f"rank {self.rank}" if self.rank > 0 else "no truncation (every non-zero singular value)"
        if self.mode == "energy":
            return f"per module: keep {self.energy:g} of the Frobenius energy{cap}"
        if self.mode == "sv_ratio":
            return f"per module: keep s > s_max/{self.sv_ratio:g}{cap}"
        return f"per module: keep {self.sv_cumulative:g} of the sum of singular values{cap}"


def _first_reaching(values: Sequence[float], target: float) -> int:
    """The smallest k with ``sum(values[:k]) >= target`` (len(values) if never reached)."""
    running = 0.0
    # a relative slack so that "keep 100%" is reached despite rounding of the sum
    target = target * (1.0 - 1e-12)
    for k, value in enumerate(values, start=1):
        running += value
        if running >= target:
            return k
    return len(values)
