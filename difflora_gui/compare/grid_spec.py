"""What a grid is: a base preview request and up to three axes, each changing one thing.

Axis kinds (:data:`AXIS_KINDS`):

- ``strength``: the target LoRA's strength (a list ``-1,0,1`` or a range ``-3:3:1``);
- ``strength_high`` / ``strength_low``: the target's strength on one Wan2.2 expert;
- ``seed``: the seed (``1,2,3`` or ``1:4:1``);
- ``variant``: the target LoRA's file (several merges, or the checkpoints of one run);
- ``blocks``: a block-weight preset (``first third``, ``ramp up`` …) or a selector
  (``attn blocks=0-9@1``), applied to the target entry;
- ``prompt``: the prompt.

The first axis runs along the columns, the second down the rows, the third splits the rows into
groups (a row is then one value of the second axis within one value of the third). Cells render
with the expensive axis outermost (a LoRA file change costs a load; a strength change costs
nothing), so :meth:`GridSpec.cells` is in render order; :meth:`GridCell.row` / ``col`` say where
each one sits. Qt-free, plain data (JSON round trip).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.preview.request import PreviewRequest

AXIS_KINDS = ("strength", "seed", "variant", "blocks", "prompt", "strength_high", "strength_low")
AXIS_TITLES = {
    "strength": "strength",
    "seed": "seed",
    "variant": "LoRA",
    "blocks": "blocks",
    "prompt": "prompt",
    "strength_high": "high-noise strength",
    "strength_low": "low-noise strength",
}
#: render order: the axis with the highest cost is the outer loop (a LoRA load, then a text encode)
AXIS_COST = {"variant": 4, "prompt": 3, "blocks": 2, "seed": 1}
#: at most this many cells in one grid (a 9 × 9 × 3 grid of 81-frame clips is already hours of GPU)
MAX_CELLS = 243
MAX_AXES = 3
LAYOUTS = ("horizontal", "vertical")
_NUMBER_KINDS = ("strength", "strength_high", "strength_low")
_RANGE_RE = re.compile(r"^\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*$")


def parse_numbers(text: str, *, integers: bool = False, what: str = "value") -> tuple:
    """``"-3:3:1"`` (start:stop:step, stop included) or ``"-1, 0, 0.5"`` → a tuple of numbers."""
    text = str(text).strip()
    if not text:
        raise UserError(f"no {what}s given: write a list like 1,2,3 or a range like -3:3:1")
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        match = _RANGE_RE.match(part)
        if match:
            start, stop, step = (_number(g, what) for g in match.groups())
            if step == 0 or (stop - start) * step < 0:
                raise UserError(f"bad {what} range {part!r}: the step must go from the start to the stop")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_CELLS:
                raise UserError(f"the {what} range {part!r} has {count} values; at most {MAX_CELLS}")
            values.extend(round(start + i * step, 10) for i in range(count))
        elif part:
            values.append(_number(part, what))
    if integers:
        if any(v != int(v) for v in values):
            raise UserError(f"{what}s must be whole numbers, got {text!r}")
        return tuple(int(v) for v in values)
    return tuple(float(v) + 0.0 for v in values)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"bad {what} {text!r}: not a number") from None
    if not math.isfinite(value):
        raise UserError(f"bad {what} {text!r}: must be a finite number")
    return value


def number_label(value: float) -> str:
    """``1.0`` → ``"1"``, ``-0.5`` → ``"-0.5"``, ``0.25`` → ``"0.25"`` (labels and sidecars)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def short_label(text: str) -> str:
    """A label without its axis names, for a band too narrow for the whole label:
    ``"strength -1"`` → ``"-1"``, ``"first third · seed 2"`` → ``"first third · 2"``."""
    titles = sorted(AXIS_TITLES.values(), key=len, reverse=True)
    parts = []
    for part in text.split(" · "):
        for title in titles:
            if part.startswith(title + " "):
                part = part[len(title) + 1 :]
                break
        parts.append(part)
    return " · ".join(parts)


