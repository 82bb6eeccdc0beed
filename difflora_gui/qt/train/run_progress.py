"""One training run's progress row: its name, a step bar with the ETA, what it is doing, Stop and
Stop and keep, and which file a Stop and keep kept.

Every part has a fixed or elided width, so a longer status ("caching latents", "epoch 12") or a
growing step count never moves the buttons; long names are elided, the full text is the tooltip.
The row follows its :class:`~difflora_gui.qt.jobs.JobHandle` (state and progress); the monitor
hands it the run's typed events (:meth:`RunProgress.on_event`). A finished run reopened from the
project shows its record instead (:meth:`RunProgress.show_finished`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal, Slot
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QLayout, QProgressBar, QPushButton, QWidget
from superqt import QElidingLabel

from difflora_gui.jobs.context import Progress, format_duration
from difflora_gui.jobs.events import Artifact, Event, Metric, ProgressEvent, Status
from difflora_gui.qt.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobHandle
from difflora_gui.qt.theme import COLORS

BAR_STEPS = 1000
NAME_WIDTH = 170
#: the status text's width when the row is one line (wide)
STATUS_WIDTH = 220
#: layout modes (:meth:`RunProgress.set_layout_mode`)
WIDE, MEDIUM, COMPACT = "wide", "medium", "compact"
QWIDGETSIZE_MAX = 16777215
COMPACT_BAR_MIN = 100
BAR_MIN = 150
STOP_TIP = "Stop this run now; nothing half-written is left (checkpoints already saved stay)"
KEEP_TIP = "Stop this run and keep the newest checkpoint or training state; the run can resume from it"
KEEP_UNAVAILABLE_TIP = "This backend cannot keep a resumable state when stopped"
#: record states (RunRecord.status) as the row shows them
RECORD_STATES = {"finished": "done", "stopped": "stopped", "failed": "failed", "running": "interrupted"}


def kept_artifact(event: Event) -> bool:
    """An artifact a Stop and keep kept (the backends' convention: ``meta kept=True``)."""
    return isinstance(event, Artifact) and bool(event.meta.get("kept"))


class RunProgress(QFrame):
    """The progress of one run. ``stop_requested(keep)`` fires before the handle is cancelled."""

    stop_requested = Signal(bool)

    def __init__(self, name: str, *, tooltip: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runProgress")
        self.name = name
        self.handle: JobHandle | None = None
        self.kept_path = ""
        self.status_text = ""
        self.epoch: int | None = None
        self.done = 0.0
        self.total: float | None = None
        self._progress_text = ""
        self._rate_base: tuple[float, float, float] | None = None  # (total, done, elapsed) of the ETA
        self._connections: list = []

        self.name_label = QElidingLabel(name)
        self.name_label.setObjectName("runName")
        self.name_label.setFixedWidth(NAME_WIDTH)
        self.name_label.setElideMode(Qt.TextElideMode.ElideMiddle)  # keep the _A / _B / _low_noise end
        self.name_label.setToolTip(tooltip or name)
        self.bar = QProgressBar()
        self.bar.setObjectName("runBar")
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setTextVisible(True)
        self.bar.setFormat("waiting")
        self.eta_label = QLabel()
        self.eta_label.setObjectName("runEta")
        self.eta_label.setFixedWidth(self.eta_label.fontMetrics().horizontalAdvance("ETA 00:00:00  "))
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.status_label = QElidingLabel()
        self.status_label.setObjectName("runStatus")
        self.status_label.setMinimumHeight(self.status_label.fontMetrics().height())
        self.status_label.setStyleSheet(f"color: {COLORS['muted']};")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("runStop")
        self.stop_button.setToolTip(STOP_TIP)
        self.stop_button.clicked.connect(lambda: self.stop(keep=False))
        self.keep_button = QPushButton("Stop and keep")
        self.keep_button.setObjectName("runStopKeep")
        self.keep_button.setToolTip(KEEP_TIP)
        self.keep_button.clicked.connect(lambda: self.stop(keep=True))
        for button in (self.stop_button, self.keep_button):
            button.setFixedWidth(button.sizeHint().width())
            button.setEnabled(False)
        # the kept file (or a finished run's output): a line of its own, shown when there is one
        self.kept_label = QElidingLabel()
        self.kept_label.setObjectName("runKept")
        self.kept_label.setElideMode(Qt.TextElideMode.ElideMiddle)  # keep "-step00001200-state"
        self.kept_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kept_label.setStyleSheet(f"color: {COLORS['ok']};")
        self.kept_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.kept_label.hide()

        grid = QGridLayout(self)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        # the row's least width is the compact layout's (minimumSizeHint): the monitor picks the
        # layout by the width it gets, and each layout's own least width is below its threshold
        grid.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self._grid = grid
        self.layout_mode = ""
        self.set_layout_mode(MEDIUM)

    def set_layout_mode(self, mode: str) -> None:
        """How the row is laid out for the room it has (the buttons never move while it runs):

        * ``wide``: one line — name, bar, ETA, the status (fixed width), the buttons; the kept
          file under it when there is one;
        * ``medium``: name, bar, ETA, buttons; the status and the kept file on a second line
          that is always there, so the row's height never changes;
        * ``compact`` (a narrow panel): name and buttons; the bar (with the ETA in its text) and
          the status under them; the kept file on a third line when there is one.
        """
        if mode == self.layout_mode:
            return
        self.layout_mode = mode
        self._place(mode)
        handle = self.handle
        if handle is not None and handle.state == RUNNING and handle.progress is not None:
            self.set_progress(self.done, self.total, self._progress_text)  # the ETA moves in or out

    def least_width(self, mode: str) -> int:
        """The width the row needs in ``mode`` (the monitor picks a mode that fits)."""
        margins = self._grid.contentsMargins()
        spacing = self._grid.horizontalSpacing()
        buttons = self.stop_button.width() + self.keep_button.width() + spacing
        if mode == COMPACT:
            parts = [COMPACT_BAR_MIN, buttons]
        else:
            parts = [NAME_WIDTH, BAR_MIN, self.eta_label.width(), buttons]
            if mode == WIDE:
                parts.append(STATUS_WIDTH)
        return sum(parts) + spacing * (len(parts) - 1) + margins.left() + margins.right()

    def minimumSizeHint(self) -> QSize:
        return QSize(self.least_width(COMPACT), super().minimumSizeHint().height())

    def _place(self, mode: str) -> None:
        grid = self._grid
        parts = (
            self.name_label,
            self.bar,
            self.eta_label,
            self.status_label,
            self.stop_button,
            self.keep_button,
        )
        for widget in (*parts, self.kept_label):
            grid.removeWidget(widget)
        for column in range(6):
            grid.setColumnStretch(column, 0)
        if mode == COMPACT:
            self.name_label.setMinimumWidth(60)
            self.name_label.setMaximumWidth(QWIDGETSIZE_MAX)
            self.bar.setMinimumWidth(COMPACT_BAR_MIN)
        else:
            self.name_label.setFixedWidth(NAME_WIDTH)
            self.bar.setMinimumWidth(BAR_MIN)
        if mode == WIDE:
            self.status_label.setFixedWidth(STATUS_WIDTH)
        else:
            self.status_label.setMinimumWidth(0)
            self.status_label.setMaximumWidth(QWIDGETSIZE_MAX)
        grid.addWidget(self.stop_button, 0, 4)
        grid.addWidget(self.keep_button, 0, 5)
        self.eta_label.setVisible(mode != COMPACT)
        if mode == COMPACT:  # name and buttons; the bar (with the ETA in it) and the status under them
            grid.addWidget(self.name_label, 0, 0, 1, 4)
            grid.addWidget(self.bar, 1, 0, 1, 3)
            grid.addWidget(self.status_label, 1, 3, 1, 3)
            grid.addWidget(self.kept_label, 2, 0, 1, 6)
            grid.setColumnStretch(1, 1)
            return
        grid.addWidget(self.eta_label, 0, 2)
        grid.addWidget(self.name_label, 0, 0)
        grid.addWidget(self.bar, 0, 1)
        grid.setColumnStretch(1, 1)
        if mode == WIDE:
            grid.addWidget(self.status_label, 0, 3)
            grid.addWidget(self.kept_label, 1, 1, 1, 5)
        else:
            grid.addWidget(self.status_label, 1, 1)
            grid.addWidget(self.kept_label, 1, 2, 1, 4)

    # --- following a job ---------------------------------------------------------------------

    def attach(self, handle: JobHandle) -> None:
        """Follow ``handle``: its state, progress and ETA; the buttons stop it."""
        self.detach()
        self.handle = handle
        self._rate_base = None
        self._connections = [
            handle.state_changed.connect(self._on_state),
            handle.progressed.connect(self._on_progress),
        ]
        self.stop_button.show()
        self.keep_button.show()
        self.kept_path = ""  # a resumed run: what the last stop kept is what it resumes from
        self.kept_label.hide()
        self.status_label.setStyleSheet(f"color: {COLORS['muted']};")
        if handle.progress is not None:
            self._on_progress(handle.progress)
        self._on_state(handle.state)

    def detach(self) -> None:
        """Stop following the handle (its job goes on)."""
        for connection in self._connections:
            QObject.disconnect(connection)
        self._connections = []

    def stop(self, *, keep: bool = False) -> None:
        handle = self.handle
        if handle is None or handle.is_finished:
            return
        self.stop_requested.emit(keep)
        handle.cancel(keep=keep and handle.resumable)

    @Slot(str)
    def _on_state(self, _state: str = "") -> None:
        handle = self.handle
        if handle is None:
            return
        running = handle.state == RUNNING
        self.stop_button.setEnabled(not handle.is_finished and not handle.cancel_requested)
        self.keep_button.setEnabled(running and handle.resumable and not handle.cancel_requested)
        self.keep_button.setToolTip(KEEP_TIP if handle.resumable else KEEP_UNAVAILABLE_TIP)
        if handle.state == QUEUED:
            self.bar.setRange(0, BAR_STEPS)
            self.bar.setValue(0)
            self.bar.setFormat("waiting")
            self._show_status(f"waiting for {handle.lane_key}")
        elif running and handle.cancel_requested:
            self._show_status(handle.state_text)  # "saving and stopping" / "cancelling"
        elif running and handle.progress is None:
            self.bar.setRange(0, 0)  # busy until the first report
        elif handle.is_finished:
            self._show_finished_state(handle.state, handle.elapsed_s)
        if not running:
            self.eta_label.setText("")

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        self.eta_label.setText(self._eta(progress))
        self.set_progress(progress.done, progress.total, progress.text)

    def _eta(self, progress: Progress) -> str:
        """The ETA from the step rate since this job's first report of this total.

        Not the job's own estimate (elapsed × remaining / done): that counts from step 0, so a
        run resumed at step 2000 of 5000 would promise to finish in seconds, and the time spent
        caching latents would be taken for training steps."""
        if not progress.total or progress.done >= progress.total:
            self._rate_base = None
            return ""
        base = self._rate_base
        if base is None or base[0] != progress.total or progress.done < base[1]:
            self._rate_base = (progress.total, progress.done, progress.elapsed_s)
            return ""
        steps, seconds = progress.done - base[1], progress.elapsed_s - base[2]
        if steps <= 0 or seconds <= 0:
            return self.eta_label.text()
        return f"ETA {format_duration((progress.total - progress.done) * seconds / steps)}"

    def set_progress(self, done: float, total: float | None, text: str = "") -> None:
        self.done, self.total = float(done), total
        self._progress_text = text
        if total:
            self.bar.setRange(0, BAR_STEPS)
            self.bar.setValue(round(BAR_STEPS * max(0.0, min(1.0, done / total))))
            label = text or f"step {done:.0f}/{total:.0f}"
            eta = self.eta_label.text()
            if self.layout_mode == COMPACT and eta:  # no room for an ETA column: it is in the bar
                self.bar.setFormat(f"{label} · {eta}")
            else:
                self.bar.setFormat(f"{label} · {100 * done / total:.0f}%")
        else:
            self.bar.setRange(0, 0)
            self.bar.setFormat(text or "working")

    def on_event(self, event: Event) -> None:
        """A typed event of the run: its status, epoch, progress (replayed) or kept file."""
        if isinstance(event, Status):
            self.status_text = event.text
            self._show_status(self._status_line())
        elif isinstance(event, Metric) and event.name == "epoch":
            self.epoch = int(event.value)
            self._show_status(self._status_line())
        elif isinstance(event, ProgressEvent):
            self.set_progress(event.done, event.total, event.text)
        elif kept_artifact(event):
            self.show_kept(event.path)

    def _status_line(self) -> str:
        parts = [self.status_text] if self.status_text else []
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}")
        return " · ".join(parts)

    def _show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)

    def show_kept(self, path: str) -> None:
        """Say which file (or state folder) a Stop and keep kept."""
        self.kept_path = str(path)
        self.kept_label.setText(f"kept: {Path(path).name}")
        self.kept_label.setToolTip(
            f"Stop and keep kept {path}\nResume the run from it to finish the training."
        )
        self.kept_label.show()

    def _show_finished_state(self, state: str, elapsed_s: float | None) -> None:
        self.bar.setRange(0, BAR_STEPS)
        steps = f"{self.done:.0f}/{self.total:.0f}" if self.total else ""
        if state == DONE:
            self.bar.setValue(BAR_STEPS)
            self.bar.setFormat(f"done · {steps} steps" if steps else "done")
        else:
            word = {CANCELLED: "stopped", FAILED: "failed"}.get(state, state)
            self.bar.setFormat(f"{word} at step {steps}" if steps else word)
        took = f" after {format_duration(elapsed_s)}" if elapsed_s is not None else ""
        what = {DONE: "finished", CANCELLED: "stopped", FAILED: "failed"}.get(state, state)
        self._show_status(f"{what}{took}")
        self.eta_label.setText("")
        color = {DONE: COLORS["muted"], FAILED: COLORS["error"]}.get(state, COLORS["warning"])
        self.status_label.setStyleSheet(f"color: {color};")

    # --- a finished run from the project -----------------------------------------------------

    def show_finished(self, status: str, steps_done: int, total_steps: int, output: str = "") -> None:
        """A run reopened from its record: where it ended, no buttons."""
        self.stop_button.hide()
        self.keep_button.hide()
        if total_steps:
            self.done, self.total = float(steps_done), float(total_steps)
            self.bar.setValue(round(BAR_STEPS * min(1.0, steps_done / total_steps)))
        word = RECORD_STATES.get(status, status or "finished")
        state = {"done": DONE, "failed": FAILED}.get(word, CANCELLED)
        self._show_finished_state(state, None)
        if word == "interrupted":  # the app closed while it ran: what the log says is all there is
            self._show_status("interrupted (the app closed while it ran)")
        if output and not self.kept_path:
            self.kept_label.setText(f"output: {Path(output).name}")
            self.kept_label.setToolTip(output)
            self.kept_label.setStyleSheet(f"color: {COLORS['muted']};")
            self.kept_label.show()

    # --- for tests and the panel ---------------------------------------------------------

    @property
    def bar_text(self) -> str:
        return self.bar.format()

    @property
    def eta_text(self) -> str:
        return self.eta_label.text()
