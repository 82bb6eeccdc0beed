"""One run's log: its lines (the newest :data:`MAX_LINES`), selectable and copyable, and when the
run fails, the cause, a hint and the last lines of the trainer's output in a box above them.

Lines are collected and appended in one batch every :data:`FLUSH_MS` (a trainer that prints a
line per step does not cost one text-layout pass per line). The view follows the newest line
unless the user scrolled up to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.theme import COLORS

#: lines kept in the view (older ones scroll out)
MAX_LINES = 5000
FLUSH_MS = 100
TAIL_LINES = 50
SELECTABLE = Qt.TextInteractionFlag.TextSelectableByMouse
OOM_HINT = (
    "The GPU ran out of memory: use fp8 for the DiT, swap blocks to the CPU (block swap), "
    "a lower resolution or fewer frames, or a smaller batch."
)


def failure_text(error: BaseException | None, message: str = "") -> tuple[str, str]:
    """``(what failed, what to try)`` for a failed job.

    The hint is the error's own ``hint`` attribute when it has one; else the one a backend put
    after the cause (Musubi's job raises ``ChildProcessFailed(program, "cause; hint", tail)``,
    so its message is "program failed: cause; hint"); else ours for a CUDA out of memory."""
    hint = str(getattr(error, "hint", "") or "") if error is not None else ""
    if hint:
        return message, hint
    cause = getattr(error, "cause", None)
    program = getattr(error, "program", None)
    if isinstance(cause, str) and program and "; " in cause:
        cause, hint = cause.split("; ", 1)
        return f"{program} failed: {cause}", hint[:1].upper() + hint[1:]
    if "out of memory" in f"{message} {cause or ''}".lower():
        return message, OOM_HINT
    return message, ""


def failure_tail(error: BaseException | None) -> list[str]:
    """The last output lines a failed child process left (``ChildProcessFailed.tail``)."""
    tail = getattr(error, "tail", None) if error is not None else None
    return [str(line) for line in tail][-TAIL_LINES:] if tail else []


class EchoFilter:
    """Drops the live lines that a replayed event log showed already.

    A monitor that starts following a running job reads the job's event log first; the lines the
    job wrote before that read and the GUI had not delivered yet then arrive once more through
    the job's handle, in the same order. ``expected`` are the log's lines of that job. The first
    live line is looked up among them; from there on, live lines that match the expected ones
    in order are held back, and dropped when all expected lines have come (they were echoes).
    A line that does not match ends the filter, and what it held is shown after all: a resumed
    job's first lines that merely look like the previous job's are never lost.
    """

    def __init__(self, expected: Sequence[str]):
        self.expected = list(expected)
        self.position: int | None = None
        self.held: list[str] = []
        self.dropped = 0

    @property
    def active(self) -> bool:
        return bool(self.expected)

    def feed(self, line: str) -> list[str]:
        """The lines to show now (none while ``line`` may be an echo)."""
        if not self.expected:
            return [line]
        if self.position is None:
            if line not in self.expected:
                return self.release([line])
            self.position = self.expected.index(line)
        if self.expected[self.position] != line:
            return self.release([line])
        self.held.append(line)
        self.position += 1
        if self.position == len(self.expected):  # every expected line came again: echoes
            self.dropped += len(self.held)
            self.expected, self.held = [], []
        return []

    def release(self, more: Sequence[str] = ()) -> list[str]:
        """End the filter: what it held, then ``more``."""
        out = [*self.held, *more]
        self.expected, self.held = [], []
        return out


class RunLog(QWidget):
    """The log lines of one run. ``append(text)``; ``show_failure(message, tail, hint)``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runLog")
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.failure_box = QFrame()
        self.failure_box.setObjectName("runFailure")
        self.failure_box.setStyleSheet(
            f"#runFailure {{ border: 1px solid {COLORS['error']}; border-radius: 3px; }}"
        )
        self.failure_label = QLabel()
        self.failure_label.setObjectName("runFailureText")
        self.failure_label.setWordWrap(True)
        self.failure_label.setStyleSheet(f"color: {COLORS['error']}; font-weight: bold;")
        self.failure_label.setTextInteractionFlags(SELECTABLE)
        self.hint_label = QLabel()
        self.hint_label.setObjectName("runFailureHint")
        self.hint_label.setWordWrap(True)
        self.hint_label.setStyleSheet(f"color: {COLORS['warning']};")
        self.hint_label.setTextInteractionFlags(SELECTABLE)
        self.tail_view = QPlainTextEdit()
        self.tail_view.setObjectName("runFailureTail")
        self.tail_view.setReadOnly(True)
        self.tail_view.setFont(mono)
        self.tail_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.tail_view.setMaximumHeight(self.tail_view.fontMetrics().lineSpacing() * 10 + 12)
        box = QVBoxLayout(self.failure_box)
        box.setContentsMargins(6, 4, 6, 4)
        box.setSpacing(3)
        box.addWidget(self.failure_label)
        box.addWidget(self.hint_label)
        box.addWidget(self.tail_view)
        self.failure_box.hide()

        self.view = QPlainTextEdit()
        self.view.setObjectName("runLogView")
        self.view.setReadOnly(True)
        self.view.setFont(mono)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setPlaceholderText("The run's log lines appear here.")
        self.view.setMinimumHeight(self.view.fontMetrics().lineSpacing() * 3 + 8)  # 3 lines at least
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the selected lines, or the whole log when nothing is selected")
        self.copy_button.clicked.connect(self.copy)
        self.count_label = QLabel()
        self.count_label.setStyleSheet(f"color: {COLORS['muted']};")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.copy_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.failure_box)
        layout.addWidget(self.view, 1)
        layout.addLayout(bar)

        self.echo = EchoFilter(())
        self.lines_seen = 0
        self.flushes = 0  # appends to the view (tests: lines are batched)
        self._pending: list[str] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    def append(self, text: str) -> None:
        """Add a line (shown with the next batch)."""
        self._pending.append(str(text).rstrip("\n"))
        if not self._timer.isActive():
            self._timer.start()

    def expect_echo(self, lines: Sequence[str]) -> None:
        """The live lines to come may repeat ``lines`` (just replayed): drop such echoes."""
        self.echo = EchoFilter(lines)

    def append_live(self, text: str) -> None:
        """A line from the running job (an echo of a replayed line is dropped)."""
        if self.echo.active:
            for line in self.echo.feed(str(text)):
                self.append(line)
        else:
            self.append(text)

    def extend(self, lines: Iterable[str]) -> None:
        self._pending.extend(str(line).rstrip("\n") for line in lines)
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self.lines_seen += len(self._pending)
        lines, self._pending = self._pending[-MAX_LINES:], []
        self.flushes += 1
        bar = self.view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.view.appendPlainText("\n".join(lines))
        if at_end:
            bar.setValue(bar.maximum())
        shown = self.view.blockCount()
        dropped = "" if self.lines_seen <= shown else f" (the last {shown} shown)"
        self.count_label.setText(f"{self.lines_seen} lines{dropped}")

    def text(self) -> str:
        self.flush()
        return self.view.toPlainText()

    def copy(self) -> None:
        cursor = self.view.textCursor()
        selected = cursor.selectedText().replace("\u2029", "\n") if cursor.hasSelection() else ""
        QGuiApplication.clipboard().setText(selected or self.text())

    def show_failure(self, message: str, tail: Sequence[str] = (), hint: str = "") -> None:
        """The failure in a box above the lines: the cause, what to try, the output's last lines."""
        self.flush()
        self.failure_label.setText(f"Failed: {message}" if message else "Failed")
        self.hint_label.setText(hint)
        self.hint_label.setVisible(bool(hint))
        self.tail_view.setPlainText("\n".join(tail))
        self.tail_view.setVisible(bool(tail))
        if tail:
            self.tail_view.verticalScrollBar().setValue(self.tail_view.verticalScrollBar().maximum())
        self.failure_box.show()

    @property
    def failed(self) -> bool:
        return not self.failure_box.isHidden()

    def end_echo(self) -> None:
        """The job ended: lines held as possible echoes are shown after all."""
        for line in self.echo.release():
            self.append(line)

    def clear(self) -> None:
        self.echo = EchoFilter(())
        self._pending.clear()
        self.view.clear()
        self.lines_seen = 0
        self.count_label.setText("")
        self.failure_box.hide()
