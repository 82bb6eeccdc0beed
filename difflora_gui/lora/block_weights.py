"""Float block weights: their text (``0-9@0.5,10-19``), presets, and grid ⇄ selector helpers (Qt-free).

The grammar of a weighted block list lives here and :mod:`difflora_gui.lora.selector` uses it
(and re-exports it): a block or range may carry a weight after ``@``; no weight = 1; weight 0 =
the block is left out; any finite number is a weight (negatives flip a block's difference), NaN
and infinities are refused; one block with two different weights is an error naming it.

The workbench's block grid shows one weight per block of the model (0 = left out, 1 = as is); it
fills itself from a preset or from selector text and writes selector text back, in the grammar of
:mod:`difflora_gui.lora.selector` (``attn blocks=0-9@0.5,10-19``). A grid is a full dict: every
block ``0..num_blocks-1`` has a weight, weight-0 blocks included.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from difflora_gui.errors import UserError

if TYPE_CHECKING:
    from difflora_gui.lora.selector import Selector

#: the highest block index text may name: Wan has 30-40 blocks; a typo such as 0-100000000 must
#: be an error, not a billion-entry set (the GUI parses the selector text on every keystroke)
MAX_BLOCK_INDEX = 9999

_ONE_RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")
# a plain decimal number: float() alone would also take "nan", "inf" and "1_000"
_WEIGHT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_weight(text: str, where: str = "") -> float:
    """A block weight: any finite decimal number (``0.5``, ``-1``, ``1e-3``); NaN/inf are refused."""
    text = text.strip()
    context = f" in {where!r}" if where else ""
    if not _WEIGHT_RE.match(text):
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise UserError(f"block weight {text!r}{context} must be a finite number")
        raise UserError(f"bad block weight {text!r}{context}: use a number like 0.5 (after @)")
    weight = float(text)
    if not math.isfinite(weight):
        raise UserError(f"block weight {text!r}{context} must be a finite number")
    return weight + 0.0  # -0.0 → 0.0


def weight_text(weight: float) -> str:
    """The shortest text that parses back to ``weight``: ``0.5``, ``2``, ``-1``, ``1e-05``."""
    text = repr(float(weight) + 0.0)
    return text[:-2] if text.endswith(".0") else text


def parse_block_weights(text: str) -> dict[int, float]:
    """``"0-9@0.5,10-19,20@0"`` → {block: weight} for every block named (weight 0 included).

    The same block named twice with different weights is an error naming the block.
    """
    text = text.strip().replace(" ", "")
    weights: dict[int, float] = {}
    for part in text.split(","):
        blocks_text, at, weight_part = part.partition("@")
        found = _ONE_RANGE_RE.match(blocks_text)
        if not found:
            raise UserError(
                f"bad block list {text!r}: use indices and ranges like 0-10,20,35-39, each with an "
                "optional weight such as 0-9@0.5"
            )
        lo, hi = int(found.group(1)), int(found.group(2) or found.group(1))
        if hi < lo:
            raise UserError(f"bad block range {blocks_text!r}: the end is before the start")
        check_block_index(hi)
        weight = parse_weight(weight_part, part) if at else 1.0
        add_block_weights(weights, dict.fromkeys(range(lo, hi + 1), weight))
    return dict(sorted(weights.items()))


def check_block_index(block: int) -> None:
    if block > MAX_BLOCK_INDEX:
        raise UserError(f"block {block} is out of reach: block indices go up to {MAX_BLOCK_INDEX}")


def add_block_weights(into: dict[int, float], more: Mapping[int, float]) -> None:
    """Add ``more`` to ``into``; a block already there with another weight is an error naming it."""
    for block, weight in more.items():
        old = into.get(block)
        if old is not None and old != weight:
            raise UserError(
                f"block {block} is given two weights ({weight_text(old)} and {weight_text(weight)}); "
                "name each block once"
            )
        into[block] = weight


def format_block_weights(weights: Mapping[int, float]) -> str:
    """The shortest block text for {block: weight}: runs of consecutive blocks with one weight become
    ranges, weight 1 is not written, weight-0 blocks are left out (that is what 0 means):
    ``{0: .5, 1: .5, 2: 1, 3: 0, 4: 2}`` → ``"0-1@0.5,2,4@2"``."""
    parts: list[str] = []
    run: list[int] = []  # [first, last] of the current run
    run_weight = None

    def flush():
        if run:
            blocks = str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}"
            parts.append(blocks if run_weight == 1 else f"{blocks}@{weight_text(run_weight)}")

    for block, weight in sorted((int(b), float(w)) for b, w in weights.items()):
        if weight == 0:
            continue
        if run and block == run[1] + 1 and weight == run_weight:
            run[1] = block
            continue
        flush()
        run, run_weight = [block, block], weight
    flush()
    return ",".join(parts)


class BlockWeights(Mapping[int, float]):
    """A read-only, hashable {block: weight} mapping (equal to a dict with the same items)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[int, float] | Iterable[tuple[int, float]] = ()):
        self._items = dict(sorted(dict(items).items()))

    def __getitem__(self, block: int) -> float:
        return self._items[block]

    def __iter__(self) -> Iterator[int]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"BlockWeights({self._items!r})"


