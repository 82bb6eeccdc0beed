"""The virtualised thumbnail grid of pairs, and the bar above it (sort, flag filter, text filter).

A ``QListView`` in icon mode with uniform item sizes over :class:`~.grid_model.PairListModel`: Qt
lays out and paints only the cells on screen, so 2,000 pairs scroll like 20. Each cell is drawn by
:class:`PairDelegate`: A | B thumbnails side by side (a placeholder until the loader has them), the
pair id (elided; the tooltip has it all), a dimmed "excluded" veil and the worst flag as a badge.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset.grid_filter import (
    ALL_PAIRS,
    BASE_SORT_KEYS,
    FLAGGED,
    UNFLAGGED,
    GridQuery,
    flag_code,
    flag_codes,
    flags_of,
    score_keys,
    worst_first,
    worst_flag,
)
from difflora_gui.dataset.thumbnails import THUMB_SIZE
from difflora_gui.qt.dataset.grid_model import PAIR_ROLE, SCORES_ROLE, PairListModel
from difflora_gui.qt.dataset.thumb_loader import ThumbnailLoader

PAD = 6
THUMB_H = 84
TEXT_H = 18
CELL = QSize(2 * THUMB_SIZE + 3 * PAD, PAD + THUMB_H + 4 + TEXT_H + PAD)
BADGE_COLOURS = {"error": QColor("#d9534f"), "warning": QColor("#e0a030")}
#: the placeholder text of a cell side while its thumbnail loads, or when there is no item
LOADING, NO_ITEM = "…", "—"
#: from this width on the text filter sits beside the combos
WIDE_BAR = 720


class PairDelegate(QStyledItemDelegate):
    """Paints one pair cell (see the module docstring); never decodes an image."""

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self._small = QFont()
        self._small.setPointSizeF(max(7.0, self._small.pointSizeF() * 0.85))
        self._metrics = QFontMetrics(self._small)

    def sizeHint(self, option, index) -> QSize:  # noqa: N802 - Qt override
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        pair = index.data(PAIR_ROLE)
        if pair is None:
            return
        scores = index.data(SCORES_ROLE)
        rect = option.rect.adjusted(2, 2, -2, -2)
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(QPen(QColor("#4a90d9") if selected else QColor("#3a3d44"), 2 if selected else 1))
        painter.setBrush(QColor("#2b3a4e") if selected else QColor("#24262b"))
        painter.drawRoundedRect(rect, 4, 4)
        painter.setFont(self._small)
        for column, item in enumerate((pair.a, pair.b)):
            box = QRect(
                rect.left() + PAD + column * (THUMB_SIZE + PAD), rect.top() + PAD, THUMB_SIZE, THUMB_H
            )
            self._paint_side(painter, box, item)
        text_rect = QRect(rect.left() + PAD, rect.top() + PAD + THUMB_H + 4, rect.width() - 2 * PAD, TEXT_H)
        painter.setPen(QColor("#d8dadf") if pair.include else QColor("#80838a"))
        label = pair.id if pair.include else f"{pair.id} · excluded"
        if pair.caption:
            label += f" · “{pair.caption}”"
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            self._metrics.elidedText(label, Qt.TextElideMode.ElideMiddle, text_rect.width()),
        )
        if not pair.include:
            painter.fillRect(rect.adjusted(1, 1, -1, -1), QColor(10, 10, 12, 130))
        flag = worst_flag(scores)
        if flag is not None:
            self._paint_badge(painter, rect, flag, len(flags_of(scores)))
        painter.restore()

    def _paint_side(self, painter: QPainter, box: QRect, item) -> None:
        painter.fillRect(box, QColor("#1b1c20"))
        pixmap = self.loader.pixmap(item.path) if item is not None else None
        if pixmap is None or pixmap.isNull():
            error = self.loader.error(item.path) if item is not None else ""
            painter.setPen(QColor("#d9534f") if error else QColor("#6b6e75"))
            text = NO_ITEM if item is None else ("unreadable" if error else LOADING)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
            return
        size = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(box.center())
        painter.drawPixmap(target, pixmap)

    def _paint_badge(self, painter: QPainter, rect: QRect, flag, count: int) -> None:
        text = flag_code(flag) + (f" +{count - 1}" if count > 1 else "")
        width = min(self._metrics.horizontalAdvance(text) + 10, rect.width() - 2 * PAD)
        badge = QRect(rect.right() - PAD - width, rect.top() + PAD + 2, width, TEXT_H - 2)
        colour = BADGE_COLOURS.get(str(getattr(flag, "severity", "warning")), BADGE_COLOURS["warning"])
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(badge, 6, 6)
        painter.setPen(QColor("#111111"))
        painter.drawText(
            badge,
            Qt.AlignmentFlag.AlignCenter,
            self._metrics.elidedText(text, Qt.TextElideMode.ElideRight, badge.width() - 6),
        )


class PairGridView(QListView):
    """The grid itself: icon mode, uniform cells, batched layout; multi-selection."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("pairGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setUniformItemSizes(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(400)
        self.setGridSize(CELL + QSize(6, 6))
        self.setSpacing(0)
        self.setWrapping(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)


class GridBar(QWidget):
    """Sort key and direction, the flag filter, the include filter and a text filter."""

    changed = Signal(object)  # GridQuery

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        self._rows = (QHBoxLayout(), QHBoxLayout())
        for row in self._rows:
            row.setSpacing(6)
            outer.addLayout(row)
        layout = self._rows[0]
        sort_label = QLabel("Sort by")
        sort_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        layout.addWidget(sort_label)
        self.sort_combo = QComboBox()
        self.sort_combo.setObjectName("gridSort")
        self.sort_combo.setToolTip(
            "Order of the pairs; a score sorts worst first (pairs not checked come last)"
        )
        self.direction = QToolButton()
        self.direction.setObjectName("gridSortDirection")
        self.direction.setCheckable(True)
        self.direction.setToolTip("Reverse the order")
        self.direction.setText("↓")
        self.flag_combo = QComboBox()
        self.flag_combo.setObjectName("gridFlagFilter")
        self.flag_combo.setToolTip("Show every pair, only flagged pairs, only unflagged ones, or one flag")
        self.include_combo = QComboBox()
        self.include_combo.setObjectName("gridIncludeFilter")
        self.include_combo.setToolTip("Show included and excluded pairs, or only one of them")
        for text, key in (("in and out", "all"), ("included", "included"), ("excluded", "excluded")):
            self.include_combo.addItem(text, key)
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("gridTextFilter")
        self.text_edit.setPlaceholderText("Filter by id, caption or file name")
        self.text_edit.setClearButtonEnabled(True)
        for widget in (self.sort_combo, self.direction, self.flag_combo, self.include_combo):
            layout.addWidget(widget)
        self.count_label = QLabel()
        self.count_label.setObjectName("mutedLabel")
        self._wide: bool | None = None
        self._place_filter(wide=False)
        self._text_timer = QTimer(self)
        self._text_timer.setSingleShot(True)
        self._text_timer.setInterval(120)
        self._text_timer.timeout.connect(self._emit)
        self.set_scores({})
        self.sort_combo.currentIndexChanged.connect(self._on_sort)
        self.direction.toggled.connect(self._emit)
        self.flag_combo.currentIndexChanged.connect(self._emit)
        self.include_combo.currentIndexChanged.connect(self._emit)
        self.text_edit.textChanged.connect(lambda _t: self._text_timer.start())

    def _place_filter(self, wide: bool) -> None:
        """The text filter and count beside the combos when there is room, else on a second row."""
        if wide == self._wide:
            return
        self._wide = wide
        for widget in (self.text_edit, self.count_label):
            for row in self._rows:
                row.removeWidget(widget)
        row = self._rows[0] if wide else self._rows[1]
        row.addWidget(self.text_edit, 1)
        row.addWidget(self.count_label)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place_filter(event.size().width() >= WIDE_BAR)

    def set_scores(self, scores) -> None:
        """Offer the sort keys and flags these scores have (keeping the current choices)."""
        sort, flag = self.sort_combo.currentData(), self.flag_combo.currentData()
        for combo in (self.sort_combo, self.flag_combo):
            combo.blockSignals(True)
            combo.clear()
        for key, title in {**BASE_SORT_KEYS, **score_keys(scores)}.items():
            self.sort_combo.addItem(title, key)
        self.flag_combo.addItem("any flags", ALL_PAIRS)
        self.flag_combo.addItem("flagged only", FLAGGED)
        self.flag_combo.addItem("unflagged only", UNFLAGGED)
        for code, count in flag_codes(scores).items():
            self.flag_combo.addItem(f"⚑ {code} ({count})", code)
        for combo, value in ((self.sort_combo, sort), (self.flag_combo, flag)):
            index = combo.findData(value) if value is not None else 0
            combo.setCurrentIndex(max(0, index))
            combo.blockSignals(False)

    def query(self) -> GridQuery:
        return GridQuery(
            sort=str(self.sort_combo.currentData() or "id"),
            descending=self.direction.isChecked(),
            flag=str(self.flag_combo.currentData() or ""),
            include=str(self.include_combo.currentData() or "all"),
            text=self.text_edit.text(),
        )

    def set_sort(self, key: str) -> None:
        index = self.sort_combo.findData(key)
        if index >= 0:
            self.sort_combo.setCurrentIndex(index)

    def set_flag_filter(self, value: str) -> None:
        index = self.flag_combo.findData(value)
        if index >= 0:
            self.flag_combo.setCurrentIndex(index)

    def _on_sort(self) -> None:
        key = str(self.sort_combo.currentData() or "id")
        self.direction.blockSignals(True)
        self.direction.setChecked(worst_first(key))  # a score starts worst first
        self.direction.blockSignals(False)
        self._emit()

    def _emit(self) -> None:
        self.direction.setText("↑" if self.direction.isChecked() else "↓")
        self.changed.emit(self.query())


class PairGrid(QWidget):
    """The bar and the grid over one pair set; ``current_changed(pair or None)`` on selection."""

    current_changed = Signal(object)

    def __init__(self, loader: ThumbnailLoader | None = None, parent=None):
        super().__init__(parent)
        self.loader = loader or ThumbnailLoader(parent=self)
        self.model = PairListModel(self)
        self.bar = GridBar()
        self.view = PairGridView()
        self.view.setModel(self.model)
        self.delegate = PairDelegate(self.loader, self.view)
        self.view.setItemDelegate(self.delegate)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.bar)
        layout.addWidget(self.view, 1)
        self.bar.changed.connect(self._on_query)
        self.loader.ready.connect(self.view.viewport().update)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        self.model.modelReset.connect(self._update_count)
        self.model.layoutChanged.connect(self._update_count)

    def set_pairs(self, pair_set, scores=None) -> None:
        self.model.set_pairs(pair_set, scores)
        self.bar.set_scores(self.model.scores)
        self.model.set_query(self.bar.query())

    def set_scores(self, scores, *, merge: bool = False) -> None:
        self.model.set_scores(scores, merge=merge)
        self.bar.set_scores(self.model.scores)

    def _on_query(self, query: GridQuery) -> None:
        current = self.current_pair()
        self.model.set_query(query)
        if current is not None:
            self.select_pair(current.id)

    def _update_count(self) -> None:
        total = len(self.model.pair_set.pairs) if self.model.pair_set is not None else 0
        shown = self.model.rowCount()
        self.bar.count_label.setText(f"{shown} of {total}" if shown != total else f"{total} pairs")

    def _on_current(self, current: QModelIndex, _previous) -> None:
        self.current_changed.emit(current.data(PAIR_ROLE) if current.isValid() else None)

    def current_pair(self):
        index = self.view.currentIndex()
        return index.data(PAIR_ROLE) if index.isValid() else None

    def selected_ids(self) -> list[str]:
        """The selected pairs' ids in grid order (the current one when nothing is selected)."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedIndexes())
        ids = [self.model.pair_at(row).id for row in rows if self.model.pair_at(row) is not None]
        if not ids and self.current_pair() is not None:
            ids = [self.current_pair().id]
        return ids

    def select_pair(self, pair_id: str) -> bool:
        row = self.model.row_of(pair_id)
        if row < 0:
            return False
        index = self.model.index(row)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)
        return True
