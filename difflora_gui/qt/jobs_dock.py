"""The Jobs dock: one row per job with its lane, state, status, progress bar, ETA, Stop
(and "Stop and keep" for a resumable job) and Remove."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from difflora_gui.jobs.context import Progress, format_duration
from difflora_gui.jobs.events import Status
from difflora_gui.qt.jobs import DONE, FAILED, QUEUED, RUNNING, JobController, JobHandle

_PROGRESS_STEPS = 1000
NO_JOBS_YET = (
    "No jobs yet. Training, merging and preview rendering run here, one job at a time per "
    "device; small CPU jobs run beside them."
)


def no_jobs_left_text(removed: int) -> str:
    """What the empty dock says after jobs were removed from the list (they did run)."""
    jobs = "job" if removed == 1 else "jobs"
    return f"No running or queued jobs ({removed} finished {jobs} removed from the list)."


class JobRow(QFrame):
    """Shows one job and follows its handle's signals (all in the GUI thread)."""

    def __init__(self, handle: JobHandle, controller: JobController, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("jobRow")
        self.handle = handle
        self._controller = controller
        # long titles (file names) are elided so the dock never needs a horizontal scroll bar
        self.title_label = QElidingLabel(handle.title)
        self.title_label.setObjectName("jobTitle")
        self.title_label.setToolTip(f"{handle.title}\njob {handle.id} · lane {handle.lane_key}")
        self.state_label = QLabel()
        self.state_label.setObjectName("jobState")
        self.lane_label = QLabel(handle.lane_key)
        self.lane_label.setObjectName("mutedLabel")
        self.lane_label.setToolTip("the lane the job runs on (or waits for)")
        # what the job says it is doing: elided, on a line of its own that is always there, so a
        # new status never moves a button or the rows below
        self.status_label = QElidingLabel()
        self.status_label.setObjectName("jobStatus")
        self.status_label.setMinimumHeight(self.status_label.fontMetrics().height())
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setTextVisible(True)
        self.detail_label = QElidingLabel()
        self.detail_label.setObjectName("mutedLabel")
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.eta_label = QLabel()
        self.eta_label.setObjectName("mutedLabel")
        self.eta_label.setFixedWidth(self.eta_label.fontMetrics().horizontalAdvance("ETA 00:00:00 "))
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip(
            "Stop this job; nothing half-written is left (a running job stops at its next check)"
        )
        self.cancel_button.clicked.connect(self._cancel)
        self.keep_button = QPushButton("Stop and keep")
        self.keep_button.setToolTip("Stop this job and keep what it has so far (it says where)")
        self.keep_button.clicked.connect(self._stop_and_keep)
        self.keep_button.setVisible(handle.resumable)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove this job from the list")
        self.remove_button.clicked.connect(self._remove)

        top = QHBoxLayout()
        top.setSpacing(8)
        top.addWidget(self.title_label, 1)
        top.addWidget(self.lane_label)
        top.addWidget(self.state_label)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 6)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.keep_button)
        buttons.addWidget(self.remove_button)
        grid.addLayout(top, 0, 0, 1, 3)
        grid.addWidget(self.progress_bar, 1, 0)
        grid.addWidget(self.eta_label, 1, 1)
        grid.addLayout(buttons, 1, 2)
        grid.addWidget(self.detail_label, 2, 0, 1, 3)
        grid.addWidget(self.status_label, 3, 0, 1, 3)
        grid.setColumnStretch(0, 1)

        handle.state_changed.connect(self._on_state)
        handle.progressed.connect(self._on_progress)
        handle.event_emitted.connect(self._on_event)
        self._on_state(handle.state)

    @Slot(str)
    def _on_state(self, _state: str) -> None:
        handle = self.handle
        state = handle.state_text
        self.state_label.setText(state)
        self.lane_label.setText(handle.lane_key)
        self.state_label.setProperty("state", handle.state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)
        self.cancel_button.setEnabled(not handle.is_finished and not handle.cancel_requested)
        self.keep_button.setEnabled(handle.state == RUNNING and not handle.cancel_requested)
        self.remove_button.setEnabled(handle.is_finished or handle.state == QUEUED and handle.context is None)
        if handle.state == QUEUED:
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("waiting")
            lane = handle.lane_key
            waits_for = f"the first free lane of {lane}" if lane.endswith("*") else f"lane {lane}"
            self.detail_label.setText(f"waiting for {waits_for}")
        elif handle.state == RUNNING and handle.progress is None:
            self.progress_bar.setRange(0, 0)  # busy until the first report
            self.detail_label.setText("running")
        elif handle.is_finished:
            self.progress_bar.setRange(0, _PROGRESS_STEPS)
            if handle.state == DONE:
                self.progress_bar.setValue(_PROGRESS_STEPS)
                self.progress_bar.setFormat("100%")
            else:
                self.progress_bar.setFormat(handle.state)
            elapsed = handle.elapsed_s
            took = f"after {format_duration(elapsed)}" if elapsed is not None else ""
            if handle.state == FAILED:
                self.detail_label.setText(f"{handle.error_text}  (details in the Log)")
                self.detail_label.setToolTip(handle.traceback or handle.error_text)
            else:
                self.detail_label.setText(f"{handle.state} {took}".strip())
            self.eta_label.setText(format_duration(elapsed) if elapsed is not None else "")
            self.eta_label.setToolTip("run time")

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        fraction = progress.fraction
        if fraction is None:
            self.progress_bar.setRange(0, 0)
        else:
            self.progress_bar.setRange(0, _PROGRESS_STEPS)
            self.progress_bar.setValue(round(fraction * _PROGRESS_STEPS))
            self.progress_bar.setFormat(f"{fraction * 100:.0f}%")
        total = f"/{progress.total:g}" if progress.total else ""
        text = f"{progress.done:g}{total}"
        self.detail_label.setText(f"{text} · {progress.text}" if progress.text else text)
        self.eta_label.setText(self.handle.eta_text or format_duration(progress.elapsed_s))
        self.eta_label.setToolTip("estimated time left" if self.handle.eta_text else "elapsed")

    @Slot(object)
    def _on_event(self, event) -> None:
        if isinstance(event, Status):
            self.status_label.setText(event.text)
            self.status_label.setToolTip(event.text)

    @Slot()
    def _cancel(self) -> None:
        self._controller.cancel(self.handle.id)

    @Slot()
    def _stop_and_keep(self) -> None:
        self._controller.cancel(self.handle.id, keep=True)

    @Slot()
    def _remove(self) -> None:
        self._controller.remove(self.handle.id)


