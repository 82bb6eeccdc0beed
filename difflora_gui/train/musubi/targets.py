"""Our selector grammar as Musubi Tuner's ``--network_args`` include/exclude patterns.

Musubi's Wan LoRA (``networks.lora_wan``) targets every Linear layer inside the transformer
blocks: ``self_attn.{q,k,v,o}``, ``cross_attn.{q,k,v,o}`` (Wan2.1 I2V also ``k_img``, ``v_img``)
and ``ffn.{0,2}``. Its ``exclude_patterns`` / ``include_patterns`` are regexes ``fullmatch``ed
against the dotted module name (``blocks.3.ffn.0``); a module is left out when an exclude
pattern matches and no include pattern does.

So a selector becomes: the exact set of block layers it selects for the task, written as
``exclude_patterns=[r'.*']`` plus include patterns that fullmatch exactly that set (checked by
the tests against :meth:`Selector.matches` for every module). ``all`` (or any selector that
selects every block layer) needs no patterns. A selector Musubi cannot express is refused:
block weights (``@0.5`` is a merge setting, training cannot weight a block) and selectors that
select none of the block layers (Musubi never trains the embeddings, norms or head).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import ALL_GROUPS, parse_selector
from difflora_gui.lora.wan_layout import CROSS_ATTN_IMAGE, CROSS_ATTN_TEXT, FFN, OUTSIDE_LINEAR, SELF_ATTN
from difflora_gui.train.config import block_count

#: Wan2.1 I2V has the CLIP image cross-attention layers (Wan2.2 I2V has no CLIP)
CLIP_TASKS = ("i2v-14B",)


def block_layers(task: str) -> tuple[str, ...]:
    """The Linear layers of one block Musubi puts a LoRA on, for ``task``."""
    cross = CROSS_ATTN_TEXT + (CROSS_ATTN_IMAGE if task in CLIP_TASKS else ())
    return SELF_ATTN + cross + FFN


def musubi_modules(task: str) -> list[str]:
    """Every module name Musubi's Wan LoRA trains for ``task`` (dotted, as it matches them)."""
    return [f"blocks.{b}.{layer}" for b in range(block_count(task)) for layer in block_layers(task)]


@dataclass(frozen=True)
class NetworkTargets:
    """What ``targets`` means for Musubi: its ``--network_args`` items (none for everything),
    the modules trained, and the selected modules Musubi cannot train (outside the blocks)."""

    network_args: tuple[str, ...]
    modules: tuple[str, ...]
    not_trainable: tuple[str, ...] = ()


def _alternation(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _layers_regex(layers: tuple[str, ...]) -> str:
    """``self_attn.q, self_attn.k, ffn.0`` → ``(?:self_attn\\.(?:q|k)|ffn\\.0)``, grouping the
    modules that share the same leaf names (``(?:self_attn|cross_attn)\\.(?:q|k|v|o)``)."""
    leaves: dict[str, list[str]] = {}
    for layer in layers:
        module, _, leaf = layer.rpartition(".")
        leaves.setdefault(module, []).append(re.escape(leaf))
    by_leaves: dict[tuple[str, ...], list[str]] = {}
    for module, names in leaves.items():
        by_leaves.setdefault(tuple(names), []).append(re.escape(module))
    parts = [f"{_alternation(modules)}\\.{_alternation(list(names))}" for names, modules in by_leaves.items()]
    return _alternation(parts)


def include_patterns(task: str, modules: set[str]) -> list[str]:
    """Regexes that fullmatch exactly ``modules`` among :func:`musubi_modules` of ``task``."""
    layers = block_layers(task)
    count = block_count(task)
    per_block: dict[int, tuple[str, ...]] = {}
    for b in range(count):
        chosen = tuple(layer for layer in layers if f"blocks.{b}.{layer}" in modules)
        if chosen:
            per_block[b] = chosen
    groups: dict[tuple[str, ...], list[int]] = {}
    for b, chosen in per_block.items():
        groups.setdefault(chosen, []).append(b)
    patterns = []
    for chosen, blocks in groups.items():
        block_part = r"\d+" if len(blocks) == count else _alternation([str(b) for b in blocks])
        patterns.append(f"blocks\\.{block_part}\\.{_layers_regex(chosen)}")
    return patterns


def _python_list(patterns: list[str]) -> str:
    """A Python literal list of raw strings (Musubi ``ast.literal_eval``s it)."""
    for pattern in patterns:
        if "'" in pattern or pattern.endswith("\\") or "=" in pattern:
            raise ValueError(f"pattern {pattern!r} cannot be written as a network argument")
    return "[" + ", ".join(f"r'{p}'" for p in patterns) + "]"


def network_targets(task: str, targets: str) -> NetworkTargets:
    """Musubi's network arguments for the selector ``targets``; ``UserError`` when it cannot be
    expressed."""
    selector = parse_selector(targets)
    if selector.is_weighted:
        raise UserError(
            f"targets {targets!r} weight blocks (@): block weights are a merge setting, a LoRA is "
            "trained on a block or not; remove the weights"
        )
    every = musubi_modules(task)
    if selector.blocks_out_of_range(block_count(task)):
        missing = ",".join(str(b) for b in selector.blocks_out_of_range(block_count(task)))
        raise UserError(f"targets {targets!r}: {task} has {block_count(task)} blocks, not block(s) {missing}")
    chosen = [name for name in every if selector.matches(name)]
    # "all" means what the trainer trains; "other" named on its own asks for the modules outside
    outside = ()
    if selector.groups != ALL_GROUPS:
        outside = tuple(
            name
            for name in OUTSIDE_LINEAR
            if selector.matches(name) and (task in CLIP_TASKS or not name.startswith("img_emb"))
        )
    if not chosen:
        raise UserError(
            f"targets {targets!r} select none of the layers Musubi Tuner trains (self_attn, cross_attn "
            "and ffn inside the blocks); it never trains the embeddings, norms or head"
        )
    if len(chosen) == len(every):
        return NetworkTargets((), tuple(chosen), outside)
    patterns = include_patterns(task, set(chosen))
    args = ("exclude_patterns=" + _python_list([".*"]), "include_patterns=" + _python_list(patterns))
    return NetworkTargets(args, tuple(chosen), outside)
