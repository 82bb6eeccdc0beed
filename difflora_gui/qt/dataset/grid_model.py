"""The pair grid's list model: the pairs in the sort and filter order, with their scores.

Rows are indices into ``pair_set.pairs`` (:func:`difflora_gui.dataset.grid_filter.arrange`); a row's
data is its :class:`~difflora_gui.dataset.model.Pair` (:data:`PAIR_ROLE`) and scores
(:data:`SCORES_ROLE`). The model holds no pixels: the delegate asks the thumbnail loader while it
paints, so the model stays cheap for any number of pairs.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from difflora_gui.dataset.grid_filter import GridQuery, arrange, flag_code, flags_of

PAIR_ROLE = Qt.ItemDataRole.UserRole + 1
SCORES_ROLE = Qt.ItemDataRole.UserRole + 2
PAIR_ID_ROLE = Qt.ItemDataRole.UserRole + 3


class PairListModel(QAbstractListModel):
    """The pairs to show (``set_pairs``), arranged by a :class:`GridQuery` (``set_query``)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pair_set = None
        self.scores: dict[str, Any] = {}
        self.query = GridQuery()
        self._order: list[int] = []
        self._row_of: dict[str, int] = {}

    # --- content -----------------------------------------------------------------------------

    def set_pairs(self, pair_set, scores: Mapping[str, Any] | None = None) -> None:
        self.beginResetModel()
        self.pair_set = pair_set
        self.scores = dict(scores or {})
        self._arrange()
        self.endResetModel()

    def set_scores(self, scores: Mapping[str, Any], *, merge: bool = False) -> None:
        """New scores (``merge``: add these to the ones there); re-arranged when the order depends on them."""
        if merge:
            self.scores.update(scores)
        else:
            self.scores = dict(scores)
        if self.query.sort not in ("id", "include") or self.query.flag:
            self.rearrange()
        elif self._order:
            self.dataChanged.emit(self.index(0), self.index(len(self._order) - 1))

    def set_query(self, query: GridQuery) -> None:
        self.query = query
        self.rearrange()

    def rearrange(self) -> None:
        """Sort and filter again (after edits or new scores)."""
        self.layoutAboutToBeChanged.emit()
        old = {row: self._order[row] for row in range(len(self._order))}
        persistent = self.persistentIndexList()
        self._arrange()
        new_rows = {pair_index: row for row, pair_index in enumerate(self._order)}
        targets = []
        for index in persistent:
            pair_index = old.get(index.row())
            row = new_rows.get(pair_index) if pair_index is not None else None
            targets.append(self.index(row) if row is not None else QModelIndex())
        self.changePersistentIndexList(persistent, targets)
        self.layoutChanged.emit()

    def _arrange(self) -> None:
        pairs = self.pair_set.pairs if self.pair_set is not None else []
        self._order = arrange(pairs, self.scores, self.query)
        self._row_of = {pairs[i].id: row for row, i in enumerate(self._order)}

    def pairs_changed(self, pair_ids: Iterable[str]) -> None:
        """Pairs were edited in place (include, caption, swap) or removed/restored: show it.

        Arranging a few thousand pairs takes a millisecond or two, so the order is simply made again."""
        del pair_ids
        self.rearrange()

    # --- lookups -----------------------------------------------------------------------------

    def pair_at(self, row: int):
        if self.pair_set is None or not 0 <= row < len(self._order):
            return None
        return self.pair_set.pairs[self._order[row]]

    def row_of(self, pair_id: str) -> int:
        """The row showing this pair (-1 when it is filtered out or gone)."""
        return self._row_of.get(pair_id, -1)

    def visible_ids(self) -> list[str]:
        pairs = self.pair_set.pairs if self.pair_set is not None else []
        return [pairs[i].id for i in self._order]

    # --- Qt model ----------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._order)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        pair = self.pair_at(index.row()) if index.isValid() else None
        if pair is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, PAIR_ID_ROLE):
            return pair.id
        if role == PAIR_ROLE:
            return pair
        if role == SCORES_ROLE:
            return self.scores.get(pair.id)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(pair, self.scores.get(pair.id))
        return None


def tooltip(pair, scores) -> str:
    """The cell's tooltip: id, include state, both files, caption and every flag."""
    lines = [f"<b>{html.escape(pair.id)}</b>" + ("" if pair.include else " (excluded)")]
    for side, item in (("A", pair.a), ("B", pair.b)):
        lines.append(f"{side}: {html.escape(item.path) if item is not None else '—'}")
    if pair.caption:
        lines.append(f"caption: {html.escape(pair.caption)}")
    for flag in flags_of(scores):
        lines.append(f"⚑ {html.escape(flag_code(flag))}: {html.escape(str(getattr(flag, 'text', '')))}")
    if scores is None:
        lines.append("<i>not checked yet</i>")
    return "<br>".join(lines)
