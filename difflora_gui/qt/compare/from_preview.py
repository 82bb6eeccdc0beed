"""Fill the Compare section from the Preview's stack and render settings (issue 16's demo path).

The Preview's "Strength grid…" hands over its LoRA stack, the selected entry and its render form;
Compare (:meth:`~.panel.ComparePanel.take_settings`) takes them as one change of its project
section. Axes the user already set stay; empty
ones become the strength sweep ``-2:2:1`` along the columns × the Preview's seed and the next one
down the rows (``5 strengths × 2 seeds = 10 cells``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from difflora_gui.qt.preview.lora_stack import items_to_json
from difflora_gui.qt.preview.render_form import DEFAULTS, SEED_MAX

DEFAULT_STRENGTHS = "-2:2:1"


def default_axes(seed: int) -> dict[str, Any]:
    """The axes state for strengths ``-2:2:1`` (columns) × seeds ``seed, seed+1`` (rows)."""
    second = seed + 1 if seed < SEED_MAX else seed - 1  # the next seed, still a valid one
    return {
        "0": {"kind": "strength", "texts": {"strength": DEFAULT_STRENGTHS}},
        "1": {"kind": "seed", "texts": {"seed": f"{seed},{second}"}},
        "2": {"kind": ""},
    }


def state_from_preview(
    current: Mapping[str, Any],
    axes_empty: bool,
    stack_items: Sequence,
    selected: int,
    form: Mapping[str, Any],
) -> dict[str, Any]:
    """Compare's section state ``current`` with the Preview's stack, selected entry and form; the
    default axes in place of ``current``'s when ``axes_empty`` (no row has a kind)."""
    form = {**DEFAULTS, **dict(form)}
    state = {**current, "form": form, "stack": items_to_json(list(stack_items)), "selected": int(selected)}
    if axes_empty:
        state["axes"] = default_axes(int(form.get("seed", 0) or 0))
    return state
