"""The Log dock: timestamped lines from the app, jobs and Python ``logging``; Copy and Clear."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS

MAX_LINES = 20_000
_LEVEL_COLORS = {
    "info": COLORS["text"],
    "warning": COLORS["warning"],
    "error": COLORS["error"],
    "detail": "#9ea3ab",
}


class _LogBridge(QObject):
    """Carries ``logging`` records from any thread to the dock (queued into the GUI thread)."""

    record = Signal(str, str)  # text, level


class _QtLogHandler(logging.Handler):
    def __init__(self, bridge: _LogBridge):
        super().__init__(logging.INFO)
        self._bridge = bridge
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = (
                "error"
                if record.levelno >= logging.ERROR
                else "warning"
                if record.levelno >= logging.WARNING
                else "info"
            )
            self._bridge.record.emit(self.format(record), level)
        except RuntimeError:  # the dock is gone
            pass
        except Exception:
            self.handleError(record)


class LogDock(QDockWidget):
    """Append with :meth:`append`; tracebacks with :meth:`append_detail`."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Log", parent)
        self.setObjectName("logDock")
        self.view = QPlainTextEdit()
        self.view.setObjectName("logView")
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # Tab stays in the panels; a click selects text
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the whole log to the clipboard")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty the log")
        self.clear_button.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.clear_button)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.view)
        layout.addLayout(buttons)
        self.setWidget(body)

        self._bridge = _LogBridge(self)
        self._bridge.record.connect(self.append, Qt.ConnectionType.QueuedConnection)
        self._handler = _QtLogHandler(self._bridge)
        self._loggers: list[logging.Logger] = []

    # --- writing -----------------------------------------------------------------------------

    @Slot(str, str)
    def append(self, text: str, level: str = "info") -> None:
        """One timestamped entry; extra lines of ``text`` are indented under it."""
        stamp = time.strftime("%H:%M:%S")
        lines = str(text).splitlines() or [""]
        entry = f"[{stamp}] {lines[0]}" + "".join(f"\n           {line}" for line in lines[1:])
        self._write(entry, level)

    def append_detail(self, text: str) -> None:
        """A block (a traceback) shown as is, dimmed, under the previous entry."""
        if text.strip():
            self._write(text.rstrip("\n"), "detail")

    def _write(self, text: str, level: str) -> None:
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(_LEVEL_COLORS.get(level, COLORS["text"])))
        bar = self.view.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if not self.view.document().isEmpty():
            cursor.insertBlock()
        cursor.insertText(text, fmt)
        if at_bottom:
            bar.setValue(bar.maximum())

    def text(self) -> str:
        return self.view.toPlainText()

    @Slot()
    def clear(self) -> None:
        self.view.clear()

    @Slot()
    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    # --- Python logging ----------------------------------------------------------------------

    def attach_logging(self, *names: str) -> None:
        """Show Python ``logging`` records in the dock: these loggers from INFO up, others from WARNING.

        One handler on the root logger sees everything that propagates; the named loggers are
        set to INFO (if unset) so their info lines get that far.
        """
        root = logging.getLogger()
        if self._handler not in root.handlers:
            root.addHandler(self._handler)
            self._loggers.append(root)
        for name in names:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)

    def detach_logging(self) -> None:
        for logger in self._loggers:
            logger.removeHandler(self._handler)
        self._loggers.clear()
