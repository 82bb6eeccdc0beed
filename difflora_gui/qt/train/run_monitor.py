"""The Train section's live view of its runs: progress rows, the loss plot, the samples and the logs.

:class:`RunMonitor` follows any number of runs at once — the A and B runs of a pair, four for a
Wan2.2 per-expert pair — each from its :class:`~difflora_gui.qt.jobs.JobHandle` and
:class:`~difflora_gui.train.plan.TrainRun` (:meth:`RunMonitor.watch`), or a finished run from its
project record, replayed from its event log (:meth:`RunMonitor.show_record`). Runs are keyed by
``run_id`` (a record's ``id``): watching a resumed run under the same id continues its curves.

The events it reads are the backends' conventions (:mod:`difflora_gui.train.backend`): metrics
``loss``, ``avr_loss``, ``lr``, ``epoch`` with ``step``; ``Status`` texts; artifacts
``checkpoint``, ``state``, ``sample``, ``lora`` with ``meta step=N``, and ``kept=True`` on the
file a Stop and keep kept. Everything runs in the GUI thread; the plot and the logs batch their
redraws, so a fast run costs a few appends per event (:attr:`RunMonitor.handling_s` measures it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QLabel,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.jobs.eventlog import flush_open_logs, iter_timed_events
from difflora_gui.jobs.events import Artifact, Event, LogLine, Metric, ProgressEvent, Status
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.jobs import JobHandle
from difflora_gui.qt.theme import COLORS
from difflora_gui.qt.train.loss_plot import LossPlot
from difflora_gui.qt.train.run_log import RunLog, failure_tail, failure_text
from difflora_gui.qt.train.run_progress import COMPACT, MEDIUM, WIDE, RunProgress, kept_artifact
from difflora_gui.qt.train.samples_gallery import SamplesGallery

#: from this width on, each run's progress is one line (its status beside the bar)
WIDE_ROWS_PX = 1000
#: below this width the rows are compact and the samples are a tab beside the logs
COMPACT_PX = 640
EMPTY_TEXT = "No run yet. Start a training run, or pick a finished one in the project, to see it here."
PLOTTED = ("loss", "avr_loss", "lr")


@dataclass
class WatchedRun:
    """What the monitor knows of one run."""

    key: str
    name: str
    row: RunProgress
    log: RunLog
    side: str = ""
    expert: str | None = None
    run: Any = None  # TrainRun
    record: Any = None  # RunRecord
    handle: JobHandle | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    kept: str = ""
    state: str = ""
    #: this monitor's connections to the handle's signals (only these are undone by clear())
    connections: list = field(default_factory=list)

    @property
    def short_label(self) -> str:
        """ "A", "B high", "slider" … (the full name is in tooltips); the name for a single run."""
        side = {"a": "A", "b": "B", "slider": "slider"}.get(self.side, "")
        if not side:
            return self.name
        return f"{side} {self.expert}" if self.expert else side

    def disconnect(self) -> None:
        for connection in self.connections:
            QObject.disconnect(connection)
        self.connections = []
        if self.handle is not None:
            self.row.detach()


class RunMonitor(QWidget):
    """Live views of training runs. ``watch(handle, run)``, ``show_record(record)``, ``clear()``."""

    #: a watched job ended: ``(run_id, state)`` (done, failed, cancelled)
    run_finished = Signal(str, str)
    #: a Stop and keep kept a file or state folder: ``(run_id, path)``
    file_kept = Signal(str, str)
    #: every artifact of a run (checkpoints, states, samples, the final LoRA): ``(run_id, Artifact)``
    artifact_added = Signal(str, object)

    def __init__(self, services=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runMonitor")
        self.services = services
        self.runs: dict[str, WatchedRun] = {}
        #: GUI-thread time spent on the runs' events, and how many (the responsiveness test)
        self.handling_s = 0.0
        self.events_handled = 0

        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setStyleSheet(f"color: {COLORS['muted']};")

        self.rows = QWidget()
        self.rows.setObjectName("runRows")
        self.rows_layout = QVBoxLayout(self.rows)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        self.rows_layout.setSpacing(1)
        self.plot = LossPlot()
        self.plot.built.connect(self._on_plot_built)
        self.gallery = SamplesGallery()
        self.gallery.hide()  # until a run makes a sample
        self._gallery_in_tabs = False
        self.top = QSplitter(Qt.Orientation.Horizontal)
        self.top.setObjectName("runPlotSplitter")
        self.top.setChildrenCollapsible(False)
        self.top.addWidget(self.plot)
        self.top.addWidget(self.gallery)
        self.top.setStretchFactor(0, 3)
        self.top.setStretchFactor(1, 1)
        self.logs = QTabWidget()
        self.logs.setObjectName("runLogs")
        self.logs.setDocumentMode(True)
        self.logs.setTabBarAutoHide(True)  # one run: no tab bar
        self.logs.setElideMode(Qt.TextElideMode.ElideMiddle)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("runMonitorSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.top)
        self.splitter.addWidget(self.logs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        # 3:2 from the start (the log's size hint would otherwise squash the plot; scaled on resize)
        self.splitter.setSizes([3000, 2000])
        self.top.setSizes([3000, 1000])

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        column.addWidget(self.rows)
        column.addWidget(self.splitter, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(body)
        self.body = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    # --- the API the Train panel uses ------------------------------------------------------

    def watch(self, handle: JobHandle, run) -> WatchedRun:
        """Follow a submitted run (``run``: its TrainRun, or the dict of one).

        A run not shown yet starts with what its event log already holds: the steps before a
        resume (the resumed run appends to the same log), or what a running job reported before
        the panel was rebuilt. Points and files already shown are not added twice. A run shown
        already (a resume of it) just continues its curves."""
        run = _as_train_run(run)
        is_new = run.run_id not in self.runs
        watched = self._entry(
            run.run_id, run.name, side=run.side, expert=run.expert, tooltip=_run_tooltip(run)
        )
        watched.disconnect()  # a resumed run under the same id: follow the new job
        watched.run, watched.handle, watched.state = run, handle, handle.state
        self.plot.set_total_steps(run.total_steps)
        log_path = self._resolve(run.event_log) if run.event_log else None
        if is_new and log_path is not None and log_path.is_file():
            self._replay(watched, log_path, with_progress=False, live=not handle.is_finished)
        watched.row.attach(handle)
        key = watched.key
        watched.connections = [
            handle.logged.connect(lambda text, key=key: self._on_log(key, handle, text)),
            handle.event_emitted.connect(lambda event, key=key: self._on_live_event(key, handle, event)),
            handle.failed.connect(lambda message, _tb, key=key: self._on_failed(key, handle, message)),
            handle.finished.connect(lambda state, key=key: self._on_finished(key, handle, state)),
        ]
        if handle.is_finished:  # it ended before we connected: show how
            if handle.state == "failed":
                self._on_failed(key, handle, handle.error_text)
            self._on_finished(key, handle, handle.state)
        return watched

    def show_record(self, record) -> WatchedRun:
        """Show a finished run from the project: its curves, samples, checkpoints and log, replayed
        from its event log (``record.event_log``), and where it ended. Adds it to the runs shown
        (``clear()`` first to show it alone); a run shown already is shown afresh, and one that
        is still training here is left as it is (it is followed live)."""
        existing = self.runs.get(record.id)
        if existing is not None and existing.handle is not None and not existing.handle.is_finished:
            return existing
        if existing is not None:
            existing.disconnect()
            existing.handle = None
            existing.log.clear()  # the event log holds every line: they come back in order
        watched = self._entry(
            record.id,
            record.name or record.id,
            side=record.side,
            expert=record.expert,
            tooltip=_record_tooltip(record),
        )
        watched.record = record
        self.plot.set_total_steps(record.total_steps)
        path = self._resolve(record.event_log) if record.event_log else None
        if path is not None and path.is_file():
            self._replay(watched, path, with_progress=True)
        elif record.event_log:
            watched.log.append(f"The run's event log is missing: {path}")
        else:
            watched.log.append("This run has no event log (its curves were not recorded).")
        watched.row.show_finished(record.status, record.steps_done, record.total_steps, record.output)
        watched.log.flush()
        return watched

    def clear(self) -> None:
        """Forget every run shown (running jobs go on; they are just no longer followed here)."""
        for watched in self.runs.values():
            watched.disconnect()
            self.rows_layout.removeWidget(watched.row)
            watched.row.deleteLater()
            watched.log.deleteLater()
            self.logs.removeTab(self.logs.indexOf(watched.log))
        self.runs.clear()
        self.plot.clear()
        self.gallery.clear()
        self._show_gallery()
        self.stack.setCurrentWidget(self.empty_label)

    def stop_all(self, *, keep: bool = False) -> None:
        """Stop every watched run that is queued or running (Stop and keep where resumable)."""
        for watched in self.runs.values():
            watched.row.stop(keep=keep)

    # --- queries ----------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        return list(self.runs)

    def row(self, run_id: str) -> RunProgress:
        return self.runs[run_id].row

    def log(self, run_id: str) -> RunLog:
        return self.runs[run_id].log

    def artifacts(self, run_id: str, kind: str | None = None) -> list[Artifact]:
        return [a for a in self.runs[run_id].artifacts if kind is None or a.kind == kind]

    def shutdown(self) -> None:
        """Stop the thumbnail thread (the panel calls this when it closes)."""
        self.gallery.shutdown()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        mode = self._layout_mode(event.size().width())
        for watched in self.runs.values():
            watched.row.set_layout_mode(mode)
        self._place_gallery(mode == COMPACT)

    def _layout_mode(self, width: int) -> str:
        """The rows' layout for ``width``: the widest that fits (and no wider than is pleasant)."""
        row = next((w.row for w in self.runs.values()), None)
        if row is None:
            return WIDE if width >= WIDE_ROWS_PX else MEDIUM if width >= COMPACT_PX else COMPACT
        if width >= WIDE_ROWS_PX and row.least_width(WIDE) <= width:
            return WIDE
        return MEDIUM if width >= COMPACT_PX and row.least_width(MEDIUM) <= width else COMPACT

    def _place_gallery(self, in_tabs: bool) -> None:
        """Beside the plot when there is room, else a "Samples" tab after the logs."""
        if in_tabs == self._gallery_in_tabs:
            return
        self._gallery_in_tabs = in_tabs
        if in_tabs:
            self.logs.addTab(self.gallery, "Samples")
        else:
            self.logs.removeTab(self.logs.indexOf(self.gallery))
            self.top.addWidget(self.gallery)
        self._show_gallery()

    def _show_gallery(self) -> None:
        """The gallery is there only once a run made a sample."""
        has = self.gallery.count() > 0
        if self._gallery_in_tabs:
            index = self.logs.indexOf(self.gallery)
            self.logs.setTabVisible(index, has)
            self.logs.setTabText(index, f"Samples ({self.gallery.count()})")
        else:
            self.gallery.setVisible(has)

    # --- building --------------------------------------------------------------------------

    def _entry(self, key: str, name: str, *, side: str, expert: str | None, tooltip: str) -> WatchedRun:
        watched = self.runs.get(key)
        if watched is not None:
            return watched
        row = RunProgress(name, tooltip=tooltip)
        row.set_layout_mode(self._layout_mode(self.width()))
        log = RunLog()
        watched = WatchedRun(key=key, name=name, row=row, log=log, side=side or "", expert=expert)
        self.runs[key] = watched
        self.rows_layout.addWidget(row)
        samples = self.logs.indexOf(self.gallery)  # the logs go before a "Samples" tab
        index = self.logs.insertTab(samples if samples >= 0 else self.logs.count(), log, name)
        self.logs.setTabToolTip(index, tooltip)
        self.plot.add_run(key, name, side=side or "", expert=expert)
        self.stack.setCurrentWidget(self.body)
        return watched

    def _on_plot_built(self) -> None:
        # pyqtgraph is in: keep later full collections short (qt.heap), unless a job runs (a freeze
        # would make its objects immortal; the job controller freezes when the jobs have ended)
        jobs = getattr(self.services, "jobs", None)
        if jobs is None or not jobs.scheduler.running():
            freeze_heap_after_heavy_imports()

    def _resolve(self, text: str) -> Path:
        project = getattr(self.services, "project", None)
        if project is not None:
            return Path(project.resolve_path(text))
        return Path(text)

    # --- events ----------------------------------------------------------------------------

    def _on_live_event(self, key: str, handle: JobHandle, event: Event) -> None:
        watched = self.runs.get(key)
        if watched is None or watched.handle is not handle:
            return  # cleared, or an older job of a resumed run
        started = time.perf_counter()
        self._on_event(watched, event)
        self.handling_s += time.perf_counter() - started
        self.events_handled += 1

    def _on_log(self, key: str, handle: JobHandle, text: str) -> None:
        watched = self.runs.get(key)
        if watched is not None and watched.handle is handle:
            started = time.perf_counter()
            watched.log.append_live(text)
            self.handling_s += time.perf_counter() - started
            self.events_handled += 1

    def _on_event(self, watched: WatchedRun, event: Event) -> None:
        if isinstance(event, Metric):
            if event.name in PLOTTED:
                self.plot.add_point(watched.key, event.name, event.value, event.step)
            else:
                watched.row.on_event(event)  # epoch
        elif isinstance(event, Artifact):
            self._on_artifact(watched, event)
        elif isinstance(event, (Status, ProgressEvent)):
            watched.row.on_event(event)
            if isinstance(event, ProgressEvent) and event.total:
                self.plot.set_total_steps(int(event.total))
        elif isinstance(event, LogLine):
            watched.log.append(event.text)

    def _on_artifact(self, watched: WatchedRun, artifact: Artifact) -> None:
        if any(
            a.kind == artifact.kind and a.path == artifact.path and a.meta == artifact.meta
            for a in watched.artifacts
        ):
            return  # replayed and live: once
        watched.artifacts.append(artifact)
        step = artifact.meta.get("step")
        if artifact.kind == "sample":
            step = step if isinstance(step, int) else None
            self.gallery.add_sample(watched.short_label, artifact.path, step, run_name=watched.name)
            self._show_gallery()
        if artifact.kind in ("checkpoint", "lora") and isinstance(step, (int, float)):
            self.plot.add_mark(watched.key, step, Path(artifact.path).name)
        if kept_artifact(artifact):
            watched.kept = artifact.path
            watched.row.on_event(artifact)
            self.file_kept.emit(watched.key, artifact.path)
        self.artifact_added.emit(watched.key, artifact)

    def _replay(self, watched: WatchedRun, path: Path, *, with_progress: bool, live: bool = False) -> None:
        """Show what the event log at ``path`` holds. ``live``: its job runs, so the lines of its
        own part of the log may come again through the handle (they were on their way when we
        read); the log drops those echoes (:class:`~.run_log.EchoFilter`)."""
        lines: list[str] = []
        job_lines: list[str] = []  # the lines since the log's clock last restarted: the newest job's
        last_t = -1.0
        if live:
            flush_open_logs()  # the running job's buffered events are part of its past
        try:
            events = list(iter_timed_events(path))
        except OSError as exc:
            watched.log.append(f"The run's event log cannot be read: {path}: {exc.strerror or exc}")
            return
        for t, event in events:
            if t < last_t:
                job_lines = []  # each job opens the log anew, its clock starting at 0
            last_t = t
            if isinstance(event, LogLine):
                lines.append(event.text)
                job_lines.append(event.text)
            elif isinstance(event, ProgressEvent) and not with_progress:
                continue  # the live handle's progress is newer
            else:
                self._on_event(watched, event)
        watched.log.extend(lines)
        if live:
            watched.log.expect_echo(job_lines)
        self.plot.redraw()

    def _on_failed(self, key: str, handle: JobHandle, message: str) -> None:
        watched = self.runs.get(key)
        if watched is None or watched.handle is not handle:
            return
        error = handle.error
        tail = failure_tail(error)
        if not tail and handle.traceback:
            tail = handle.traceback.rstrip().splitlines()[-50:]
        headline, hint = failure_text(error, message or handle.error_text)
        watched.log.show_failure(headline, tail, hint)
        index = self.logs.indexOf(watched.log)  # the failed run's log comes to the front, its tab red
        self.logs.tabBar().setTabTextColor(index, QColor(COLORS["error"]))
        self.logs.setCurrentIndex(index)
        if not any(s.loss_x or s.smoothed[0] for s in self.plot.series.values()):
            self.splitter.setSizes([1000, 3000])  # no curve to show: the room goes to the failure
            self.plot.placeholder.setText("No loss was reported before the run failed.")

    def _on_finished(self, key: str, handle: JobHandle, state: str) -> None:
        watched = self.runs.get(key)
        if watched is None or watched.handle is not handle:
            return
        watched.state = state
        watched.log.end_echo()
        watched.log.flush()
        self.plot.redraw()
        self.run_finished.emit(key, state)


def _as_train_run(run):
    from difflora_gui.train.plan import TrainRun

    return run if isinstance(run, TrainRun) else TrainRun.from_json(run)


def _run_tooltip(run) -> str:
    parts = [run.name, f"dataset: {run.dataset}", f"output: {run.output_path()}"]
    if run.expert:
        low, high = run.timestep_window() or (0, 0)
        parts.append(f"{run.expert}-noise expert, timesteps {low}–{high}")
    if run.resume:
        parts.append(f"resumed from {run.resume} (step {run.steps_done})")
    return "\n".join(parts)


def _record_tooltip(record) -> str:
    parts = [record.name or record.id]
    if record.dataset_dir:
        parts.append(f"dataset: {record.dataset_dir}")
    if record.output:
        parts.append(f"output: {record.output}")
    if record.event_log:
        parts.append(f"event log: {record.event_log}")
    return "\n".join(parts)
