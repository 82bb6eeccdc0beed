"""The Train section's live loss plot: every run of a pair (A and B, per expert four) on one chart.

Per run a thin translucent curve of the raw per-step ``loss`` and a thick smoothed one: the backend's
``avr_loss`` running average when it reports one (Musubi prints only that; the built-in trainer
reports both), else an exponential moving average of ``loss`` computed here. A and B have their
own colours (those of the merge section's plots), a Wan2.2 expert its line style (high noise
solid, low noise dashed); the legend is a row of toggles above the chart (it never covers a
curve) naming each run by its output name (:mod:`.loss_legend`). ``lr`` goes to a small plot below, on the same steps.

Points are appended to growable ``array('d')`` buffers (no numpy on the event path); the curves are
redrawn from them at most every :data:`REDRAW_MS` (a 5000-step run at full speed redraws ~10
times a second, not 5000 times). pyqtgraph (and numpy with it) is imported off the UI thread
(:mod:`difflora_gui.qt.merge.plotting`) and the chart is built when it is in; points that
arrive earlier wait in the buffers.
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.merge.plotting import plotting_ready, warm_up_plotting
from difflora_gui.qt.theme import COLORS
from difflora_gui.qt.train.loss_legend import LegendEntry, readout_html

#: curves are redrawn at most this often (ms)
REDRAW_MS = 100
#: the EMA's weight of the past (0.95: about the last 20 steps); debiased like TensorBoard's
EMA_WEIGHT = 0.95
#: the left axes' width: the loss and lr plots line up, so their steps do
AXIS_WIDTH = 62
#: the learning-rate plot under the loss plot (shown once a run reports ``lr``)
LR_PLOT_HEIGHT = 84
LR_PLOT_MIN = 44
#: alpha of the raw loss curves (0..255)
RAW_ALPHA = 70
#: colours by side (A and B as in the merge analysis plots); other runs take the spare ones
SIDE_COLORS = {"a": "#5fae7b", "b": "#d0707a", "slider": "#6b9cf0", "": "#6b9cf0"}
SPARE_COLORS = ("#e0b060", "#b29cff", "#4fc3c8", "#f08bd0", "#a0a4aa")
#: the plot's least height (the legend row and a readable chart); the panel decides the rest
MIN_HEIGHT = 120
#: legend entries go two to a row
LEGEND_COLUMNS = 2
LOADING_TEXT = "Loading the plot…"
EMPTY_TEXT = "The loss curves appear here when a run reports its first loss."
LOSS, AVG_LOSS, LR = "loss", "avr_loss", "lr"


@dataclass
class Series:
    """One run's points: raw loss, the backend's running average, our EMA, learning rate."""

    key: str
    name: str
    color: str
    dashed: bool = False
    loss_x: array = field(default_factory=lambda: array("d"))
    loss_y: array = field(default_factory=lambda: array("d"))
    avg_x: array = field(default_factory=lambda: array("d"))
    avg_y: array = field(default_factory=lambda: array("d"))
    ema_x: array = field(default_factory=lambda: array("d"))
    ema_y: array = field(default_factory=lambda: array("d"))
    lr_x: array = field(default_factory=lambda: array("d"))
    lr_y: array = field(default_factory=lambda: array("d"))
    #: checkpoints (step, file name): dots on the smoothed curve
    marks: list = field(default_factory=list)
    _ema: float = 0.0
    _ema_n: int = 0
    visible: bool = True

    def mark_points(self) -> tuple[list[float], list[float], list[str]]:
        """Where the checkpoint dots go: on the smoothed curve at (or just before) their step."""
        xs, ys = self.smoothed
        px, py, names = [], [], []
        for step, name in self.marks:
            index = bisect.bisect_right(xs, step) - 1
            if index >= 0:
                px.append(step)
                py.append(ys[index])
                names.append(name)
        return px, py, names

    def add(self, metric: str, value: float, step: float) -> bool:
        """Append a point; False when it is not a plotted metric or repeats an old step."""
        if metric == LOSS:
            xs, ys = self.loss_x, self.loss_y
        elif metric == AVG_LOSS:
            xs, ys = self.avg_x, self.avg_y
        elif metric == LR:
            xs, ys = self.lr_x, self.lr_y
        else:
            return False
        if xs and step <= xs[-1]:
            return False  # seen already (a replayed log overlapping the live events)
        xs.append(step)
        ys.append(value)
        if metric == LOSS and math.isfinite(value):
            self._ema_n += 1
            self._ema = EMA_WEIGHT * self._ema + (1.0 - EMA_WEIGHT) * value
            self.ema_x.append(step)
            self.ema_y.append(self._ema / (1.0 - EMA_WEIGHT**self._ema_n))
        return True

    @property
    def smoothed(self) -> tuple[array, array]:
        """The backend's running average when it reports one, else our EMA of the raw loss."""
        return (self.avg_x, self.avg_y) if self.avg_x else (self.ema_x, self.ema_y)

    @property
    def smoothing_label(self) -> str:
        return "backend avr_loss" if self.avg_x else f"EMA {EMA_WEIGHT:g} of loss"

    def last_smoothed(self) -> float | None:
        ys = self.smoothed[1]
        return ys[-1] if ys else None


