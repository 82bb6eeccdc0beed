"""The analysis plots (pyqtgraph): where the concept lives in the model.

* block bars: ‖ΔW_a‖, ‖ΔW_b‖ and ‖ΔW_out‖ per block, with the block's cancellation ratio as a line
  on a second axis (0: A and B cancel, 1: nothing shared);
* heatmap: ‖ΔW_out‖ of every module, blocks × layer types;
* spectrum: the singular values of the module selected in the table, the rank cut and the
  retained energy.

Clicking a block in the bars or a column of the heatmap emits :attr:`AnalysisView.block_clicked`
(the panel toggles that block in the target grid). This module imports pyqtgraph: the panel
imports it only when the first analysis arrives, so the window starts without it.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPoint,
    QRectF,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.fileio import atomic_output, atomic_write_text
from difflora_gui.merge import plot_data as data
from difflora_gui.merge.analysis import MERGED, AnalysisResult, ModuleRow
from difflora_gui.qt.theme import COLORS

SERIES = (
    ("norm_a", "‖ΔW_a‖", "#5fae7b"),
    ("norm_b", "‖ΔW_b‖", "#d0707a"),
    ("norm_out", "‖ΔW_out‖", "#6b9cf0"),
)
CANCEL_COLOR = "#e0b060"
DESELECTED_ALPHA = 70
#: the bars' y range is this much above the tallest bar, so the legend row never covers one
LEGEND_HEADROOM = 1.25
PLOTS = ("blocks", "heatmap", "spectrum")
#: PNG exports have this many pixels per screen pixel
EXPORT_SCALE = 2.0
INTRO = (
    f"<span style='color:{COLORS['muted']}'>Analyze (nothing is written) or Merge to fill these plots: "
    "per block ‖ΔW‖ of A, B and the output with the cancellation ratio, the output's blocks × layers "
    "heatmap, and each module's singular values with the rank cut.</span>"
)
TABLE_COLUMNS = ("module", "status", "‖A‖", "‖B‖", "‖A−B‖", "‖out‖", "cancel", "rank", "energy")

#: short names for the heatmap's rows
_LAYER_LABELS = {"self_attn": "self", "cross_attn": "cross", "ffn": "ffn"}


def _layer_label(key: str) -> str:
    group, _, layer = key.partition(".")
    return f"{_LAYER_LABELS.get(group, group)} {layer}".strip()


def _style_plot(widget: pg.PlotWidget) -> None:
    item = widget.getPlotItem()
    for name in ("left", "bottom", "right"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(COLORS["muted"]))
        axis.setTextPen(pg.mkPen(COLORS["text"]))
    item.showGrid(x=False, y=True, alpha=0.15)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def _container() -> QWidget:
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    return holder


NAME_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMN_WIDTHS = (0, 70, 58, 58, 62, 58, 58, 42, 58)


class ModuleTableModel(QAbstractTableModel):
    """The analysis' modules as a table (one row per module, model order); sorts by value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[ModuleRow] = []
        self._index: dict[str, int] = {}

    def set_rows(self, rows: list[ModuleRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self._index = {row.name: i for i, row in enumerate(self.rows)}
        self.endResetModel()

    def row_of(self, name: str) -> int | None:
        return self._index.get(name)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(TABLE_COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 - Qt override
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return TABLE_COLUMNS[section]
        return None

    def _values(self, row: ModuleRow) -> list[tuple[object, str]]:
        """(sort value, text) per column."""
        merged = row.status == MERGED
        energy = row.retained_energy if merged else None
        return [
            (row.name, row.name.removeprefix("blocks.")),
            (row.status, row.status),
            (row.norm_a, _number(row.norm_a)),
            (row.norm_b, _number(row.norm_b)),
            (row.norm_diff, _number(row.norm_diff)),
            (row.norm_out, _number(row.norm_out)),
            (row.cancellation, _number(row.cancellation, 3)),
            (row.rank if merged else None, str(row.rank) if merged else "-"),
            (energy, "-" if energy is None else f"{energy:.4f}"),
        ]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == NAME_ROLE:
            return row.name
        if role == Qt.ItemDataRole.DisplayRole:
            return self._values(row)[column][1]
        if role == SORT_ROLE:
            if column == 0:
                return index.row()  # model order
            value = self._values(row)[column][0]
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


class AnalysisView(QWidget):
    """Block bars, heatmap, module table and spectrum for one :class:`AnalysisResult`."""

    #: a block was clicked in the bars or the heatmap
    block_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("analysisView")
        self.result: AnalysisResult | None = None
        self.blocks: list[data.BlockRow] = []
        self.heat: data.Heatmap | None = None
        self.current_module = ""
        self._selected_blocks: set[int] | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.title = QLabel(INTRO)
        self.title.setObjectName("analysisTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.title)

        self._fills: list = []
        self._fill_timer = QTimer(self)
        self._fill_timer.setSingleShot(True)
        self._fill_timer.timeout.connect(self._fill_next)
        # the plots are built in steps (build_step), so the panel can build them between events
        self._containers = {name: _container() for name in PLOTS}
        self._steps = [self._make_bars, self._make_heatmap, self._make_spectrum]

        self.table_model = ModuleTableModel(self)
        self.table_proxy = QSortFilterProxyModel(self)
        self.table_proxy.setSourceModel(self.table_model)
        self.table_proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("moduleTable")
        self.table.setModel(self.table_proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in enumerate(COLUMN_WIDTHS):
            if column:
                self.table.setColumnWidth(column, width)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # model order until a header is clicked
        self.table.selectionModel().currentRowChanged.connect(self._on_table_row)

        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.setChildrenCollapsible(False)
        middle.addWidget(self._containers["heatmap"])
        self._spectrum_box = spectrum_box = QWidget()
        spectrum_layout = QVBoxLayout(spectrum_box)
        spectrum_layout.setContentsMargins(0, 0, 0, 0)
        spectrum_layout.setSpacing(2)
        self.spectrum_label = QLabel("Singular values of the module selected in the table")
        self.spectrum_label.setObjectName("spectrumLabel")
        self.spectrum_label.setWordWrap(True)
        self.spectrum_label.setTextFormat(Qt.TextFormat.RichText)
        spectrum_layout.addWidget(self.spectrum_label)
        spectrum_layout.addWidget(self._containers["spectrum"], 1)
        middle.addWidget(spectrum_box)
        middle.setSizes([520, 420])
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("analysisSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._containers["blocks"])
        splitter.addWidget(middle)
        splitter.addWidget(self.table)
        splitter.setSizes([280, 250, 190])
        layout.addWidget(splitter, 1)
        self.hint = QLabel("Click a block (bars or heatmap) to select or deselect it in the target grid.")
        self.hint.setObjectName("mutedLabel")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

    # --- building in steps -------------------------------------------------------------------

    @property
    def is_built(self) -> bool:
        return not self._steps

    def build_step(self) -> bool:
        """Build the next plot; returns True while more steps remain."""
        if self._steps:
            self._steps.pop(0)()
        return bool(self._steps)

    def finish_building(self) -> None:
        while self.build_step():
            pass

    def _plot_widget(self, name: str, tooltip: str = "") -> pg.PlotWidget:
        widget = pg.PlotWidget(background=COLORS["base"], enableMenu=False)
        widget.setObjectName(f"{name}Plot")
        if tooltip:
            widget.setToolTip(tooltip)
        _style_plot(widget)
        self._containers[name].layout().addWidget(widget)
        return widget

    def _make_bars(self) -> None:
        self.bars_plot = self._plot_widget(
            "blocks", "Click a block to select or deselect it in the target grid"
        )
        self._build_bars()

    def _make_heatmap(self) -> None:
        self.heat_plot = self._plot_widget(
            "heatmap", "Click a column to select or deselect that block in the target grid"
        )
        self._build_heatmap()

    def _make_spectrum(self) -> None:
        self.spectrum_plot = self._plot_widget("spectrum")
        self._build_spectrum()

    # --- building the plots ------------------------------------------------------------------

    def _build_bars(self) -> None:
        plot = self.bars_plot.getPlotItem()
        plot.setLabel("bottom", "block")
        plot.setLabel("left", "Frobenius norm")
        plot.setMenuEnabled(False)
        # one row above the bars (the y range leaves room for it); PNG exports keep it
        self.legend = plot.addLegend(
            offset=(4, 2), colCount=4, labelTextColor=COLORS["text"], labelTextSize="8pt", verSpacing=-4
        )
        self.bar_items: dict[str, pg.BarGraphItem] = {}
        for key, label, color in SERIES:
            bar = pg.BarGraphItem(x=[], height=[], width=0.26, brush=color, pen=pg.mkPen(None), name=label)
            plot.addItem(bar)
            self.bar_items[key] = bar
        # the cancellation ratio on a second y axis (pyqtgraph's multiple-axes recipe)
        self.cancel_box = pg.ViewBox()
        plot.showAxis("right")
        plot.scene().addItem(self.cancel_box)
        plot.getAxis("right").linkToView(self.cancel_box)
        plot.getAxis("right").setLabel("cancellation ratio", color=CANCEL_COLOR)
        # the ratio lies in [0, 1]; the headroom above 1 is for the legend, so no ticks there
        plot.getAxis("right").setTicks([[(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]])
        self.cancel_box.setXLink(plot)
        self.cancel_box.setYRange(0.0, LEGEND_HEADROOM, padding=0)
        self.cancel_box.setMouseEnabled(x=False, y=False)
        self.cancel_curve = pg.PlotDataItem(
            [],
            [],
            pen=pg.mkPen(CANCEL_COLOR, width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=CANCEL_COLOR,
            symbolPen=None,
        )
        self.cancel_box.addItem(self.cancel_curve)
        self.legend.addItem(self.cancel_curve, "cancellation (right axis)")
        plot.vb.sigResized.connect(self._sync_cancel_box)
        plot.scene().sigMouseClicked.connect(self._on_bars_clicked)

    def _sync_cancel_box(self) -> None:
        plot = self.bars_plot.getPlotItem()
        self.cancel_box.setGeometry(plot.vb.sceneBoundingRect())
        self.cancel_box.linkedViewChanged(plot.vb, self.cancel_box.XAxis)

    def _build_heatmap(self) -> None:
        plot = self.heat_plot.getPlotItem()
        plot.setLabel("bottom", "block")
        plot.setMenuEnabled(False)
        plot.invertY(True)
        self.heat_image = pg.ImageItem()
        self.colormap = pg.colormap.get("viridis")
        self.heat_image.setColorMap(self.colormap)
        plot.addItem(self.heat_image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=self.colormap, label="‖ΔW_out‖", interactive=False, width=12
        )
        self.colorbar.setImageItem(self.heat_image, insert_in=plot)
        plot.scene().sigMouseClicked.connect(self._on_heat_clicked)

    def _build_spectrum(self) -> None:
        plot = self.spectrum_plot.getPlotItem()
        plot.setLabel("bottom", "singular value index")
        plot.setLabel("left", "singular value")
        plot.setMenuEnabled(False)
        self.spectrum_kept = pg.BarGraphItem(
            x=[], height=[], width=0.7, brush=SERIES[2][2], pen=pg.mkPen(None)
        )
        self.spectrum_dropped = pg.BarGraphItem(
            x=[], height=[], width=0.7, brush="#4a4f58", pen=pg.mkPen(None)
        )
        plot.addItem(self.spectrum_kept)
        plot.addItem(self.spectrum_dropped)
        self.spectrum_curve = pg.PlotDataItem(
            [], [], pen=None, symbol="o", symbolSize=4, symbolBrush=COLORS["text"]
        )
        plot.addItem(self.spectrum_curve)
        self.rank_line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(CANCEL_COLOR, width=2, style=Qt.PenStyle.DashLine),
            label="rank {value:.0f}",
            labelOpts={"position": 0.92, "color": CANCEL_COLOR, "anchors": [(0, 0), (0, 0)]},
        )
        plot.addItem(self.rank_line)
        self.rank_line.hide()
        self.spectrum_text = ""

    # --- filling -----------------------------------------------------------------------------

    def set_analysis(self, result: AnalysisResult, heading: str = "", *, staged: bool = False) -> None:
        """Show an analysis (replacing the previous one).

        ``staged``: fill one plot per event-loop pass (bars now, heatmap, table and spectrum
        next), so that no single pass of filling and repainting holds up the window.
        :attr:`is_filled` says when everything shows the new analysis.
        """
        self.finish_building()
        self.result = result
        self.blocks = data.block_rows(result)
        self.heat = data.heatmap(result)
        merged = sum(1 for r in result.rows if r.status == MERGED)
        parts = [
            f"<b>{html.escape(heading or 'Analysis')}</b>",
            html.escape(
                f"{result.model}; {merged} of {len(result.rows)} modules merged; alpha {result.alpha:.6g}"
            ),
        ]
        if result.rank_policy:
            parts.append(html.escape(result.rank_policy))
        self.title.setText(" · ".join(parts))
        self._fills = [self._fill_bars, self._fill_heatmap, self._fill_table, self._select_most_distinct]
        if staged:
            self._fill_next()
        else:
            while self._fills:
                self._fills.pop(0)()

    @property
    def is_filled(self) -> bool:
        return not self._fills

    def _fill_next(self) -> None:
        if self._fills:
            self._fills.pop(0)()
        if self._fills:
            self._fill_timer.start(0)

    def _select_most_distinct(self) -> None:
        top = self.result.most_distinct(1) if self.result is not None else []
        self.select_module(top[0].name if top else "")

    def _fill_bars(self) -> None:
        x = np.array([b.block for b in self.blocks], dtype=float)
        offsets = {"norm_a": -0.28, "norm_b": 0.0, "norm_out": 0.28}
        for key, _label, _color in SERIES:
            heights = [getattr(b, key) for b in self.blocks]
            self.bar_items[key].setOpts(x=x + offsets[key], height=heights, brushes=self._brushes(key))
        cancel = [np.nan if b.cancellation is None else b.cancellation for b in self.blocks]
        self.cancel_curve.setData(x, np.array(cancel, dtype=float), connect="finite")
        plot = self.bars_plot.getPlotItem()
        if len(x):
            plot.setXRange(x.min() - 0.7, x.max() + 0.7, padding=0)
            top = max(max(getattr(b, key) for b in self.blocks) for key, _, _ in SERIES)
            plot.setYRange(0.0, top * LEGEND_HEADROOM if top > 0 else 1.0, padding=0)
        self.cancel_box.setYRange(0.0, LEGEND_HEADROOM, padding=0)
        self._sync_cancel_box()

    def _brushes(self, key: str) -> list:
        color = dict((k, c) for k, _, c in SERIES)[key]
        brushes = []
        for block in self.blocks:
            qcolor = QColor(color)
            if self._selected_blocks is not None and block.block not in self._selected_blocks:
                qcolor.setAlpha(DESELECTED_ALPHA)
            brushes.append(pg.mkBrush(qcolor))
        return brushes

    def _fill_heatmap(self) -> None:
        heat = self.heat
        plot = self.heat_plot.getPlotItem()
        if heat is None or not heat.blocks:
            self.heat_image.clear()
            return
        first, last = heat.blocks[0], heat.blocks[-1]
        width = last - first + 1
        image = np.full((width, len(heat.layers)), np.nan)
        for i, block in enumerate(heat.blocks):
            for j in range(len(heat.layers)):
                if heat.present[i][j]:
                    image[block - first, j] = heat.values[i][j]
        self.heat_array = image
        top = float(np.nanmax(image)) if np.isfinite(image).any() else 0.0
        self.heat_image.setImage(image, levels=(0.0, top if top > 0 else 1.0), autoLevels=False)
        self.heat_image.setRect(QRectF(first - 0.5, -0.5, width, len(heat.layers)))
        self.colorbar.setLevels((0.0, top if top > 0 else 1.0))
        plot.getAxis("left").setTicks([[(j, _layer_label(name)) for j, name in enumerate(heat.layers)]])
        plot.setXRange(first - 0.5, last + 0.5, padding=0)
        plot.setYRange(-0.5, len(heat.layers) - 0.5, padding=0)

    def _fill_table(self) -> None:
        self.table_model.set_rows(self.result.rows if self.result is not None else [])

    # --- the spectrum ------------------------------------------------------------------------

    def select_module(self, name: str) -> None:
        """Show a module's spectrum and select its table row."""
        self.current_module = name
        source_row = self.table_model.row_of(name)
        if source_row is not None:
            index = self.table_proxy.mapFromSource(self.table_model.index(source_row, 0))
            self.table.selectionModel().blockSignals(True)
            self.table.selectRow(index.row())
            self.table.selectionModel().blockSignals(False)
            self.table.scrollTo(index)
        self._fill_spectrum()

    def _on_table_row(self, current, _previous) -> None:
        if not current.isValid():
            return
        name = self.table_proxy.data(current.siblingAtColumn(0), NAME_ROLE)
        if name:
            self.current_module = str(name)
            self._fill_spectrum()

    def _fill_spectrum(self) -> None:
        plot = self.spectrum_plot.getPlotItem()
        if self.result is None or not self.current_module:
            for item in (self.spectrum_kept, self.spectrum_dropped):
                item.setOpts(x=[], height=[])
            self.spectrum_curve.setData([], [])
            self.rank_line.hide()
            self.spectrum_text = ""
            self.spectrum_label.setText("Singular values of the module selected in the table")
            return
        spectrum = data.spectrum(self.result, self.current_module)
        self.spectrum = spectrum
        values = np.array(spectrum.values, dtype=float)
        index = np.arange(1, len(values) + 1, dtype=float)
        kept = spectrum.rank
        self.spectrum_kept.setOpts(x=index[:kept], height=values[:kept])
        self.spectrum_dropped.setOpts(x=index[kept:], height=values[kept:])
        self.spectrum_curve.setData(index, values)
        if kept:
            self.rank_line.show()  # first: a hidden line's label ignores value changes
            self.rank_line.label.setFormat(f"rank {kept}")
            self.rank_line.setValue(kept + 0.5)
            self.rank_line.label.valueChanged()
        else:
            self.rank_line.hide()
        self.spectrum_text = spectrum.label
        self.spectrum_label.setText(
            f"<b>{html.escape(spectrum.name)}</b> <span style='color:{COLORS['muted']}'>·</span> "
            f"{html.escape(spectrum.short_label)}"
        )
        top = float(values.max()) if len(values) else 1.0
        plot.setXRange(0.4, max(len(values), 1) + 0.6, padding=0)
        plot.setYRange(0.0, top * 1.08 if top > 0 else 1.0, padding=0)

    # --- selection from the target grid ------------------------------------------------------

    def set_selected_blocks(self, blocks: set[int] | None) -> None:
        """Dim the bars of blocks the target grid leaves out (None: every block is selected)."""
        self._selected_blocks = None if blocks is None else set(blocks)
        if self.blocks:
            for key, _label, _color in SERIES:
                self.bar_items[key].setOpts(brushes=self._brushes(key))

    # --- clicks ------------------------------------------------------------------------------

    def _block_at(self, plot: pg.PlotItem, scene_pos) -> int | None:
        if not plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        x = plot.vb.mapSceneToView(scene_pos).x()
        block = int(round(x))
        present = {b.block for b in self.blocks}
        return block if block in present and abs(x - block) <= 0.5 else None

    def _on_bars_clicked(self, event) -> None:
        block = self._block_at(self.bars_plot.getPlotItem(), event.scenePos())
        if block is not None:
            self.block_clicked.emit(block)

    def _on_heat_clicked(self, event) -> None:
        block = self._block_at(self.heat_plot.getPlotItem(), event.scenePos())
        if block is not None:
            self.block_clicked.emit(block)

    def block_scene_pos(self, plot_name: str, block: int):
        """Where a block is drawn, in the plot widget's viewport coordinates (for tests and demos)."""
        widget = self.bars_plot if plot_name == "blocks" else self.heat_plot
        plot = widget.getPlotItem()
        y = plot.vb.viewRange()[1]
        scene = plot.vb.mapViewToScene(pg.Point(block, (y[0] + y[1]) / 2))
        return widget.mapFromScene(scene)

    # --- export ------------------------------------------------------------------------------

    def plot_widget(self, name: str) -> pg.PlotWidget:
        return {"blocks": self.bars_plot, "heatmap": self.heat_plot, "spectrum": self.spectrum_plot}[name]

    def export_png(self, name: str, path: str | Path, scale: float = EXPORT_SCALE) -> Path:
        """Save one plot as a PNG (``name``: blocks, heatmap or spectrum), as on screen at ``scale``×.

        The widget is rendered into an image of ``scale`` device pixels per pixel: a crisp copy of
        what the user sees (legend, colour bar and, for the spectrum, its title label included).
        pyqtgraph's ImageExporter enlarges text but not the legend, so it is not used here.
        """
        widget = self._spectrum_box if name == "spectrum" else self.plot_widget(name)
        size = widget.size()
        image = QImage(round(size.width() * scale), round(size.height() * scale), QImage.Format.Format_ARGB32)
        image.setDevicePixelRatio(scale)
        image.fill(QColor(COLORS["base"]))
        painter = QPainter(image)
        try:
            # QWidget's render (the widget as painted on screen), not QGraphicsView's scene render
            QWidget.render(widget, painter, QPoint())
        finally:
            painter.end()
        with atomic_output(path, overwrite=True) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write a PNG image to {path}")
        return Path(path)

    def export_csv(self, path: str | Path) -> Path:
        """Save the per-module table (``AnalysisResult.to_csv``)."""
        if self.result is None:
            raise ValueError("no analysis to export")
        return atomic_write_text(path, self.result.to_csv(), overwrite=True)
