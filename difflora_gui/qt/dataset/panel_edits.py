"""The Dataset panel's edits from the grid: keys, the context menu, and the editor they go through.

A mixin of :class:`~difflora_gui.qt.dataset.panel.DatasetPanel`. Every edit is a step of the
panel's ``undo_stack`` through the :class:`~difflora_gui.qt.dataset.edits.DatasetEditor` of the open
set: **Delete** removes the selected pairs from the set (after asking; files are never touched),
**Space** toggles their include flag, and the context menu offers exclude/include, swap A and B,
delete from set, edit caption, and set/clear the caption of the whole selection.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox

DELETE_TITLE = "Delete from the set"


def _count(ids: list[str]) -> str:
    return f"pair {ids[0]}" if len(ids) == 1 else f"{len(ids)} pairs"


class GridKeys(QObject):
    """Delete and Space on the grid (an event filter: the list view would take Space for selection)."""

    def __init__(self, panel):
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.KeyPress or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.panel.delete_selected()
            return True
        if event.key() == Qt.Key.Key_Space:
            self.panel.toggle_selected()
            return True
        return False


class PanelEdits:
    """Edits of the selected pairs (mixed into the panel)."""

    def _install_edit_keys(self) -> None:
        self._grid_keys = GridKeys(self)
        self.grid.view.installEventFilter(self._grid_keys)
        self.grid.view.customContextMenuRequested.connect(self._show_context_menu)

    def _ids(self) -> list[str]:
        return self.grid.selected_ids()

    def toggle_selected(self) -> list[str]:
        """Space: exclude the selection when all of it is included, else include all of it."""
        ids = self._ids()
        if not ids or self.editor is None:
            return []
        pairs = [self.pair_set.pair(i) for i in ids]
        return self.editor.set_included(ids, not all(p.include for p in pairs))

    def set_included(self, flag: bool) -> list[str]:
        ids = self._ids()
        return self.editor.set_included(ids, flag) if ids and self.editor is not None else []

    def swap_selected(self) -> list[str]:
        ids = self._ids()
        return self.editor.swap(ids) if ids and self.editor is not None else []

    def delete_selected(self, *, ask: bool = True) -> list[str]:
        """Remove the selected pairs from the set (after asking); their files stay where they are."""
        ids = self._ids()
        if not ids or self.editor is None:
            return []
        if ask:
            answer = QMessageBox.question(
                self,
                DELETE_TITLE,
                f"Remove {_count(ids)} from the set?\nThe files stay where they are; Edit ▸ Undo brings "
                "the pairs back.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return []
        return self.editor.remove(ids)

    def edit_caption(self) -> list[str]:
        """Ask for one caption and set it on every selected pair (empty text clears it)."""
        ids = self._ids()
        if not ids or self.editor is None:
            return []
        current = self.pair_set.pair(ids[0]).caption if len(ids) == 1 else ""
        text, ok = QInputDialog.getText(
            self,
            "Caption",
            f"Caption of {_count(ids)} (empty: no caption, which suits differential LoRAs):",
            text=current,
        )
        return self.editor.set_captions(ids, text.strip()) if ok else []

    def clear_captions(self) -> list[str]:
        ids = self._ids()
        return self.editor.set_captions(ids, "") if ids and self.editor is not None else []

    def _show_context_menu(self, point) -> None:
        menu = self.context_menu()
        if menu is not None:
            menu.exec(self.grid.view.viewport().mapToGlobal(point))

    def context_menu(self) -> QMenu | None:
        """The grid's context menu for the selection (None when nothing is selected)."""
        ids = self._ids()
        if not ids or self.editor is None:
            return None
        menu = QMenu(self)
        menu.setObjectName("pairContextMenu")
        pairs = [self.pair_set.pair(i) for i in ids]
        what = _count(ids)
        entries = (
            ("Exclude " + what, lambda: self.set_included(False), any(p.include for p in pairs), "Space"),
            ("Include " + what, lambda: self.set_included(True), not all(p.include for p in pairs), "Space"),
            ("Swap A and B", self.swap_selected, True, ""),
            (
                "Edit caption…" if len(ids) == 1 else f"Set caption of {len(ids)} pairs…",
                self.edit_caption,
                True,
                "",
            ),
            (
                "Clear caption" + ("s" if len(ids) > 1 else ""),
                self.clear_captions,
                any(p.caption for p in pairs),
                "",
            ),
            (None, None, True, ""),
            ("Delete from set…", self.delete_selected, True, "Del"),
        )
        for text, slot, enabled, key in entries:
            if text is None:
                menu.addSeparator()
                continue
            action = QAction(text + (f"\t{key}" if key else ""), menu)
            action.setEnabled(enabled)
            action.triggered.connect(lambda _checked=False, s=slot: s())
            menu.addAction(action)
        return menu
