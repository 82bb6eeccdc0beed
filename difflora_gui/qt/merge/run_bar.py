"""The run bar under the workbench's settings: Analyze, Merge, Cancel, progress, recipe buttons.

The buttons never move: the two status lines under them (why Merge is disabled, how the last job
ended) live in an area of fixed height, each one line elided to the width with the whole text in
its tooltip, so a long or multi-line message cannot push a button away from under the pointer
(a missed Cancel click once let a merge finish). After a merge, "Open output folder" shows the
folder the files were written to, and "Preview it" (:mod:`.to_preview`) opens the file in Preview.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

ANALYZE_KEYS = "Ctrl+Return"
MERGE_KEYS = "Ctrl+Shift+Return"
CANCEL_KEYS = "Esc"
MERGE_TIP = f"Merge A − B and write the output file ({MERGE_KEYS})"
ANALYZE_TIP = f"Compute the analysis for these inputs and targets; nothing is written ({ANALYZE_KEYS})"
CANCEL_TIP = f"Stop the running job; nothing is written ({CANCEL_KEYS})"
STATUS_COLORS = {"error": "#ff8a8a", "warning": "#e0b060", "ok": "#72d38f", "info": "#aeb2b9"}
_STEPS = 1000


class StatusLine(QLabel):
    """One line of plain text, elided to the width; the whole text (all lines) in the tooltip."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(10)

    def full_text(self) -> str:
        return self._full

    def text(self) -> str:  # noqa: D102 - the whole message, not the elided line
        return self._full

    def set_message(self, text: str, color: str | None = None) -> None:
        self._full = text
        self.setToolTip(text if text else "")
        if color:
            self.setStyleSheet(f"color: {color};")
        self._elide()

    def clear(self) -> None:
        self.set_message("")

    def _elide(self) -> None:
        one_line = " · ".join(line.strip() for line in self._full.splitlines() if line.strip())
        width = max(self.width(), 10)
        super().setText(self.fontMetrics().elidedText(one_line, Qt.TextElideMode.ElideRight, width))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()


class RunBar(QFrame):
    """Buttons, progress bar with ETA, why Merge is disabled, and how the last job ended."""

    #: the folder "Open output folder" opened (tests)
    folder_opened = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sectionCard")
        self.output_folder: Path | None = None
        self.preview_link = None  # "Preview it" (attach_preview_link): cleared with the merge's status
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
        self.cancel_button.setToolTip(CANCEL_TIP)
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
        self.eta_label.setFixedWidth(90)  # an ETA of any length leaves the buttons where they are
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

        # the status area: fixed height, whatever it says
        self.status_area = QWidget()
        self.status_area.setObjectName("runStatusArea")
        status_layout = QVBoxLayout(self.status_area)
        status_layout.setContentsMargins(0, 0, 0, 0)
        status_layout.setSpacing(2)
        self.reason_label = StatusLine()
        self.reason_label.setObjectName("runReason")
        self.reason_label.set_message("", STATUS_COLORS["warning"])
        status_row = QHBoxLayout()
        status_row.setContentsMargins(0, 0, 0, 0)
        self.status_label = StatusLine()
        self.status_label.setObjectName("runStatus")
        self.open_folder_button = QPushButton("Open output folder")
        self.open_folder_button.setObjectName("openOutputFolder")
        self.open_folder_button.setFlat(True)
        self.open_folder_button.setToolTip("Show the folder the merge wrote to")
        keep = self.open_folder_button.sizePolicy()
        keep.setRetainSizeWhenHidden(True)
        self.open_folder_button.setSizePolicy(keep)
        self.open_folder_button.hide()
        self.open_folder_button.clicked.connect(self.open_output_folder)
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(self.open_folder_button)
        self.status_row = status_row
        status_layout.addWidget(self.reason_label)
        status_layout.addLayout(status_row)
        self._fix_status_height()
        layout.addWidget(self.status_area)

    def _fix_status_height(self) -> None:
        line = self.fontMetrics().height()
        buttons = [self.open_folder_button] + ([self.preview_link.button] if self.preview_link else [])
        button_height = max(button.sizeHint().height() for button in buttons)
        self.status_area.setFixedHeight(line + 2 + max(line, button_height))

    def attach_preview_link(self, link) -> None:
        """Put ``link``'s "Preview it" after "Open output folder"; every new status line clears it."""
        self.preview_link = link
        self.status_row.addWidget(link.button)
        self._fix_status_height()

    def set_problems(self, *, merge: str, analyze: str, running: bool) -> None:
        """Enable what can run; say why Merge cannot."""
        self.merge_button.setEnabled(not merge)
        self.analyze_button.setEnabled(not analyze)
        self.merge_button.setToolTip(f"{merge} ({MERGE_KEYS} when it can run)" if merge else MERGE_TIP)
        self.analyze_button.setToolTip(
            f"{analyze} ({ANALYZE_KEYS} when it can run)" if analyze else ANALYZE_TIP
        )
        self.cancel_button.setEnabled(running)
        self.reason_label.set_message("" if running or not merge else f"Merge is disabled: {merge}")

    def set_status(self, text: str, level: str = "info") -> None:
        """How the last job ended, or what runs now (plain text: quotes show as quotes)."""
        self.status_label.set_message(text, STATUS_COLORS.get(level, STATUS_COLORS["info"]))
        if level != "ok":
            self.set_output_folder(None)
        if self.preview_link is not None:  # the merge sets its result again after its own line
            self.preview_link.clear()

    def clear_status(self) -> None:
        self.status_label.clear()
        self.set_output_folder(None)
        if self.preview_link is not None:
            self.preview_link.clear()

    def set_output_folder(self, folder: str | Path | None) -> None:
        """Offer "Open output folder" for ``folder`` (None hides it)."""
        self.output_folder = Path(folder) if folder else None
        self.open_folder_button.setVisible(self.output_folder is not None)
        if self.output_folder is not None:
            self.open_folder_button.setToolTip(f"Open {self.output_folder}")

    def output_folder_url(self) -> QUrl | None:
        return QUrl.fromLocalFile(str(self.output_folder)) if self.output_folder is not None else None

    def open_output_folder(self) -> None:
        url = self.output_folder_url()
        if url is not None:
            QDesktopServices.openUrl(url)
            self.folder_opened.emit(str(self.output_folder))

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
        self.eta_label.setToolTip(text)

    def show_ended(self, done: bool) -> None:
        self.progress.setRange(0, _STEPS)
        self.progress.setValue(_STEPS if done else 0)
        self.eta_label.setText("")
