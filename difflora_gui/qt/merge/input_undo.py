"""Undo for the inputs box: each user change of the inputs (a file chosen, cleared or dropped, a
swap, an override, the layout or what to write) is one step on the panel's undo stack.

A mixin of :class:`~difflora_gui.qt.merge.inputs.InputsBox`. A step restores the whole placement
(which file is in which slot and why); a file's read is redone when it is needed again. Changes
made by code (a recipe shown, a project opened) are not recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable


class InputsUndo:
    """The undo half of the inputs box."""

    _undo_stack = None

    def set_undo_stack(self, stack) -> None:
        """Record the user's input changes on ``stack`` (a :class:`~difflora_gui.qt.undo.UndoStack`)."""
        self._undo_stack = stack

    def _snapshot(self) -> dict:
        return copy.deepcopy(
            {
                "slots": self.slots,
                "filled_by": self.filled_by,
                "overrides": self.overrides,
                "pinned": self._pinned,
                "placed": self._placed,
                "two_expert": self._two_expert,
                "write": self._write,
            }
        )

    def _restore(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.slots, self.filled_by, self.overrides = state["slots"], state["filled_by"], state["overrides"]
        self._pinned, self._placed = state["pinned"], state["placed"]
        self._two_expert = state["two_expert"]
        self._set_write(state["write"])
        self.notes = []
        self._refresh(True)

    def user_change(self, text: str, change: Callable[[], None]) -> None:
        """Run a change the user asked for and record it as one undo step (when it changed anything)."""
        stack = self._undo_stack
        if stack is None or stack.applying:
            change()
            return
        before = self._snapshot()
        change()
        after = self._snapshot()
        if after != before:
            stack.record(text, lambda: self._restore(before), lambda: self._restore(after))
