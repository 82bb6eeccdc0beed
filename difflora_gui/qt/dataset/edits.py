"""Edits of a pair set from the GUI, each one undoable step (:class:`DatasetEditor`).

Every method changes the :class:`~difflora_gui.dataset.model.PairSet` in memory through its edit
methods, which return the pairs they replaced, and records one step on the window's
:class:`~difflora_gui.qt.undo.UndoStack` (``record(text, undo, redo)``): undo puts the old pairs back
(``PairSet.restore``, removed pairs at their old places), redo repeats the edit. ``changed`` carries
the ids of the pairs touched after an edit, an undo and a redo (a removed id is no longer in the set).
The editor never touches files: "remove" deletes pairs from the set only, "replace" points a side at
another file after checking that the file can be read.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QObject, Signal

from difflora_gui.dataset.model import SIDES, MediaItem, Pair, PairSet
from difflora_gui.errors import BadFileError


def _count(ids: list[str]) -> str:
    return f"pair {ids[0]}" if len(ids) == 1 else f"{len(ids)} pairs"


def check_media_file(path: str) -> MediaItem:
    """The file as a :class:`MediaItem` after checking it can be used (D1's ``probe``): ``UserError`` if not."""
    item = MediaItem.from_path(path)
    try:
        from difflora_gui.dataset import media  # cv2/PyAV load on the first replace

        media.probe(path)
    except OSError as error:
        raise BadFileError(path, f"cannot be read ({error})") from error
    return item


class DatasetEditor(QObject):
    """Undoable edits of ``pair_set`` recorded on ``undo_stack``; ``changed(ids)`` after each."""

    changed = Signal(list)

    def __init__(self, pair_set: PairSet, undo_stack, parent: QObject | None = None):
        super().__init__(parent)
        self.pair_set = pair_set
        self.undo_stack = undo_stack

    # --- helpers -------------------------------------------------------------------------------

    def _ids(self, ids: Iterable[str]) -> list[str]:
        known = set(self.pair_set.ids())
        out: list[str] = []
        for pair_id in ids:
            if pair_id in known and pair_id not in out:
                out.append(pair_id)
        return out

    def _record(self, text: str, old: list[Pair], new: list[Pair]) -> None:
        ids = [p.id for p in new]

        def undo() -> None:
            self.pair_set.restore(old)
            self.changed.emit(ids)

        def redo() -> None:
            self.pair_set.restore(new)
            self.changed.emit(ids)

        self.undo_stack.record(text, undo, redo)
        self.changed.emit(ids)

    def _apply(self, text: str, edit) -> list[str]:
        """Run ``edit`` (returns the old pairs); record a step if anything actually changed."""
        old = edit()
        new = [self.pair_set.pair(p.id) for p in old]
        changed_old = [o for o, n in zip(old, new, strict=True) if o != n]
        changed_new = [n for o, n in zip(old, new, strict=True) if o != n]
        if changed_old:
            self._record(text, changed_old, changed_new)
        return [p.id for p in changed_new]

    # --- edits ---------------------------------------------------------------------------------

    def swap(self, ids: Iterable[str]) -> list[str]:
        """Swap A and B in each pair (one step)."""
        ids = self._ids(ids)
        if not ids:
            return []
        return self._apply(f"Swap A and B of {_count(ids)}", lambda: [self.pair_set.swap(i) for i in ids])

    def set_included(self, ids: Iterable[str], flag: bool) -> list[str]:
        """Include the pairs in training and export, or exclude them (one step)."""
        ids = self._ids(ids)
        if not ids:
            return []
        verb = "Include" if flag else "Exclude"
        return self._apply(f"{verb} {_count(ids)}", lambda: self.pair_set.set_included(ids, bool(flag)))

    def set_captions(self, ids: Iterable[str], text: str) -> list[str]:
        """Set (or, with ``""``, clear) the caption of every pair given, as one step."""
        ids = self._ids(ids)
        if not ids:
            return []
        label = "Clear the caption of" if not text else "Set the caption of"
        return self._apply(f"{label} {_count(ids)}", lambda: self.pair_set.set_captions(ids, text))

    def replace(self, pair_id: str, side: str, path: str) -> bool:
        """Point ``side`` ("a"/"b") of the pair at ``path``; a file that cannot be read raises ``UserError``."""
        if side not in SIDES:
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        pair = self.pair_set.pair(pair_id)
        item = check_media_file(str(path))
        if pair.item(side) == item:
            return False
        self._apply(
            f"Replace {side.upper()} of pair {pair_id} with {item.name}",
            lambda: [self.pair_set.replace_item(pair_id, side, item)],
        )
        return True

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Delete the pairs from the set (their files stay where they are), as one step."""
        ids = self._ids(ids)
        if not ids:
            return []
        order = self.pair_set.ids()
        places = sorted((order.index(i), i) for i in ids)
        removed = self.pair_set.remove(ids)
        by_id = {p.id: p for p in removed}

        def undo() -> None:
            for place, pair_id in places:
                self.pair_set.pairs.insert(min(place, len(self.pair_set.pairs)), by_id[pair_id])
            self.changed.emit(list(ids))

        def redo() -> None:
            self.pair_set.remove(ids)
            self.changed.emit(list(ids))

        self.undo_stack.record(f"Remove {_count(ids)} from the set", undo, redo)
        self.changed.emit(list(ids))
        return ids

    # --- lookups for views -----------------------------------------------------------------------

    def pair(self, pair_id: str) -> Pair | None:
        try:
            return self.pair_set.pair(pair_id)
        except KeyError:
            return None


__all__ = ["DatasetEditor", "check_media_file"]
