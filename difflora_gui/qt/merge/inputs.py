"""The workbench's inputs: LoRA A and LoRA B cards, read by ``light`` jobs, and how A and B differ.

Each file is summarised by ``inspect`` (every tensor read once, NaN/Inf refused) in a job, never
on the UI thread; a newer file, a swap or a clear makes a running read's result irrelevant (it is
cancelled and ignored). :attr:`InputsBox.issues` lists the differences between A and B
(:func:`~difflora_gui.merge.input_checks.compare_inputs`); errors among them block Run.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from difflora_gui.jobs.job import JobRequest
from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.input_checks import ERROR, INFO, WARNING, Issue, compare_inputs
from difflora_gui.qt.merge.input_card import LoraCard

ROLES = ("a", "b")
ROLE_TITLES = {
    "a": "LoRA A: trained WITH the concept (added)",
    "b": "LoRA B: trained WITHOUT it (subtracted)",
}
ISSUE_STYLE = {
    ERROR: ("✖", "#ff8a8a"),
    WARNING: ("⚠", "#e0b060"),
    INFO: ("ℹ", "#8b9098"),
}
INSPECT_JOB = "difflora_gui.merge.workbench_jobs:inspect_lora"


def short_name(path: str | Path, limit: int = 22) -> str:
    """A file's stem, shortened for job titles (the Jobs dock shows a title on one line)."""
    stem = Path(path).stem
    return stem if len(stem) <= limit else stem[: limit - 1] + "…"


