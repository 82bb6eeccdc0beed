"""The Dataset section's panel: import a pair set, see it as a thumbnail grid, check it, edit it, run tools.

Top, the import row (:mod:`~.import_bar`: two folders paired by a rule, or one folder as set A;
folders and files dropped on the panel do the same) and the tools bar (:mod:`~.tools_bar`: one
button per registered dataset tool). Left, the grid (:mod:`~.pair_grid`: virtualised, sortable and
filterable by any score or flag; thumbnails from :mod:`~.thumb_loader`, cached in the dataset's
``thumbs/``) over the import results and "Train on these pairs…" (the Train section with this set as
its set A and set B: the demo's next step). Right, the pair view of the selected pair and the checks
(:mod:`~.checks_box`). Edits (:mod:`~.panel_edits`) are steps of :attr:`DatasetPanel.undo_stack`
(Edit ▸ Undo).

The set is the project's dataset: ``pairs.json`` in its workspace folder and a ``DatasetRecord``
(:mod:`difflora_gui.dataset.store`); the project's ``dataset`` section names it (``dataset_id``)
with the rule, the resolution and the thresholds, so the set, its scores and its thumbnails come
back when the project opens.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset import store
from difflora_gui.dataset.model import media_kind
from difflora_gui.dataset.thumbnails import ThumbnailCache
from difflora_gui.errors import UserError
from difflora_gui.project.records import DatasetRecord
from difflora_gui.qt.dataset.checks_box import ChecksBox
from difflora_gui.qt.dataset.import_bar import ImportBar, ImportResults
from difflora_gui.qt.dataset.pair_grid import PairGrid
from difflora_gui.qt.dataset.panel_edits import PanelEdits
from difflora_gui.qt.dataset.panel_jobs import SECTION, PanelJobs
from difflora_gui.qt.dataset.thumb_loader import ThumbnailLoader
from difflora_gui.qt.dataset.tools_bar import ToolsBar
from difflora_gui.qt.undo import UndoStack

SAVE_DELAY_MS = 400
#: how long the selection must rest before the pair view loads the pair
VIEW_DELAY_MS = 60
#: the Train section's panel (``PanelSpec.name``), which "Train on these pairs…" fills in
TRAIN_PANEL = "train-runs"
STATUS_COLOURS = {"info": "#b8bbc2", "ok": "#7fc97f", "warning": "#e0a030", "error": "#e06060"}


def _pair_view_class():
    try:
        from difflora_gui.qt.dataset.pair_view import PairView
    except ImportError:
        return None
    return PairView


def _editor_class():
    try:
        from difflora_gui.qt.dataset.edits import DatasetEditor
    except ImportError:
        return None
    return DatasetEditor


def folders_of(paths) -> list[Path]:
    """The folders dropped paths stand for, in order: a folder itself, a media file its folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        folder = path if path.is_dir() else (path.parent if media_kind(path) else None)
        if folder is not None and folder not in found:
            found.append(folder)
    return found


