"""The line an input card shows about which Wan2.2 expert its file is for, and why (no widgets here).

What the file says comes first (key prefixes, name, metadata: :func:`~difflora_gui.merge.input_slots.role_of`),
then how the slot uses it: one expert of a combo file, a joint file for both experts, a partner
found beside the other expert's file, or the user's override.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.merge.input_checks import WARNING, Issue
from difflora_gui.merge.input_slots import (
    OVERRIDE_TITLES,
    expert_of,
    role_reason,
    side_of,
    slot_of,
    slot_title,
)

_PART_PREFIX = {"high": "transformer_1", "low": "transformer_2"}


def role_line(box, slot: str, path: Path) -> tuple[str, str]:
    """(text, tooltip) for the card of ``slot`` holding ``path`` in the inputs ``box``."""
    detected = box._role(path)
    tooltip = detected.text
    side, expert = side_of(slot), expert_of(slot)
    override = box.overrides.get((side, path))
    if expert is None:
        if detected.role == "both" and detected.source == "none":
            return "one model, or one file for both experts (no expert named)", tooltip
        return role_reason(detected), tooltip
    joint = box.slots[slot_of(side, "high")] == box.slots[slot_of(side, "low")] == path
    if override is not None:
        text = f"{OVERRIDE_TITLES[override]} (your choice); the file: {role_reason(detected)}"
    elif detected.role == "combo":
        text = f"combo file: its {expert}-noise part ({_PART_PREFIX[expert]} keys)"
    elif joint:
        text = "joint file, used for both experts"
        if detected.source != "none":
            text += f" ({role_reason(detected)})"
    else:
        text = role_reason(detected)
        filler = box.filled_by.get(slot)
        if filler and box.slots.get(filler) is not None and detected.role == expert and expert_of(filler):
            text += f"; found beside the {expert_of(filler)}-noise file"
        if detected.role in ("high", "low") and detected.role != expert:
            text += f", used here for the {expert}-noise expert"
        elif detected.role == "both":
            text = f"no expert named: used for the {expert}-noise expert"
    return text, tooltip


def misplaced_issues(box) -> list[Issue]:
    """A file in the other expert's slot that the user did not say is for this one."""
    issues = []
    for slot in box.active_slots():
        path = box.slots[slot]
        if path is None or (side_of(slot), path) in box.overrides:
            continue
        role = box._role(path).role
        if role in ("high", "low") and role != expert_of(slot):
            issues.append(
                Issue(
                    WARNING,
                    f"{slot_title(slot)}: {path.name} is for the {role}-noise expert (set its card's "
                    f"expert to {OVERRIDE_TITLES[expert_of(slot)]} if that is meant)",
                )
            )
    return issues
