"""The Train section's panel: one config, two datasets, the pair run, its live view and the project's runs.

Left, the config column (:mod:`~.config_box`: backend, preset, the config A and B share, the
backend's own settings, Show command). Right, from the top: the datasets (:mod:`~.datasets_box`:
set A, set B, name, output folder; two folders dropped on the panel are A and B), the checks of
every planned run (:mod:`~.checks_view`, re-checked soon after each edit) with the Train button
(disabled with the first error as its reason), the live monitor (:class:`RunMonitor`: loss of A
and B overlaid, progress with ETA, samples, logs, Stop / Stop and keep) and the project's runs
(:mod:`~.runs_list`: Merge these, Resume, Show log/plot). Work happens in jobs
(:mod:`~.panel_jobs`); the panel only follows their handles.

State: the project's ``train`` section keeps the form (``form``: backend, preset, config, backend
edits, folders, name, output folder, the folder dialogs' last folder) beside what the run records
keep there (``pairs``: each pair's one config). Edits are steps of :attr:`TrainPanel.undo_stack`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.qt.merge.run_bar import STATUS_COLORS, StatusLine
from difflora_gui.qt.train.checks_view import ChecksView
from difflora_gui.qt.train.config_box import ConfigBox, commands_text
from difflora_gui.qt.train.datasets_box import DatasetsBox
from difflora_gui.qt.train.panel_jobs import SECTION, PanelJobs
from difflora_gui.qt.train.run_monitor import RunMonitor
from difflora_gui.qt.train.runs_list import RunsList
from difflora_gui.qt.undo import UndoStack

FORM_KEY = "form"
RUNS_DELAY_MS = 150
#: from this panel height on, the monitor and the runs list are shown one over the other, not as tabs
TALL_HEIGHT = 820
TRAIN_TIP = "Train LoRA A on set A and LoRA B on set B with the one config (Ctrl+Return)"


def folders_of(paths) -> list[Path]:
    """The folders dropped paths stand for: a folder itself, a file its folder (in order, once each)."""
    found: list[Path] = []
    for path in map(Path, paths):
        folder = path if path.is_dir() else path.parent
        if folder not in found:
            found.append(folder)
    return found


class TrainPanel(PanelJobs, QWidget):
    """The Train section's panel (``PanelSpec.widget``); takes dropped folders (A, then B)."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("trainPanel")
        self.services = services
        self.undo_stack = UndoStack(self)
        self._restoring = False
        self._init_jobs()
        self._runs_timer = QTimer(self)
        self._runs_timer.setSingleShot(True)
        self._runs_timer.setInterval(RUNS_DELAY_MS)
        self._runs_timer.timeout.connect(self.refresh_runs)
        self._build()
        self._built = True
        self._connect()
        self.setAcceptDrops(True)
        self.restore_from_project()
        self.update_tab_order()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 640)

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # the whole panel scrolls when the window is smaller than it: it never sets the window's minimum size
        frame = QScrollArea()
        frame.setObjectName("trainPanelScroll")
        frame.setWidgetResizable(True)
        frame.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(frame)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        frame.setWidget(self.splitter)
        # left: what the user sets, in the order it is chosen (data, trainer, config), scrolling on its own
        scroll = QScrollArea()
        scroll.setObjectName("trainConfigScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(8)
        self.datasets = DatasetsBox(self.services, self.undo_stack)
        column.addWidget(self.datasets)
        self.config_box = ConfigBox(self.services, self.undo_stack)
        column.addWidget(self.config_box)
        column.addStretch(1)
        scroll.setWidget(body)
        # wide enough for the widest form row (a path with its Browse button): nothing is cut off
        scroll.setMinimumWidth(
            max(340, body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        )
        self.config_scroll = scroll
        self.splitter.addWidget(scroll)
        # right: the checks with Train, then what the runs do (monitor) and did (runs list)
        right = QWidget()
        right.setObjectName("trainSide")
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 0, 0, 0)
        right_layout.setSpacing(6)
        right_layout.addWidget(self._build_train_card())
        self.monitor = RunMonitor(self.services)
        self.runs_list = RunsList()
        # tall: the monitor over the runs list; short (a 720p laptop): the two as tabs, each at full height
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setObjectName("trainLowerTabs")
        self.lower_tabs.setDocumentMode(True)
        self.lower_splitter = QSplitter(Qt.Orientation.Vertical)
        self.lower_splitter.setObjectName("trainLowerSplitter")
        self.lower_splitter.setChildrenCollapsible(False)
        self.lower = QStackedWidget()
        self.lower.addWidget(self.lower_tabs)
        self.lower.addWidget(self.lower_splitter)
        self._tall: bool | None = None
        right_layout.addWidget(self.lower, 1)
        self._arrange(tall=False)
        right.setMinimumWidth(380)  # with the config column: 1280×720 with the Jobs dock open
        self.side = right
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)

    def _arrange(self, *, tall: bool) -> None:
        """Monitor and runs list one over the other (``tall``) or as two tabs."""
        if tall == self._tall:
            return
        self._tall = tall
        if tall:
            self.lower_tabs.clear()
            self.lower_splitter.addWidget(self.monitor)
            self.lower_splitter.addWidget(self.runs_list)
            self.lower_splitter.setStretchFactor(0, 3)
            self.lower_splitter.setStretchFactor(1, 2)
            height = max(self.lower.height(), 400)
            self.lower_splitter.setSizes([height * 3 // 5, height * 2 // 5])  # the plot gets the room
            self.lower.setCurrentWidget(self.lower_splitter)
            self.monitor.show()  # the tab widget had hidden the tab that was not on show
            self.runs_list.show()
        else:
            self.lower_tabs.addTab(self.monitor, "Monitor")
            self.lower_tabs.addTab(self.runs_list, "Runs")
            self.lower.setCurrentWidget(self.lower_tabs)
        self.update_tab_order()

    def show_monitor(self) -> None:
        """Bring the monitor into view (in the short layout it shares a tab bar with the runs)."""
        if not self._tall:
            self.lower_tabs.setCurrentWidget(self.monitor)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange(tall=self.height() >= TALL_HEIGHT)

    def _build_train_card(self) -> QWidget:
        card = QFrame()
        self.train_card = card
        card.setObjectName("sectionCard")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(12, 8, 12, 8)
        card_layout.setSpacing(4)
        self.checks = ChecksView(self.prepare_check)
        card_layout.addWidget(self.checks)
        row = QHBoxLayout()
        self.train_button = QPushButton("&Train")
        self.train_button.setObjectName("trainButton")
        self.train_button.setDefault(True)
        self.train_button.setMinimumWidth(130)
        self.train_button.setToolTip(TRAIN_TIP)
        self.train_button.setShortcut("Ctrl+Return")
        self.train_button.setEnabled(False)
        self.train_button.clicked.connect(self.start_training)
        self.reason_label = StatusLine()
        self.reason_label.setObjectName("trainReason")
        row.addWidget(self.train_button)
        row.addWidget(self.reason_label, 1)
        card_layout.addLayout(row)
        self.status_label = StatusLine()
        self.status_label.setObjectName("trainStatus")
        card_layout.addWidget(self.status_label)
        return card

    def _connect(self) -> None:
        self.config_box.changed.connect(self._on_inputs_changed)
        self.config_box.command_requested.connect(self.show_commands)
        self.config_box.form_rebuilt.connect(self.update_tab_order)
        self.config_box.defaults_changed.connect(self.checks.schedule)
        self.datasets.changed.connect(self._on_inputs_changed)
        self.datasets.from_project_requested.connect(self.export_project_dataset)
        self.checks.checked.connect(self._on_checked)
        self.runs_list.merge_requested.connect(self.merge_pair)
        self.runs_list.resume_requested.connect(self.resume)
        self.runs_list.show_requested.connect(self.show_run)
        self.runs_list.show_requested.connect(lambda _run_id: self.show_monitor())
        self.services.project_replaced.connect(self._on_project_replaced)
        self.services.section_changed.connect(self._on_section_changed)
        self.services.dirty_changed.connect(self._on_dirty_changed)

    def update_tab_order(self) -> list[QWidget]:
        """Tab follows the layout: the left column top to bottom, then Train, the monitor, the runs."""
        if not getattr(self, "_built", False):
            return []  # still building: the parts are not in one window yet
        from difflora_gui.qt.merge.shortcuts import apply_tab_order

        return apply_tab_order(
            [self.config_scroll, self.train_card, self.lower_tabs.tabBar(), self.monitor, self.runs_list]
        )

    def focus_first(self) -> None:
        self.config_box.backend_combo.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- inputs and checks -------------------------------------------------------------------

    def _on_inputs_changed(self) -> None:
        # results planned from other inputs no longer hold: Train waits for the next check
        self.train_button.setEnabled(False)
        self.reason_label.set_message("checking…", STATUS_COLORS["info"])
        self.datasets.refresh_counts()
        self.checks.schedule()
        if not self._restoring:
            # at once, not debounced: the project always holds what the form shows, so a Save As
            # that moves the workspace can never be overwritten by a stale form afterwards
            self.save_state()

    def _refresh_commands(self, outcome) -> None:
        """An open commands dialog shows the commands of the inputs as they are now."""
        dialog = self.config_box.dialog
        if dialog is None or not dialog.isVisible():
            return
        if outcome.commands is not None:
            dialog.set_text(outcome.commands)
        elif outcome.planning_error:
            dialog.set_text(f"# No commands for these inputs: {outcome.planning_error}")

    def _on_checked(self, outcome) -> None:
        ok = outcome.ok and self.config_box.spec() is not None
        self._refresh_commands(outcome)
        self.train_button.setEnabled(ok)
        if ok:
            runs = outcome.runs
            self.train_button.setText("&Train pair" if runs > 1 else "&Train")
            warnings = len(outcome.warnings())
            note = f" ({warnings} warning{'s' if warnings > 1 else ''} above)" if warnings else ""
            self.reason_label.set_message(
                f"{runs} run{'s' if runs > 1 else ''} ready{note}", STATUS_COLORS["ok"]
            )
            self.train_button.setToolTip(TRAIN_TIP)
        else:
            reason = outcome.reason() or "no trainer backend is installed"
            color = STATUS_COLORS["info"] if outcome.already_trained else STATUS_COLORS["error"]
            self.reason_label.set_message(reason, color)
            self.train_button.setToolTip(f"Train is disabled: {reason}")

    def show_commands(self):
        """The commands dialog with every planned run's exact commands (or plan)."""
        try:
            spec, runs = self.plan()
        except UserError as exc:
            self.set_status(f"No commands yet: {exc}", "warning")
            return None
        return self.config_box.show_commands(commands_text(spec, runs))

    # --- project state -----------------------------------------------------------------------

    def save_state(self) -> None:
        state = {**self.config_box.state(), **self.datasets.state()}
        self.services.project.update_section(SECTION, **{FORM_KEY: state})

    def restore_from_project(self) -> None:
        data = self.services.project.section(SECTION).get(FORM_KEY) or {}
        self._restoring = True
        try:
            self.config_box.set_state(data)
            self.datasets.set_state(data)
        finally:
            self._restoring = False
        self.undo_stack.clear()  # steps of another project cannot apply to this one
        self.reconcile_runs()
        self.refresh_runs()
        self.checks.schedule()

    def reconcile_runs(self) -> None:
        """Runs the project says are queued or running but that no job of this session trains
        (the app was closed or crashed meanwhile) are stopped: what their event logs say they wrote
        is kept, and Resume continues one that saved a state."""
        from difflora_gui.project.records import RunRecord
        from difflora_gui.train import run_records

        project = self.services.project
        self.adopt_active_jobs()
        for record in project.records(RunRecord):
            if record.status in (run_records.QUEUED, run_records.RUNNING) and record.id not in self.handles:
                run_records.set_status(project, record.id, run_records.STOPPED, events_log=True)

    def _on_project_replaced(self, _project) -> None:
        self.monitor.clear()
        self.restore_from_project()

    def _on_dirty_changed(self, dirty: bool) -> None:
        """Saved: Save As may have moved the workspace (and the folders in it) beside the new file,
        and the project followed with its paths; the form follows the project."""
        if dirty:
            return
        stored = self.services.project.section(SECTION).get(FORM_KEY) or {}
        shown = self.datasets.state()
        moved = {
            key: stored[key] for key in ("a_dir", "b_dir", "output_dir") if stored.get(key, "") != shown[key]
        }
        if moved:
            self._restoring = True
            try:
                self.datasets.set_state({**shown, **moved})
            finally:
                self._restoring = False

    def _on_section_changed(self, key: str) -> None:
        if key == "records":
            self._runs_timer.start()

    def refresh_runs(self) -> None:
        """The runs list and what depends on the project's records (its dataset for the export)."""
        from difflora_gui.project.records import DatasetRecord

        self._runs_timer.stop()
        project = self.services.project
        self.runs_list.set_records(project, set(self.handles))
        datasets = project.records(DatasetRecord)
        if self.export_job is None:
            self.datasets.set_project_dataset((datasets[-1].name or "the dataset") if datasets else None)

    # --- drops -------------------------------------------------------------------------------

    def accept_files(self, paths) -> None:
        """Dropped folders: one is set A, two are set A and set B (a file stands for its folder)."""
        folders = folders_of(paths)
        if not folders or len(folders) > 2:
            self.set_status(f"Drop one or two folders (set A, then set B), not {len(folders)}", "warning")
            return
        self.datasets.set_folder("a", folders[0])
        if len(folders) == 2:
            self.datasets.set_folder("b", folders[1])
        self.set_status(
            f"Set A: {folders[0]}" + (f"; set B: {folders[1]}" if len(folders) == 2 else ""), "info"
        )

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.accept_files(paths)

    # --- messages ----------------------------------------------------------------------------

    def set_status(self, text: str, level: str = "info") -> None:
        self.status_label.set_message(text, STATUS_COLORS.get(level, STATUS_COLORS["info"]))
        if level in ("warning", "error"):
            self.services.log(f"Train: {text}", level)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.DeferredDelete:
            self.release()  # deleteLater (the window rebuilt its panels): the jobs go on without us
        return super().event(event)

    def release(self) -> None:
        """Let go of the jobs' handles (they outlive the panel) and stop the helper threads."""
        from difflora_gui.qt.train.panel_jobs import disconnect_all

        disconnect_all(self._connections)
        self.monitor.clear()  # its own connections to the handles
        self.monitor.shutdown()
        self.checks.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.monitor.shutdown()
        self.checks.shutdown()
        super().closeEvent(event)
