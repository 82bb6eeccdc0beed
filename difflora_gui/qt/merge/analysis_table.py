"""The analysis' per-module table: one row per module, sortable, every column explained in its header.

‖A‖, ‖B‖ and ‖A−B‖ are on one footing (as the inputs apply at strength 1, alpha not applied);
‖out‖ and the energy are what the written file holds (alpha applied). No pyqtgraph here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from difflora_gui.merge.analysis import MERGED, ModuleRow
from difflora_gui.qt.theme import COLORS


@dataclass(frozen=True)
class Column:
    title: str
    tooltip: str
    width: int  # 0: stretches


COLUMNS = (
    Column("module", "The module (its name in the file, without the leading “blocks.”).", 0),
    Column(
        "status",
        "merged: in the output, re-factored to the rank shown; nullified: written as zeros (not "
        "targeted or filtered out); excluded: left out of the file.",
        70,
    ),
    Column(
        "‖A‖",
        "‖ΔW_a‖: Frobenius norm of LoRA A's weight change for this module, as A applies at "
        "strength 1 (alpha and weights not applied).",
        58,
    ),
    Column(
        "‖B‖",
        "‖ΔW_b‖: Frobenius norm of LoRA B's weight change, as B applies at strength 1 (alpha and "
        "weights not applied).",
        58,
    ),
    Column(
        "‖A−B‖",
        "‖w_a·ΔW_a − w_b·ΔW_b‖: Frobenius norm of the exact difference, before alpha — on the same "
        "footing as ‖A‖ and ‖B‖ (with weights 1 it is ‖ΔW_a − ΔW_b‖). The output is alpha times this "
        "difference, truncated to the rank.",
        62,
    ),
    Column(
        "‖out‖",
        "‖ΔW_out‖: Frobenius norm of what the output file holds for this module: after the rank "
        "truncation and with alpha applied (0 when nullified or excluded).",
        58,
    ),
    Column(
        "cancel",
        "Cancellation ratio ‖w_a·A − w_b·B‖ / (|w_a|·‖A‖ + |w_b|·‖B‖), no unit: 0 = A and B cancel "
        "(shared content), 1 = nothing in common. Independent of alpha.",
        58,
    ),
    Column("rank", "The rank the output keeps for this module (merged modules only).", 42),
    Column(
        "energy",
        "Retained energy ‖out‖² / ‖alpha·(A−B)‖²: the share of the difference's squared norm that the "
        "kept singular values hold (1 = nothing lost by the truncation). Independent of alpha.",
        58,
    ),
)
TABLE_COLUMNS = tuple(c.title for c in COLUMNS)
COLUMN_WIDTHS = tuple(c.width for c in COLUMNS)
#: the column of ‖A−B‖ (before alpha)
DIFF_COLUMN = TABLE_COLUMNS.index("‖A−B‖")

NAME_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


class ModuleTableModel(QAbstractTableModel):
    """The analysis' modules as a table (one row per module, model order); sorts by value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[ModuleRow] = []
        self.alpha = 1.0
        self._index: dict[str, int] = {}
        self._cells: list[list[tuple[object, str]]] = []

    def set_rows(self, rows: list[ModuleRow], alpha: float = 1.0) -> None:
        """Show ``rows`` of an analysis whose output is scaled by ``alpha`` (to show ‖A−B‖ before it)."""
        self.beginResetModel()
        self.rows = list(rows)
        self.alpha = float(alpha)
        self._index = {row.name: i for i, row in enumerate(self.rows)}
        self._cells = [self._values(row) for row in self.rows]
        self.endResetModel()

    def row_of(self, name: str) -> int | None:
        return self._index.get(name)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 - Qt override
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tooltip
        return None

    def _values(self, row: ModuleRow) -> list[tuple[object, str]]:
        """(sort value, text) per column."""
        merged = row.status == MERGED
        energy = row.retained_energy if merged else None
        diff = row.diff_before_alpha(self.alpha)
        return [
            (row.name, row.name.removeprefix("blocks.")),
            (row.status, row.status),
            (row.norm_a, number(row.norm_a)),
            (row.norm_b, number(row.norm_b)),
            (diff, number(diff)),
            (row.norm_out, number(row.norm_out)),
            (row.cancellation, number(row.cancellation, 3)),
            (row.rank if merged else None, str(row.rank) if merged else "-"),
            (energy, "-" if energy is None else f"{energy:.4f}"),
        ]

    def value(self, row: int, column: int):
        """The number (or text) behind a cell, before formatting (source row)."""
        return self._cells[row][column][0]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == NAME_ROLE:
            return row.name
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[index.row()][column][1]
        if role == SORT_ROLE:
            if column == 0:
                return index.row()  # model order
            value = self._cells[index.row()][column][0]
            if isinstance(value, str):
                return value
            return -math.inf if value is None else float(value)
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return row.name
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and row.status != MERGED:
            return QColor(COLORS["muted"])
        return None
