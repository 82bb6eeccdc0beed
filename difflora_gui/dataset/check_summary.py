"""The set summary of the pair checks: distributions, worst pairs first, one line per finding.

:func:`summarize` turns the per-pair :class:`~difflora_gui.dataset.checks.PairScores` into a
:class:`SetSummary`: for each score its min / median / p90 / max and a histogram, the pair ids
worst first, a one-line verdict per flag type with its count and numbers, and a **set-level
colour drift** when most pairs drift the same way ("set-level: 83 of 100 pairs: B is greener than
A (median Δa −4.2) — a slider learns this"), even when each pair stays under its own threshold.
JSON (:meth:`SetSummary.to_json`) and CSV (:func:`scores_csv`) forms for the CLI and the panel.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from difflora_gui.dataset.check_config import CheckThresholds
from difflora_gui.dataset.checks import DRIFT_AXES, PairScores, drift_values, drift_word

#: the scores a summary describes: name → (title, how to read it from PairScores)
SCORES = {
    "ssim": ("SSIM (grey)", lambda s: s.ssim),
    "mad": ("mean abs. difference (grey)", lambda s: s.mad),
    "shift_px": ("shift (px at the check resolution)", lambda s: s.shift_px),
    "scale": ("zoom of B against A", lambda s: s.scale),
    "dL": ("ΔL (lightness, B − A)", lambda s: s.lab_drift[0]),
    "da": ("Δa (green − / magenta +)", lambda s: s.lab_drift[1]),
    "db": ("Δb (blue − / yellow +)", lambda s: s.lab_drift[2]),
    "dchroma": ("Δchroma (saturation)", lambda s: s.chroma_drift),
    "histogram": ("histogram distance (Bhattacharyya)", lambda s: s.histogram),
}

#: flag code → (title, what the verdict quotes: score name, or None for a count only)
FLAG_TITLES = {
    "unreadable": ("could not be checked", None),
    "aspect": ("aspect mismatch", None),
    "size": ("size mismatch (same aspect)", None),
    "frames": ("frame count mismatch", None),
    "fps": ("frame rate mismatch", None),
    "duration": ("duration mismatch", None),
    "ssim": ("low SSIM", "ssim"),
    "mad": ("large mean abs. difference", "mad"),
    "shift": ("shifted", "shift_px"),
    "scale": ("zoomed", "scale"),
    "lightness": ("lightness drift", "dL"),
    "green_magenta": ("green–magenta drift", "da"),
    "blue_yellow": ("blue–yellow drift", "db"),
    "saturation": ("saturation drift", "dchroma"),
    "histogram": ("histogram difference", "histogram"),
}
_DRIFT_SCORE = {"lightness": "dL", "green_magenta": "da", "blue_yellow": "db", "saturation": "dchroma"}
HIST_BINS = 10


@dataclass(frozen=True)
class Distribution:
    minimum: float
    median: float
    p90: float
    maximum: float
    bin_edges: tuple[float, ...]
    counts: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "min": self.minimum,
            "median": self.median,
            "p90": self.p90,
            "max": self.maximum,
            "bin_edges": list(self.bin_edges),
            "counts": list(self.counts),
        }


@dataclass(frozen=True)
class Verdict:
    code: str
    count: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "count": self.count, "text": self.text}


@dataclass
class SetSummary:
    pairs: int = 0
    checked: int = 0
    flagged: int = 0
    resolution: int = 256
    resize_method: str = ""
    distributions: dict[str, Distribution] = field(default_factory=dict)
    worst: list[str] = field(default_factory=list)  # every pair id, worst first
    verdicts: list[Verdict] = field(default_factory=list)
    set_level: list[str] = field(default_factory=list)

    def lines(self, worst: int = 10, scores: Mapping[str, PairScores] | None = None) -> list[str]:
        """The summary as text lines (what the CLI prints)."""
        out = [
            f"{self.checked} of {self.pairs} pairs checked at {self.resolution} px ({self.resize_method}); "
            f"{self.flagged} flagged"
        ]
        out += [f"  {line}" for line in self.set_level]
        out += [f"  {v.text}" for v in self.verdicts]
        for name, d in self.distributions.items():
            out.append(
                f"  {SCORES[name][0]}: min {d.minimum:.3g}, median {d.median:.3g}, p90 {d.p90:.3g}, "
                f"max {d.maximum:.3g}"
            )
        if scores is not None and self.worst:
            out.append("worst pairs:")
            for pair_id in self.worst[:worst]:
                s = scores[pair_id]
                what = "; ".join(f.text for f in s.flags) or "no flags"
                out.append(f"  {pair_id}: SSIM {s.ssim:.3f}; {what}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "checked": self.checked,
            "flagged": self.flagged,
            "resolution": self.resolution,
            "resize_method": self.resize_method,
            "distributions": {k: v.to_json() for k, v in self.distributions.items()},
            "worst": list(self.worst),
            "verdicts": [v.to_json() for v in self.verdicts],
            "set_level": list(self.set_level),
        }


def _distribution(values: list[float]) -> Distribution:
    array = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(array, bins=HIST_BINS)
    return Distribution(
        float(array.min()),
        float(np.median(array)),
        float(np.percentile(array, 90)),
        float(array.max()),
        tuple(float(e) for e in edges),
        tuple(int(c) for c in counts),
    )


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def _badness(s: PairScores) -> tuple:
    ssim = s.ssim if math.isfinite(s.ssim) else -1.0
    return (-len(s.flags), ssim, s.pair_id)


def _verdict(code: str, flagged: list[PairScores], n: int) -> Verdict:
    title, score = FLAG_TITLES.get(code, (code, None))
    count = len(flagged)
    text = f"{title}: {count} of {n} pairs"
    if code in _DRIFT_SCORE:
        axis = list(_DRIFT_SCORE).index(code)
        values = [drift_values(s)[axis] for s in flagged]
        neg, pos = sum(v < 0 for v in values), sum(v > 0 for v in values)
        parts = [f"{k} {drift_word(axis, sign)}" for k, sign in ((neg, -1.0), (pos, 1.0)) if k]
        symbol = DRIFT_AXES[axis][3]
        text += f" ({', '.join(parts)}; median {symbol} {_signed(statistics.median(values))})"
    elif score == "ssim":
        text += f" (lowest {min(s.ssim for s in flagged):.3f})"
    elif score is not None:
        values = [SCORES[score][1](s) for s in flagged]
        text += f" (median {statistics.median(values):.2f}, max {max(values):.2f})"
    elif code in ("aspect", "size", "unreadable") and flagged:
        text += f", e.g. {flagged[0].pair_id}: {flagged[0].flags[[f.code for f in flagged[0].flags].index(code)].text}"
    return Verdict(code, count, text)


def set_level_drift(checked: list[PairScores], t: CheckThresholds) -> list[str]:
    """The colour drifts most pairs share (same direction, at least ``t.set_drift_min`` each)."""
    n = len(checked)
    if n < 2:
        return []
    lines = []
    for axis, (_, _, _, symbol) in enumerate(DRIFT_AXES):
        values = [drift_values(s)[axis] for s in checked]
        for sign in (-1.0, 1.0):
            agreeing = sum(1 for v in values if v * sign >= t.set_drift_min)
            if agreeing and agreeing >= t.set_drift_fraction * n:
                median = statistics.median(values)
                lines.append(
                    f"set-level: {agreeing} of {n} pairs: B is {drift_word(axis, sign)} than A "
                    f"(median {symbol} {_signed(median)}) — a slider learns this"
                )
    return lines


def summarize(
    scores: Mapping[str, PairScores] | list[PairScores], thresholds: CheckThresholds | None = None
) -> SetSummary:
    """The set summary of per-pair scores (a mapping by pair id, or a list)."""
    t = thresholds or CheckThresholds()
    items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    checked = [s for s in items if not s.error]
    summary = SetSummary(
        pairs=len(items),
        checked=len(checked),
        flagged=sum(1 for s in items if s.flags),
        resolution=items[0].resolution if items else t.resolution,
        resize_method=items[0].resize_method if items else "",
    )
    if checked:
        for name, (_, read) in SCORES.items():
            values = [read(s) for s in checked]
            values = [v for v in values if math.isfinite(v)]
            if values:
                summary.distributions[name] = _distribution(values)
    summary.worst = [s.pair_id for s in sorted(items, key=_badness)]
    by_code: dict[str, list[PairScores]] = {}
    for s in items:
        for code in dict.fromkeys(f.code for f in s.flags):
            by_code.setdefault(code, []).append(s)
    order = list(FLAG_TITLES)
    for code in sorted(by_code, key=lambda c: order.index(c) if c in order else len(order)):
        summary.verdicts.append(_verdict(code, by_code[code], len(items)))
    summary.set_level = set_level_drift(checked, t)
    return summary


CSV_COLUMNS = (
    "pair_id",
    "kind",
    "error",
    "ssim",
    "ssim_r",
    "ssim_g",
    "ssim_b",
    "mad",
    "mad_r",
    "mad_g",
    "mad_b",
    "shift_dx",
    "shift_dy",
    "shift_dx_source",
    "shift_dy_source",
    "align_response",
    "scale",
    "scale_response",
    "dL",
    "da",
    "db",
    "dchroma",
    "histogram",
    "width_a",
    "height_a",
    "width_b",
    "height_b",
    "frames_a",
    "frames_b",
    "fps_a",
    "fps_b",
    "resolution",
    "resize_method",
    "flags",
)


def _row(s: PairScores) -> list[Any]:
    def r(x):
        return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(x, 5)

    frames = s.frames or ("", "")
    fps = s.fps or ("", "")
    return [
        s.pair_id,
        s.kind,
        s.error,
        r(s.ssim),
        *(r(v) for v in s.ssim_rgb),
        r(s.mad),
        *(r(v) for v in s.mad_rgb),
        *(r(v) for v in s.shift),
        *(r(v) for v in s.shift_source),
        r(s.align_response),
        r(s.scale),
        r(s.scale_response),
        *(r(v) for v in s.lab_drift),
        r(s.chroma_drift),
        r(s.histogram),
        *s.size_a,
        *s.size_b,
        *frames,
        *(r(v) if v != "" else "" for v in fps),
        s.resolution,
        s.resize_method,
        " | ".join(f.text for f in s.flags),
    ]


def scores_csv(scores: Mapping[str, PairScores] | list[PairScores]) -> str:
    """Every pair's scores and flags as CSV text (one row per pair, a header first)."""
    items = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in items:
        writer.writerow(_row(s))
    return buffer.getvalue()
