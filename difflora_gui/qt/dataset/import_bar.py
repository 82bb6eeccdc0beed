"""The Dataset panel's import row (two folders, one folder as A, the pairing rule) and the import results.

:class:`ImportBar` asks for the folders and the rule and emits ``import_requested(a_dir, b_dir, rule)``
(``b_dir`` empty: one folder as set A); the panel runs the import as a job. :class:`ImportResults`
is the collapsible list of what the import left out: unpaired A and B files and skipped files with
their reasons.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.qt.dataset.progress import show_progress
from difflora_gui.qt.fitted_label import FittedLabel
from difflora_gui.qt.param_form import AdvancedSection

#: the pairing rules offered: (title, kind, placeholder of its text, tooltip)
RULES = (
    ("identical stems", "stem", "", "frame_0001.png in A goes with frame_0001.jpg in B"),
    (
        "suffixes",
        "suffix",
        "_dense,_sparse",
        "A stems end with the first suffix, B stems with the second (shot3_dense ↔ shot3_sparse); "
        "either may be empty",
    ),
    (
        "regex",
        "regex",
        r"(?P<key>\d+)",
        "The key is the group named 'key', else the first group, else the whole match of the pattern "
        "in each stem",
    ),
)


def rule_text(kind: str, text: str) -> str:
    """The rule as the pairing module reads it (``stem``, ``suffix:_A,_B``, ``regex:PATTERN``)."""
    return "stem" if kind == "stem" else f"{kind}:{text}"


def parse_rule(text: str) -> tuple[str, str]:
    """``(kind, text)`` of a stored rule (unknown text: identical stems)."""
    kind, _sep, rest = str(text or "stem").partition(":")
    return (kind, rest) if kind in ("suffix", "regex") else ("stem", "")


class ImportBar(QWidget):
    """Import A and B folders… · Import one folder as A… · rule · progress of the running import."""

    import_requested = Signal(str, str, str)  # a_dir, b_dir ("" = one folder as A), rule
    cancel_requested = Signal()
    copy_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.import_pair_button = QPushButton("Import A and B folders…")
        self.import_pair_button.setObjectName("importPairButton")
        self.import_pair_button.setToolTip(
            "Choose the folder of set A (concept present), then set B (concept absent); "
            "files are paired by the rule beside. The folders are only read."
        )
        self.import_single_button = QPushButton("Import one folder as A…")
        self.import_single_button.setObjectName("importSingleButton")
        self.import_single_button.setToolTip(
            "Set A only: make set B with a counterpart tool (Tools below), then import again"
        )
        self.copy_button = QPushButton("Copy into project")
        self.copy_button.setObjectName("copyIntoProjectButton")
        self.copy_button.setToolTip(
            "Copy the set's files into the project folder (a/, b/) and use the copies from then on, "
            "so the project no longer depends on the source folders (they are only read)"
        )
        self.copy_button.setEnabled(False)
        self.rule_combo = QComboBox()
        self.rule_combo.setObjectName("pairingRule")
        for title, kind, _placeholder, tip in RULES:
            self.rule_combo.addItem(title, kind)
            self.rule_combo.setItemData(self.rule_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.rule_combo.setToolTip("How A files are matched with B files")
        self.rule_edit = QLineEdit()
        self.rule_edit.setObjectName("pairingRuleText")
        self.rule_edit.setMaximumWidth(180)
        self.progress = QProgressBar()
        self.progress.setObjectName("importProgress")
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.hide()
        layout.addWidget(self.import_pair_button)
        layout.addWidget(self.import_single_button)
        layout.addWidget(QLabel("pair by"))
        layout.addWidget(self.rule_combo)
        layout.addWidget(self.rule_edit)
        layout.addWidget(self.copy_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)
        layout.addStretch(1)
        self.rule_combo.currentIndexChanged.connect(self._on_rule_kind)
        self.import_pair_button.clicked.connect(self.choose_pair)
        self.import_single_button.clicked.connect(self.choose_single)
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        self.copy_button.clicked.connect(self.copy_requested.emit)
        self.start_dir = ""
        self._on_rule_kind()

    # --- rule --------------------------------------------------------------------------------

    def _on_rule_kind(self) -> None:
        _title, kind, placeholder, tip = RULES[max(0, self.rule_combo.currentIndex())]
        self.rule_edit.setVisible(kind != "stem")
        self.rule_edit.setPlaceholderText(placeholder)
        self.rule_edit.setToolTip(tip)
        if kind != "stem" and not self.rule_edit.text():
            self.rule_edit.setText(placeholder)

    def rule(self) -> str:
        return rule_text(str(self.rule_combo.currentData()), self.rule_edit.text().strip())

    def set_rule(self, text: str) -> None:
        kind, rest = parse_rule(text)
        self.rule_combo.setCurrentIndex(max(0, self.rule_combo.findData(kind)))
        if kind != "stem":
            self.rule_edit.setText(rest)

    # --- folders -----------------------------------------------------------------------------

    def _ask(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self, title, self.start_dir)

    def choose_pair(self) -> None:
        a_dir = self._ask("Set A: the folder with the concept present")
        if not a_dir:
            return
        self.start_dir = str(Path(a_dir).parent)
        b_dir = self._ask("Set B: the folder with the concept absent")
        if b_dir:
            self.import_requested.emit(a_dir, b_dir, self.rule())

    def choose_single(self) -> None:
        a_dir = self._ask("Set A: the folder with the concept present")
        if a_dir:
            self.start_dir = str(Path(a_dir).parent)
            self.import_requested.emit(a_dir, "", "stem")

    # --- running -----------------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        for widget in (self.import_pair_button, self.import_single_button, self.rule_combo, self.rule_edit):
            widget.setEnabled(not running)
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        if running:
            self.progress.setRange(0, 0)

    def show_progress(self, fraction: float | None, text: str) -> None:
        show_progress(self.progress, fraction, text)


class ImportResults(QWidget):
    """A one-line summary (pairs, unpaired, skipped) and, folded, every left-out file with why."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        # as tall as its lines at its width (a plain wrapped QLabel asks for twice that)
        self.summary = FittedLabel("No pairs yet: import two folders, or drop them here.")
        self.summary.setObjectName("importSummary")
        self.details = AdvancedSection("Unpaired and skipped files")
        self.details.setObjectName("importDetails")
        self.details.toggleButton().setToolTip("Show or hide the files the import left out, with the reasons")
        self.tree = QTreeWidget()
        self.tree.setObjectName("importTree")
        self.tree.setHeaderLabels(["file", "why"])
        self.tree.setRootIsDecorated(True)
        self.tree.setMinimumHeight(90)
        self.tree.setMaximumHeight(220)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.details.addWidget(self.tree)
        layout.addWidget(self.summary)
        layout.addWidget(self.details)
        self.details.hide()

    def show_set(self, pair_set) -> None:
        if pair_set is None:
            self.summary.setText("No pairs yet: import two folders, or drop them here.")
            self.details.hide()
            return
        counts = (len(pair_set.unpaired_a), len(pair_set.unpaired_b), len(pair_set.skipped))
        sources = " · ".join(
            f"{side.upper()}: {Path(path).name}" for side, path in sorted(pair_set.sources.items())
        )
        # only the counts that are not 0: the line stays short beside "Train on these pairs…"
        parts = [
            text
            for count, text in zip(
                counts,
                (f"{counts[0]} unpaired in A", f"{counts[1]} unpaired in B", f"{counts[2]} skipped"),
                strict=True,
            )
            if count
        ]
        left_out = " · ".join(parts) if parts else "none left out"
        self.summary.setText(
            f"<b>{len(pair_set.pairs)} pairs</b> · {left_out}"
            + (f" <span style='color:#8a8d93'>({sources})</span>" if sources else "")
        )
        self.summary.setToolTip(
            "\n".join(f"{side.upper()}: {path}" for side, path in sorted(pair_set.sources.items()))
        )
        self.tree.clear()
        groups = (
            ("Unpaired in A", [(item.path, "no partner in B") for item in pair_set.unpaired_a]),
            ("Unpaired in B", [(item.path, "no partner in A") for item in pair_set.unpaired_b]),
            ("Skipped", [(s.path, s.reason) for s in pair_set.skipped]),
        )
        for title, rows in groups:
            if not rows:
                continue
            head = QTreeWidgetItem([f"{title} ({len(rows)})", ""])
            for path, reason in rows:
                child = QTreeWidgetItem([Path(path).name, reason])
                child.setToolTip(0, path)
                child.setToolTip(1, reason)
                head.addChild(child)
            self.tree.addTopLevelItem(head)
            head.setExpanded(len(rows) <= 50)
        self.tree.resizeColumnToContents(0)
        self.details.setVisible(any(counts))
        self.details.collapse(animate=False)  # one click away: the summary line says how many

    def rows(self) -> dict[str, list[tuple[str, str]]]:
        """``{group title: [(file name, reason)]}`` as shown (for tests)."""
        found: dict[str, list[tuple[str, str]]] = {}
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            title = head.text(0).rsplit(" (", 1)[0]
            found[title] = [(head.child(j).text(0), head.child(j).text(1)) for j in range(head.childCount())]
        return found
