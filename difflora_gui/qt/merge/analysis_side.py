"""The analysis half of the workbench: export buttons over the plots, built without freezing the window.

The plots (:mod:`analysis_view`, pyqtgraph) are built in steps between events once the first job
starts (pyqtgraph is imported on a background thread meanwhile), then shown under their
placeholder so that their first layout does not coincide with a result; results fill them in
steps too. A Wan2.2 two-expert result shows one view per expert, in tabs "High-noise expert" /
"Low-noise expert" (the tab bar hides for a one-model result), or side by side as two columns
when the side is at least :data:`COLUMNS_MIN_WIDTH` wide; exports are of the expert on show (in
columns the menus offer both) and name it (``<base>_high_noise…``). The panel calls
:meth:`AnalysisSide.clear` or :meth:`AnalysisSide.mark_stale` when the inputs change: exports
stay disabled until the next :meth:`AnalysisSide.set_analysis`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.merge import plot_data
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.merge.analysis_overlay import INTRO_TEXT, intro_card
from difflora_gui.qt.merge.plotting import plotting_ready, warm_up_plotting

PLOT_TITLES = (("blocks", "Block bars"), ("heatmap", "Heatmap"), ("spectrum", "Spectrum"))
#: from this width on the two experts are shown side by side (two columns) instead of in tabs
COLUMNS_MIN_WIDTH = 1100


class AnalysisSide(QWidget):
    """Export buttons and the plots (an introduction until the first analysis arrives)."""

    #: a block was clicked in the bars
    block_clicked = Signal(int)
    #: an export was written (path) or failed (message)
    exported = Signal(str)
    export_failed = Signal(str)

    def __init__(self, export_base: Callable[[], Path], parent: QWidget | None = None):
        super().__init__(parent)
        self._export_base = export_base
        #: the first view (the one-model analysis, or the high-noise expert's); None until built
        self.view = None
        #: the second expert's view (created when a two-expert result first arrives)
        self.second_view = None
        #: the analysis on show (a two-expert one holds the experts' analyses in ``by_expert``)
        self.result = None
        self.stale_reason: str | None = None
        self._selected_blocks: set[int] | None = None
        self._pending: list[Callable[[], None]] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._build_step)
        self._work_timer = QTimer(self)
        self._work_timer.setSingleShot(True)
        self._work_timer.timeout.connect(self._next_work)

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
            action = menu.addAction(f"{text}…")
            action.triggered.connect(lambda _checked=False, name=name: self.export_png_dialog(name))
            self.export_actions[name] = action
        # two columns: the other expert's plots too, and the table of either (a menu on Export CSV)
        self._second_png_actions = {}
        for name, text in PLOT_TITLES:
            action = menu.addAction(f"{text}…")
            action.triggered.connect(
                lambda _checked=False, name=name: self.export_png_dialog(name, second=True)
            )
            self._second_png_actions[name] = action
        self.export_png_button.setMenu(menu)
        self._csv_menu = QMenu(self)
        self._csv_actions = [self._csv_menu.addAction(""), self._csv_menu.addAction("")]
        for index, action in enumerate(self._csv_actions):
            action.triggered.connect(
                lambda _checked=False, second=bool(index): self.export_csv_dialog(second=second)
            )
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setObjectName("exportCsvButton")
        self.export_csv_button.setToolTip(
            "Save the per-module table (norms, cancellation, ranks, energies, spectra)"
        )
        self.export_csv_button.clicked.connect(self.export_csv_dialog)
        header.addWidget(heading)
        header.addStretch(1)
        header.addWidget(self.export_png_button)
        header.addWidget(self.export_csv_button)
        layout.addLayout(header)
        self.stack = QStackedWidget()
        self.intro = intro_card(INTRO_TEXT)
        self.stack.addWidget(self.intro)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("analysisExperts")
        self.tabs.setDocumentMode(True)
        self.tabs.setTabBarAutoHide(True)  # one-model results: no tab bar
        self.tabs.currentChanged.connect(lambda _index: self._update_exports())
        self.stack.addWidget(self.tabs)
        self.columns = QSplitter(Qt.Orientation.Horizontal)
        self.columns.setObjectName("analysisColumns")
        self.columns.setChildrenCollapsible(False)
        self.stack.addWidget(self.columns)
        layout.addWidget(self.stack, 1)
        self.setMinimumWidth(320)
        self._update_exports()

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
        # laid out under their placeholder now: their first layout is not at a result
        if self.result is None and self.stack.currentWidget() is self.intro:
            self.stack.setCurrentWidget(self.tabs)
        freeze_heap_after_heavy_imports()

    def _new_view(self):
        from difflora_gui.qt.merge.analysis_view import AnalysisView

        view = AnalysisView()
        view.block_clicked.connect(self.block_clicked)
        view.module_picked.connect(lambda name, view=view: self._show_module_in_others(view, name))
        view.set_selected_blocks(self._selected_blocks)
        return view

    def ensure_view(self):
        """The first view (imports pyqtgraph if the background import has not)."""
        if self.view is None:
            self.view = self._new_view()
            self.tabs.addTab(self.view, "Analysis")
        return self.view

    @property
    def views(self) -> dict[str | None, object]:
        """The views in use by expert (``{None: view}`` for a one-model analysis)."""
        experts = self.result.experts if self.result is not None else []
        if len(experts) == 2:
            return {experts[0]: self.view, experts[1]: self.second_view}
        return {experts[0] if experts else None: self.view} if self.view is not None else {}

    def view_of(self, expert: str | None):
        return self.views.get(expert)

    @property
    def current_expert(self) -> str | None:
        """The expert whose analysis is on show (None for a one-model analysis)."""
        if self.result is None:
            return None
        experts = self.result.experts
        if not experts:
            return None
        if len(experts) == 2 and not self.in_columns:
            return experts[min(max(self.tabs.currentIndex(), 0), 1)]
        return experts[0]  # one expert, or the first column (the export menus offer the second)

    @property
    def in_columns(self) -> bool:
        """Whether the two experts are shown as two columns (a wide side) rather than tabs."""
        return self.stack.currentWidget() is self.columns

    @property
    def current_view(self):
        return self.view_of(self.current_expert)

    @property
    def is_filled(self) -> bool:
        """Every view shows the analysis (no build or fill step is waiting)."""
        return not self._pending and all(v.is_filled for v in self.views.values())

    # --- showing -----------------------------------------------------------------------------

    def set_analysis(self, result, heading: str = "") -> None:
        """Show an analysis (and drop any stale mark); a two-expert result (``by_expert``) shows each
        expert in its tab or column. The first view fills in steps now, the second after it."""
        view = self.ensure_view()
        self.result = result
        self.stale_reason = None
        self._pending = []
        experts = result.experts
        if len(experts) == 2:
            if self.second_view is None:
                self.second_view = self._new_view()
            parts = [(view, result.by_expert[experts[0]]), (self.second_view, result.by_expert[experts[1]])]
        else:
            parts = [(view, result.by_expert[experts[0]] if experts else result)]
        self._place_views()
        first_view, first = parts[0]
        first_view.set_analysis(first, self._heading(heading, first), staged=True)
        for other_view, other in parts[1:]:
            # the second view is built and filled a step per event-loop pass, after the first
            self._pending.append(self._build_steps(other_view))
            self._pending.append(lambda v=other_view, r=other: self._fill_later(v, r, heading))
        if self._pending:
            self._work_timer.start(0)
        self._update_exports()

    def _two_experts(self) -> bool:
        return self.result is not None and len(self.result.experts) == 2

    def _place_views(self) -> None:
        """The two experts as columns when the side is wide, else as tabs (one view: the tab page)."""
        two = self._two_experts()
        views = [self.view, self.second_view] if two else [self.view]
        if two and self.width() >= COLUMNS_MIN_WIDTH:
            for view in views:
                if self.tabs.indexOf(view) >= 0:
                    self.tabs.removeTab(self.tabs.indexOf(view))
                self.columns.addWidget(view)
                view.show()  # a former tab page is hidden explicitly by the tab widget
            self.stack.setCurrentWidget(self.columns)
            return
        for index, view in enumerate(views):
            if self.tabs.indexOf(view) < 0:
                self.tabs.insertTab(index, view, "")
        if self.second_view is not None and not two and self.tabs.indexOf(self.second_view) >= 0:
            self.tabs.removeTab(self.tabs.indexOf(self.second_view))
        experts = self.result.experts if self.result is not None else []
        for index in range(len(views)):
            expert = experts[index] if index < len(experts) else ""
            self.tabs.setTabText(index, plot_data.EXPERT_HEADINGS.get(expert, "Analysis"))
        self.stack.setCurrentWidget(self.tabs)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        shown = self._two_experts() and self.stack.currentWidget() is not self.intro
        if shown and (self.width() >= COLUMNS_MIN_WIDTH) != self.in_columns:
            self._place_views()
            self._update_exports()

    def show_analysis(self, result, heading: str) -> None:
        """The panel's name for :meth:`set_analysis`."""
        self.set_analysis(result, heading)

    @staticmethod
    def _heading(heading: str, result) -> str:
        if not result.expert:
            return heading
        expert = plot_data.EXPERT_HEADINGS.get(result.expert, result.expert)
        return f"{heading} · {expert}" if heading else expert

    def _fill_later(self, view, result, heading: str) -> None:
        view.set_analysis(result, self._heading(heading, result), staged=True)
        if self.is_stale:  # marked while this view waited for its turn
            view.mark_stale(self.stale_reason)

    def _build_steps(self, view) -> Callable[[], None]:
        def step() -> None:
            if view.build_step():
                self._pending.insert(0, step)  # one plot per pass until it is built

        return step

    def _next_work(self) -> None:
        if self._pending:
            self._pending.pop(0)()
        if self._pending:
            self._work_timer.start(0)

    def clear(self) -> None:
        """No analysis: the introduction instead of plots, exports disabled."""
        self._pending = []
        self.result = None
        self.stale_reason = None
        for view in (self.view, self.second_view):
            if view is not None:
                view.clear()
        self.stack.setCurrentWidget(self.intro)
        self._update_exports()

    def mark_stale(self, reason: str = "inputs changed") -> None:
        """The analysis no longer matches the inputs: greyed with a stale mark, exports disabled."""
        if self.result is None:
            return
        self.stale_reason = reason or "inputs changed"
        for view in self.views.values():
            view.mark_stale(self.stale_reason)
        self._update_exports()

    @property
    def is_stale(self) -> bool:
        return self.stale_reason is not None

    def _show_module_in_others(self, picked, name: str) -> None:
        """A module picked in one expert's view is shown in the other's too (same name, its own numbers)."""
        for view in self.views.values():
            others = view is not picked and view.result is not None and view.is_filled
            if others and view.table_model.row_of(name) is not None:
                view.select_module(name)

    def set_selected_blocks(self, blocks: set[int] | None) -> None:
        self._selected_blocks = blocks
        for view in (self.view, self.second_view):
            if view is not None:
                view.set_selected_blocks(blocks)

    # --- export ------------------------------------------------------------------------------

    @property
    def can_export(self) -> bool:
        return self.result is not None and not self.is_stale and self.current_view is not None

    def _update_exports(self) -> None:
        enabled = self.can_export
        why = "" if enabled else "Nothing to export: Analyze or Merge first"
        if self.result is not None and self.is_stale:
            why = "The analysis is stale (the inputs changed): Analyze again to export"
        expert = self.current_expert
        of = f" ({plot_data.EXPERT_HEADINGS[expert].lower()})" if expert else ""
        for name, text in PLOT_TITLES:
            self.export_actions[name].setText(f"{text}{of}…")
        # two columns: both experts' exports in the menus (Export CSV becomes a menu)
        columns = self.in_columns and self._two_experts()
        second = self.result.experts[1] if columns else None
        for name, text in PLOT_TITLES:
            action = self._second_png_actions[name]
            action.setVisible(columns)
            if second:
                action.setText(f"{text} ({plot_data.EXPERT_HEADINGS[second].lower()})…")
        if columns:
            for action, e in zip(self._csv_actions, self.result.experts, strict=True):
                action.setText(f"Table of the {plot_data.EXPERT_HEADINGS[e].lower()}…")
        if (self.export_csv_button.menu() is not None) != columns:
            self.export_csv_button.setMenu(self._csv_menu if columns else None)
        self.export_png_button.setEnabled(enabled)
        self.export_csv_button.setEnabled(enabled)
        self.export_png_button.setToolTip(why or f"Save a plot as a PNG image{of}, with a title")
        self.export_csv_button.setToolTip(
            why or f"Save the per-module table{of} (norms, cancellation, ranks, energies, spectra)"
        )

    def _export_expert(self, second: bool) -> str | None:
        return self.result.experts[1] if second and self._two_experts() else self.current_expert

    def default_export_path(self, kind: str, *, second: bool = False) -> Path:
        """Where an export dialog starts (``kind``: a plot name or ``csv``); names the expert on show.

        ``second``: the second column's expert (two columns)."""
        return plot_data.export_path(Path(self._export_base()), kind, self._export_expert(second))

    def export_png_dialog(self, name: str, *, second: bool = False) -> None:
        if not self.can_export:
            return
        view = self.view_of(self._export_expert(second))
        start = str(self.default_export_path(name, second=second))
        path, _ = QFileDialog.getSaveFileName(self, f"Export the {name} plot", start, "PNG images (*.png)")
        if path:
            self._export(lambda: view.export_png(name, path), path)

    def export_csv_dialog(self, *, second: bool = False) -> None:
        if not self.can_export:
            return
        view = self.view_of(self._export_expert(second))
        start = str(self.default_export_path("csv", second=second))
        path, _ = QFileDialog.getSaveFileName(self, "Export the analysis table", start, "CSV files (*.csv)")
        if path:
            self._export(lambda: view.export_csv(path), path)

    def _export(self, write, path: str) -> None:
        try:
            write()
        except (OSError, UserError, ValueError) as exc:
            self.export_failed.emit(f"cannot write {path}: {exc}")
            return
        self.exported.emit(path)
