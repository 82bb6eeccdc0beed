"""The analysis half of the workbench: export buttons over the plots, built without freezing the window.

The plots (:mod:`analysis_view`, pyqtgraph) are built in steps between events once the first job
starts (pyqtgraph is imported on a background thread meanwhile), then shown empty so that their
first layout and paint do not coincide with a result; results fill them in steps too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.merge.plotting import plotting_ready, warm_up_plotting

PLOT_TITLES = (("blocks", "Block bars…"), ("heatmap", "Heatmap…"), ("spectrum", "Spectrum…"))


class AnalysisSide(QWidget):
    """Export buttons and the plots (an introduction until the first analysis arrives)."""

    #: a block was clicked in the bars or the heatmap
    block_clicked = Signal(int)
    #: an export was written (path) or failed (message)
    exported = Signal(str)
    export_failed = Signal(str)

    def __init__(self, export_base: Callable[[], Path], parent: QWidget | None = None):
        super().__init__(parent)
        self._export_base = export_base
        self.view = None
        self.result = None
        self._selected_blocks: set[int] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._build_step)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.setSpacing(6)
        header = QHBoxLayout()
        heading = QLabel("Analysis")
        heading.setObjectName("cardHeading")
        self.export_png_button = QToolButton()
        self.export_png_button.setObjectName("exportPngButton")
        self.export_png_button.setText("Export PNG")
        self.export_png_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_png_button)
        self.export_actions = {}
        for name, text in PLOT_TITLES:
            action = menu.addAction(text)
            action.triggered.connect(lambda _checked=False, name=name: self.export_png_dialog(name))
            self.export_actions[name] = action
        self.export_png_button.setMenu(menu)
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setObjectName("exportCsvButton")
        self.export_csv_button.setToolTip(
            "Save the per-module table (norms, cancellation, ranks, energies, spectra)"
        )
        self.export_csv_button.clicked.connect(self.export_csv_dialog)
        for widget in (self.export_png_button, self.export_csv_button):
            widget.setEnabled(False)
        header.addWidget(heading)
        header.addStretch(1)
        header.addWidget(self.export_png_button)
        header.addWidget(self.export_csv_button)
        layout.addLayout(header)
        self.stack = QStackedWidget()
        self.stack.addWidget(self._intro_page())
        layout.addWidget(self.stack, 1)
        self.setMinimumWidth(320)

    @staticmethod
    def _intro_page() -> QWidget:
        card = QFrame()
        card.setObjectName("sectionCard")
        layout = QVBoxLayout(card)
        layout.setContentsMargins(12, 10, 12, 10)
        heading = QLabel("Where does the concept live?")
        heading.setObjectName("cardHeading")
        text = QLabel(
            "Analyze (nothing is written) or Merge to see, block by block, how large LoRA A, LoRA B and their "
            "difference are, how much of A cancels against B, a blocks × layers heatmap of the output and the "
            "singular values of each module with the rank cut.<br><br>Click a block in the plots to select or "
            "deselect it in the target grid."
        )
        text.setWordWrap(True)
        text.setObjectName("mutedLabel")
        layout.addWidget(heading)
        layout.addWidget(text)
        layout.addStretch(1)
        return card

    # --- building ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Start building the plots in the background of the event loop (a job is about to run)."""
        warm_up_plotting()
        if self.view is None or not self.view.is_built:
            self._timer.start(50)

    def _build_step(self) -> None:
        if not plotting_ready():
            self._timer.start(100)
            return
        if self.view is None or self.view.build_step():
            self.ensure_view()
            self._timer.start(0)
            return
        self.stack.setCurrentWidget(self.view)  # empty plots now: their first paint is not at a result
        freeze_heap_after_heavy_imports()

    def ensure_view(self):
        """The plots (imports pyqtgraph if the background import has not)."""
        if self.view is None:
            from difflora_gui.qt.merge.analysis_view import AnalysisView

            self.view = AnalysisView()
            self.view.block_clicked.connect(self.block_clicked)
            self.stack.addWidget(self.view)
        return self.view

    # --- showing -----------------------------------------------------------------------------

    def show_analysis(self, result, heading: str) -> None:
        view = self.ensure_view()
        self.result = result
        view.set_analysis(result, heading, staged=True)
        view.set_selected_blocks(self._selected_blocks)
        self.stack.setCurrentWidget(view)
        self.export_png_button.setEnabled(True)
        self.export_csv_button.setEnabled(True)

    def set_selected_blocks(self, blocks: set[int] | None) -> None:
        self._selected_blocks = blocks
        if self.view is not None:
            self.view.set_selected_blocks(blocks)

    # --- export ------------------------------------------------------------------------------

    def export_png_dialog(self, name: str) -> None:
        if self.view is None or self.result is None:
            return
        start = f"{self._export_base()}-{name}.png"
        path, _ = QFileDialog.getSaveFileName(self, f"Export the {name} plot", start, "PNG images (*.png)")
        if path:
            self._export(lambda: self.view.export_png(name, path), path)

    def export_csv_dialog(self) -> None:
        if self.view is None or self.result is None:
            return
        start = f"{self._export_base()}.analysis.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export the analysis table", start, "CSV files (*.csv)")
        if path:
            self._export(lambda: self.view.export_csv(path), path)

    def _export(self, write, path: str) -> None:
        try:
            write()
        except (OSError, UserError, ValueError) as exc:
            self.export_failed.emit(f"cannot write {path}: {exc}")
            return
        self.exported.emit(path)
