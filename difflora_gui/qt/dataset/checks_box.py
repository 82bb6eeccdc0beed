"""The Dataset panel's checks: the training resolution, Check pairs, the set summary, the thresholds.

The thresholds form is generated from the checks' declaration (``CHECK_CONFIG``, tooltips from its
help texts) in a collapsible "Thresholds" section; the resolution is its own combo (192/256/512/…,
or typed). The summary shows the checks' ``SetSummary`` lines; a set-level colour drift (most pairs
drift the same way: what a slider learns) is highlighted.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.dataset.progress import show_progress
from difflora_gui.qt.param_form import AdvancedSection, ParamForm

#: the resolutions offered (any other can be typed)
RESOLUTIONS = (192, 256, 384, 512, 768, 1024)
#: words in a summary line that mark a set-level colour drift
SET_DRIFT_WORDS = ("set-level", "most pairs", "whole set")


def _check_config():
    try:
        from difflora_gui.dataset.check_config import CHECK_CONFIG
    except ImportError:
        return None
    return CHECK_CONFIG


def summary_lines(summary) -> list[str]:
    """The one-line verdicts of a ``SetSummary`` (or a list of lines, or text)."""
    if summary is None:
        return []
    if isinstance(summary, str):
        return [line for line in summary.splitlines() if line.strip()]
    if isinstance(summary, (list, tuple)):
        return [str(line) for line in summary]
    for name in ("lines", "verdicts"):
        value = getattr(summary, name, None)
        if callable(value):
            value = value()
        if value:
            return [str(line) for line in value]
    text = getattr(summary, "text", None)
    text = text() if callable(text) else text
    return summary_lines(text if text is not None else str(summary))


def is_set_drift(line: str, summary=None) -> bool:
    """A set-level finding (``SetSummary.set_level``), or a line that says so."""
    if summary is not None and line.strip() in {s.strip() for s in getattr(summary, "set_level", None) or ()}:
        return True
    lowered = line.casefold()
    return any(word in lowered for word in SET_DRIFT_WORDS)


class ChecksBox(QWidget):
    """Resolution · Check pairs · Cancel · progress; the summary; the folded thresholds form."""

    check_requested = Signal()
    cancel_requested = Signal()
    resolution_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        row = QHBoxLayout()
        row.setSpacing(6)
        resolution_label = QLabel("Resolution")
        row.addWidget(resolution_label)
        self.resolution_combo = QComboBox()
        resolution_label.setBuddy(self.resolution_combo)
        self.resolution_combo.setObjectName("checkResolution")
        self.resolution_combo.setEditable(True)
        self.resolution_combo.setValidator(QIntValidator(32, 4096, self))
        for value in RESOLUTIONS:
            self.resolution_combo.addItem(str(value), value)
        self.resolution_combo.setCurrentText("256")
        self.resolution_combo.setToolTip(
            "The training resolution: both images of a pair are brought to this short side before they are compared, "
            "so the scores say what the trainer will see"
        )
        self.check_button = QPushButton("Check pairs")
        self.check_button.setObjectName("checkPairsButton")
        self.check_button.setToolTip(
            "Score every pair (SSIM, difference, alignment, colour drift, sizes) at the training resolution; "
            "results are cached in the dataset folder"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("checkProgress")
        self.progress.hide()
        row.addWidget(self.resolution_combo)
        row.addWidget(self.check_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        self.summary_label = QLabel("Not checked yet.")
        self.summary_label.setObjectName("checkSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.summary_label)
        self.details = AdvancedSection("Scores and verdicts")
        self.details.setObjectName("checkDetails")
        self.details.toggleButton().setToolTip(
            "Every verdict with its numbers, and each score's distribution"
        )
        self.details_label = QLabel()
        self.details_label.setObjectName("checkDetailsText")
        self.details_label.setWordWrap(True)
        self.details_label.setTextFormat(Qt.TextFormat.RichText)
        self.details_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.addWidget(self.details_label)
        self.details.hide()
        layout.addWidget(self.details)
        self.thresholds = AdvancedSection("Thresholds")
        self.thresholds.setObjectName("checkThresholds")
        self.thresholds.toggleButton().setToolTip("When a pair is flagged (hover a field for what it means)")
        config = _check_config()
        self.form = None
        self.shown_lines: list[str] = []
        if config is not None:
            self.form = ParamForm(config)
            self.form.setObjectName("thresholdsForm")
            self.form.wrap_long_rows()  # the checks column stays narrow at 1280×720
            if "resolution" in self.form.editors:
                self.form.set_row_visible("resolution", False)  # the combo above sets it
                heading = self.form.group_headings.get("resolution")
                if heading is not None:
                    heading.hide()
            self.thresholds.addWidget(self.form)
        else:
            self.thresholds.addWidget(QLabel("The pair checks are not installed."))
        layout.addWidget(self.thresholds)
        self.check_button.clicked.connect(self.check_requested.emit)
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        self.resolution_combo.currentTextChanged.connect(self._on_resolution)

    def resolution(self) -> int:
        try:
            return max(32, int(self.resolution_combo.currentText()))
        except ValueError:
            return 256

    def set_resolution(self, value: int) -> None:
        self.resolution_combo.setCurrentText(str(int(value)))

    def _on_resolution(self, _text: str) -> None:
        self.resolution_changed.emit(self.resolution())

    def thresholds_values(self) -> dict:
        """The thresholds as set (checked values; the resolution from the combo)."""
        if self.form is None:
            return {"resolution": self.resolution()}
        values = dict(self.form.changed_values())
        values["resolution"] = self.resolution()
        return values

    def set_running(self, running: bool) -> None:
        self.check_button.setEnabled(not running)
        self.resolution_combo.setEnabled(not running)
        self.cancel_button.setVisible(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)

    def show_progress(self, fraction: float | None, text: str) -> None:
        show_progress(self.progress, fraction, text)

    def show_summary(self, summary, *, note: str = "") -> None:
        """The headline and every set-level finding (a colour drift most pairs share, in bold orange);
        the other verdicts and the distributions folded under it."""
        lines = summary_lines(summary)
        self.shown_lines = lines
        if not lines:
            self.summary_label.setText(html.escape(note) if note else "Not checked yet.")
            self.details.hide()
            return
        head = [f"<b>{html.escape(lines[0].strip())}</b>"]
        rest = []
        for line in lines[1:]:
            if is_set_drift(line, summary):
                head.append(
                    f"<span style='color:#f0a040; font-weight:bold'>⚠ {html.escape(line.strip())}</span>"
                )
            else:
                indent = "&nbsp;&nbsp;&nbsp;" if line.startswith("  ") else ""
                rest.append(indent + html.escape(line.strip()))
        if note:
            head.append(f"<span style='color:#8a8d93'>{html.escape(note)}</span>")
        self.summary_label.setText("<br>".join(head))
        self.details_label.setText("<br>".join(rest))
        self.details.setVisible(bool(rest))

    def set_level_lines(self) -> list[str]:
        """The set-level findings on show (highlighted)."""
        text = self.summary_label.text()
        return [part for part in text.split("<br>") if "⚠" in part]