def checked_weights(weights: Mapping[int, float] | None) -> dict[int, float]:
    """{block: weight} with int blocks ≥ 0 and finite float weights (-0.0 → 0.0), or a UserError."""
    checked: dict[int, float] = {}
    for block, weight in (weights or {}).items():
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise UserError(f"the weight of block {block} is {weight!r}, not a number")
        if not math.isfinite(weight):
            raise UserError(f"the weight of block {block} is {weight}: a weight must be a finite number")
        if int(block) < 0:
            raise UserError("block indices start at 0")
        checked[int(block)] = float(weight) + 0.0
    return checked


# --- presets ---------------------------------------------------------------------------------

#: decimals the ramps are rounded to: short selector text, and neighbours that round alike merge
RAMP_DECIMALS = 2


def _flat(n: int) -> dict[int, float]:
    return dict.fromkeys(range(n), 1.0)


def _ramp_up(n: int) -> dict[int, float]:
    # (b+1)/n: the last block at 1, the first small but still merged (0 would leave it out)
    return {b: round((b + 1) / n, RAMP_DECIMALS) or 10**-RAMP_DECIMALS for b in range(n)}


def _ramp_down(n: int) -> dict[int, float]:
    return {b: w for b, w in zip(range(n), reversed(list(_ramp_up(n).values())), strict=True)}


def third_bounds(n: int, third: int) -> range:
    """Blocks of the first (0), middle (1) or last (2) third; never empty (tiny models overlap)."""
    start = math.floor(third * n / 3)
    end = max(start + 1, math.floor((third + 1) * n / 3))
    return range(min(start, n - 1), min(end, n))


def _third(third: int) -> Callable[[int], dict[int, float]]:
    def weights(n: int) -> dict[int, float]:
        chosen = third_bounds(n, third)
        return {b: 1.0 if b in chosen else 0.0 for b in range(n)}

    return weights


_PRESETS: dict[str, Callable[[int], dict[int, float]]] = {
    "flat": _flat,
    "ramp up": _ramp_up,
    "ramp down": _ramp_down,
    "first third": _third(0),
    "middle third": _third(1),
    "last third": _third(2),
}

#: preset names, in the order a menu shows them
PRESETS: tuple[str, ...] = tuple(_PRESETS)

PRESET_DESCRIPTIONS = {
    "flat": "every block at 1",
    "ramp up": "from near 0 at the first block to 1 at the last",
    "ramp down": "from 1 at the first block to near 0 at the last",
    "first third": "the first third of the blocks at 1, the rest left out",
    "middle third": "the middle third of the blocks at 1, the rest left out",
    "last third": "the last third of the blocks at 1, the rest left out",
}


def preset_weights(name: str, num_blocks: int) -> dict[int, float]:
    """The weights of a preset for a model of ``num_blocks`` blocks: {block: weight} for every block."""
    preset = _PRESETS.get(name.strip().lower())
    if preset is None:
        raise UserError(f"unknown block weight preset {name!r} (known: {', '.join(PRESETS)})")
    if num_blocks < 1:
        raise UserError(f"a block weight preset needs at least one block, not {num_blocks}")
    return preset(int(num_blocks))


def weights_to_text(weights: Mapping[int, float]) -> str:
    """Block text for a grid: ``{0: .5, 1: .5, 2: 1, 3: 0}`` → ``"0-1@0.5,2"`` (0 = left out).

    An empty string when every weight is 0 (then nothing would be selected).
    """
    return format_block_weights(weights)


def weights_from_text(text: str, num_blocks: int) -> dict[int, float]:
    """A grid from block text (``"0-9@0.5,12"``): blocks not named are 0; empty text = every block at 1."""
    if not text.strip():
        return _flat(num_blocks)
    named = parse_block_weights(text)
    return {b: named.get(b, 0.0) for b in range(num_blocks)}


def weights_from_selector(selector: str | Selector, num_blocks: int) -> dict[int, float]:
    """A grid from a selector: each block's weight (1 everywhere when it names no blocks).

    Blocks the selector names beyond ``num_blocks`` are not in the grid
    (:meth:`Selector.blocks_out_of_range` lists them).
    """
    from difflora_gui.lora.selector import parse_selector

    selector = parse_selector(selector)
    return {b: selector.block_weight(b) for b in range(num_blocks)}


def selector_with_weights(
    selector: str | Selector, weights: Mapping[int, float], *, num_blocks: int | None = None
) -> Selector:
    """The selector with its blocks and weights replaced by a grid's (groups, include, exclude kept).

    With ``num_blocks``, a grid of every block at weight 1 gives the plain every-block selector
    (no ``blocks=``, so the modules outside the blocks count too), as the on/off grid does today.
    """
    from difflora_gui.lora.selector import Selector, parse_selector

    selector = parse_selector(selector)
    grid = {int(b): float(w) for b, w in weights.items()}
    every_block = num_blocks is not None and all(grid.get(b) == 1.0 for b in range(num_blocks))
    if every_block and all(w == 1.0 for w in grid.values()):
        return Selector(selector.groups, None, selector.include, selector.exclude)
    return Selector(selector.groups, None, selector.include, selector.exclude, weights=grid)
