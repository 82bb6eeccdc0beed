"""An input card: LoRA A (+) or B (−), chosen by drag and drop or a file picker, with its summary.

The card only shows things; the panel reads the file (a ``light`` job running ``inspect``) and
calls :meth:`LoraCard.show_loading`, :meth:`show_summary` or :meth:`show_error`.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.input_checks import training_facts

LORA_FILTER = "LoRA files (*.safetensors);;All files (*)"
#: rows of ``LoraSummary.card()`` shown on the card; the whole card is the body's tooltip
CARD_ROWS = ("model", "format", "blocks", "layer groups")

_CARD_STYLE = """
QFrame#loraCard { background: #222428; border: 1px solid #30333a; border-radius: 8px; }
QFrame#loraCard[dropping="true"] { border: 1px dashed #5b8def; background: #243049; }
QLabel#roleBadge { font-weight: 700; padding: 1px 8px; border-radius: 4px; color: #ffffff; }
QLabel#roleBadge[role="a"] { background: #2d6a46; }
QLabel#roleBadge[role="b"] { background: #7a3b41; }
QLabel#cardFile { font-weight: 600; color: #e3e5e8; }
"""


class LoraCard(QFrame):
    """One input slot. Emits ``file_chosen(path)`` (drop or picker) and ``clear_requested``."""

    file_chosen = Signal(object)
    clear_requested = Signal()

    def __init__(self, role: str, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName("loraCard")
        self.setProperty("dropping", False)
        self.setAcceptDrops(True)
        self.setStyleSheet(_CARD_STYLE)
        self.path: Path | None = None
        self.summary: LoraSummary | None = None
        self.error = ""

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        header = QHBoxLayout()
        badge = QLabel("A  +" if role == "a" else "B  −")
        badge.setObjectName("roleBadge")
        badge.setProperty("role", role)
        badge.setToolTip(title)
        self.file_label = QLabel()
        self.file_label.setObjectName("cardFile")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open…")
        self.open_button.setObjectName(f"open-{role}")
        self.open_button.setToolTip(f"Choose LoRA {role.upper()}: {title}")
        self.open_button.clicked.connect(self.choose_file)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName(f"clear-{role}")
        self.clear_button.clicked.connect(self.clear_requested.emit)
        header.addWidget(badge)
        header.addWidget(self.file_label, 1)
        header.addWidget(self.open_button)
        header.addWidget(self.clear_button)
        layout.addLayout(header)
        self.title_label = QLabel(title)
        self.title_label.setObjectName("mutedLabel")
        layout.addWidget(self.title_label)
        self.progress = QProgressBar()
        self.progress.setObjectName(f"inspectProgress-{role}")
        self.progress.setTextVisible(False)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.body = QLabel()
        self.body.setObjectName(f"cardBody-{role}")
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.body)
        self.show_empty()

    # --- what the panel calls ----------------------------------------------------------------

    def show_empty(self) -> None:
        self.path, self.summary, self.error = None, None, ""
        self.file_label.setText("no file")
        self.file_label.setToolTip("")
        self.progress.hide()
        self.clear_button.setEnabled(False)
        self.body.setText(
            "<span style='color:#8b9098'>Drop a .safetensors LoRA here (or on the window), or click Open…</span>"
        )

    def show_loading(self, path: Path) -> None:
        self.path, self.summary, self.error = Path(path), None, ""
        self._show_path()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.body.setText("<span style='color:#8b9098'>Reading the file…</span>")

    def show_progress(self, fraction: float | None) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * fraction))

    def show_summary(self, summary: LoraSummary) -> None:
        self.summary, self.error = summary, ""
        self.path = Path(summary.path)
        self._show_path()
        self.progress.hide()
        card = summary.card()
        rows = dict(card)
        lines = [(label, rows[label]) for label in CARD_ROWS if label in rows]
        if "rank" in rows:
            lines.append(("rank, alpha", f"{rows['rank']}; alpha {rows.get('alpha', '-')}"))
        if rows.get("values", "").startswith("all finite"):
            lines.append(("values", "all finite (checked)"))
        training = training_facts(summary)
        if training:
            lines.append(("trainer", "; ".join(f"{label} {value}" for label, value in training)))
        lines += [("note", text) for text in summary.notes]
        cells = "".join(
            f"<tr><td style='color:#8b9098; padding-right:8px; white-space:nowrap'>{html.escape(label)}</td>"
            f"<td>{html.escape(value)}</td></tr>"
            for label, value in lines
        )
        self.body.setText(f"<table cellspacing='0' cellpadding='1'>{cells}</table>")
        self.body.setToolTip("\n".join(f"{label}: {value}" for label, value in card))

    def show_error(self, path: Path | None, message: str) -> None:
        self.summary, self.error = None, message
        self.path = Path(path) if path is not None else None
        self._show_path()
        self.progress.hide()
        self.body.setText(f"<span style='color:#ff8a8a'>{html.escape(message)}</span>")

    # --- choosing a file ---------------------------------------------------------------------

    def choose_file(self) -> None:
        start = str(self.path.parent) if self.path is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, f"LoRA {self.role.upper()}", start, LORA_FILTER)
        if path:
            self.file_chosen.emit(Path(path))

    def _show_path(self) -> None:
        self.clear_button.setEnabled(True)
        if self.path is None:
            self.file_label.setText("no file")
            return
        self.file_label.setText(self.path.name)
        self.file_label.setToolTip(str(self.path))

    # --- drag and drop -----------------------------------------------------------------------

    @staticmethod
    def _dropped_lora(event) -> Path | None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.suffix.lower() == ".safetensors":
                    return path
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._dropped_lora(event) is not None:
            event.acceptProposedAction()
            self._set_dropping(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._set_dropping(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        self._set_dropping(False)
        path = self._dropped_lora(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.file_chosen.emit(path)

    def _set_dropping(self, dropping: bool) -> None:
        self.setProperty("dropping", dropping)
        self.style().unpolish(self)
        self.style().polish(self)