class LossPlot(QWidget):
    """Loss (and lr) over steps for several runs. GUI thread only.

    ``add_run(key, name, side=, expert=)`` then ``add_point(key, metric, value, step)``.
    """

    #: the chart has been built (pyqtgraph is in)
    built = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lossPlot")
        self.series: dict[str, Series] = {}
        self.redraws = 0  # curve updates done (tests: the throttle works by counts, not time)
        self.redraw_s = 0.0  # GUI-thread time spent in them
        self.points_added = 0
        self._dirty: set[str] = set()
        self._total_steps = 0
        self._lr_top = 0.0
        self._pg = None
        self._plot = None
        self._lr_plot = None
        self._curves: dict[str, tuple] = {}  # key -> (raw, smoothed, lr)
        self._marks: dict[str, object] = {}  # key -> the checkpoints' ScatterPlotItem

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.setSpacing(2)
        self.legend_grid = QGridLayout()
        self.legend_grid.setContentsMargins(0, 0, 0, 0)
        self.legend_grid.setSpacing(0)
        bar.addLayout(self.legend_grid)
        bar.addStretch(1)
        bar.addSpacing(10)
        # what the curves say at the step under the pointer: over the chart's top right corner
        # while the pointer is on the chart (a row of its own would cost height, the bar has no room)
        self.readout = QLabel()
        self.readout.setObjectName("lossReadout")
        self.readout.setStyleSheet(
            f"color: {COLORS['text']}; background: rgba(23, 24, 27, 215); padding: 2px 6px; border-radius: 3px;"
        )
        self.readout.hide()
        self.raw_box = QCheckBox("raw")
        self.raw_box.setChecked(True)
        self.raw_box.setToolTip("Show the per-step loss as thin lines behind the smoothed curves")
        self.raw_box.toggled.connect(self._apply_visibility)
        self.log_box = QCheckBox("log y")
        self.log_box.setToolTip("Logarithmic loss axis")
        self.log_box.toggled.connect(self._apply_log)
        bar.addWidget(self.raw_box)
        bar.addWidget(self.log_box)
        layout.addLayout(bar)
        self.stack = QStackedWidget()
        self.placeholder = QLabel(EMPTY_TEXT)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet(f"color: {COLORS['muted']};")
        self.stack.addWidget(self.placeholder)
        layout.addWidget(self.stack, 1)
        self._legend: dict[str, LegendEntry] = {}

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self._build_timer = QTimer(self)
        self._build_timer.setSingleShot(True)
        self._build_timer.timeout.connect(self._try_build)
        self.setMinimumHeight(MIN_HEIGHT)

    # --- runs and points ---------------------------------------------------------------------

    def add_run(self, key: str, name: str, *, side: str = "", expert: str | None = None) -> Series:
        """A run's curves (once per key; again: the same series)."""
        if key in self.series:
            return self.series[key]
        series = Series(key, name, self._color_for(side), dashed=expert == "low")
        self.series[key] = series
        toggle = LegendEntry(series)
        toggle.toggled.connect(lambda on, key=key: self._set_run_visible(key, on))
        index = len(self._legend)
        self._legend[key] = toggle
        self.legend_grid.addWidget(toggle, index // LEGEND_COLUMNS, index % LEGEND_COLUMNS)
        if self._plot is not None:
            self._add_curves(series)
        self._start_building()
        return series

    def _color_for(self, side: str) -> str:
        taken = {s.color for s in self.series.values()}
        preferred = SIDE_COLORS.get(side)
        if preferred and preferred not in taken:
            return preferred
        # the second run of a side (A high and A low) keeps its colour: the line style tells them apart
        same_side = [s for s in self.series.values() if s.color == preferred]
        if preferred and len(same_side) == 1 and not same_side[0].dashed:
            return preferred
        spare = [c for c in SPARE_COLORS if c not in taken]
        return spare[0] if spare else SPARE_COLORS[len(self.series) % len(SPARE_COLORS)]

    def add_point(self, key: str, metric: str, value: float, step: float | None) -> bool:
        """Append one point of ``metric`` (loss, avr_loss, lr) to run ``key``; redrawn soon."""
        series = self.series.get(key)
        if series is None or step is None:
            return False
        if not series.add(metric, float(value), float(step)):
            return False
        self.points_added += 1
        self._dirty.add(key)
        if self._plot is not None and not self._redraw_timer.isActive():
            self._redraw_timer.start()
        return True

    def add_mark(self, key: str, step: float | None, name: str) -> bool:
        """A checkpoint of run ``key`` at ``step``: a dot on its curve (its name as the tooltip)."""
        series = self.series.get(key)
        if series is None or step is None or any(mark == (float(step), name) for mark in series.marks):
            return False
        series.marks.append((float(step), name))
        self._dirty.add(key)
        if self._plot is not None and not self._redraw_timer.isActive():
            self._redraw_timer.start()
        return True

    def set_total_steps(self, total: int) -> None:
        """The x axis spans the whole run (the curves grow into it)."""
        total = int(total or 0)
        if total <= self._total_steps:
            return
        self._total_steps = total
        if self._plot is not None:
            self._plot.setXRange(0, total, padding=0.01)

    def clear(self) -> None:
        """Forget every run (the chart stays built)."""
        for key in list(self.series):
            curves = self._curves.pop(key, None)
            if curves is not None:
                raw, smooth, lr = curves
                self._plot.removeItem(raw)
                self._plot.removeItem(smooth)
                self._lr_plot.removeItem(lr)
                self._plot.removeItem(self._marks.pop(key))
            toggle = self._legend.pop(key)
            self.legend_grid.removeWidget(toggle)
            toggle.deleteLater()
        self.series.clear()
        self._dirty.clear()
        self._total_steps = 0
        self.points_added = 0
        self._lr_top = 0.0
        if self._plot is not None:
            self._lr_widget.hide()
            bottom = self._plot.getAxis("bottom")
            bottom.setStyle(showValues=True)
            bottom.setLabel("step")
            bottom.setHeight(None)
            self._plot.enableAutoRange()
        self.stack.setCurrentWidget(self.placeholder)
        self.placeholder.setText(EMPTY_TEXT)

    # --- what is drawn (tests read it back from the pyqtgraph items) ------------------------

    @property
    def is_built(self) -> bool:
        return self._plot is not None

    def drawn(self, key: str, which: str = "smoothed") -> tuple[list[float], list[float]]:
        """The points curve ``which`` (raw, smoothed, lr) of run ``key`` shows now."""
        index = {"raw": 0, "smoothed": 1, "lr": 2}[which]
        item = self._curves[key][index]
        x, y = item.getData()
        return ([] if x is None else [float(v) for v in x]), ([] if y is None else [float(v) for v in y])

    def drawn_marks(self, key: str) -> list[tuple[float, float, str]]:
        """The checkpoint dots of run ``key`` as drawn: (step, loss, file name)."""
        item = self._marks[key]
        return [(float(p.pos().x()), float(p.data()[1]), p.data()[0]) for p in item.points()]

    def curve_pen_color(self, key: str) -> str:
        return self.series[key].color

    # --- building the chart ------------------------------------------------------------------

    def _start_building(self) -> None:
        if self._plot is None and not self._build_timer.isActive():
            warm_up_plotting()
            self.placeholder.setText(LOADING_TEXT)
            self._build_timer.start(0 if plotting_ready() else 50)

    def _try_build(self) -> None:
        if not plotting_ready():
            self._build_timer.start(50)
            return
        self.build_now()

    def build_now(self) -> None:
        """Build the chart (imports pyqtgraph here if the background import has not finished)."""
        if self._plot is not None:
            return
        import pyqtgraph as pg

        self._pg = pg
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self._plot_widget = self._make_plot_widget("lossChart")
        self._plot = self._plot_widget.getPlotItem()
        self._plot.setLabel("left", "loss")
        self._lr_widget = self._make_plot_widget("lrChart")
        self._lr_plot = self._lr_widget.getPlotItem()
        self._lr_plot.setLabel("left", "lr")
        self._lr_plot.setLabel("bottom", "step")
        self._lr_plot.setXLink(self._plot)
        self._lr_widget.setFixedHeight(LR_PLOT_HEIGHT)
        self._lr_widget.hide()
        self._plot.setLabel("bottom", "step")
        column.addWidget(self._plot_widget, 1)
        column.addWidget(self._lr_widget)
        self.stack.addWidget(holder)
        self._chart = holder
        self.readout.setParent(self._plot_widget)  # an overlay, not in a layout
        self._cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(COLORS["muted"], width=1))
        self._cursor.setZValue(20)
        self._cursor.hide()
        self._plot.addItem(self._cursor, ignoreBounds=True)
        self._plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        for series in self.series.values():
            self._add_curves(series)
        if self._total_steps:
            self._plot.setXRange(0, self._total_steps, padding=0.01)
        self._apply_log(self.log_box.isChecked())
        self.placeholder.setText(EMPTY_TEXT)  # until the first point: the chart is ready now
        self._dirty.update(self.series)
        self.redraw()
        self.built.emit()

    def _make_plot_widget(self, name: str):
        pg = self._pg
        widget = pg.PlotWidget(background=COLORS["base"], enableMenu=False)
        widget.setObjectName(name)
        item = widget.getPlotItem()
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setPen(pg.mkPen(COLORS["muted"]))
            axis.setTextPen(pg.mkPen(COLORS["text"]))
            axis.enableAutoSIPrefix(False)
        item.getAxis("left").setWidth(AXIS_WIDTH)  # the two plots' axes line up, so their steps do
        item.showGrid(x=True, y=True, alpha=0.12)
        item.setMenuEnabled(False)
        item.hideButtons()
        return widget

    def _add_curves(self, series: Series) -> None:
        pg = self._pg
        style = Qt.PenStyle.DashLine if series.dashed else Qt.PenStyle.SolidLine
        raw_color = QColor(series.color)
        raw_color.setAlpha(RAW_ALPHA)
        common = dict(connect="finite", autoDownsample=True, clipToView=True, skipFiniteCheck=False)
        raw = pg.PlotDataItem([], [], pen=pg.mkPen(raw_color, width=1, style=style), **common)
        smooth = pg.PlotDataItem([], [], pen=pg.mkPen(series.color, width=2, style=style), **common)
        lr = pg.PlotDataItem([], [], pen=pg.mkPen(series.color, width=1.5, style=style), **common)
        raw.setZValue(0)
        smooth.setZValue(10)
        self._plot.addItem(raw)
        self._plot.addItem(smooth)
        self._lr_plot.addItem(lr)
        marks = pg.ScatterPlotItem(
            size=7,
            pen=pg.mkPen(COLORS["base"], width=1),
            brush=pg.mkBrush(series.color),
            hoverable=True,
            hoverSize=10,
            # data = (file name, loss): y is log10(loss) on a log axis
            tip=lambda x, y, data, name=series.name: f"{data[0]}\n{name}, step {x:.0f}: loss {data[1]:.4g}",
        )
        marks.setZValue(15)
        self._plot.addItem(marks)
        self._marks[series.key] = marks
        self._curves[series.key] = (raw, smooth, lr)
        self._apply_visibility()

    # --- redrawing ---------------------------------------------------------------------------

    def redraw(self) -> None:
        """Hand the new points of every changed run to its curves (one ``setData`` per curve)."""
        if self._plot is None or not self._dirty:
            return
        import numpy as np

        started = time.perf_counter()
        any_points = False
        for key in sorted(self._dirty):
            series = self.series.get(key)
            if series is None:
                continue
            raw, smooth, lr = self._curves[key]
            raw.setData(_view(np, series.loss_x), _view(np, series.loss_y))
            sx, sy = series.smoothed
            smooth.setData(_view(np, sx), _view(np, sy))
            if series.lr_x:
                lr.setData(_view(np, series.lr_x), _view(np, series.lr_y))
                self._show_lr()
            if series.marks:
                # a scatter item is not transformed by the plot's log mode (curves are): we do it
                mx, my, names = series.mark_points()
                shown = [math.log10(y) if y > 0 else math.nan for y in my] if self.log_box.isChecked() else my
                self._marks[key].setData(x=mx, y=shown, data=list(zip(names, my, strict=True)))
            self._legend[key].refresh()
            any_points = any_points or bool(sx) or bool(series.loss_x)
            self.redraws += 1
        self._dirty.clear()
        if any_points:
            self.stack.setCurrentWidget(self._chart)
        self.redraw_s += time.perf_counter() - started

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._plot is not None:  # a short plot keeps most of its height for the loss
            self._lr_widget.setFixedHeight(
                max(LR_PLOT_MIN, min(LR_PLOT_HEIGHT, event.size().height() * 3 // 10))
            )

    def _show_lr(self) -> None:
        """The lr plot under the loss plot; the step axis is then only under the lr plot."""
        if self._lr_widget.isHidden():
            self._lr_widget.show()
            bottom = self._plot.getAxis("bottom")
            bottom.setStyle(showValues=False)
            bottom.setLabel("")
            bottom.setHeight(6)
        top = max((max(s.lr_y) for s in self.series.values() if s.lr_y), default=0.0)
        if top > 0 and top != self._lr_top:
            # lr values (2e-05) are too long for the axis as decimals: two ticks in e-notation
            # (pyqtgraph drops a tick label that would stick out of the axis: none at the edges)
            self._lr_top = top
            self._lr_plot.setYRange(0.0, top * 1.3, padding=0)
            self._lr_plot.getAxis("left").setTicks([[(top / 2, f"{top / 2:.0e}"), (top, f"{top:.0e}")], []])

    def _set_run_visible(self, key: str, on: bool) -> None:
        self.series[key].visible = on
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        raw_on = self.raw_box.isChecked()
        for key, (raw, smooth, lr) in self._curves.items():
            visible = self.series[key].visible
            raw.setVisible(visible and raw_on)
            smooth.setVisible(visible)
            lr.setVisible(visible)
            self._marks[key].setVisible(visible)

    def _on_mouse_moved(self, scene_pos) -> None:
        vb = self._plot.vb
        text = ""
        if vb.sceneBoundingRect().contains(scene_pos):
            step = vb.mapSceneToView(scene_pos).x()
            text = self.readout_at(step)
            self._cursor.setPos(step)
        self.readout.setText(text)
        self._cursor.setVisible(bool(text))
        self.readout.setVisible(bool(text))
        if text:
            self.readout.adjustSize()
            area = self._plot_widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
            self.readout.move(max(0, area.right() - self.readout.width() - 4), area.top() + 4)
            self.readout.raise_()

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.readout.hide()
        if self._plot is not None:
            self._cursor.hide()

    def readout_at(self, step: float) -> str:
        """ "step 230 · A 0.1043 · B 0.1052": each shown run's smoothed loss at the nearest step."""
        return readout_html([series for series in self.series.values() if series.visible], step)

    def _apply_log(self, on: bool) -> None:
        if self._plot is not None:
            self._plot.setLogMode(y=bool(on))
            self._plot.enableAutoRange(axis="y")
            self._dirty.update(key for key, series in self.series.items() if series.marks)
            self.redraw()


def _view(np, values: array):
    """A float64 numpy copy of an ``array('d')``: pyqtgraph keeps the array it is given, and an
    ``array`` cannot grow while a numpy view of it is alive."""
    return np.frombuffer(values, dtype=np.float64).copy() if len(values) else np.zeros(0)
