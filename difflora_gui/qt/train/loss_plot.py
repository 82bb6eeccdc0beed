"""The Train section's live loss plot: every run of a pair (A and B, per expert four) on one chart.

Per run a thin translucent curve of the raw per-step ``loss`` and a thick smoothed one: the backend's
``avr_loss`` running average when it reports one (Musubi prints only that; the built-in trainer
reports both), else an exponential moving average of ``loss`` computed here. A and B have their
own colours (those of the merge section's plots), a Wan2.2 expert its line style (high noise
solid, low noise dashed); the legend is a row of toggles above the chart (it never covers a
curve) naming each run by its output name (:mod:`.loss_legend`). ``lr`` goes to a small plot
below, on the same steps; checkpoints are dots on the smoothed curve.

Points are appended to growable ``array('d')`` buffers (no numpy on the event path); the curves are
redrawn from them at most every :data:`REDRAW_MS` (a 5000-step run at full speed redraws ~10
times a second, not 5000 times). pyqtgraph (and numpy with it) is imported off the UI thread
(:mod:`difflora_gui.qt.merge.plotting`) and the chart (:mod:`.loss_chart`, the pyqtgraph side)
is built when it is in; points that arrive earlier wait in the buffers.
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer, Signal
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
    _ema_before: float = 0.0  # the EMA before the newest point (that point's value may change)
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
        """Add a point; False when nothing changed (not a plotted metric, an older step, or the
        same value again: a replayed log overlapping the live events).

        A new value for the newest step replaces it: Musubi redraws its bar several times per
        step, each time with a fresher ``avr_loss``; the last one counts."""
        if metric == LOSS:
            xs, ys = self.loss_x, self.loss_y
        elif metric == AVG_LOSS:
            xs, ys = self.avg_x, self.avg_y
        elif metric == LR:
            xs, ys = self.lr_x, self.lr_y
        else:
            return False
        if xs and step < xs[-1]:
            return False
        if xs and step == xs[-1]:
            if ys[-1] == value or (math.isnan(ys[-1]) and math.isnan(value)):
                return False
            ys[-1] = value
            if metric == LOSS:
                self._redo_last_ema(step, value)
            return True
        xs.append(step)
        ys.append(value)
        if metric == LOSS and math.isfinite(value):
            self._add_ema(step, value)
        return True

    def _add_ema(self, step: float, value: float) -> None:
        self._ema_before = self._ema
        self._ema_n += 1
        self._ema = EMA_WEIGHT * self._ema + (1.0 - EMA_WEIGHT) * value
        self.ema_x.append(step)
        self.ema_y.append(self._ema / (1.0 - EMA_WEIGHT**self._ema_n))

    def _redo_last_ema(self, step: float, value: float) -> None:
        """The newest step's loss changed: its EMA point is made again from the one before."""
        if self.ema_x and self.ema_x[-1] == step:
            self.ema_x.pop()
            self.ema_y.pop()
            self._ema, self._ema_n = self._ema_before, self._ema_n - 1
        if math.isfinite(value):
            self._add_ema(step, value)

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

    ``add_run(key, name, side=, expert=)``, then ``add_point(key, metric, value, step)`` and
    ``add_mark(key, step, file_name)`` for a checkpoint.
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
        self.chart = None  # the LossChart, once pyqtgraph is in
        self._dirty: set[str] = set()
        self._total_steps = 0

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
        if self.chart is not None:
            self.chart.add_run(series)
            self._apply_visibility()
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
        self._changed(key)
        return True

    def add_mark(self, key: str, step: float | None, name: str) -> bool:
        """A checkpoint of run ``key`` at ``step``: a dot on its curve (its name as the tooltip)."""
        series = self.series.get(key)
        if series is None or step is None or any(mark == (float(step), name) for mark in series.marks):
            return False
        series.marks.append((float(step), name))
        self._changed(key)
        return True

    def _changed(self, key: str) -> None:
        self._dirty.add(key)
        if self.chart is not None and not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def set_total_steps(self, total: int) -> None:
        """The x axis spans the whole run (the curves grow into it)."""
        total = int(total or 0)
        if total <= self._total_steps:
            return
        self._total_steps = total
        if self.chart is not None:
            self.chart.set_x_span(total)

    def clear(self) -> None:
        """Forget every run (the chart stays built)."""
        for toggle in self._legend.values():
            self.legend_grid.removeWidget(toggle)
            toggle.deleteLater()
        self._legend.clear()
        self.series.clear()
        self._dirty.clear()
        self._total_steps = 0
        self.points_added = 0
        if self.chart is not None:
            self.chart.remove_all()
        self.stack.setCurrentWidget(self.placeholder)
        self.placeholder.setText(EMPTY_TEXT)

    # --- what is drawn (tests read it back from the pyqtgraph items) ------------------------

    @property
    def is_built(self) -> bool:
        return self.chart is not None

    def drawn(self, key: str, which: str = "smoothed") -> tuple[list[float], list[float]]:
        """The points curve ``which`` (raw, smoothed, lr) of run ``key`` shows now."""
        return self.chart.drawn(key, which)

    def drawn_marks(self, key: str) -> list[tuple[float, float, str]]:
        """The checkpoint dots of run ``key`` as drawn: (step, loss, file name)."""
        return self.chart.drawn_marks(key)

    def curve_pen_color(self, key: str) -> str:
        return self.series[key].color

    def readout_at(self, step: float) -> str:
        """ "step 230 · A 0.1043 · B 0.1052": each shown run's smoothed loss at the nearest step."""
        return readout_html([series for series in self.series.values() if series.visible], step)

    # --- building the chart ------------------------------------------------------------------

    def _start_building(self) -> None:
        if self.chart is None and not self._build_timer.isActive():
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
        if self.chart is not None:
            return
        from difflora_gui.qt.train.loss_chart import LossChart

        self.chart = LossChart(self.readout_at)
        self.stack.addWidget(self.chart)
        for series in self.series.values():
            self.chart.add_run(series)
        if self._total_steps:
            self.chart.set_x_span(self._total_steps)
        self._apply_visibility()
        self._apply_log(self.log_box.isChecked())
        self.placeholder.setText(EMPTY_TEXT)  # until the first point: the chart is ready now
        self._dirty.update(self.series)
        self.redraw()
        self.built.emit()

    # --- redrawing ---------------------------------------------------------------------------

    def redraw(self) -> None:
        """Hand the new points of every changed run to the chart (one ``setData`` per curve)."""
        if self.chart is None or not self._dirty:
            return
        started = time.perf_counter()
        any_points = False
        for key in sorted(self._dirty):
            series = self.series.get(key)
            if series is None:
                continue
            self.chart.update_run(series)
            if series.lr_x:
                self.chart.show_lr(self.series.values())
            self._legend[key].refresh()
            any_points = any_points or bool(series.smoothed[0]) or bool(series.loss_x)
            self.redraws += 1
        self._dirty.clear()
        if any_points:
            self.stack.setCurrentWidget(self.chart)
        self.redraw_s += time.perf_counter() - started

    def _set_run_visible(self, key: str, on: bool) -> None:
        self.series[key].visible = on
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        if self.chart is not None:
            for key, series in self.series.items():
                self.chart.set_visible(key, series.visible, self.raw_box.isChecked())

    def _apply_log(self, on: bool) -> None:
        if self.chart is not None:
            self.chart.set_log(on)
            self._dirty.update(key for key, series in self.series.items() if series.marks)
            self.redraw()
