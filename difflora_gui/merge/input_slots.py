"""The Merge workbench's input slots and what each input file is for (Qt-free).

A one-model merge (Wan2.1, TI2V-5B, a Musubi joint pair) has two slots, ``a`` and ``b``. A Wan2.2
A14B merge has one slot per side and expert: ``a_high``, ``a_low``, ``b_high``, ``b_low``. A file
can fill both slots of its side: a joint file (one LoRA for both experts) or a combo file (both
experts in one file, ``transformer_1``/``transformer_2`` key prefixes; each slot then uses its
expert's part). The slots map one to one to :class:`~difflora_gui.merge.params.MergeParams`
fields (``lora_a`` … ``lora_b_low``); :func:`role_of` says what a file is for, from its summary
when it has been read, else from its name (never from shapes).
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.lora.experts import EXPERT_TITLES, EXPERTS, ExpertRole, expert_from_name, resolve_role

SIDES = ("a", "b")
EXPERT_SLOTS = ("a_high", "a_low", "b_high", "b_low")
SLOTS = SIDES + EXPERT_SLOTS
#: the user's choice of what a file is for, on its card
OVERRIDES = ("auto", "high", "low", "both")
OVERRIDE_TITLES = {"auto": "Auto", "high": "High noise", "low": "Low noise", "both": "Both experts"}
#: what a two-expert merge writes (``MergeParams.expert``)
WRITE_CHOICES = {"both": "both experts", "high": "high-noise only", "low": "low-noise only"}


def slot_of(side: str, expert: str | None = None) -> str:
    return side if expert is None else f"{side}_{expert}"


def side_of(slot: str) -> str:
    return slot[0]


def expert_of(slot: str) -> str | None:
    """ "high"/"low" for an expert slot, None for ``a``/``b``."""
    return slot[2:] or None


def other_slot(slot: str) -> str:
    """The same side's slot of the other expert (``a_high`` → ``a_low``)."""
    expert = expert_of(slot)
    if expert is None:
        raise ValueError(f"{slot!r} is not an expert slot")
    return slot_of(side_of(slot), "low" if expert == "high" else "high")


def slot_title(slot: str) -> str:
    """ "LoRA A" or "LoRA A, high-noise expert"."""
    expert = expert_of(slot)
    side = f"LoRA {side_of(slot).upper()}"
    return side if expert is None else f"{side}, {EXPERT_TITLES[expert]}"


def field_of(slot: str) -> str:
    """The ``MergeParams`` field of a slot (``lora_a_high``)."""
    return f"lora_{slot}"


def role_from_name(path: str | Path) -> ExpertRole:
    """What the file name says (before the file is read: nothing about its shapes or keys yet)."""
    return resolve_role(path, {}, variant="14B")


def role_of(path: str | Path, summary=None) -> ExpertRole:
    """The file's role: the summary's (key prefix, name, metadata) once read, else from the name."""
    role = getattr(summary, "expert_role", None) if summary is not None else None
    if isinstance(role, ExpertRole):
        return role
    if summary is not None:  # a summary of before the file layer knew experts: name and metadata
        return resolve_role(
            path, getattr(summary, "metadata", {}) or {}, variant=getattr(summary.model, "variant", "14B")
        )
    return role_from_name(path)


def has_expert(role: ExpertRole) -> bool:
    """A file that only makes sense in a two-expert merge (one expert, or both in one combo file)."""
    return role.role in (*EXPERTS, "combo")


def role_reason(role: ExpertRole) -> str:
    """One short line for a card: "high-noise, from the file name '…_high_noise'"."""
    what = {
        "high": "high-noise",
        "low": "low-noise",
        "both": "one file for both experts",
        "combo": "combo file: both experts",
    }[role.role]
    if role.source == "none":
        return what if role.role != "both" else "no expert named: one model, or one file for both experts"
    return f"{what}, {role.detail}" if role.detail else what


def part_summary(summary, expert: str | None):
    """The summary of one expert's part of a combo file (the summary itself for any other file)."""
    if summary is None or expert is None:
        return summary
    part = getattr(summary, "part", None)
    if callable(part):
        try:
            return part(expert)
        except (KeyError, ValueError):
            return summary
    parts = getattr(summary, "parts", None)
    if isinstance(parts, dict) and expert in parts:
        return parts[expert]
    return summary


def one_per_pair(paths: list[Path]) -> list[Path]:
    """Dropped files with an expert pair counted once: ``x_high_noise`` and ``x_low_noise`` beside it
    are one input (placing the first brings its partner)."""
    from difflora_gui.merge.input_checks import expert_free_stem

    groups: dict[object, Path] = {}
    for path in paths:
        key = (str(path.parent), expert_free_stem(path)) if expert_from_name(path) else path
        groups.setdefault(key, path)
    return list(groups.values())
