"""An input card: LoRA A (+) or B (−), chosen by drag and drop or a file picker, with its summary.

The card only shows things; the inputs box reads the file (a ``light`` job running ``inspect``) and
calls :meth:`LoraCard.show_loading`, :meth:`show_summary`, :meth:`show_error` or
:meth:`show_missing`, and :meth:`show_role` for which expert the file is for (with the user's
override, a combo box on the card). A long file name is elided in the middle (the full path is the
tooltip) and no text on the card can widen it, so Open and Clear always stay inside the column.
A ``compact`` card (the two-expert grid's) puts the buttons on a row of their own.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.input_checks import training_facts
from difflora_gui.merge.input_slots import OVERRIDE_TITLES, OVERRIDES, side_of

LORA_FILTER = "LoRA files (*.safetensors);;All files (*)"
#: rows of ``LoraSummary.card()`` shown on the card; the whole card is the body's tooltip
CARD_ROWS = ("model", "format", "blocks", "layer groups")

_CARD_STYLE = """
QFrame#loraCard { background: #222428; border: 1px solid #30333a; border-radius: 8px; }
QFrame#loraCard[dropping="true"] { border: 1px dashed #5b8def; background: #243049; }
QLabel#roleBadge { font-weight: 700; padding: 1px 8px; border-radius: 4px; color: #ffffff; }
QLabel#roleBadge[side="a"] { background: #2d6a46; }
QLabel#roleBadge[side="b"] { background: #7a3b41; }
QLabel#cardFile { font-weight: 600; color: #e3e5e8; }
"""


#: zero-width space: lets a long path or module name wrap after a separator instead of widening the card
_BREAK = "\u200b"


def breakable(text: str) -> str:
    """``text`` with a line-break opportunity after each path separator, ``_`` and ``.``."""
    for sep in ("/", "\\", "_", "."):
        text = text.replace(sep, sep + _BREAK)
    return text


def badge_text(role: str) -> str:
    """The badge: "A  +" / "B  −" (on the two-expert grid the column or the title names the expert)."""
    sign = "+" if side_of(role) == "a" else "−"
    return f"{side_of(role).upper()}  {sign}"


def missing_text(path: Path) -> str:
    return f"file moved or deleted: {path}"


class LoraCard(QFrame):
    """One input slot. Emits ``file_chosen(path)`` (drop or picker), ``clear_requested`` and
    ``override_chosen(role)`` (the expert the user says the file is for: auto/high/low/both).

    ``start_folder``: called for the folder the file dialog opens in (the inputs box remembers the
    last folder per slot); ``folder_used(folder)`` is emitted when the dialog chose a file.
    """

    file_chosen = Signal(object)
    clear_requested = Signal()
    override_chosen = Signal(str)
    folder_used = Signal(str)

    def __init__(self, role: str, title: str, parent: QWidget | None = None, *, compact: bool = False):
        super().__init__(parent)
        self.role = role
        self.compact = compact
        self.setObjectName("loraCard")
        self.setProperty("dropping", False)
        self.setAcceptDrops(True)
        self.setStyleSheet(_CARD_STYLE)
        self.path: Path | None = None
        self.summary: LoraSummary | None = None
        self.error = ""
        self.start_folder: Callable[[], str] | None = None
        self.role_text = ""

        layout = QVBoxLayout(self)
        layout.setContentsMargins(
            8 if compact else 10, 6 if compact else 8, 8 if compact else 10, 6 if compact else 8
        )
        layout.setSpacing(4)
        header = QHBoxLayout()
        self.badge = badge = QLabel(badge_text(role))
        badge.setObjectName("roleBadge")
        badge.setProperty("side", side_of(role))
        badge.setToolTip(title)
        # elided in the middle, never wider than the room left: a long name cannot push the buttons out
        self.file_label = QElidingLabel()
        self.file_label.setElideMode(Qt.TextElideMode.ElideMiddle)
        self.file_label.setObjectName("cardFile")
        self.file_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.file_label.setMinimumWidth(20)
        self.open_button = QPushButton("Open…")
        self.open_button.setObjectName(f"open-{role}")
        self.open_button.setToolTip(f"Choose {title}")
        self.open_button.clicked.connect(self.choose_file)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName(f"clear-{role}")
        self.clear_button.clicked.connect(self.clear_requested.emit)
        header.addWidget(badge)
        if compact:  # the buttons get a row of their own: two such cards fit a 450 px column
            header.addWidget(self.file_label, 1)
            layout.addLayout(header)
            buttons = QHBoxLayout()
            buttons.addWidget(self.open_button)
            buttons.addWidget(self.clear_button)
            buttons.addStretch(1)
            layout.addLayout(buttons)
        else:
            header.addWidget(self.file_label, 1)
            header.addWidget(self.open_button)
            header.addWidget(self.clear_button)
            layout.addLayout(header)
        self.title_label = QLabel(title)
        self.title_label.setObjectName("mutedLabel")
        self.title_label.setWordWrap(True)
        layout.addWidget(self.title_label)
        # which expert the file is for, why we think so, and the user's override
        self.role_row = QWidget()
        # narrow (compact) cards put the override under the reason, which then has the whole width
        role_layout = QVBoxLayout(self.role_row) if compact else QHBoxLayout(self.role_row)
        role_layout.setContentsMargins(0, 0, 0, 0)
        role_layout.setSpacing(6)
        self.role_label = QLabel()
        self.role_label.setObjectName(f"expertRole-{role}")
        self.role_label.setWordWrap(True)
        self.role_label.setMinimumWidth(1)  # wraps to the card's width (and its height follows)
        self.role_combo = QComboBox()
        self.role_combo.setObjectName(f"expertOverride-{role}")
        self.role_combo.setToolTip(
            "Which Wan2.2 expert this file is for. Auto: from the key prefixes, the file name or the "
            "metadata (never the shapes: both experts have the same ones)"
        )
        for key in OVERRIDES:
            self.role_combo.addItem(OVERRIDE_TITLES[key], key)
        self.role_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.role_combo.activated.connect(
            lambda _i: self.override_chosen.emit(str(self.role_combo.currentData()))
        )
        role_layout.addWidget(self.role_label, 0 if compact else 1)
        align = Qt.AlignmentFlag.AlignLeft if compact else Qt.AlignmentFlag.AlignTop
        role_layout.addWidget(self.role_combo, 0, align)
        self.role_row.hide()
        layout.addWidget(self.role_row)
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
        self.body.setMinimumWidth(1)
        layout.addWidget(self.body)
        self.show_empty()

    # --- what the panel calls ----------------------------------------------------------------

    def show_empty(self) -> None:
        self.path, self.summary, self.error = None, None, ""
        self.file_label.setText("no file")
        self.file_label.setToolTip("")
        self.progress.hide()
        self.clear_button.setEnabled(False)
        self.role_row.hide()
        self.role_text = ""
        hint = (
            "Drop a .safetensors LoRA here"
            if self.compact
            else ("Drop a .safetensors LoRA here (or on the window), or click Open…")
        )
        self.body.setText(f"<span style='color:#8b9098'>{hint}</span>")

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
        if self.compact:  # the two-expert grid's cards are narrow: the essentials only
            keep = ("model", "blocks", "rank, alpha")
            short = {"model": summary.model.label}
            lines = [(label, short.get(label, value)) for label, value in lines if label in keep]
        cells = "".join(
            f"<tr><td style='color:#8b9098; padding-right:8px; white-space:nowrap'>{html.escape(label)}</td>"
            f"<td>{html.escape(breakable(value))}</td></tr>"
            for label, value in lines
        )
        self.body.setText(f"<table cellspacing='0' cellpadding='1'>{cells}</table>")
        self.body.setToolTip("\n".join(f"{label}: {value}" for label, value in card))

    def show_error(self, path: Path | None, message: str) -> None:
        self.summary, self.error = None, message
        self.path = Path(path) if path is not None else None
        self._show_path()
        self.progress.hide()
        self.body.setText(f"<span style='color:#ff8a8a'>{html.escape(breakable(message))}</span>")

    def show_missing(self, path: Path) -> None:
        """The chosen file is no longer there (moved, renamed or deleted since it was chosen)."""
        self.show_error(path, missing_text(path))

    def show_role(self, text: str, override: str, *, tooltip: str = "") -> None:
        """Which expert the file is for (``text``) and the user's override (``auto`` … ``both``)."""
        self.role_text = text  # as said (the label's copy may break long words)
        self.role_label.setText(breakable(text))
        self.role_label.setToolTip(tooltip or text)
        index = self.role_combo.findData(override)
        self.role_combo.blockSignals(True)
        self.role_combo.setCurrentIndex(max(index, 0))
        self.role_combo.blockSignals(False)
        self.role_row.setVisible(bool(text))

    # --- choosing a file ---------------------------------------------------------------------

    def choose_file(self) -> None:
        if self.start_folder is not None:
            start = self.start_folder()
        else:
            start = str(self.path.parent) if self.path is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, self.badge.toolTip() or "LoRA", start, LORA_FILTER)
        if path:
            self.folder_used.emit(str(Path(path).parent))
            self.file_chosen.emit(Path(path))

    def _show_path(self) -> None:
        self.clear_button.setEnabled(True)
        if self.path is None:
            self.file_label.setText("no file")
            return
        # a compact card is narrow: the stem is what tells files apart (the tooltip has the path)
        self.file_label.setText(self.path.stem if self.compact else self.path.name)
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
