"""Edit ▸ Undo / Redo: the window's two actions follow the current panel's ``undo_stack``.

A panel that records its edits keeps an :class:`~difflora_gui.qt.undo.UndoStack` as ``undo_stack``
(the Merge workbench does). The actions are enabled only when that stack has a step, and are named
for it ("Undo edit the output name"); switching sections switches stacks.
"""

from __future__ import annotations


class EditActions:
    """Binds ``window.action_undo`` / ``window.action_redo`` to the current panel's stack."""

    def __init__(self, window):
        self.window = window
        self.stack = None

    def current_stack(self):
        panel = self.window.current_panel()
        return getattr(panel, "undo_stack", None) if panel is not None else None

    def bind(self) -> None:
        stack = self.current_stack()
        previous, self.stack = self.stack, stack
        if previous is not None and previous is not stack:
            try:
                for signal in (previous.canUndoChanged, previous.canRedoChanged, previous.indexChanged):
                    signal.disconnect(self.show_state)
            except (RuntimeError, TypeError):  # already gone with its panel
                pass
        if stack is not None and stack is not previous:
            for signal in (stack.canUndoChanged, stack.canRedoChanged, stack.indexChanged):
                signal.connect(self.show_state)
        self.show_state()

    def show_state(self, *_args) -> None:
        stack, window = self.stack, self.window
        try:
            can_undo = stack is not None and stack.canUndo()
            can_redo = stack is not None and stack.canRedo()
        except RuntimeError:  # the panel (and its stack) was rebuilt
            self.stack, can_undo, can_redo = None, False, False
        try:
            window.action_undo.setEnabled(can_undo)
            window.action_redo.setEnabled(can_redo)
            window.action_undo.setText(f"&Undo {stack.undoText()}" if can_undo else "&Undo")
            window.action_redo.setText(f"&Redo {stack.redoText()}" if can_redo else "&Redo")
        except RuntimeError:  # the window's actions went first while it closes; the stack follows
            self.stack = None

    def undo(self) -> None:
        stack = self.current_stack()
        if stack is not None and stack.canUndo():
            stack.undo()
            self.window.status(f"Undone: {stack.redoText()}")

    def redo(self) -> None:
        stack = self.current_stack()
        if stack is not None and stack.canRedo():
            stack.redo()
            self.window.status(f"Redone: {stack.undoText()}")
