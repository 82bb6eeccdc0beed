"""The pyqtgraph side of the loss plot: the loss chart, the small lr chart under it, the curves.

Imports pyqtgraph and numpy at the top: :class:`~.loss_plot.LossPlot` imports this module only
once pyqtgraph is in (loaded off the UI thread), so the window never waits for it at start-up.

Per run: the raw loss (thin, translucent), the smoothed curve (thick), its learning rate (on the
lr chart, x-linked) and its checkpoints as dots on the smoothed curve, each dot's file name in
its tooltip. A vertical cursor and a readout over the chart's top right corner say what the
curves are at the step under the pointer.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    from difflora_gui.qt.train.loss_plot import Series

#: the left axes' width: the loss and lr charts line up, so their steps do
AXIS_WIDTH = 62
#: the learning-rate chart's height (it shrinks with a short plot, down to LR_CHART_MIN)
LR_CHART_HEIGHT = 84
LR_CHART_MIN = 44
#: alpha of the raw loss curves (0..255)
RAW_ALPHA = 70


@dataclass
class RunItems:
    """The plot items of one run."""

    raw: pg.PlotDataItem
    smooth: pg.PlotDataItem
    lr: pg.PlotDataItem
    marks: pg.ScatterPlotItem


def _plot_widget(name: str) -> pg.PlotWidget:
    widget = pg.PlotWidget(background=COLORS["base"], enableMenu=False)
    widget.setObjectName(name)
    item = widget.getPlotItem()
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setPen(pg.mkPen(COLORS["muted"]))
        axis.setTextPen(pg.mkPen(COLORS["text"]))
        axis.enableAutoSIPrefix(False)
    item.getAxis("left").setWidth(AXIS_WIDTH)
    item.showGrid(x=True, y=True, alpha=0.12)
    item.setMenuEnabled(False)
    item.hideButtons()
    return widget


def _array(values: array) -> np.ndarray:
    """A float64 copy of an ``array('d')``: pyqtgraph keeps the array it is given, and an
    ``array`` cannot grow while a numpy view of it is alive."""
    return np.frombuffer(values, dtype=np.float64).copy() if len(values) else np.zeros(0)


class LossChart(QWidget):
    """The charts. ``readout(step)`` gives the text for the step under the pointer."""

    def __init__(self, readout: Callable[[float], str], parent: QWidget | None = None):
        super().__init__(parent)
        self._readout_text = readout
        self.items: dict[str, RunItems] = {}
        self.log_y = False
        self._lr_top = 0.0
        self.loss_widget = _plot_widget("lossChart")
        self.plot = self.loss_widget.getPlotItem()
        self.plot.setLabel("left", "loss")
        self.plot.setLabel("bottom", "step")
        self.lr_widget = _plot_widget("lrChart")
        self.lr_plot = self.lr_widget.getPlotItem()
        self.lr_plot.setLabel("left", "lr")
        self.lr_plot.setLabel("bottom", "step")
        self.lr_plot.setXLink(self.plot)
        self.lr_widget.setFixedHeight(LR_CHART_HEIGHT)
        self.lr_widget.hide()
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.loss_widget, 1)
        column.addWidget(self.lr_widget)
        # the readout: over the chart's top right corner while the pointer is on the chart (a row
        # of its own would cost height; the legend row has no room)
        self.readout = QLabel(self.loss_widget)
        self.readout.setObjectName("lossReadout")
        self.readout.setStyleSheet(
            f"color: {COLORS['text']}; background: rgba(23, 24, 27, 215); padding: 2px 6px; border-radius: 3px;"
        )
        self.readout.hide()
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(COLORS["muted"], width=1))
        self.cursor.setZValue(20)
        self.cursor.hide()
        self.plot.addItem(self.cursor, ignoreBounds=True)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # --- runs ----------------------------------------------------------------------------------

    def add_run(self, series: Series) -> None:
        style = Qt.PenStyle.DashLine if series.dashed else Qt.PenStyle.SolidLine
        raw_color = QColor(series.color)
        raw_color.setAlpha(RAW_ALPHA)
        common = dict(connect="finite", autoDownsample=True, clipToView=True, skipFiniteCheck=False)
        items = RunItems(
            raw=pg.PlotDataItem([], [], pen=pg.mkPen(raw_color, width=1, style=style), **common),
            smooth=pg.PlotDataItem([], [], pen=pg.mkPen(series.color, width=2, style=style), **common),
            lr=pg.PlotDataItem([], [], pen=pg.mkPen(series.color, width=1.5, style=style), **common),
            marks=pg.ScatterPlotItem(
                size=7,
                pen=pg.mkPen(COLORS["base"], width=1),
                brush=pg.mkBrush(series.color),
                hoverable=True,
                hoverSize=10,
                # data = (file name, loss): y is log10(loss) on a log axis
                tip=lambda x, y, data, name=series.name: (
                    f"{data[0]}\n{name}, step {x:.0f}: loss {data[1]:.4g}"
                ),
            ),
        )
        items.raw.setZValue(0)
        items.smooth.setZValue(10)
        items.marks.setZValue(15)
        for item in (items.raw, items.smooth, items.marks):
            self.plot.addItem(item)
        self.lr_plot.addItem(items.lr)
        self.items[series.key] = items

    def remove_all(self) -> None:
        for items in self.items.values():
            for item in (items.raw, items.smooth, items.marks):
                self.plot.removeItem(item)
            self.lr_plot.removeItem(items.lr)
        self.items.clear()
        self._lr_top = 0.0
        self.lr_widget.hide()
        bottom = self.plot.getAxis("bottom")
        bottom.setStyle(showValues=True)
        bottom.setLabel("step")
        bottom.setHeight(None)
        self.plot.enableAutoRange()

    def update_run(self, series: Series) -> None:
        """Hand the run's points to its items (one ``setData`` per item)."""
        items = self.items[series.key]
        items.raw.setData(_array(series.loss_x), _array(series.loss_y))
        sx, sy = series.smoothed
        items.smooth.setData(_array(sx), _array(sy))
        if series.lr_x:
            items.lr.setData(_array(series.lr_x), _array(series.lr_y))
        if series.marks:
            # a scatter item is not transformed by the plot's log mode (the curves are): we do it
            mx, my, names = series.mark_points()
            shown = [math.log10(y) if y > 0 else math.nan for y in my] if self.log_y else my
            items.marks.setData(x=mx, y=shown, data=list(zip(names, my, strict=True)))

    def show_lr(self, series: Iterable[Series]) -> None:
        """The lr chart under the loss chart; the step axis is then only under the lr chart."""
        if self.lr_widget.isHidden():
            self.lr_widget.show()
            bottom = self.plot.getAxis("bottom")
            bottom.setStyle(showValues=False)
            bottom.setLabel("")
            bottom.setHeight(6)
        top = max((max(s.lr_y) for s in series if s.lr_y), default=0.0)
        if top > 0 and top != self._lr_top:
            # lr values (2e-05) are too long for the axis as decimals: two ticks in e-notation
            # (pyqtgraph drops a tick label that would stick out of the axis: none at the edges)
            self._lr_top = top
            self.lr_plot.setYRange(0.0, top * 1.3, padding=0)
            self.lr_plot.getAxis("left").setTicks([[(top / 2, f"{top / 2:.0e}"), (top, f"{top:.0e}")], []])

    def set_visible(self, key: str, visible: bool, raw_on: bool) -> None:
        items = self.items[key]
        items.raw.setVisible(visible and raw_on)
        for item in (items.smooth, items.lr, items.marks):
            item.setVisible(visible)

    def set_log(self, on: bool) -> None:
        self.log_y = bool(on)
        self.plot.setLogMode(y=self.log_y)
        self.plot.enableAutoRange(axis="y")

    def set_x_span(self, total: int) -> None:
        self.plot.setXRange(0, total, padding=0.01)

    # --- what is drawn (tests read it back from the items) -------------------------------------

    def drawn(self, key: str, which: str) -> tuple[list[float], list[float]]:
        item = getattr(self.items[key], {"raw": "raw", "smoothed": "smooth", "lr": "lr"}[which])
        x, y = item.getData()
        return ([] if x is None else [float(v) for v in x]), ([] if y is None else [float(v) for v in y])

    def drawn_marks(self, key: str) -> list[tuple[float, float, str]]:
        """(step, loss, file name) of each checkpoint dot."""
        return [(float(p.pos().x()), float(p.data()[1]), p.data()[0]) for p in self.items[key].marks.points()]

    # --- the pointer ---------------------------------------------------------------------------

    def _on_mouse_moved(self, scene_pos) -> None:
        vb = self.plot.vb
        text = ""
        if vb.sceneBoundingRect().contains(scene_pos):
            step = vb.mapSceneToView(scene_pos).x()
            text = self._readout_text(step)
            self.cursor.setPos(step)
        self.readout.setText(text)
        self.cursor.setVisible(bool(text))
        self.readout.setVisible(bool(text))
        if text:
            self.readout.adjustSize()
            area = self.loss_widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
            self.readout.move(max(0, area.right() - self.readout.width() - 4), area.top() + 4)
            self.readout.raise_()

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.readout.hide()
        self.cursor.hide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)  # a short plot keeps most of its height for the loss
        self.lr_widget.setFixedHeight(
            max(LR_CHART_MIN, min(LR_CHART_HEIGHT, event.size().height() * 3 // 10))
        )
