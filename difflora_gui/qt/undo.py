"""Undo/redo for edits the user already made in a widget (target selection, block weights, form fields).

Qt's ``QUndoStack`` runs a command's ``redo`` when it is pushed; here the change has already happened
in the widget, so :meth:`UndoStack.record` pushes a command whose first ``redo`` does nothing. While a
command is undone or redone the stack is :attr:`~UndoStack.applying`, and widgets that record their
own changes must not record the change the stack is making (``if not stack.applying: stack.record(...)``).

Consecutive records with the same ``merge_key`` (typing in one field, dragging one slider) become one
step, as in every editor: its undo is the first record's, its redo the last one's.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand, QUndoStack

_MERGE_IDS: dict[str, int] = {}


def _merge_id(key: str | None) -> int:
    if key is None:
        return -1
    return _MERGE_IDS.setdefault(key, len(_MERGE_IDS) + 1)


class _Recorded(QUndoCommand):
    def __init__(self, stack: UndoStack, text: str, undo: Callable[[], None], redo: Callable[[], None], key):
        super().__init__(text)
        self._stack = stack
        self._undo = undo
        self._redo = redo
        self._id = _merge_id(key)
        self._done = True  # the widget already shows the change

    def id(self) -> int:  # noqa: A003 - Qt override
        return self._id

    def mergeWith(self, other) -> bool:  # noqa: N802 - Qt override
        if not isinstance(other, _Recorded) or other.id() != self.id() or self.id() < 0:
            return False
        self._redo = other._redo
        return True

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        with self._stack.applying_change():
            self._redo()

    def undo(self) -> None:
        with self._stack.applying_change():
            self._undo()


class UndoStack(QUndoStack):
    """A ``QUndoStack`` for changes recorded after the fact (see the module docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._applying = 0

    @property
    def applying(self) -> bool:
        """True while an undo or redo is changing widgets (their change handlers must not record)."""
        return self._applying > 0

    def applying_change(self):
        stack = self

        class _Applying:
            def __enter__(self):
                stack._applying += 1

            def __exit__(self, *exc):
                stack._applying -= 1

        return _Applying()

    def record(
        self,
        text: str,
        undo: Callable[[], None],
        redo: Callable[[], None],
        *,
        merge_key: str | None = None,
    ) -> None:
        """Push a change that has already been made; ``undo``/``redo`` restore the before/after state."""
        if self.applying:
            return
        self.push(_Recorded(self, text, undo, redo, merge_key))
