"""The run bar under the workbench's settings: Analyze, Merge, Cancel, progress, recipe buttons."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

MERGE_TIP = "Merge A − B and write the output file"
ANALYZE_TIP = "Compute the analysis for these inputs and targets; nothing is written"
STATUS_COLORS = {"error": "#ff8a8a", "warning": "#e0b060", "ok": "#72d38f"}
_STEPS = 1000


class RunBar(QFrame):
    """Buttons, progress bar with ETA, why Merge is disabled, and how the last job ended."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sectionCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(5)
        self.analyze_button = QPushButton("Analyze")
        self.analyze_button.setObjectName("analyzeButton")
        self.analyze_button.setToolTip(ANALYZE_TIP)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setObjectName("mergeButton")
        self.merge_button.setDefault(True)
        self.merge_button.setToolTip(MERGE_TIP)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.copy_button = QPushButton("Copy command")
        self.copy_button.setObjectName("copyCommandButton")
        self.copy_button.setToolTip("Copy the equivalent 'python main.py merge …' command line")
        self.rerun_button = QPushButton("Re-run recipe")
        self.rerun_button.setObjectName("rerunButton")
        self.rerun_button.setToolTip(
            "Run the last merge's recipe again exactly (same settings and creation time): same file, bit for bit"
        )
        self.progress = QProgressBar()
        self.progress.setObjectName("mergeProgress")
        self.progress.setRange(0, _STEPS)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.eta_label = QLabel()
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(70)
        buttons = QHBoxLayout()
        for button in (self.analyze_button, self.merge_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.eta_label)
        layout.addLayout(buttons)
        recipe_row = QHBoxLayout()
        recipe_row.addWidget(self.copy_button)
        recipe_row.addWidget(self.rerun_button)
        recipe_row.addStretch(1)
        layout.addLayout(recipe_row)
        self.reason_label = QLabel()
        self.reason_label.setObjectName("runReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setStyleSheet(f"color: {STATUS_COLORS['warning']};")
        self.reason_label.hide()
        layout.addWidget(self.reason_label)
        self.status_label = QLabel()
        self.status_label.setObjectName("runStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)

    def set_problems(self, *, merge: str, analyze: str, running: bool) -> None:
        """Enable what can run; say why Merge cannot."""
        self.merge_button.setEnabled(not merge)
        self.analyze_button.setEnabled(not analyze)
        self.merge_button.setToolTip(merge or MERGE_TIP)
        self.analyze_button.setToolTip(analyze or ANALYZE_TIP)
        self.cancel_button.setEnabled(running)
        self.reason_label.setText("" if running or not merge else f"Merge is disabled: {merge}")
        self.reason_label.setVisible(bool(self.reason_label.text()))

    def set_status(self, text: str, level: str = "info", *, rich: bool = False) -> None:
        body = text if rich else html.escape(text)
        self.status_label.setText(f"<span style='color:{STATUS_COLORS.get(level, '#aeb2b9')}'>{body}</span>")

    def clear_status(self) -> None:
        self.status_label.clear()

    def show_queued(self) -> None:
        self.progress.setRange(0, 0)
        self.eta_label.setText("queued")

    def show_progress(self, fraction: float | None, text: str) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, _STEPS)
            self.progress.setValue(int(_STEPS * fraction))
        self.eta_label.setText(text)

    def show_ended(self, done: bool) -> None:
        self.progress.setRange(0, _STEPS)
        self.progress.setValue(_STEPS if done else 0)
        self.eta_label.setText("")
