"""The checks of every planned run, shown before Train is pressed, re-run soon after each edit.

``check(runs)`` (the panel's) returns the issues per run (``check_run``: the common checks, then
the backend's own), or a planning error (no folder yet, a bad name). Errors disable Train, and
the first one is the reason shown beside it; warnings are listed but do not stop a run. Checking
reads only folder listings and small files, so it runs in the GUI thread — debounced, so typing
a path does not list a folder per keystroke.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS
from difflora_gui.train.backend import ERROR, WARNING, TrainIssue

#: how long after the last edit the runs are checked again
CHECK_DELAY_MS = 300


@dataclass
class CheckOutcome:
    """What one check found: the planned runs' issues, or why nothing could be planned."""

    issues: list[tuple[str, TrainIssue]] = field(default_factory=list)  # (run name or "", issue)
    runs: int = 0
    planning_error: str = ""

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
        errors = self.errors()
        return errors[0] if errors else ""


def _line(name: str, issue: TrainIssue) -> str:
    return f"{name}: {issue.text}" if name else issue.text


def merge_issues(per_run: list[tuple[str, list[TrainIssue]]]) -> list[tuple[str, TrainIssue]]:
    """Issues of several runs, each text once (A and B often share one: it is named once, unprefixed)."""
    seen: dict[tuple[str, str], list[str]] = {}
    order: list[tuple[str, str]] = []
    for name, issues in per_run:
        for issue in issues:
            key = (issue.level, issue.text)
            if key not in seen:
                seen[key] = []
                order.append(key)
            seen[key].append(name)
    merged = []
    for level, text in order:
        names = seen[(level, text)]
        merged.append(
            (
                "" if len(names) == len(per_run) and len(per_run) > 1 else ", ".join(names),
                TrainIssue(level, text),
            )
        )
    return merged


class ChecksView(QWidget):
    """The list of errors and warnings; ``checked(outcome)`` after each check."""

    checked = Signal(object)

    def __init__(self, check: Callable[[], CheckOutcome], parent: QWidget | None = None):
        super().__init__(parent)
        self._check = check
        self.outcome = CheckOutcome(planning_error="not checked yet")
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
        layout.addWidget(self.list_label)

    def schedule(self) -> None:
        """Check again soon (after the edits stop for a moment)."""
        self.timer.start()

    def check_now(self) -> CheckOutcome:
        self.timer.stop()
        try:
            outcome = self._check()
        except Exception as exc:  # a backend's validate that crashes must not leave Train enabled
            outcome = CheckOutcome(planning_error=f"the checks failed: {type(exc).__name__}: {exc}")
        self.show_outcome(outcome)
        return outcome

    @property
    def pending(self) -> bool:
        return self.timer.isActive()

    def show_outcome(self, outcome: CheckOutcome) -> None:
        self.outcome = outcome
        lines = []
        for text in outcome.errors():
            lines.append(f"<span style='color:{COLORS['error']}'>✖ {html.escape(text)}</span>")
        for text in outcome.warnings():
            lines.append(f"<span style='color:{COLORS['warning']}'>⚠ {html.escape(text)}</span>")
        if not lines:
            runs = f"{outcome.runs} run{'s' if outcome.runs != 1 else ''}"
            lines.append(f"<span style='color:{COLORS['ok']}'>✔ {runs} ready: every check passed</span>")
        self.list_label.setText("<br>".join(lines))
        self.checked.emit(outcome)
