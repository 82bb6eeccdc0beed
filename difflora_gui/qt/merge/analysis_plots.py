"""The three analysis plots (pyqtgraph), each with what is under the pointer and where a thing is drawn.

* :class:`BarsPlot`: ‖ΔW_a‖, ‖ΔW_b‖ and ‖ΔW_out‖ per block, the block's cancellation ratio as a
  line on a second axis (0: A and B cancel, 1: nothing shared); the legend is a row of its own
  above the plot, so it never covers a bar.
* :class:`HeatmapPlot`: ‖ΔW_out‖ of every module, blocks × layer types; the selected module's
  cell is outlined.
* :class:`SpectrumPlot`: one module's singular values, the rank cut.

``at(scene_pos)`` says what is under a point (for hover texts and clicks); ``viewport_pos(...)``
says where something is drawn (tests and demos click there). Imports pyqtgraph: loaded on first use.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QElidingLabel

from difflora_gui.merge import plot_data as data
from difflora_gui.qt.theme import COLORS

SERIES = (
    ("norm_a", "‖ΔW_a‖", "#5fae7b"),
    ("norm_b", "‖ΔW_b‖", "#d0707a"),
    ("norm_out", "‖ΔW_out‖", "#6b9cf0"),
)
CANCEL_COLOR = "#e0b060"
DESELECTED_ALPHA = 70
#: the bars' offsets from the block's centre
_OFFSETS = {"norm_a": -0.28, "norm_b": 0.0, "norm_out": 0.28}
_BAR_WIDTH = 0.26
#: the y ranges end this much above the tallest bar (a little air, no legend to make room for)
HEADROOM = 1.06

NO_SPECTRUM = "Singular values of the module selected in the table or the heatmap"
#: short names for the heatmap's rows
_LAYER_LABELS = {"self_attn": "self", "cross_attn": "cross", "ffn": "ffn"}


def layer_label(key: str) -> str:
    group, _, layer = key.partition(".")
    return f"{_LAYER_LABELS.get(group, group)} {layer}".strip()


def block_ticks(axis: pg.AxisItem, blocks: list[int], most: int) -> None:
    """Whole block numbers on a block axis: every n-th (1, 2, 5, 10 …) so that at most ``most`` show."""
    step = next(n for n in (1, 2, 5, 10, 20, 50, 100, 10**9) if len(blocks) <= most * n)
    axis.setTicks([[(b, str(b)) for b in blocks if b % step == 0], []] if blocks else None)


def _plot_widget(object_name: str) -> pg.PlotWidget:
    widget = pg.PlotWidget(background=COLORS["base"], enableMenu=False)
    widget.setObjectName(object_name)
    item = widget.getPlotItem()
    for name in ("left", "bottom", "right"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(COLORS["muted"]))
        axis.setTextPen(pg.mkPen(COLORS["text"]))
        axis.enableAutoSIPrefix(False)  # no "(x0.001)" beside the label: the ticks say the numbers
    item.showGrid(x=False, y=True, alpha=0.15)
    item.setMenuEnabled(False)
    return widget


class _Plot:
    """A plot widget inside ``holder`` (what is exported: the plot with its legend row or label)."""

    widget: pg.PlotWidget
    holder: QWidget

    @property
    def item(self) -> pg.PlotItem:
        return self.widget.getPlotItem()

    def _inside(self, scene_pos) -> pg.Point | None:
        """The view coordinates of a scene point inside the plot area (None outside it)."""
        vb = self.item.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        return vb.mapSceneToView(scene_pos)

    def _viewport_pos(self, x: float, y: float) -> QPoint:
        return self.widget.mapFromScene(self.item.vb.mapViewToScene(pg.Point(x, y)))


def _holder(widget: QWidget, above: QWidget | None = None) -> QWidget:
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    if above is not None:
        layout.addWidget(above)
    layout.addWidget(widget, 1)
    return holder


def _legend_html() -> str:
    swatches = [f"<span style='color:{color}'>■</span>&nbsp;{label}" for _key, label, color in SERIES]
    swatches.append(f"<span style='color:{CANCEL_COLOR}'>●</span>&nbsp;cancellation (right)")
    return "&nbsp;&nbsp;&nbsp;".join(swatches)


class BarsPlot(_Plot):
    def __init__(self):
        self.widget = _plot_widget("blocksPlot")
        self.legend = QLabel(_legend_html())
        self.legend.setObjectName("barsLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.legend.setToolTip(
            "‖ΔW_a‖, ‖ΔW_b‖: the block's norms of LoRA A and B (at strength 1, before alpha); ‖ΔW_out‖: "
            "what the output file holds (truncated, alpha applied); cancellation ‖A−B‖/(‖A‖+‖B‖) on "
            "the right axis: 0 = A and B cancel, 1 = nothing shared"
        )
        self.legend.setStyleSheet(
            f"background:{COLORS['base']}; color:{COLORS['text']}; padding:2px 6px; font-size:8pt;"
        )
        self.holder = _holder(self.widget, self.legend)
        self.blocks: list[data.BlockRow] = []
        self.selected: set[int] | None = None
        plot = self.item
        plot.setLabel("bottom", "block")
        plot.setLabel("left", "Frobenius norm")
        self.items: dict[str, pg.BarGraphItem] = {}
        for key, label, color in SERIES:
            bar = pg.BarGraphItem(
                x=[], height=[], width=_BAR_WIDTH, brush=color, pen=pg.mkPen(None), name=label
            )
            plot.addItem(bar)
            self.items[key] = bar
        # the cancellation ratio on a second y axis (pyqtgraph's multiple-axes recipe)
        self.cancel_box = pg.ViewBox()
        plot.showAxis("right")
        plot.scene().addItem(self.cancel_box)
        right = plot.getAxis("right")
        right.linkToView(self.cancel_box)
        right.setLabel("cancellation ratio", color=CANCEL_COLOR)
        right.setTicks([[(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]])
        self.cancel_box.setXLink(plot)
        self.cancel_box.setYRange(0.0, HEADROOM, padding=0)
        self.cancel_box.setMouseEnabled(x=False, y=False)
        self.cancel_box.setZValue(plot.vb.zValue() + 1)  # the line over the bars
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
        plot.vb.sigResized.connect(self._sync_cancel_box)

    def _sync_cancel_box(self) -> None:
        vb = self.item.vb
        self.cancel_box.setGeometry(vb.sceneBoundingRect())
        self.cancel_box.linkedViewChanged(vb, self.cancel_box.XAxis)

    def fill(self, blocks: list[data.BlockRow]) -> None:
        self.blocks = blocks
        x = np.array([b.block for b in blocks], dtype=float)
        for key, _label, _color in SERIES:
            heights = [getattr(b, key) for b in blocks]
            self.items[key].setOpts(x=x + _OFFSETS[key], height=heights, brushes=self._brushes(key))
        cancel = [np.nan if b.cancellation is None else b.cancellation for b in blocks]
        self.cancel_curve.setData(x, np.array(cancel, dtype=float), connect="finite")
        block_ticks(self.item.getAxis("bottom"), [b.block for b in blocks], most=20)
        if len(x):
            self.item.setXRange(x.min() - 0.7, x.max() + 0.7, padding=0)
            top = max(max(getattr(b, key) for b in blocks) for key, _, _ in SERIES)
            self.item.setYRange(0.0, top * HEADROOM if top > 0 else 1.0, padding=0)
        self.cancel_box.setYRange(0.0, HEADROOM, padding=0)
        self._sync_cancel_box()

    def clear(self) -> None:
        self.fill([])

    def _brushes(self, key: str) -> list:
        color = next(c for k, _, c in SERIES if k == key)
        brushes = []
        for block in self.blocks:
            qcolor = QColor(color)
            if self.selected is not None and block.block not in self.selected:
                qcolor.setAlpha(DESELECTED_ALPHA)
            brushes.append(pg.mkBrush(qcolor))
        return brushes

    def set_selected(self, blocks: set[int] | None) -> None:
        self.selected = None if blocks is None else set(blocks)
        if self.blocks:
            for key, _label, _color in SERIES:
                self.items[key].setOpts(brushes=self._brushes(key))

    def at(self, scene_pos) -> tuple[int, str | None] | None:
        """(block, bar series under the point or None between the bars) at a scene point."""
        point = self._inside(scene_pos)
        if point is None:
            return None
        x = point.x()
        block = int(round(x))
        if block not in {b.block for b in self.blocks} or abs(x - block) > 0.5:
            return None
        series = next((key for key, off in _OFFSETS.items() if abs(x - block - off) <= _BAR_WIDTH / 2), None)
        return block, series

    def viewport_pos(self, block: int, series: str | None = None) -> QPoint:
        """Where a block (or one of its bars, low down so that it is on the bar) is drawn."""
        y0, y1 = self.item.vb.viewRange()[1]
        x = block + (_OFFSETS[series] if series else 0.0)
        height = next((b for b in self.blocks if b.block == block), None)
        y = (y0 + y1) / 2 if series is None or height is None else getattr(height, series) * 0.25
        return self._viewport_pos(x, y)


class HeatmapPlot(_Plot):
    def __init__(self):
        self.widget = _plot_widget("heatmapPlot")
        self.holder = _holder(self.widget)
        self.heat: data.Heatmap | None = None
        self.array = np.zeros((0, 0))
        plot = self.item
        plot.setLabel("bottom", "block")
        plot.invertY(True)
        self.image = pg.ImageItem()
        self.colormap = pg.colormap.get("viridis")
        self.image.setColorMap(self.colormap)
        plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=self.colormap, label="‖ΔW_out‖", interactive=False, width=12
        )
        self.colorbar.setImageItem(self.image, insert_in=plot)
        self.outline = pg.QtWidgets.QGraphicsRectItem()
        self.outline.setPen(pg.mkPen(COLORS["text"], width=2))
        self.outline.setZValue(10)
        self.outline.hide()
        plot.addItem(self.outline, ignoreBounds=True)

    def fill(self, heat: data.Heatmap | None) -> None:
        self.heat = heat
        self.outline.hide()
        if heat is None or not heat.blocks:
            self.image.clear()
            self.array = np.zeros((0, 0))
            return
        first, last = heat.blocks[0], heat.blocks[-1]
        width = last - first + 1
        image = np.full((width, len(heat.layers)), np.nan)
        for i, block in enumerate(heat.blocks):
            for j in range(len(heat.layers)):
                if heat.present[i][j]:
                    image[block - first, j] = heat.values[i][j]
        self.array = image
        top = float(np.nanmax(image)) if np.isfinite(image).any() else 0.0
        levels = (0.0, top if top > 0 else 1.0)
        self.image.setImage(image, levels=levels, autoLevels=False)
        self.image.setRect(QRectF(first - 0.5, -0.5, width, len(heat.layers)))
        self.colorbar.setLevels(levels)
        self.item.getAxis("left").setTicks([[(j, layer_label(name)) for j, name in enumerate(heat.layers)]])
        block_ticks(self.item.getAxis("bottom"), list(heat.blocks), most=9)
        self.item.setXRange(first - 0.5, last + 0.5, padding=0)
        self.item.setYRange(-0.5, len(heat.layers) - 0.5, padding=0)

    def clear(self) -> None:
        self.fill(None)

    def at(self, scene_pos) -> tuple[int, int] | None:
        """(block, layer index) of the cell at a scene point (None off the map)."""
        point = self._inside(scene_pos)
        if point is None or self.heat is None:
            return None
        block, layer = int(round(point.x())), int(round(point.y()))
        if self.heat.module_at(block, layer) is None:
            return None
        return block, layer

    def module_at(self, scene_pos) -> str | None:
        cell = self.at(scene_pos)
        return None if cell is None or self.heat is None else self.heat.module_at(*cell)

    def viewport_pos(self, block: int, layer: int | None = None) -> QPoint:
        """Where a cell (or, without ``layer``, a block's column) is drawn."""
        if layer is None:
            y0, y1 = self.item.vb.viewRange()[1]
            return self._viewport_pos(block, (y0 + y1) / 2)
        return self._viewport_pos(block, layer)

    def outline_module(self, name: str) -> None:
        cell = self.heat.cell_of(name) if self.heat is not None and name else None
        if cell is None:
            self.outline.hide()
            return
        block, layer = cell
        self.outline.setRect(QRectF(block - 0.5, layer - 0.5, 1.0, 1.0))
        self.outline.show()


class SpectrumPlot(_Plot):
    def __init__(self):
        self.widget = _plot_widget("spectrumPlot")
        self.label = QElidingLabel(NO_SPECTRUM)
        self.label.setObjectName("spectrumLabel")
        self.holder = _holder(self.widget, self.label)
        self.spectrum: data.Spectrum | None = None
        plot = self.item
        plot.setLabel("bottom", "singular value index")
        plot.setLabel("left", "singular value")
        self.kept = pg.BarGraphItem(x=[], height=[], width=0.7, brush=SERIES[2][2], pen=pg.mkPen(None))
        self.dropped = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#4a4f58", pen=pg.mkPen(None))
        plot.addItem(self.kept)
        plot.addItem(self.dropped)
        self.curve = pg.PlotDataItem([], [], pen=None, symbol="o", symbolSize=4, symbolBrush=COLORS["text"])
        plot.addItem(self.curve)
        self.rank_line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(CANCEL_COLOR, width=2, style=Qt.PenStyle.DashLine),
            label="rank {value:.0f}",
            labelOpts={"position": 0.92, "color": CANCEL_COLOR, "anchors": [(0, 0), (0, 0)]},
        )
        plot.addItem(self.rank_line)
        self.rank_line.hide()

    def fill(self, spectrum: data.Spectrum | None, label: str = "") -> None:
        self.spectrum = spectrum
        if spectrum is None:
            for item in (self.kept, self.dropped):
                item.setOpts(x=[], height=[])
            self.curve.setData([], [])
            self.rank_line.hide()
            self.label.setText(NO_SPECTRUM)
            self.label.setToolTip("")
            return
        values = np.array(spectrum.values, dtype=float)
        index = np.arange(1, len(values) + 1, dtype=float)
        kept = spectrum.rank
        self.kept.setOpts(x=index[:kept], height=values[:kept])
        self.dropped.setOpts(x=index[kept:], height=values[kept:])
        self.curve.setData(index, values)
        if kept:
            self.rank_line.show()  # first: a hidden line's label ignores value changes
            self.rank_line.label.setFormat(f"rank {kept}")
            self.rank_line.setValue(kept + 0.5)
            self.rank_line.label.valueChanged()
        else:
            self.rank_line.hide()
        self.label.setText(label)  # one line, elided; whole in the tooltip
        self.label.setToolTip(label)
        top = float(values.max()) if len(values) else 1.0
        self.item.setXRange(0.4, max(len(values), 1) + 0.6, padding=0)
        self.item.setYRange(0.0, top * 1.08 if top > 0 else 1.0, padding=0)

    def at(self, scene_pos) -> int | None:
        """The 1-based index of the singular value at a scene point."""
        point = self._inside(scene_pos)
        if point is None or self.spectrum is None:
            return None
        index = int(round(point.x()))
        return index if 1 <= index <= len(self.spectrum.values) and abs(point.x() - index) <= 0.5 else None

    def viewport_pos(self, index: int) -> QPoint:
        value = (
            self.spectrum.values[index - 1]
            if self.spectrum and 1 <= index <= len(self.spectrum.values)
            else 0
        )
        return self._viewport_pos(index, value * 0.5)
