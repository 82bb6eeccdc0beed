"""One grammar for choosing modules: merge targets, preview block toggles and export all use it.

A selector is a space- (or ``;``-) separated list of terms; see ``docs/selectors.md``::

    attn                          self- and cross-attention of every block
    ffn blocks=0-9                feed-forward layers of blocks 0..9
    attn 0-10,20,35-39            a bare range list means blocks=
    attn blocks=0-9@1,10-19@0.5   per-block weights: the merge scales each block's difference
    all exclude=k_img|v_img       everything but the image cross-attention
    self_attn include=\\.(q|k)$    only self_attn.q and self_attn.k

A module is selected when it is in one of the layer groups, in one of the blocks (modules outside
the blocks only when no blocks are named), matches one ``include=`` regex (if any) and matches no
``exclude=`` regex. Regexes are searched in the canonical name (``blocks.3.cross_attn.k_img``).

A block or range may carry a weight after ``@`` (no weight = 1; weight 0 = the block is left out,
exactly as if it were not named). Any finite number is a weight, negatives included; NaN and
infinities are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from difflora_gui.errors import UserError
from difflora_gui.lora.block_weights import (  # the block-weight grammar (re-exported here)
    BlockWeights,
    add_block_weights,
    check_block_index,
    checked_weights,
    format_block_weights,
    parse_block_weights,
    parse_weight,
    weight_text,
)
from difflora_gui.lora.wan_layout import GROUP_ALIASES, LAYER_GROUPS, block_index, layer_group

#: Group names in the order they are written back (``attn`` stands for both attention groups).
GROUP_ORDER = ("self_attn", "cross_attn", "ffn", "other")
ALL_GROUPS = frozenset(GROUP_ORDER)
GROUP_NAMES = ("attn", "self_attn", "cross_attn", "ffn", "other", "all")

_RANGE_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_blocks(text: str) -> frozenset[int]:
    """``"0-10,20,35-39"`` → the set of block indices."""
    text = text.strip().replace(" ", "")
    if not _RANGE_RE.match(text):
        raise UserError(f"bad block list {text!r}: use indices and ranges like 0-10,20,35-39")
    blocks: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise UserError(f"bad block range {part!r}: the end is before the start")
        check_block_index(hi)
        blocks.update(range(lo, hi + 1))
    return frozenset(blocks)


def format_blocks(blocks: Iterable[int]) -> str:
    """The shortest range text for a set of block indices: ``{0,1,2,5}`` → ``"0-2,5"``."""
    ordered = sorted(set(blocks))
    parts: list[str] = []
    start = prev = None
    for b in ordered:
        if start is None:
            start = prev = b
        elif b == prev + 1:
            prev = b
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = b
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def _compile(pattern: str, kind: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UserError(f"bad {kind} regular expression {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class Selector:
    """Which modules take part. Build it from text (:func:`parse_selector`) or from parts (GUI).

    ``groups``: layer groups (``self_attn``, ``cross_attn``, ``ffn``, ``other``); ``blocks``: block
    indices, or None for every block and the modules outside the blocks; ``include`` /
    ``exclude``: regular expressions searched in canonical module names; ``weights``: the blocks
    whose weight is not 1 (a merge scales their difference by it).

    Given ``weights``, a block at weight 0 is removed from ``blocks`` (0 means left out) and
    ``weights`` keeps only the weights that are not 1. Without ``blocks``, the weighted blocks are
    the blocks (so a full {block: weight} grid is a whole block selection); with ``blocks``, a
    weight for a block that is not in them is an error.
    """

    groups: frozenset[str] = ALL_GROUPS
    blocks: frozenset[int] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    weights: Mapping[int, float] = BlockWeights()
    _include_re: tuple[re.Pattern, ...] = field(default=(), init=False, repr=False, compare=False)
    _exclude_re: tuple[re.Pattern, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        groups = frozenset(self.groups)
        expanded: set[str] = set()
        for group in groups:
            if group in GROUP_ALIASES:
                expanded |= GROUP_ALIASES[group]
            elif group in LAYER_GROUPS:
                expanded.add(group)
            else:
                raise UserError(f"unknown layer group {group!r} (known: {', '.join(GROUP_NAMES)})")
        if not expanded:
            raise UserError("a selector needs at least one layer group")
        object.__setattr__(self, "groups", frozenset(expanded))
        weights = checked_weights(self.weights)
        blocks = self.blocks
        if blocks is None and weights:
            blocks = frozenset(weights)
        if blocks is not None:
            blocks = frozenset(int(b) for b in blocks)
            if any(b < 0 for b in blocks):
                raise UserError("block indices start at 0")
            stray = set(weights) - blocks
            if stray:
                raise UserError(
                    f"a weight is given for block(s) {format_blocks(stray)}, which are not selected"
                )
            zero = {b for b, w in weights.items() if w == 0}
            if blocks and blocks <= zero:
                raise UserError(
                    f"every block named ({format_blocks(blocks)}) has weight 0, which leaves it out: "
                    "nothing is selected"
                )
            blocks -= zero
            if not blocks:
                raise UserError("the block list is empty; leave it out to select every block")
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(
            self, "weights", BlockWeights((b, w) for b, w in weights.items() if w not in (0, 1))
        )
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "_include_re", tuple(_compile(p, "include") for p in self.include))
        object.__setattr__(self, "_exclude_re", tuple(_compile(p, "exclude") for p in self.exclude))

    @classmethod
    def from_parts(
        cls,
        groups: Iterable[str] = ("all",),
        blocks: Iterable[int] | str | None = None,
        include: Iterable[str] | str = (),
        exclude: Iterable[str] | str = (),
        weights: Mapping[int, float] | None = None,
    ) -> Selector:
        """Build from GUI controls.

        ``blocks``: a set of indices, or block text (``"0-9@0.5,10-19"``, weights allowed);
        ``weights``: {block: weight} (it wins over a weight in the block text). With ``weights``
        and no ``blocks``, the blocks are the weighted ones: a block grid passes its whole
        {block: weight} dict; weight 0 leaves a block out.
        """
        merged: dict[int, float] = {}
        if isinstance(blocks, str):
            merged = parse_block_weights(blocks) if blocks.strip() else {}
            blocks = frozenset(merged) if merged else None
        merged.update({int(b): w for b, w in (weights or {}).items()})
        include = (include,) if isinstance(include, str) else tuple(include)
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        return cls(
            groups=frozenset(groups),
            blocks=None if blocks is None else frozenset(blocks),
            include=tuple(p for p in include if p),
            exclude=tuple(p for p in exclude if p),
            weights=merged,
        )

    # --- weights ---------------------------------------------------------------------------------

    def block_weight(self, block: int) -> float:
        """The weight of a block: its ``@`` weight, 1 when no blocks are named, 0 when not selected."""
        if self.blocks is None:
            return 1.0
        if block not in self.blocks:
            return 0.0
        return self.weights.get(block, 1.0)

    def weight_of(self, name: str) -> float:
        """The weight of a module's block (1.0 for modules outside the blocks; see :meth:`block_weight`).

        It says nothing about groups or regexes: ask :meth:`matches` whether the module is selected.
        """
        block = block_index(name)
        return 1.0 if block is None else self.block_weight(block)

    @property
    def is_weighted(self) -> bool:
        """Whether any selected block has a weight other than 1."""
        return bool(self.weights)

    def blocks_out_of_range(self, num_blocks: int) -> list[int]:
        """The named blocks a model of ``num_blocks`` blocks does not have (they select nothing)."""
        return sorted(b for b in self.blocks or () if b >= num_blocks)

    # --- matching --------------------------------------------------------------------------------

    def _in_groups(self, name: str) -> bool:
        return layer_group(name) in self.groups

    def _in_blocks(self, name: str) -> bool:
        if self.blocks is None:
            return True
        block = block_index(name)
        return block is not None and block in self.blocks

    def _included(self, name: str) -> bool:
        return not self._include_re or any(r.search(name) for r in self._include_re)

    def _excluded(self, name: str) -> bool:
        return any(r.search(name) for r in self._exclude_re)

    def matches(self, name: str) -> bool:
        return (
            self._in_groups(name)
            and self._in_blocks(name)
            and self._included(name)
            and not self._excluded(name)
        )

    def select(self, names: Iterable[str]) -> list[str]:
        """The matching names, in the given order; an empty result is a UserError saying why."""
        names = list(names)
        chosen = [n for n in names if self.matches(n)]
        if not chosen:
            raise UserError(f"selector '{self}' selects nothing: {self._why_empty(names)}")
        return chosen

    def _why_empty(self, names: list[str]) -> str:
        if not names:
            return "there are no modules to choose from"
        present_groups = {layer_group(n) for n in names}
        stage = [n for n in names if self._in_groups(n)]
        if not stage:
            return (
                f"none of the {len(names)} modules is in {_groups_text(self.groups)} "
                f"(present: {_groups_text(present_groups)})"
            )
        blocks_present = {b for b in (block_index(n) for n in stage) if b is not None}
        after_blocks = [n for n in stage if self._in_blocks(n)]
        if not after_blocks:
            where = f"blocks {format_blocks(blocks_present)}" if blocks_present else "no blocks"
            return f"blocks {format_blocks(self.blocks or ())} are not present ({_groups_text(self.groups)} has {where})"
        after_include = [n for n in after_blocks if self._included(n)]
        if not after_include:
            return (
                f"include={'|'.join(self.include)} matches none of the {len(after_blocks)} modules "
                f"chosen by groups and blocks (e.g. {after_blocks[0]})"
            )
        return f"exclude={'|'.join(self.exclude)} removes all {len(after_include)} modules that were chosen"

    # --- text ------------------------------------------------------------------------------------

    def to_text(self) -> str:
        """Normalised selector text; ``parse_selector(s.to_text()) == s``."""
        parts = [_groups_text(self.groups)]
        if self.blocks is not None:
            parts.append(f"blocks={format_block_weights({b: self.block_weight(b) for b in self.blocks})}")
        parts += [f"include={p}" for p in self.include]
        parts += [f"exclude={p}" for p in self.exclude]
        return " ".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    @property
    def is_everything(self) -> bool:
        return self.groups == ALL_GROUPS and self.blocks is None and not self.include and not self.exclude

    def describe(self) -> str:
        """A sentence for tooltips and logs."""
        what = ", ".join(LAYER_GROUPS[g] for g in GROUP_ORDER if g in self.groups)
        where = "every block" if self.blocks is None else f"blocks {format_blocks(self.blocks)}"
        text = f"{what} in {where}"
        if self.weights:
            weighted = format_block_weights(self.weights).replace(",", ", ").replace("@", " ×")
            text += f", weighted {weighted} (the rest ×1)"
        if self.include:
            text += f"; only names matching {' or '.join(self.include)}"
        if self.exclude:
            text += f"; not names matching {' or '.join(self.exclude)}"
        return text


def _groups_text(groups: Iterable[str]) -> str:
    groups = frozenset(groups)
    if groups == ALL_GROUPS:
        return "all"
    words = []
    if {"self_attn", "cross_attn"} <= groups:
        words.append("attn")
        rest = [g for g in GROUP_ORDER if g in groups and g not in ("self_attn", "cross_attn")]
    else:
        rest = [g for g in GROUP_ORDER if g in groups]
    return ",".join(words + rest)


__all__ = [
    "EVERYTHING",
    "BlockWeights",
    "Selector",
    "add_block_weights",
    "format_block_weights",
    "format_blocks",
    "parse_block_weights",
    "parse_blocks",
    "parse_selector",
    "parse_weight",
    "weight_text",
]

EVERYTHING = Selector()


def parse_selector(text: str | Selector | None) -> Selector:
    """Parse selector text (see the module docstring); empty text selects everything."""
    if isinstance(text, Selector):
        return text
    text = (text or "").strip()
    groups: set[str] = set()
    blocks: dict[int, float] | None = None  # every block named, with its weight
    include: list[str] = []
    exclude: list[str] = []
    for term in re.split(r"[\s;]+", text):
        if not term:
            continue
        key, sep, value = term.partition("=")
        key = key.lower()
        try:
            if sep and key in ("blocks", "block"):
                blocks = {} if blocks is None else blocks
                add_block_weights(blocks, parse_block_weights(value))
            elif sep and key == "include":
                include.append(value)
            elif sep and key == "exclude":
                exclude.append(value)
            elif sep:
                raise UserError(f"unknown term {key!r} (use blocks=, include= or exclude=)")
            elif term[0].isdigit():
                blocks = {} if blocks is None else blocks
                add_block_weights(blocks, parse_block_weights(term))
            else:
                for group in term.lower().split(","):
                    if group not in GROUP_NAMES:
                        raise UserError(f"unknown layer group {group!r} (known: {', '.join(GROUP_NAMES)})")
                    groups.add(group)
        except UserError as exc:
            raise UserError(f"bad selector {text!r}: {exc}") from None
    for kind, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns:
            if not pattern:
                raise UserError(f"bad selector {text!r}: {kind}= needs a regular expression")
    try:
        return Selector(
            groups=frozenset(groups or {"all"}),
            blocks=None if blocks is None else frozenset(blocks),
            include=tuple(include),
            exclude=tuple(exclude),
            weights=blocks or {},
        )
    except UserError as exc:
        raise UserError(f"bad selector {text!r}: {exc}") from None
