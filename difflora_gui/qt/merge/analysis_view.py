"""The analysis of one merge (or one Wan2.2 expert of it): block bars, heatmap, spectrum and module table.

The plots are in :mod:`analysis_plots`, the table in :mod:`analysis_table`. Clicking a block in
the bars emits :attr:`AnalysisView.block_clicked` (the panel toggles that block in the target
grid); clicking a heatmap cell shows that module's spectrum and selects its table row. Hovering
shows the numbers under the pointer. Without data a placeholder covers the plots (never empty
axes); :meth:`mark_stale` greys them until the next :meth:`set_analysis`. This module imports
pyqtgraph: the panel imports it only when the first analysis is near, so the window starts without it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QRectF, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSplitter,
    QTableView,
    QToolTip,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from difflora_gui.fileio import atomic_output, atomic_write_text
from difflora_gui.merge import plot_data as data
from difflora_gui.merge.analysis import MERGED, AnalysisResult
from difflora_gui.qt.merge.analysis_overlay import INTRO_TEXT, AnalysisOverlay
from difflora_gui.qt.merge.analysis_plots import BarsPlot, HeatmapPlot, SpectrumPlot
from difflora_gui.qt.merge.analysis_table import COLUMN_WIDTHS, NAME_ROLE, SORT_ROLE, ModuleTableModel
from difflora_gui.qt.theme import COLORS

PLOTS = ("blocks", "heatmap", "spectrum")
#: PNG exports have this many pixels per screen pixel
EXPORT_SCALE = 2.0
EMPTY_TEXT = INTRO_TEXT
STALE_REASON = "inputs changed"


def stale_text(reason: str) -> str:
    return f"Stale: {reason or STALE_REASON} — Analyze again"


def _container() -> QWidget:
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    return holder


class AnalysisView(QWidget):
    """Block bars, heatmap, module table and spectrum for one :class:`AnalysisResult`."""

    #: a block was clicked in the bars
    block_clicked = Signal(int)
    #: the user picked a module (heatmap cell or table row); its spectrum is on show
    module_picked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("analysisView")
        self.result: AnalysisResult | None = None
        self.blocks: list[data.BlockRow] = []
        self.heat: data.Heatmap | None = None
        self.spectrum: data.Spectrum | None = None
        self.current_module = ""
        self.stale_reason: str | None = None
        #: the last hover text shown (empty: none)
        self.hover_text = ""
        #: the title drawn into the last exported PNG
        self.last_export_title = ""
        self._selected_blocks: set[int] | None = None
        self._viewports: dict[QWidget, str] = {}
        self._hover_key: tuple | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        # one line, elided at the end (the workbench may leave the side ~320 px): whole in the tooltip
        self.title = QElidingLabel("")
        self.title.setObjectName("analysisTitle")
        self.title.hide()  # until there is an analysis: the placeholder then sits where the intro was
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

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(4)
        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.setChildrenCollapsible(False)
        middle.addWidget(self._containers["heatmap"])
        middle.addWidget(self._containers["spectrum"])
        middle.setSizes([520, 420])
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("analysisSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._containers["blocks"])
        splitter.addWidget(middle)
        splitter.addWidget(self.table)
        splitter.setSizes([280, 250, 190])
        body.addWidget(splitter, 1)
        hint = (
            "Click a bar: select or deselect its block in the target grid · a heatmap cell: its spectrum · "
            "hover: values"
        )
        self.hint = QElidingLabel(hint)
        self.hint.setToolTip(hint)
        self.hint.setObjectName("mutedLabel")
        body.addWidget(self.hint)
        layout.addWidget(self.body, 1)
        self.overlay = AnalysisOverlay(self.body)
        self.overlay.show_empty(EMPTY_TEXT)

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

    def _add(self, name: str, plot) -> None:
        self._containers[name].layout().addWidget(plot.holder)
        scene = plot.widget.scene()
        viewport = plot.widget.viewport()
        self._viewports[viewport] = name
        viewport.installEventFilter(self)
        scene.sigMouseClicked.connect(lambda event, name=name: self._on_click(name, event))

    def _make_bars(self) -> None:
        self.bars = BarsPlot()
        self._add("blocks", self.bars)

    def _make_heatmap(self) -> None:
        self.heatmap = HeatmapPlot()
        self._add("heatmap", self.heatmap)

    def _make_spectrum(self) -> None:
        self.spectrum_view = SpectrumPlot()
        self._add("spectrum", self.spectrum_view)

    # the plots' parts by name (tests, demos and the screenshot script read them)
    bars_plot = property(lambda self: self.bars.widget)
    heat_plot = property(lambda self: self.heatmap.widget)
    spectrum_plot = property(lambda self: self.spectrum_view.widget)
    bar_items = property(lambda self: self.bars.items)
    cancel_curve = property(lambda self: self.bars.cancel_curve)
    heat_image = property(lambda self: self.heatmap.image)
    heat_array = property(lambda self: self.heatmap.array)
    spectrum_curve = property(lambda self: self.spectrum_view.curve)
    spectrum_kept = property(lambda self: self.spectrum_view.kept)
    spectrum_dropped = property(lambda self: self.spectrum_view.dropped)
    rank_line = property(lambda self: self.spectrum_view.rank_line)
    spectrum_label = property(lambda self: self.spectrum_view.label)

    # --- filling -----------------------------------------------------------------------------

    def set_analysis(self, result: AnalysisResult, heading: str = "", *, staged: bool = False) -> None:
        """Show an analysis (replacing the previous one, and any stale mark).

        ``staged``: fill one plot per event-loop pass (bars now, heatmap, table and spectrum
        next), so that no single pass of filling and repainting holds up the window.
        :attr:`is_filled` says when everything shows the new analysis.
        """
        self.finish_building()
        if not result.rows and result.experts:
            result = result.by_expert[result.experts[0]]  # one view shows one expert (the side shows both)
        self.result = result
        self.stale_reason = None
        self.blocks = data.block_rows(result)
        self.heat = data.heatmap(result)
        title = self._title_text(result, heading)
        self.title.setText(title)
        self.title.setToolTip(title)
        self.title.show()
        self.overlay.dismiss()
        self._fills = [self._fill_bars, self._fill_heatmap, self._fill_table, self._select_most_distinct]
        if staged:
            self._fill_next()
        else:
            while self._fills:
                self._fills.pop(0)()

    @staticmethod
    def _title_text(result: AnalysisResult, heading: str) -> str:
        merged = sum(1 for r in result.rows if r.status == MERGED)
        parts = [
            heading or "Analysis",
            f"{result.model}; {merged} of {len(result.rows)} modules merged; alpha {result.alpha:.6g}",
        ]
        if result.rank_policy:
            parts.append(result.rank_policy)
        return " · ".join(parts)

    def clear(self) -> None:
        """No data: the placeholder covers the plots, the table is empty (exports have nothing to write)."""
        self._fills = []
        self._fill_timer.stop()
        self.result = None
        self.stale_reason = None
        self.blocks, self.heat, self.spectrum, self.current_module = [], None, None, ""
        self.title.setText("")
        self.title.setToolTip("")
        self.title.hide()
        self.table_model.set_rows([])
        if self.is_built:
            self.bars.clear()
            self.heatmap.clear()
            self.spectrum_view.fill(None)
        self.overlay.show_empty(EMPTY_TEXT)

    def mark_stale(self, reason: str = STALE_REASON) -> None:
        """The numbers no longer match the inputs: greyed under a stale mark until the next analysis."""
        if self.result is None:
            return  # nothing shown, nothing to mark
        self.stale_reason = reason or STALE_REASON
        self.overlay.show_stale(stale_text(self.stale_reason))

    @property
    def is_stale(self) -> bool:
        return self.stale_reason is not None

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
        self.bars.selected = self._selected_blocks
        self.bars.fill(self.blocks)

    def _fill_heatmap(self) -> None:
        self.heatmap.fill(self.heat)

    def _fill_table(self) -> None:
        result = self.result
        self.table_model.set_rows(result.rows if result is not None else [], result.alpha if result else 1.0)

    # --- the spectrum ------------------------------------------------------------------------

    def select_module(self, name: str) -> None:
        """Show a module's spectrum, select its table row and outline its heatmap cell."""
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
            self.module_picked.emit(self.current_module)

    def _fill_spectrum(self) -> None:
        if self.result is None or not self.current_module:
            self.spectrum = None
            self.spectrum_view.fill(None)
            self.heatmap.outline_module("")
            return
        spectrum = data.spectrum(self.result, self.current_module)
        self.spectrum = spectrum
        self.spectrum_view.fill(spectrum, f"{spectrum.name} · {spectrum.short_label}")
        self.heatmap.outline_module(self.current_module)

    @property
    def spectrum_text(self) -> str:
        return self.spectrum.label if self.spectrum is not None else ""

    # --- selection from the target grid ------------------------------------------------------

    def set_selected_blocks(self, blocks: set[int] | None) -> None:
        """Dim the bars of blocks the target grid leaves out (None: every block is selected)."""
        self._selected_blocks = None if blocks is None else set(blocks)
        if self.is_built:
            self.bars.set_selected(self._selected_blocks)

    # --- the pointer -------------------------------------------------------------------------

    def _hit(self, plot_name: str, scene_pos):
        """What is under a scene point of a plot, as a key (None: nothing)."""
        if self.result is None or self.is_stale:
            return None
        if plot_name == "blocks":
            return self.bars.at(scene_pos)
        if plot_name == "heatmap":
            return self.heatmap.module_at(scene_pos)
        return self.spectrum_view.at(scene_pos) if self.spectrum is not None else None

    def _hover_text(self, plot_name: str, hit) -> str:
        if hit is None:
            return ""
        if plot_name == "blocks":
            return data.block_hover(self.result, hit[0], hit[1])
        if plot_name == "heatmap":
            return data.cell_hover(self.result, hit)
        return f"{self.spectrum.name}\n{data.spectrum_hover(self.spectrum, hit)}"

    def hover_at(self, plot_name: str, scene_pos) -> str:
        """What hovering over a scene point of a plot shows (empty: nothing under it)."""
        return self._hover_text(plot_name, self._hit(plot_name, scene_pos))

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        # every move of the pointer over a plot (the scene's own signal drops moves < 10 ms apart,
        # which could leave the tooltip of the cell the pointer just left)
        name = self._viewports.get(watched)
        if name is not None:
            if event.type() == QEvent.Type.MouseMove:
                self._on_hover(name, self.plot_widget(name).mapToScene(event.position().toPoint()))
            elif event.type() == QEvent.Type.Leave:
                self._on_hover(name, None)
        return False

    def _on_hover(self, plot_name: str, scene_pos) -> None:
        hit = None if scene_pos is None else self._hit(plot_name, scene_pos)
        key = (plot_name, hit)
        if key == self._hover_key:
            return  # the same thing under the pointer: the tooltip stays
        self._hover_key = key
        self.hover_text = text = self._hover_text(plot_name, hit)
        widget = self.plot_widget(plot_name)
        if text:
            QToolTip.showText(widget.mapToGlobal(widget.mapFromScene(scene_pos)), text, widget)
        else:
            QToolTip.hideText()

    def _on_click(self, plot_name: str, event) -> None:
        if self.result is None or self.is_stale:
            return
        if plot_name == "blocks":
            hit = self.bars.at(event.scenePos())
            if hit is not None:
                self.block_clicked.emit(hit[0])
        elif plot_name == "heatmap":
            name = self.heatmap.module_at(event.scenePos())
            if name is not None:
                self.select_module(name)
                self.module_picked.emit(name)

    def block_scene_pos(self, plot_name: str, block: int) -> QPoint:
        """Where a block is drawn, in the plot widget's viewport coordinates (for tests and demos)."""
        return (self.bars if plot_name == "blocks" else self.heatmap).viewport_pos(block)

    def cell_scene_pos(self, name: str) -> QPoint:
        """Where a module's heatmap cell is drawn (viewport coordinates of the heatmap widget)."""
        cell = self.heat.cell_of(name) if self.heat is not None else None
        if cell is None:
            raise KeyError(name)
        return self.heatmap.viewport_pos(*cell)

    # --- export ------------------------------------------------------------------------------

    def plot_widget(self, name: str):
        return {"blocks": self.bars, "heatmap": self.heatmap, "spectrum": self.spectrum_view}[name].widget

    def export_widget(self, name: str) -> QWidget:
        """What a PNG export shows of a plot: the plot with its legend row (bars) or label (spectrum)."""
        return {"blocks": self.bars, "heatmap": self.heatmap, "spectrum": self.spectrum_view}[name].holder

    def export_title(self, name: str) -> str:
        if self.result is None:
            return ""
        return data.plot_title(name, self.result, self.current_module if name == "spectrum" else "")

    def export_png(self, name: str, path: str | Path, scale: float = EXPORT_SCALE) -> Path:
        """Save one plot as a PNG (``name``: blocks, heatmap or spectrum) under a title, at ``scale``×.

        The widget is rendered into an image of ``scale`` device pixels per pixel: a crisp copy of
        what the user sees (legend, colour bar and, for the spectrum, its label included), with a
        title band on top naming the plot, the inputs and the expert. pyqtgraph's ImageExporter
        enlarges text but not the legend, so it is not used here.
        """
        if self.result is None:
            raise ValueError("no analysis to export")
        widget = self.export_widget(name)
        size = widget.size()
        title = self.export_title(name)
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(font.pointSizeF(), 9.0) * 1.1)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap)
        text_box = QFontMetricsF(font).boundingRect(QRectF(0, 0, size.width() - 16, 1000), flags, title)
        band = int(text_box.height() + 12)
        image = QImage(
            round(size.width() * scale), round((size.height() + band) * scale), QImage.Format.Format_ARGB32
        )
        image.setDevicePixelRatio(scale)
        image.fill(QColor(COLORS["base"]))
        painter = QPainter(image)
        try:
            painter.setFont(font)
            painter.setPen(QColor(COLORS["text"]))
            painter.drawText(QRectF(8, 0, size.width() - 16, band), flags, title)
            # QWidget's render (the widget as painted on screen), not QGraphicsView's scene render
            QWidget.render(widget, painter, QPoint(0, band))
        finally:
            painter.end()
        with atomic_output(path, overwrite=True) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write a PNG image to {path}")
        self.last_export_title = title
        return Path(path)

    def export_csv(self, path: str | Path) -> Path:
        """Save the per-module table (``AnalysisResult.to_csv``)."""
        if self.result is None:
            raise ValueError("no analysis to export")
        return atomic_write_text(path, self.result.to_csv(), overwrite=True)