@dataclass(frozen=True)
class Axis:
    """One axis: its kind and its values (numbers, seeds, files, selectors or prompts)."""

    kind: str
    values: tuple
    #: display labels, one per value; empty: made from the values
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in AXIS_KINDS:
            raise UserError(f"unknown grid axis {self.kind!r}; known: {', '.join(AXIS_KINDS)}")
        values = tuple(self.values)
        if not values:
            raise UserError(f"the {self.kind} axis has no values")
        if self.kind in _NUMBER_KINDS:
            values = tuple(float(_number(str(v), self.kind)) + 0.0 for v in values)
        elif self.kind == "seed":
            if any(isinstance(v, bool) or int(v) != v or int(v) < 0 for v in values):
                raise UserError(f"seeds must be whole numbers ≥ 0, got {list(values)}")
            values = tuple(int(v) for v in values)
        else:
            values = tuple(str(v) for v in values)
            if any(not v.strip() for v in values):
                raise UserError(f"the {self.kind} axis has an empty value")
        if len(set(values)) != len(values):
            raise UserError(f"the {self.kind} axis repeats a value: {list(values)}")
        object.__setattr__(self, "values", values)
        labels = tuple(str(x) for x in self.labels)
        if labels and len(labels) != len(values):
            raise UserError(f"the {self.kind} axis has {len(values)} values but {len(labels)} labels")
        object.__setattr__(self, "labels", labels)

    @classmethod
    def parse(cls, kind: str, text: str | Sequence[str]) -> Axis:
        """An axis from the text a user types (CLI flag or form field): numbers and seeds as a
        list or range, files and prompts as a sequence (or one ``|``-separated string)."""
        if kind in _NUMBER_KINDS:
            return cls(kind, parse_numbers(str(text), what=AXIS_TITLES[kind]))
        if kind == "seed":
            return cls(kind, parse_numbers(str(text), integers=True, what="seed"))
        items = [text] if isinstance(text, str) else list(text)
        if isinstance(text, str) and "|" in text:
            items = text.split("|")
        return cls(kind, tuple(item.strip() for item in items if str(item).strip()))

    def label(self, index: int) -> str:
        """The label of value ``index``: ``"strength 1.5"``, ``"seed 2"``, a file's stem …"""
        if self.labels:
            return self.labels[index]
        value = self.values[index]
        if self.kind in _NUMBER_KINDS:
            return f"{AXIS_TITLES[self.kind]} {number_label(value)}"
        if self.kind == "seed":
            return f"seed {value}"
        if self.kind == "variant":
            return Path(value).stem
        return str(value)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "values": list(self.values)}
        if self.labels:
            data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Axis:
        if not isinstance(data, Mapping) or "kind" not in data or "values" not in data:
            raise UserError("a grid axis must be an object with 'kind' and 'values'")
        return cls(str(data["kind"]), tuple(data["values"]), tuple(data.get("labels", ())))


@dataclass(frozen=True)
class GridCell:
    """One cell: its value index on each axis, where it sits, its labels and its request."""

    index: tuple[int, ...]
    row: int
    col: int
    labels: tuple[str, ...]
    request: PreviewRequest

    @property
    def name(self) -> str:
        """A file-name-safe id, ``r0c3``."""
        return f"r{self.row}c{self.col}"


