"""The loss plot's legend entries and the readout of the curves under the pointer.

A legend entry is a toggle above the chart (never over a curve): the run's line style and colour,
its output name (``<name>_A``, ``<name>_B_high_noise`` …) and its last smoothed loss. The
readout names runs by the end of that name ("A", "B high"), which is what tells a pair apart.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QSizePolicy, QToolButton

from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    from difflora_gui.qt.train.loss_plot import Series

#: a legend entry may shrink to this width (its name elided)
LEGEND_MIN_PX = 80
_LEGEND_PADDING = 14
#: the end of a planned run's name (:func:`difflora_gui.train.plan.run_name`)
_SIDE_END = re.compile(r"_(A|B|slider)(?:_(high|low)_noise)?$")


class LegendEntry(QToolButton):
    """A legend entry: the run's colour, name and last smoothed loss; unchecked hides its curves.

    It asks for its full text's width but accepts less (down to :data:`LEGEND_MIN_PX`); the name
    is then elided in the middle, so the ``_A`` / ``_B`` / ``_high_noise`` end stays readable."""

    def __init__(self, series: Series, parent=None):
        super().__init__(parent)
        self.setCheckable(True)
        self.setChecked(True)
        self.setAutoRaise(True)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.series = series
        self.setObjectName("lossLegendEntry")
        # a tool button is Fixed by default: this one may shrink (and elide) when the plot is narrow
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._full = ""
        self.setStyleSheet(
            f"QToolButton {{ color: {series.color}; padding: 0 4px; }}"
            f" QToolButton:!checked {{ color: {COLORS['disabled']}; }}"
        )
        self.refresh()

    def refresh(self) -> None:
        """New points came: the last smoothed value (and which smoothing it is) in the entry."""
        self.setToolTip(
            f"{self.series.name}: smoothed = {self.series.smoothing_label}; thin line = raw loss. "
            "Click to hide or show this run."
        )
        self._full = self._text(self.series.name)
        self._fit()
        self.updateGeometry()

    def _text(self, name: str) -> str:
        line = "╌╌" if self.series.dashed else "━━"
        last = self.series.last_smoothed()
        value = f"  {last:.4g}" if last is not None else ""
        return f"{line} {name}{value}"

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        room = self.width() - _LEGEND_PADDING
        if metrics.horizontalAdvance(self._full) <= room or room <= 0 and not self.isVisible():
            self.setText(self._full)
            return
        rest = metrics.horizontalAdvance(self._text(""))
        name = metrics.elidedText(self.series.name, Qt.TextElideMode.ElideMiddle, max(10, room - rest))
        self.setText(self._text(name))

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + _LEGEND_PADDING, hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(LEGEND_MIN_PX, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()


def short_name(name: str) -> str:
    """The end of a run name that tells the runs of a pair apart: "A", "B high", "slider" …"""
    found = _SIDE_END.search(name)
    if found is None:
        return name
    side, expert = found.group(1), found.group(2)
    return f"{side} {expert}" if expert else side


def readout_html(series: Iterable[Series], step: float) -> str:
    """ "step 230 · A 0.1043 · B 0.1052": each run's smoothed loss at the step nearest ``step``
    (rich text, each run in its colour); empty when no run has points."""
    parts = []
    for one in series:
        xs, ys = one.smoothed
        if not xs:
            continue
        index = min(bisect.bisect_left(xs, step), len(xs) - 1)
        if index > 0 and abs(xs[index - 1] - step) <= abs(xs[index] - step):
            index -= 1
        parts.append(f"<span style='color:{one.color}'>{short_name(one.name)} {ys[index]:.4g}</span>")
    return f"step {round(step)} · " + " · ".join(parts) if parts else ""