class DatasetPanel(PanelJobs, PanelEdits, QWidget):
    """The Dataset section's panel (``PanelSpec.widget``); takes dropped folders, images and videos."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("datasetPanel")
        self.services = services
        self.pair_set = None
        self.record: DatasetRecord | None = None
        self.folder: Path | None = None
        self.scores: dict = {}
        self.editor = None
        self.import_job = self.check_job = None
        self.tool_jobs: dict = {}
        self._import_project = None
        self._check_folder = None
        self.undo_stack = UndoStack(self)
        self.loader = ThumbnailLoader(parent=self)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self._pending_pair = None
        self._shown: tuple = (None, None, 0)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(VIEW_DELAY_MS)
        self._view_timer.timeout.connect(self._show_pending_pair)
        self._build()
        self._connect()
        self.setAcceptDrops(True)
        self.restore_from_project()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 600)

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # the whole panel scrolls when the window is smaller than it: it never sets the window's minimum size
        frame = QScrollArea()
        frame.setObjectName("datasetPanelScroll")
        frame.setWidgetResizable(True)
        frame.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(frame)
        body = QWidget()
        frame.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.import_bar = ImportBar()
        self.tools_bar = ToolsBar(self.services.host.dataset_tools(), self.tool_context)
        layout.addWidget(self.import_bar)
        layout.addWidget(self.tools_bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 4, 0)
        left_layout.setSpacing(4)
        self.grid = PairGrid(self.loader)
        self.import_results = ImportResults()
        left_layout.addWidget(self.grid, 1)
        # the next step beside the pair count (the tools row is full): the Train section with these pairs
        self.train_button = QPushButton("Train on these pairs…")
        self.train_button.setObjectName("trainOnDataset")
        self._refresh_train_button()
        results_row = QHBoxLayout()
        results_row.setSpacing(6)
        results_row.addWidget(self.import_results, 1)
        results_row.addWidget(self.train_button, 0, Qt.AlignmentFlag.AlignTop)
        left_layout.addLayout(results_row)
        left.setMinimumWidth(280)
        self.splitter.addWidget(left)
        # right: the pair view over the checks (a splitter: either can be given more room)
        right = QSplitter(Qt.Orientation.Vertical)
        right.setObjectName("datasetSide")
        right.setChildrenCollapsible(False)
        view_class = _pair_view_class()
        self.pair_view = view_class() if view_class is not None else None
        if self.pair_view is not None:
            self.pair_view.setMinimumHeight(160)
            right.addWidget(self.pair_view)
        else:
            right.addWidget(QLabel("The pair view is not installed."))
        scroll = QScrollArea()
        scroll.setObjectName("datasetChecksScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.checks = ChecksBox()
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(4, 4, 8, 4)
        holder_layout.addWidget(self.checks)
        holder_layout.addStretch(1)
        scroll.setWidget(holder)
        scroll.setMinimumHeight(90)
        right.addWidget(scroll)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        # as wide as the checks' widest row (Check pairs, Thresholds): the scroll there is vertical only
        right.setMinimumWidth(max(340, holder.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()))
        self.side_splitter = right
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([640, 460])
        layout.addWidget(self.splitter, 1)
        self.status_label = QLabel()
        self.status_label.setObjectName("datasetStatus")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.status_label)

    def _connect(self) -> None:
        self.import_bar.import_requested.connect(self.start_import)
        self.import_bar.cancel_requested.connect(self.cancel_import)
        self.import_bar.copy_requested.connect(self.start_copy_into_project)
        self.checks.check_requested.connect(self.start_check)
        self.checks.cancel_requested.connect(self.cancel_check)
        self.checks.resolution_changed.connect(self._on_resolution)
        if self.checks.form is not None:
            self.checks.form.changed.connect(self._on_thresholds)
        self.tools_bar.run_requested.connect(self.run_tool)
        self.train_button.clicked.connect(self.train_on_dataset)
        self.grid.current_changed.connect(self._on_current_pair)
        self.services.project_replaced.connect(self._on_project_replaced)
        self._install_edit_keys()
        self.destroyed.connect(self.loader.shutdown)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.loader.shutdown()
        super().closeEvent(event)

    # --- the set -----------------------------------------------------------------------------

    def adopt_set(self, pair_set, *, new: bool, record: DatasetRecord | None = None, scores=None) -> None:
        """Show ``pair_set`` (a fresh import when ``new``: it becomes the project's dataset)."""
        project = self.services.project
        if new:
            self.record = (
                store.update_dataset(project, self.record, pair_set)
                if self.record is not None and self._record_in(project)
                else store.create_dataset(project, pair_set)
            )
            project.update_section(SECTION, dataset_id=self.record.id, rule=pair_set.rule)
        else:
            self.record = record
        self.pair_set = pair_set
        self.folder = store.dataset_folder(project, self.record.id) if self.record is not None else None
        self.import_bar.copy_button.setEnabled(self.folder is not None and bool(pair_set.pairs))
        self.scores = dict(scores or {})
        self.undo_stack.clear()  # steps of another set cannot apply to this one
        editor_class = _editor_class()
        self.editor = editor_class(pair_set, self.undo_stack, self) if editor_class is not None else None
        if self.editor is not None:
            self.editor.changed.connect(self._on_edited)
        if self.pair_view is not None:
            self.pair_view.set_editor(self.editor)
            self.pair_view.clear()
            self._shown = (None, None, 0)
        self.loader.set_cache(ThumbnailCache.for_dataset(self.folder) if self.folder else None)
        self.grid.set_pairs(pair_set, self.scores)
        self.import_results.show_set(pair_set)
        self.checks.show_summary(self.make_summary(self.scores) if self.scores else None)
        self._refresh_train_button()
        if pair_set.pairs:
            self.grid.select_pair(self.grid.model.pair_at(0).id)

    def _record_in(self, project) -> bool:
        return any(r.id == self.record.id for r in project.records(DatasetRecord))

    def clear_set(self) -> None:
        self.pair_set = self.record = self.folder = self.editor = None
        self.scores = {}
        self.undo_stack.clear()
        self.loader.set_cache(None)
        self.grid.set_pairs(None)
        self.import_results.show_set(None)
        self.checks.show_summary(None)
        if self.pair_view is not None:
            self.pair_view.set_editor(None)
            self.pair_view.clear()
            self._shown = (None, None, 0)
        self._refresh_train_button()

    def restore_from_project(self) -> None:
        """Show the project's dataset (its ``dataset_id``), with its cached scores."""
        project = self.services.project
        data = project.section(SECTION)
        if data.get("resolution"):
            self.checks.set_resolution(int(data["resolution"]))
        if data.get("rule"):
            self.import_bar.set_rule(str(data["rule"]))
        if self.checks.form is not None and isinstance(data.get("thresholds"), dict):
            self.checks.form.set_values(data["thresholds"])
        record_id = data.get("dataset_id")
        records = [r for r in project.records(DatasetRecord) if r.id == record_id] or project.records(
            DatasetRecord
        )
        if not records:
            self.clear_set()
            return
        record = records[-1]
        try:
            pair_set = store.load_pair_set(store.dataset_folder(project, record.id))
        except UserError as exc:
            self.clear_set()
            self.set_status(f"The dataset could not be opened: {exc}", "error")
            return
        self.record = record
        folder = store.dataset_folder(project, record.id)
        self.folder = folder
        self.adopt_set(pair_set, new=False, record=record, scores=self.load_scores())

    def _on_project_replaced(self, _project) -> None:
        self._save_timer.stop()
        self.restore_from_project()

    def save_now(self) -> None:
        """Write the set (edits included) into its folder and update the project's record."""
        self._save_timer.stop()
        if self.pair_set is None or self.record is None:
            return
        project = self.services.project
        try:
            self.record = store.update_dataset(project, self.record, self.pair_set)
        except UserError as exc:
            self.set_status(f"The set could not be saved: {exc}", "error")

    def _on_edited(self, ids: list) -> None:
        self.grid.model.pairs_changed(ids)
        self.refresh_pair_view()
        self._refresh_train_button()
        self._save_timer.start()

    # --- scores ------------------------------------------------------------------------------

    def load_scores(self) -> dict:
        """The cached scores at the chosen resolution ({} when not checked or not installed)."""
        if self.folder is None:
            return {}
        try:
            from difflora_gui.dataset.check_job import load_scores
        except ImportError:
            return {}
        try:
            return dict(load_scores(self.folder, self.checks.resolution(), self.thresholds()) or {})
        except (UserError, OSError, ValueError):
            return {}

    def thresholds(self):
        """The thresholds as set in the form (``CheckThresholds``; None when the checks are not installed)."""
        try:
            from difflora_gui.dataset.check_config import CheckThresholds
        except ImportError:
            return None
        try:
            return CheckThresholds.from_values(self.checks.thresholds_values())
        except UserError:
            return CheckThresholds(resolution=self.checks.resolution())

    def make_summary(self, scores: dict):
        """The checks' ``SetSummary`` of these scores (None without scores or checks)."""
        if not scores:
            return None
        try:
            from difflora_gui.dataset.check_summary import summarize
        except ImportError:
            return None
        return summarize(scores, self.thresholds())

    def _on_resolution(self, value: int) -> None:
        self.services.project.update_section(SECTION, resolution=value)
        if self.folder is not None and self.check_job is None:
            self.scores = self.load_scores()
            self.grid.set_scores(self.scores)
            self.checks.show_summary(self.make_summary(self.scores))
            self.refresh_pair_view()

    def _on_thresholds(self) -> None:
        """Store the thresholds; re-flag the scores on show under them (no image is read again)."""
        self.services.project.update_section(SECTION, thresholds=self.checks.form.changed_values())
        thresholds = self.thresholds()
        if not self.scores or thresholds is None or self.checks.form.errors():
            return
        from difflora_gui.dataset.checks import reflag

        reflag(self.scores, thresholds)
        self.grid.set_scores(self.scores)
        self.checks.show_summary(self.make_summary(self.scores))
        self.refresh_pair_view()

    # --- pair view ---------------------------------------------------------------------------

    def _on_current_pair(self, pair) -> None:
        """Show this pair (soon: a run of selection changes, arrow keys held, shows only the last)."""
        self._pending_pair = pair
        self._view_timer.start()

    def _show_pending_pair(self) -> None:
        if self.pair_view is None:
            return
        pair = self._pending_pair
        shown = (pair, self.scores.get(pair.id) if pair is not None else None, self.checks.resolution())
        if shown == self._shown and pair is not None:
            return  # the same pair as it was (a sort or filter moved its row): nothing to load again
        self._shown = shown
        if pair is None:
            self.pair_view.clear()
        else:
            self.pair_view.set_pair(*shown)

    def refresh_pair_view(self) -> None:
        """Show the current pair as it is now (after an edit, an undo or new scores)."""
        pair = self.grid.current_pair()
        if pair is not None and self.pair_set is not None:
            try:
                pair = self.pair_set.pair(pair.id)
            except KeyError:
                pair = None
        self._on_current_pair(pair)

    # --- drops -------------------------------------------------------------------------------

    def accept_files(self, paths) -> None:
        """Dropped folders or files: two folders are A and B, one is set A; a file stands for its folder."""
        folders = folders_of(paths)
        if not folders:
            self.set_status(
                "Nothing to import: drop folders (or images and videos) of set A and set B", "warning"
            )
            return
        if len(folders) > 2:
            self.set_status(f"Drop one or two folders (A, then B), not {len(folders)}", "warning")
            return
        a_dir = folders[0]
        b_dir = folders[1] if len(folders) == 2 else ""
        self.start_import(str(a_dir), str(b_dir), self.import_bar.rule() if b_dir else "stem")

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

    # --- the next step: Train --------------------------------------------------------------

    def _refresh_train_button(self) -> None:
        count = len(self.pair_set.pairs) if self.pair_set is not None and self.record is not None else 0
        self.train_button.setEnabled(count > 0)
        self.train_button.setToolTip(
            f"Open the Train section with these {count} pairs as the pair run's set A and set B "
            "(exported as plain A/ and B/ folders into the project);\n"
            "the other Train settings stay as they are"
            if count
            else "Import pairs first: this opens the Train section with them as the pair run's "
            "set A and set B"
        )

    def train_on_dataset(self) -> bool:
        """Show the Train section with this set as its A and B folders (the Train panel exports it)."""
        window = self.services.window
        entry = getattr(window, "panels", {}).get(TRAIN_PANEL) if window is not None else None
        if entry is None or not entry.ok or not hasattr(entry.widget, "use_project_dataset"):
            self.set_status("The Train section's panel is not installed (Tools ▸ Plugins)", "error")
            return False
        self.save_now()  # the export reads the saved set: edits still waiting for the timer would be missed
        window.show_section("train")
        if not entry.widget.use_project_dataset():
            return False  # the Train section's status line, now shown, says why
        count = len(self.pair_set.pairs) if self.pair_set is not None else 0
        self.services.show_status(
            f"Train: exporting the dataset's {count} pairs; set A and set B are filled in when it ends"
        )
        return True

    # --- messages ----------------------------------------------------------------------------

    def set_status(self, text: str, level: str = "info") -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(f"color: {STATUS_COLOURS.get(level, STATUS_COLOURS['info'])};")
        if level in ("warning", "error"):
            self.services.log(f"Dataset: {text}", level)