@dataclass(frozen=True)
class GridSpec:
    """A base request, the axes, and which LoRA entry of the stack the LoRA axes change.

    ``target``: the index in ``base.loras`` of the slider LoRA (strength, variant, blocks and
    per-expert strength axes change that entry; the others — accelerators, styles — stay).
    ``num_blocks``: the model's block count, to turn a block preset into block weights.
    """

    base: PreviewRequest
    axes: tuple[Axis, ...]
    target: int = 0
    num_blocks: int | None = None

    def __post_init__(self):
        if isinstance(self.base, Mapping):
            object.__setattr__(self, "base", PreviewRequest.from_json(self.base))
        axes = tuple(a if isinstance(a, Axis) else Axis.from_json(a) for a in self.axes)
        object.__setattr__(self, "axes", axes)
        if not 1 <= len(axes) <= MAX_AXES:
            raise UserError(f"a grid has one to {MAX_AXES} axes, not {len(axes)}")
        kinds = [a.kind for a in axes]
        if len(set(kinds)) != len(kinds):
            raise UserError(f"two grid axes change the same thing: {', '.join(kinds)}")
        if "strength" in kinds and {"strength_high", "strength_low"} & set(kinds):
            raise UserError("a strength axis and a per-expert strength axis cannot be combined")
        lora_axes = [k for k in kinds if k in ("strength", "variant", "blocks", *_NUMBER_KINDS)]
        if lora_axes and not 0 <= self.target < len(self.base.loras):
            raise UserError(
                f"the {lora_axes[0]} axis needs a LoRA to change: add one (the stack has "
                f"{len(self.base.loras)} entries, the target is entry {self.target + 1})"
            )
        if "blocks" in kinds:
            for value in axes[kinds.index("blocks")].values:
                _block_selector(value, self.base.loras[self.target].selector, self.num_blocks)
        if self.count > MAX_CELLS:
            raise UserError(f"the grid has {self.count} cells; at most {MAX_CELLS}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def columns(self) -> int:
        """Columns in the horizontal layout (the first axis)."""
        return self.shape[0]

    @property
    def rows(self) -> int:
        """Rows in the horizontal layout (the second axis times the third)."""
        return math.prod(self.shape[1:]) if len(self.shape) > 1 else 1

    def column_labels(self) -> list[str]:
        return [self.axes[0].label(i) for i in range(self.columns)]

    def row_labels(self) -> list[str]:
        """One label per row: the second axis's value, after the third's (``"seed 1 · lora_b"``)."""
        if len(self.axes) == 1:
            return [""]
        labels = []
        for z in range(self.shape[2] if len(self.axes) > 2 else 1):
            for y in range(self.shape[1]):
                parts = [self.axes[2].label(z)] if len(self.axes) > 2 else []
                labels.append(" · ".join([*parts, self.axes[1].label(y)]))
        return labels

    def position(self, index: Sequence[int]) -> tuple[int, int]:
        """(row, col) of the cell with value indices ``index`` in the horizontal layout."""
        col = index[0]
        row = 0
        if len(index) > 1:
            row = index[1] + (index[2] * self.shape[1] if len(index) > 2 else 0)
        return row, col

    def render_order(self) -> list[int]:
        """Axis numbers from the outer loop to the inner: the most expensive change outermost."""
        return sorted(range(len(self.axes)), key=lambda a: (-AXIS_COST.get(self.axes[a].kind, 0), a))

    def cells(self) -> list[GridCell]:
        """Every cell, in render order."""
        order = self.render_order()
        found = []
        for combo in itertools.product(*(range(self.shape[a]) for a in order)):
            index = [0] * len(self.axes)
            for axis, value in zip(order, combo, strict=True):
                index[axis] = value
            row, col = self.position(index)
            labels = tuple(self.axes[a].label(i) for a, i in enumerate(index))
            found.append(GridCell(tuple(index), row, col, labels, self.request_for(index)))
        return found

    def cell_at(self, row: int, col: int) -> GridCell:
        for cell in self.cells():
            if (cell.row, cell.col) == (row, col):
                return cell
        raise IndexError(f"no cell at row {row}, column {col}")

    def request_for(self, index: Sequence[int]) -> PreviewRequest:
        """The base request with each axis's value ``index[a]`` applied."""
        request = self.base
        loras = list(request.loras)
        changes: dict[str, Any] = {}
        for axis, i in zip(self.axes, index, strict=True):
            value = axis.values[i]
            if axis.kind == "seed":
                changes["seed"] = value
            elif axis.kind == "prompt":
                changes["prompt"] = value
            else:
                entry = loras[self.target]
                if axis.kind in _NUMBER_KINDS:
                    entry = dataclasses.replace(entry, **{axis.kind: value})
                elif axis.kind == "variant":
                    entry = dataclasses.replace(entry, file=value, sha256="")
                else:  # blocks
                    selector = _block_selector(value, entry.selector, self.num_blocks)
                    entry = dataclasses.replace(entry, selector=selector)
                loras[self.target] = entry
        return request.replace(loras=tuple(loras), **changes)

    def zero_strength_cell(self, cell: GridCell) -> GridCell | None:
        """The cell with the same other values at strength 0 (the difference view's reference)."""
        for a, axis in enumerate(self.axes):
            if axis.kind in _NUMBER_KINDS and 0.0 in axis.values:
                index = list(cell.index)
                index[a] = axis.values.index(0.0)
                row, col = self.position(index)
                return self.cell_at(row, col)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base.to_json(),
            "axes": [a.to_json() for a in self.axes],
            "target": self.target,
            "num_blocks": self.num_blocks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GridSpec:
        if not isinstance(data, Mapping):
            raise UserError("a grid spec must be a JSON object")
        unknown = sorted(set(data) - {"base", "axes", "target", "num_blocks"})
        if unknown:
            raise UserError(f"unknown grid spec field(s): {', '.join(unknown)}")
        return cls(
            PreviewRequest.from_json(data.get("base", {})),
            tuple(Axis.from_json(a) for a in data.get("axes", ())),
            int(data.get("target", 0)),
            data.get("num_blocks"),
        )


def _block_selector(value: str, base_selector: str, num_blocks: int | None) -> str:
    """A ``blocks`` axis value as the entry's selector: a preset name keeps the base selector's
    layer groups and include/exclude terms and replaces its blocks; anything else is a selector."""
    from difflora_gui.lora.block_weights import PRESETS, preset_weights, weights_to_text
    from difflora_gui.lora.selector import parse_selector

    if value.strip().lower() in PRESETS:
        if not num_blocks:
            raise UserError(f"the block preset {value!r} needs the model's block count (choose a model)")
        text = weights_to_text(preset_weights(value, num_blocks))
        kept = [
            term
            for term in re.split(r"[\s;]+", base_selector.strip())
            if term and not term.startswith("blocks=") and not re.match(r"^[\d,@.\-]+$", term)
        ]
        selector = " ".join([*kept, f"blocks={text}"]) if text else "exclude=."
    else:
        selector = value.strip()
    parse_selector(selector)  # a bad selector is bad input now, not in the middle of a grid
    return selector
