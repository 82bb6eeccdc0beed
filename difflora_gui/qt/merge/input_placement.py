"""Where the inputs box puts a file: one expert's slot (its partner beside it in the other), both
slots of its side (a joint or combo file), or the one-model slot — and again when a read says more.

A mixin of :class:`~difflora_gui.qt.merge.inputs.InputsBox` (no widgets here): it works on the
box's ``slots``, ``filled_by``, ``overrides``, ``_pinned``, ``_placed`` and ``notes``.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.fileio import same_file
from difflora_gui.lora.experts import expert_from_name, partner_path
from difflora_gui.merge.input_slots import (
    SIDES,
    expert_of,
    has_expert,
    other_slot,
    role_of,
    side_of,
    slot_of,
    slot_title,
)


class SlotPlacement:
    """The placing half of the inputs box."""

    def _role(self, path: Path):
        read = self._reads.get(path)
        return role_of(path, read.summary if read is not None else None)

    def _effective_role(self, side: str, path: Path) -> str:
        return self.overrides.get((side, path)) or self._role(path).role

    def _set_mode(self, two: bool, *, place: bool = True) -> None:
        if two == self._two_expert:
            return
        if two and place:
            for side in SIDES:
                path = self.slots[side]
                if path is not None and path not in (
                    self.slots[slot_of(side, "high")],
                    self.slots[slot_of(side, "low")],
                ):
                    self._place_side(side, path, self._effective_role(side, path))
        elif not two:  # the expert slots keep their files for a switch back
            for side in SIDES:
                high, low = self.slots[slot_of(side, "high")], self.slots[slot_of(side, "low")]
                self.slots[side] = high or low or self.slots[side]
                if high is not None and low is not None and high != low:
                    self.notes.append(f"one model: LoRA {side.upper()} is {high.name} ({low.name} set aside)")
        self._two_expert = two

    def _put(self, slot: str, path: Path, filled_by: str | None = None) -> None:
        self.slots[slot] = path
        self.filled_by[slot] = filled_by

    def _clear_slot(self, slot: str) -> None:
        self.slots[slot] = None
        self.filled_by[slot] = None

    def _put_in_slot(self, slot: str, path: Path) -> None:
        """A file chosen on one expert's card: it goes there; its partner fills the other slot."""
        side, other = side_of(slot), other_slot(slot)
        previous = self.slots[slot]
        self._put(slot, path)
        self._pinned.add((side, path))
        self.slots[side] = self.primary(side)
        if self.filled_by[other] == slot or (previous is not None and self.slots[other] == previous):
            self._clear_slot(other)  # what came with the replaced file goes with it
        partner = partner_path(path) if expert_from_name(path) == expert_of(slot) else None
        if partner is not None and self.slots[other] is None:
            self._put(other, partner, filled_by=slot)
            self.notes.append(
                f"{slot_title(other)}: filled with its partner {partner.name} (found beside it)"
            )

    def _place_side(self, side: str, path: Path, role: str) -> None:
        """Put a side's file where its role says: one expert's slot (its partner in the other), or both."""
        high, low = slot_of(side, "high"), slot_of(side, "low")
        self._placed[(side, path)] = role
        if role not in ("high", "low"):  # joint or combo: one file for both slots
            for slot in (high, low):
                if self.slots[slot] is not None and self.slots[slot] != path and self.filled_by[slot] is None:
                    self.notes.append(f"{slot_title(slot)}: {self.slots[slot].name} replaced by {path.name}")
            self._put(high, path)
            self._put(low, path, filled_by=high)
            return
        own, other = slot_of(side, role), slot_of(side, "low" if role == "high" else "high")
        self._put(own, path)
        partner = partner_path(path)
        if partner is not None and not same_file(partner, path):
            if self.slots[other] != partner:
                self._forget_read(partner)
                self._put(other, partner, filled_by=own)
                self.notes.append(
                    f"{slot_title(other)}: filled with its partner {partner.name} (found beside it)"
                )
        elif self.slots[other] == path or self.filled_by[other] is not None:
            self._clear_slot(other)

    def _override_from_placement(self, slot: str, path: Path) -> None:
        """A recipe put a file where its name does not say: show that as the user's override."""
        side = side_of(slot)
        both = self.slots[slot_of(side, "high")] == self.slots[slot_of(side, "low")] == path
        named = expert_from_name(path)
        if both and named is not None:
            self.overrides[(side, path)] = "both"
        elif not both and named is not None and named != expert_of(slot):
            self.overrides[(side, path)] = expert_of(slot)

    def _place_after_read(self, path: Path) -> bool:
        """The read may say more than the name (a combo file's prefixes, metadata): place it again."""
        moved = False
        for side in SIDES:
            if (side, path) in self._pinned or (side, path) in self.overrides:
                continue
            detected = self._role(path)
            if detected.source in ("none", "name"):
                continue  # the read added nothing to what the name said when the file was placed
            role = detected.role
            if not self._two_expert and self.slots[side] == path and has_expert(detected):
                self._set_mode(True)
                moved = True
            elif self._two_expert and (side, path) in self._placed and self._placed[(side, path)] != role:
                self._place_side(side, path, role)
                moved = True
        return moved
