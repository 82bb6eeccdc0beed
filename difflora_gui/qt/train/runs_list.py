"""The project's training runs, grouped by pair: what ran, how far, what it wrote, where it came from.

One top-level row per pair (the runs that share a ``pair_id``: A and B, their experts, or one
slider), one child row per run: name, side/expert, status, steps done of the total, the final
file. The selected run's details under the tree: its files (final LoRA, checkpoints, the newest
state), the shared config in one line, and its lineage (the dataset it trained on, the merges
made from it). Buttons: "Merge these" (the pair's finished files into the Merge section),
"Resume" (a stopped run with a saved state), "Show log/plot" (the monitor replays the run),
"Open folder" (the run's output folder in the file manager).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.project.records import MergeRecord, RunRecord

COLUMNS = ("Run", "Side", "Status", "Steps", "File")
STATUS_TEXT = {
    "": "queued",
    "running": "running",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
}
SIDE_TEXT = {"a": "A", "b": "B", "slider": "slider", "": "single"}
#: the config fields the one-line summary names, in order
SUMMARY_FIELDS = (
    "task",
    "pair_mode",
    "optimizer",
    "learning_rate",
    "lr_scheduler",
    "max_train_steps",
    "network_dim",
    "network_alpha",
    "resolution",
    "captions",
    "seed",
)
RUN_ROLE = Qt.ItemDataRole.UserRole
PAIR_ROLE = Qt.ItemDataRole.UserRole + 1


def side_text(record: RunRecord) -> str:
    side = SIDE_TEXT.get(record.side, record.side)
    return f"{side} · {record.expert} noise" if record.expert else side


def pair_title(records: list[RunRecord]) -> str:
    """The pair's name: what its runs' names share (``x_A``, ``x_B`` → ``x``)."""
    names = [record.name for record in records]
    if not names:
        return ""
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix.rstrip("_ -") or names[0]


def config_summary(config: dict) -> str:
    return ", ".join(f"{key}={config[key]}" for key in SUMMARY_FIELDS if key in config)


def merge_roles(records: list[RunRecord]) -> dict[str, str] | None:
    """The Merge section's inputs for a finished pair (``a``/``b``, or per expert ``a_high`` ...),
    None until every A and B run of the pair has its final file."""
    sides = [r for r in records if r.side in ("a", "b")]
    if not sides or {r.side for r in sides} != {"a", "b"}:
        return None
    roles = {}
    for record in sides:
        if record.status != "finished" or not record.output or not Path(record.output).is_file():
            return None
        roles[f"{record.side}_{record.expert}" if record.expert else record.side] = record.output
    return roles


class RunsList(QWidget):
    """The runs tree with its details and buttons."""

    merge_requested = Signal(str)  # pair id
    resume_requested = Signal(str)  # run id
    show_requested = Signal(str)  # run id
    folder_opened = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = None
        self.records: dict[str, RunRecord] = {}
        self.running: set[str] = set()  # run ids with a job queued or running
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        heading = QLabel("Runs in this project")
        heading.setObjectName("cardHeading")
        layout.addWidget(heading)
        self.tree = QTreeWidget()
        self.tree.setObjectName("runsTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, 220)
        for column, width in ((1, 90), (2, 80), (3, 90)):
            self.tree.setColumnWidth(column, width)
        self.tree.currentItemChanged.connect(lambda *_: self._show_details())
        self.tree.itemDoubleClicked.connect(lambda *_: self._show_selected())
        layout.addWidget(self.tree, 1)
        self.details = QLabel()
        self.details.setObjectName("runDetails")
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(60)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.details)
        row = QHBoxLayout()
        self.merge_button = QPushButton("&Merge these")
        self.merge_button.setToolTip("Open the Merge section with this pair's LoRA A and LoRA B filled in")
        self.resume_button = QPushButton("&Resume")
        self.resume_button.setToolTip(
            "Continue this stopped run from its newest saved state, to its original step count"
        )
        self.show_button = QPushButton("Show &log/plot")
        self.show_button.setToolTip("Show this run's loss, progress and log in the monitor")
        self.folder_button = QPushButton("Open &folder")
        self.folder_button.setToolTip("Open the run's output folder (final LoRA, checkpoints, states)")
        self.merge_button.clicked.connect(lambda: self._emit_pair(self.merge_requested))
        self.resume_button.clicked.connect(lambda: self._emit_run(self.resume_requested))
        self.show_button.clicked.connect(self._show_selected)
        self.folder_button.clicked.connect(self.open_folder)
        for button in (self.merge_button, self.resume_button, self.show_button, self.folder_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        self._show_details()

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the tree, then the buttons under it."""
        return [self.tree, self.merge_button, self.resume_button, self.show_button, self.folder_button]

    # --- contents ----------------------------------------------------------------------------

    def set_records(self, project, running: set[str] | None = None) -> None:
        """Show the project's runs (the selection stays on the same run)."""
        self.project = project
        if running is not None:
            self.running = set(running)
        selected = self.selected_run_id() or self.selected_pair_id()
        runs = list(project.records(RunRecord)) if project is not None else []
        self.records = {record.id: record for record in runs}
        pairs: dict[str, list[RunRecord]] = {}
        for record in runs:
            pairs.setdefault(record.pair_id or record.id, []).append(record)
        self.tree.blockSignals(True)
        self.tree.clear()
        current = None
        for pair_id, records in reversed(list(pairs.items())):  # the newest pair first
            top = QTreeWidgetItem([pair_title(records), _pair_kind(records), _pair_status(records), "", ""])
            top.setData(0, PAIR_ROLE, pair_id)
            mode = records[0].config.get("pair_mode", "")
            top.setToolTip(0, f"{pair_title(records)} · {records[0].backend} · {mode} · {records[0].created}")
            self.tree.addTopLevelItem(top)
            for record in records:
                item = QTreeWidgetItem(
                    [
                        record.name,
                        side_text(record),
                        STATUS_TEXT.get(record.status, record.status),
                        f"{record.steps_done}/{record.total_steps}",
                        Path(record.output).name if record.output else "",
                    ]
                )
                item.setData(0, RUN_ROLE, record.id)
                item.setData(0, PAIR_ROLE, pair_id)
                item.setToolTip(0, record.name)
                item.setToolTip(4, record.output)
                error = record.meta.get("error")
                if error:
                    item.setToolTip(2, str(error))
                top.addChild(item)
                if record.id == selected:
                    current = item
            top.setExpanded(True)
            if pair_id == selected:
                current = top
        if current is None and self.tree.topLevelItemCount():
            top = self.tree.topLevelItem(0)
            current = top.child(0) if top.childCount() else top
        if current is not None:
            self.tree.setCurrentItem(current)
        for column in (1, 2, 3):  # the short columns fit their text; the file name gets the rest
            self.tree.resizeColumnToContents(column)
        self.tree.blockSignals(False)
        self._show_details()

    def select_run(self, run_id: str) -> None:
        for index in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(index)
            for child in range(top.childCount()):
                if top.child(child).data(0, RUN_ROLE) == run_id:
                    self.tree.setCurrentItem(top.child(child))
                    return

    def selected_run_id(self) -> str:
        item = self.tree.currentItem()
        return str(item.data(0, RUN_ROLE) or "") if item is not None else ""

    def selected_pair_id(self) -> str:
        item = self.tree.currentItem()
        return str(item.data(0, PAIR_ROLE) or "") if item is not None else ""

    def pair_records(self, pair_id: str) -> list[RunRecord]:
        return [r for r in self.records.values() if (r.pair_id or r.id) == pair_id]

    # --- details and buttons -----------------------------------------------------------------

    def _show_details(self) -> None:
        run_id, pair_id = self.selected_run_id(), self.selected_pair_id()
        record = self.records.get(run_id)
        records = self.pair_records(pair_id) if pair_id else []
        roles = merge_roles(records)
        self.merge_button.setEnabled(roles is not None)
        if roles is not None:
            tip = "Open the Merge section with this pair's LoRA A and LoRA B filled in"
        elif any(r.side == "slider" for r in records):
            tip = "Slider mode trained the differential LoRA itself: no merge is needed (the Merge section can still analyse it)"
        else:
            tip = "Merge needs a pair whose A and B runs have finished with their files"
        self.merge_button.setToolTip(tip)
        resumable = (
            record is not None
            and record.id not in self.running
            and record.status in ("stopped", "failed")
            and bool(record.state)
            and Path(record.state).exists()
        )
        self.resume_button.setEnabled(resumable)
        target = record or (records[0] if records else None)
        self.show_button.setEnabled(
            target is not None
            and (target.id in self.running or bool(target.event_log and Path(target.event_log).is_file()))
        )
        self.folder_button.setEnabled(target is not None and Path(target.output_dir or ".").is_dir())
        if record is None:
            if records:
                self.details.setText(
                    f"<b>{html.escape(pair_title(records))}</b> · {len(records)} runs · "
                    f"{html.escape(records[0].backend)}<br>{html.escape(config_summary(records[0].config))}"
                )
            else:
                self.details.setText("<i>No runs yet: choose the datasets and press Train.</i>")
            return
        self.details.setText(self._details_html(record))

    def _details_html(self, record: RunRecord) -> str:
        esc = html.escape
        lines = [
            f"<b>{esc(record.name)}</b> · {esc(side_text(record))} · {esc(record.backend)} · {esc(record.created)}"
        ]
        if record.output:
            lines.append(f"LoRA: {esc(record.output)}")
        if record.checkpoints:
            names = ", ".join(Path(path).name for path in record.checkpoints[-4:])
            more = f" (+{len(record.checkpoints) - 4} more)" if len(record.checkpoints) > 4 else ""
            lines.append(f"Checkpoints: {esc(names)}{more}")
        if record.state:
            lines.append(f"State: {esc(Path(record.state).name)}")
        if record.meta.get("kept"):
            lines.append(f"Kept after Stop and keep: {esc(str(record.meta['kept']))}")
        if record.meta.get("error"):
            lines.append(f"<span style='color:#ff7b7b'>Failed: {esc(str(record.meta['error']))}</span>")
        lines.append(f"Config: {esc(config_summary(record.config))}")
        lines.append(f"Lineage: {esc(self._lineage(record))}")
        return "<br>".join(lines)

    def _lineage(self, record: RunRecord) -> str:
        parts = []
        if record.dataset_id and self.project is not None:
            try:
                dataset = self.project.get_record(record.dataset_id)
                parts.append(f"dataset {dataset.name or dataset.id}")
            except Exception:
                parts.append(f"dataset {record.dataset_id} (no longer in the project)")
        parts.append(f"trained on {record.dataset_dir}")
        if self.project is not None:
            merges = [m for m in self.project.records(MergeRecord) if record.id in (m.run_a, m.run_b)]
            if merges:
                parts.append("merged into " + ", ".join(Path(m.output).name for m in merges if m.output))
        return " · ".join(parts)

    def _emit_pair(self, signal) -> None:
        pair_id = self.selected_pair_id()
        if pair_id:
            signal.emit(pair_id)

    def _emit_run(self, signal) -> None:
        run_id = self.selected_run_id()
        if run_id:
            signal.emit(run_id)

    def _show_selected(self) -> None:
        run_id = self.selected_run_id()
        if not run_id:
            records = self.pair_records(self.selected_pair_id())
            run_id = records[0].id if records else ""
        if run_id:
            self.show_requested.emit(run_id)

    def open_folder(self) -> None:
        record = self.records.get(self.selected_run_id())
        if record is None:
            records = self.pair_records(self.selected_pair_id())
            record = records[0] if records else None
        if record is None or not record.output_dir:
            return
        self.folder_opened.emit(record.output_dir)
        QDesktopServices.openUrl(QUrl.fromLocalFile(record.output_dir))


def _pair_kind(records: list[RunRecord]) -> str:
    """What the top row is: a pair (A and B), a slider (one run as the difference) or a single LoRA."""
    if any(r.side == "slider" for r in records):
        return "slider"
    return "pair" if any(r.side in ("a", "b") for r in records) else "single"


def _pair_status(records: list[RunRecord]) -> str:
    states = {STATUS_TEXT.get(r.status, r.status) for r in records}
    for state in ("running", "failed", "stopped", "queued"):
        if state in states:
            return state
    return "finished" if states else ""