class InputsBox(QFrame):
    """The two input cards, the Swap button and the list of differences between A and B.

    ``changed(paths_changed)``: a file was chosen, cleared or swapped (True), or a read finished (False).
    ``reading_started``: a read job was submitted (the panel prepares its plots meanwhile).
    ``summary_read``: a read finished with a summary.
    """

    changed = Signal(bool)
    reading_started = Signal()
    summary_read = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        self.setObjectName("sectionCard")
        self.paths: dict[str, Path | None] = {"a": None, "b": None}
        self.summaries: dict[str, LoraSummary | None] = {"a": None, "b": None}
        self.errors: dict[str, str] = {"a": "", "b": ""}
        self.issues: list[Issue] = []
        self._jobs: dict[str, object] = {"a": None, "b": None}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        heading = QLabel("Inputs")
        heading.setObjectName("cardHeading")
        layout.addWidget(heading)
        self.cards = {role: LoraCard(role, ROLE_TITLES[role]) for role in ROLES}
        layout.addWidget(self.cards["a"])
        swap_row = QHBoxLayout()
        self.swap_button = QPushButton("⇅ Swap A and B")
        self.swap_button.setObjectName("swapButton")
        self.swap_button.setToolTip("Exchange LoRA A and LoRA B (the slider then works the other way)")
        self.swap_button.clicked.connect(self.swap)
        swap_row.addStretch(1)
        swap_row.addWidget(self.swap_button)
        swap_row.addStretch(1)
        layout.addLayout(swap_row)
        layout.addWidget(self.cards["b"])
        self.issues_label = QLabel()
        self.issues_label.setObjectName("inputIssues")
        self.issues_label.setWordWrap(True)
        self.issues_label.setTextFormat(Qt.TextFormat.RichText)
        self.issues_label.hide()
        layout.addWidget(self.issues_label)
        for role, card in self.cards.items():
            card.file_chosen.connect(lambda path, role=role: self.set_input(role, path))
            card.clear_requested.connect(lambda role=role: self.clear_input(role))

    # --- what the panel reads ----------------------------------------------------------------

    def problem(self) -> str:
        """Why nothing can run with these inputs ("" when both are read and compatible)."""
        for role in ROLES:
            if self.paths[role] is None:
                return f"choose LoRA {role.upper()} (drop a .safetensors file or click Open…)"
            if self.errors[role]:
                return f"LoRA {role.upper()}: {self.errors[role]}"
            if self.summaries[role] is None:
                return f"reading LoRA {role.upper()}…"
        for issue in self.issues:
            if issue.blocks_run:
                return issue.text
        return ""

    def known(self) -> list[LoraSummary]:
        return [s for s in (self.summaries["a"], self.summaries["b"]) if s is not None]

    def block_count(self) -> int:
        """Blocks of the detected model (the larger one when A and B disagree; 0 before any read)."""
        return max((s.model.num_blocks for s in self.known()), default=0)

    def module_names(self) -> list[str]:
        """Every module in A or B."""
        return sorted({m.name for s in self.known() for m in s.modules})

    # --- choosing files ----------------------------------------------------------------------

    def accept_files(self, paths: list[Path]) -> None:
        """Dropped files: the first two fill A and B (one file: the first empty slot, else B)."""
        loras = [Path(p) for p in paths if Path(p).suffix.lower() == ".safetensors"]
        if not loras:
            return
        if len(loras) >= 2:
            self.set_input("a", loras[0])
            self.set_input("b", loras[1])
            if len(loras) > 2:
                self.services.log(
                    f"Merge: took {loras[0].name} and {loras[1].name}; ignored {len(loras) - 2} more",
                    "warning",
                )
            return
        if self.paths["a"] is not None and self.paths["b"] is not None:
            self.services.show_status(f"Replaced LoRA B with {loras[0].name}")
        self.set_input("a" if self.paths["a"] is None else "b", loras[0])

    def set_input(self, role: str, path: str | Path) -> None:
        """Use this file as LoRA A or B and read its summary (a light job)."""
        path = Path(path)
        self._cancel(role)
        self.paths[role], self.summaries[role], self.errors[role] = path, None, ""
        self.cards[role].show_loading(path)
        self._changed(True)
        if not path.is_file():
            self._show_error(role, f"{path}: file not found")
            return
        self.reading_started.emit()
        handle = self.services.jobs.submit(
            JobRequest(f"Inspect {short_name(path)}", INSPECT_JOB, {"path": str(path)}, lane="light")
        )
        self._jobs[role] = handle
        handle.progressed.connect(lambda progress, h=handle: self._on_progress(h, progress))
        handle.succeeded.connect(lambda summary, h=handle: self._on_read(h, summary))
        handle.failed.connect(lambda message, _trace, h=handle: self._on_failed(h, message))

    def clear_input(self, role: str) -> None:
        self._cancel(role)
        self.paths[role], self.summaries[role], self.errors[role] = None, None, ""
        self.cards[role].show_empty()
        self._changed(True)

    def swap(self) -> None:
        """A becomes B and B becomes A (summaries and running reads follow)."""
        for store in (self.paths, self.summaries, self.errors, self._jobs):
            store["a"], store["b"] = store["b"], store["a"]
        for role in ROLES:
            self._show_card(role)
        self._changed(True)

    # --- internals ---------------------------------------------------------------------------

    def _cancel(self, role: str) -> None:
        handle, self._jobs[role] = self._jobs[role], None
        if handle is not None and not handle.is_finished:
            handle.cancel()

    def _show_card(self, role: str) -> None:
        card, path = self.cards[role], self.paths[role]
        if path is None:
            card.show_empty()
        elif self.summaries[role] is not None:
            card.show_summary(self.summaries[role])
        elif self.errors[role]:
            card.show_error(path, self.errors[role])
        else:
            card.show_loading(path)

    def _role_of(self, handle) -> str | None:
        # after a swap a read belongs to the other card; after a newer choice to none
        for role, current in self._jobs.items():
            if current is handle:
                return role
        return None

    def _on_progress(self, handle, progress) -> None:
        role = self._role_of(handle)
        if role is not None:
            self.cards[role].show_progress(progress.fraction)

    def _on_read(self, handle, summary: LoraSummary) -> None:
        role = self._role_of(handle)
        if role is None:
            return
        self._jobs[role] = None
        self.summaries[role] = summary
        self.cards[role].show_summary(summary)
        self.summary_read.emit()
        self._changed(False)

    def _on_failed(self, handle, message: str) -> None:
        role = self._role_of(handle)
        if role is not None:
            self._jobs[role] = None
            self._show_error(role, message)

    def _show_error(self, role: str, message: str) -> None:
        self.errors[role] = message
        self.cards[role].show_error(self.paths[role], message)
        self._changed(False)

    def _changed(self, paths_changed: bool) -> None:
        a, b = self.summaries["a"], self.summaries["b"]
        self.issues = compare_inputs(a, b) if a is not None and b is not None else []
        if self.issues:
            self.issues_label.setText(
                "".join(
                    f"<div style='color:{ISSUE_STYLE[i.level][1]}; margin-bottom:3px'>"
                    f"{ISSUE_STYLE[i.level][0]} {html.escape(i.text)}</div>"
                    for i in self.issues
                )
            )
        self.issues_label.setVisible(bool(self.issues))
        self.changed.emit(paths_changed)