class JobsDock(QDockWidget):
    def __init__(self, controller: JobController, parent: QWidget | None = None):
        super().__init__("Jobs", parent)
        self.setObjectName("jobsDock")
        self.controller = controller
        self.rows: dict[int, JobRow] = {}

        #: jobs taken off the list (Remove, Remove finished): the dock then says so, never "No jobs yet"
        self.removed_count = 0
        self.empty_label = QLabel(NO_JOBS_YET)
        self.empty_label.setObjectName("mutedLabel")
        self.empty_label.setWordWrap(True)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("mutedLabel")
        self.clear_button = QPushButton("Remove finished")
        self.clear_button.setToolTip("Remove every done, failed or cancelled job from the list")
        self.clear_button.clicked.connect(self.controller.remove_finished)

        self._rows_box = QWidget()
        self._rows_layout = QVBoxLayout(self._rows_box)
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.setSpacing(6)
        self._rows_layout.addWidget(self.empty_label)
        self._rows_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._rows_box)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.summary_label, 1)
        header.addWidget(self.clear_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(header)
        layout.addWidget(scroll, 1)
        self.setWidget(body)

        controller.job_added.connect(self._on_job_added)
        controller.job_removed.connect(self._on_job_removed)
        controller.job_state_changed.connect(self._update_summary)
        self._update_summary()

    @Slot(object)
    def _on_job_added(self, handle: JobHandle) -> None:
        row = JobRow(handle, self.controller)
        self.rows[handle.id] = row
        self._rows_layout.insertWidget(self._rows_layout.count() - 1, row)
        self._update_summary()

    @Slot(int)
    def _on_job_removed(self, job_id: int) -> None:
        row = self.rows.pop(job_id, None)
        if row is not None:
            self.removed_count += 1
            self._rows_layout.removeWidget(row)
            row.deleteLater()
        self._update_summary()

    @Slot()
    def _update_summary(self, *_args) -> None:
        jobs = [row.handle for row in self.rows.values()]
        running = sum(1 for h in jobs if h.state == RUNNING)
        queued = sum(1 for h in jobs if h.state == QUEUED)
        finished = sum(1 for h in jobs if h.is_finished)
        self.empty_label.setText(no_jobs_left_text(self.removed_count) if self.removed_count else NO_JOBS_YET)
        self.empty_label.setVisible(not jobs)
        self.clear_button.setVisible(bool(jobs))
        self.clear_button.setEnabled(finished > 0)
        removed = f" · {self.removed_count} removed" if self.removed_count else ""
        self.summary_label.setText(
            f"{running} running · {queued} queued · {finished} finished{removed}" if jobs else ""
        )

    def summary(self) -> str:
        return self.summary_label.text()
