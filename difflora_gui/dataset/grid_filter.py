"""Sort and filter a pair set for the grid, by id, include state, any score or flag (Qt-free).

The scores are the checks' ``PairScores`` by pair id (:mod:`difflora_gui.dataset.checks`); this
module reads them generically: every numeric field is a sort key (a pair of numbers such as a shift
``(dx, dy)`` or a Lab drift ``(dL, da, db)`` sorts by its length), and ``flags`` is a list of
``Flag(code, text)``. Pairs without scores (not checked yet) always come last, whatever the order.

:func:`arrange` returns the indices (into ``pair_set.pairs``) to show, in order; it is plain Python
over a few thousand pairs and fast enough to run on every keystroke of the text filter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: sort keys every set has (the score keys come from the scores themselves)
BASE_SORT_KEYS = {"id": "Pair id", "include": "Included first", "flags": "Flag count"}
#: the flag filter's special values: every pair, pairs with any flag, pairs without any
ALL_PAIRS, FLAGGED, UNFLAGGED = "", "*", "-"
INCLUDE_STATES = ("all", "included", "excluded")
#: score fields that are not scores (never offered as a sort key)
_NOT_SCORES = {
    "flags",
    "resize_method",
    "pair_id",
    "id",
    "resolution",
    "error",
    "kind",
    "size_a",
    "size_b",
    "check_size",
    "frames",
    "fps",
    "duration_s",
    "sampled_frames",
    "frame_ssim",
    "ssim_rgb",
    "mad_rgb",
    "histogram_rgb",
}
#: how the grid names the checks' scores (others: the field name in words)
SCORE_TITLES = {
    "ssim": "SSIM (grey)",
    "mad": "mean abs. difference",
    "shift": "shift (px)",
    "shift_source": "shift in source px",
    "align_response": "alignment confidence",
    "scale": "scale",
    "lab_drift": "colour drift (Lab)",
    "chroma_drift": "saturation drift",
    "histogram": "histogram distance",
}
#: scores where a lower value is the worse one (the grid's "worst first" order is ascending)
LOWER_IS_WORSE = {"ssim", "ssim_grey", "ssim_gray"}


@dataclass
class GridQuery:
    """What the grid shows: the sort key and direction, a flag filter, an include filter, a text."""

    sort: str = "id"
    descending: bool = False
    flag: str = ALL_PAIRS  # ALL_PAIRS, FLAGGED, UNFLAGGED or one flag code
    include: str = "all"  # one of INCLUDE_STATES
    text: str = ""  # case-insensitive, in the pair id, its caption or its file names


def number(value: Any) -> float | None:
    """A score as one number: itself, the length of a vector of numbers, None if it is no number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, (int, float)) for v in value):
        return math.sqrt(sum(float(v) ** 2 for v in value))
    return None


def flags_of(scores: Any) -> list[Any]:
    return list(getattr(scores, "flags", None) or []) if scores is not None else []


def flag_code(flag: Any) -> str:
    return str(getattr(flag, "code", flag))


def worst_flag(scores: Any) -> Any | None:
    """The flag to show on a cell: the most severe (``severity`` when flags have one), else the first."""
    flags = flags_of(scores)
    if not flags:
        return None
    if any(hasattr(f, "severity") for f in flags):
        return max(flags, key=lambda f: number(getattr(f, "severity", 0)) or 0.0)
    return flags[0]


def _fields(scores: Any) -> list[str]:
    if dataclasses.is_dataclass(scores):
        return [f.name for f in dataclasses.fields(scores)]
    return [name for name in vars(scores) if not name.startswith("_")] if hasattr(scores, "__dict__") else []


def score_keys(scores: Mapping[str, Any]) -> dict[str, str]:
    """``{field: title}`` of every numeric score the scores have (in their field order)."""
    keys: dict[str, str] = {}
    for value in scores.values():
        for name in _fields(value):
            if name in _NOT_SCORES or name in keys:
                continue
            if number(getattr(value, name, None)) is not None:
                keys[name] = SCORE_TITLES.get(name, name.replace("_", " "))
        if keys:
            break  # one checked pair tells the fields of all
    return keys


def flag_codes(scores: Mapping[str, Any]) -> dict[str, int]:
    """``{flag code: how many pairs have it}``, the most frequent first."""
    counts: dict[str, int] = {}
    for value in scores.values():
        for code in dict.fromkeys(flag_code(f) for f in flags_of(value)):
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _text_of(pair: Any) -> str:
    names = [item.name for item in (pair.a, pair.b) if item is not None]
    return " ".join([pair.id, pair.caption, *names]).casefold()


def _sort_value(name: str) -> Callable[[Any, Any], Any]:
    if name == "id":
        return lambda pair, _scores: pair.id.casefold()
    if name == "include":
        return lambda pair, _scores: 0 if pair.include else 1
    if name == "flags":
        return lambda _pair, scores: None if scores is None else len(flags_of(scores))
    return lambda _pair, scores: None if scores is None else number(getattr(scores, name, None))


def arrange(pairs: Sequence[Any], scores: Mapping[str, Any], query: GridQuery) -> list[int]:
    """The indices of ``pairs`` to show for ``query``, in order (see the module docstring)."""
    text = query.text.strip().casefold()
    shown: list[int] = []
    for index, pair in enumerate(pairs):
        if query.include == "included" and not pair.include:
            continue
        if query.include == "excluded" and pair.include:
            continue
        if query.flag != ALL_PAIRS:
            codes = {flag_code(f) for f in flags_of(scores.get(pair.id))}
            if query.flag == FLAGGED and not codes:
                continue
            if query.flag == UNFLAGGED and (codes or pair.id not in scores):
                continue
            if query.flag not in (FLAGGED, UNFLAGGED) and query.flag not in codes:
                continue
        if text and text not in _text_of(pair):
            continue
        shown.append(index)
    value = _sort_value(query.sort)
    keyed = [(value(pairs[i], scores.get(pairs[i].id)), i) for i in shown]
    present = [(k, i) for k, i in keyed if k is not None]
    missing = [i for k, i in keyed if k is None]
    present.sort(key=lambda item: (item[0], pairs[item[1]].id), reverse=query.descending)
    return [i for _k, i in present] + missing


def worst_first(name: str) -> bool:
    """The direction that puts the worst pairs first for a score: descending, except for SSIM."""
    return name not in LOWER_IS_WORSE and name not in ("id", "include")
