"""The checks of every planned run, shown before Train is pressed, re-run soon after each edit.

``prepare()`` (the panel's) runs in the GUI thread: it reads the form and plans the runs, and
returns either an outcome at once (a planning error: no folder yet, a bad name) or the work of
checking them (``check_run`` per run: the common checks, then the backend's own). That work runs
on a worker thread — a backend's checks may list big folders, read model configs or import torch
to look for a GPU, and the window must not freeze meanwhile — and only the newest check's result
is shown. Errors disable Train, the first one is the reason beside it; warnings are listed but do
not stop a run. Checks are debounced: typing a path does not list a folder per keystroke.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS
from difflora_gui.train.backend import ERROR, WARNING, TrainIssue
from difflora_gui.train.plan import run_name

#: how long after the last edit the runs are checked again
CHECK_DELAY_MS = 300
#: the checks list shows this many lines before it scrolls
MAX_LINES = 4


@dataclass
class CheckOutcome:
    """What one check found: the planned runs' issues, or why nothing could be planned."""

    issues: list[tuple[str, TrainIssue]] = field(default_factory=list)  # (run name or "", issue)
    runs: int = 0
    planning_error: str = ""
    #: what to do about the errors, when the checks know (a free output name)
    hint: str = ""
    #: the planned runs' commands, when an open commands dialog wants them (None: not asked for)
    commands: str | None = None

    def errors(self) -> list[str]:
        found = [self.planning_error] if self.planning_error else []
        return found + [_line(name, issue) for name, issue in self.issues if issue.level == ERROR]

    def warnings(self) -> list[str]:
        return [_line(name, issue) for name, issue in self.issues if issue.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors()

    def reason(self) -> str:
        """Why Train is disabled ("" when it is not)."""
        if self.already_trained:
            return "the output already exists (nothing is overwritten): type a new name to train again"
        errors = self.errors()
        return errors[0] if errors else ""

    @property
    def already_trained(self) -> bool:
        """The only errors are outputs that exist (right after a run finished, say): not alarming,
        the next step is a new name."""
        errors = [issue for _name, issue in self.issues if issue.level == ERROR]
        return bool(errors) and not self.planning_error and all(issue.field == "name" for issue in errors)


def _line(name: str, issue: TrainIssue) -> str:
    return f"{name}: {issue.text}" if name else issue.text


def merge_issues(per_run: list[tuple[str, list[TrainIssue]]]) -> list[tuple[str, TrainIssue]]:
    """Issues of several runs, each text once (A and B often share one: it is named once, unprefixed)."""
    seen: dict[tuple[str, str], list[str]] = {}
    fields: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    for name, issues in per_run:
        for issue in issues:
            key = (issue.level, issue.text)
            if key not in seen:
                seen[key] = []
                order.append(key)
                fields[key] = issue.field
            seen[key].append(name)
    merged = []
    for level, text in order:
        names = seen[(level, text)]
        merged.append(
            (
                "" if len(names) == len(per_run) and len(per_run) > 1 else ", ".join(names),
                TrainIssue(level, text, fields[(level, text)]),
            )
        )
    return merged


Work = Callable[[], CheckOutcome]


def free_name_hint(name: str, runs, busy: set[str]) -> str:
    """A hint naming the first free ``<name> 2``, ``<name> 3`` … for these runs' files."""
    stem = name.rstrip()
    for number in range(2, 1000):
        candidate = f"{stem} {number}"
        paths = [
            Path(run.output_dir) / f"{run_name(candidate, run.side, run.expert)}.safetensors" for run in runs
        ]
        if not any(path.exists() or str(path) in busy for path in paths):
            return f"The name '{candidate}' is free: type it under Name to train again"
    return ""


class _Relay(QObject):
    """Carries a worker's outcome into the GUI thread: ``(generation, outcome)``."""

    done = Signal(int, object)


def _run_work(work: Work) -> CheckOutcome:
    try:
        return work()
    except Exception as exc:  # a backend's validate that crashes must not leave Train enabled
        return CheckOutcome(planning_error=f"the checks failed: {type(exc).__name__}: {exc}")


class ChecksView(QWidget):
    """The list of errors and warnings; ``checked(outcome)`` after each check."""

    checked = Signal(object)

    def __init__(self, prepare: Callable[[], CheckOutcome | Work], parent: QWidget | None = None):
        super().__init__(parent)
        self._prepare = prepare
        self.outcome = CheckOutcome(planning_error="not checked yet")
        self._generation = 0  # the newest check; older results are dropped
        self._shown_generation = -1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="train-checks")
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        executor = self._executor  # not self: the lambda must not keep the view alive
        self.destroyed.connect(lambda *_: executor.shutdown(wait=False, cancel_futures=True))
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(CHECK_DELAY_MS)
        self.timer.timeout.connect(self.check_now)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.heading = QLabel("Checks")
        self.heading.setObjectName("cardHeading")
        layout.addWidget(self.heading)
        self.list_label = QLabel()
        self.list_label.setObjectName("trainChecks")
        self.list_label.setTextFormat(Qt.TextFormat.RichText)
        self.list_label.setWordWrap(True)
        self.list_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.list_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # a long list scrolls inside a few lines' height: the Train button under it never moves far
        self.scroll = QScrollArea()
        self.scroll.setObjectName("trainChecksScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.list_label)
        # a fixed height: the Train button under it stays put whether one line or five are shown
        self.scroll.setFixedHeight(MAX_LINES * self.list_label.fontMetrics().lineSpacing() + 6)
        layout.addWidget(self.scroll)

    def schedule(self) -> None:
        """Check again soon (after the edits stop for a moment)."""
        self.timer.start()

    def check_now(self) -> None:
        """Start a check now (its result arrives soon, from the worker)."""
        self.timer.stop()
        self._generation += 1
        generation = self._generation
        prepared = self._prepare_safely()
        if isinstance(prepared, CheckOutcome):
            self._on_done(generation, prepared)
            return
        self._executor.submit(self._work_in_thread, generation, prepared)

    def check_blocking(self) -> CheckOutcome:
        """Check now and wait for the result (Train does, before it starts anything)."""
        self.timer.stop()
        self._generation += 1
        prepared = self._prepare_safely()
        outcome = prepared if isinstance(prepared, CheckOutcome) else _run_work(prepared)
        self._on_done(self._generation, outcome)
        return outcome

    def _prepare_safely(self) -> CheckOutcome | Work:
        try:
            return self._prepare()
        except Exception as exc:
            return CheckOutcome(planning_error=f"the checks failed: {type(exc).__name__}: {exc}")

    def _work_in_thread(self, generation: int, work: Work) -> None:
        if generation != self._generation:
            return  # a newer check is on its way: this one's answer would be dropped anyway
        outcome = _run_work(work)
        try:
            self._relay.done.emit(generation, outcome)
        except RuntimeError:  # the view is gone
            pass

    def _on_done(self, generation: int, outcome: CheckOutcome) -> None:
        if generation != self._generation:
            return
        self._shown_generation = generation
        self.show_outcome(outcome)

    @property
    def pending(self) -> bool:
        """A check is due or running: the outcome shown may be stale."""
        return self.timer.isActive() or self._shown_generation != self._generation

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def show_outcome(self, outcome: CheckOutcome) -> None:
        self.outcome = outcome
        lines = []
        if outcome.hint:  # what to do comes first: the errors under it may need scrolling
            lines.append(f"<span style='color:{COLORS['text']}'>➜ {html.escape(outcome.hint)}</span>")
        # existing outputs of a finished run are a fact, not a fault: listed plainly
        error_color, mark = (COLORS["text"], "•") if outcome.already_trained else (COLORS["error"], "✖")
        for text in outcome.errors():
            lines.append(f"<span style='color:{error_color}'>{mark} {html.escape(text)}</span>")
        for text in outcome.warnings():
            lines.append(f"<span style='color:{COLORS['warning']}'>⚠ {html.escape(text)}</span>")
        if not lines:
            runs = f"{outcome.runs} run{'s' if outcome.runs != 1 else ''}"
            lines.append(f"<span style='color:{COLORS['ok']}'>✔ {runs} ready: every check passed</span>")
        self.list_label.setText("<br>".join(lines))
        self.checked.emit(outcome)
