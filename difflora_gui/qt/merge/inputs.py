"""The workbench's inputs: LoRA A and LoRA B cards — or, for Wan2.2 A14B, one A and B per expert.

Each file is summarised by ``inspect`` (every tensor read once, NaN/Inf refused) in a ``light``
job, never on the UI thread, once per file even when it fills several slots; a newer choice, a
swap or a clear makes a running read irrelevant (it is cancelled and ignored). A one-model merge
shows two cards (``a``, ``b``); a file that is for one Wan2.2 expert (its name, key prefixes or
metadata say so), or the user's choice of "Wan2.2 A14B (two experts)", shows the expert grid
(``a_high``, ``a_low``, ``b_high``, ``b_low``). Loading ``x_high_noise`` into A fills A's low-noise
slot with ``x_low_noise`` when it lies beside it; a combo or joint file fills both slots of its
side. :meth:`InputsBox.fields` gives the ``MergeParams`` input fields (a user's override is an
explicit per-expert field). :attr:`InputsBox.issues` lists how A and B differ, per expert pair;
errors among them block Run. Chosen files are watched: a moved or deleted one shows on its card
and blocks Run at once, not when a job fails.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, QFileSystemWatcher, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.input_checks import (
    ERROR,
    INFO,
    WARNING,
    Issue,
    compare_expert_inputs,
    compare_inputs,
)
from difflora_gui.merge.input_folders import LastFolders
from difflora_gui.merge.input_roles import misplaced_issues, role_line
from difflora_gui.merge.input_slots import (
    EXPERT_SLOTS,
    SIDES,
    SLOTS,
    WRITE_CHOICES,
    expert_of,
    field_of,
    has_expert,
    one_per_pair,
    other_slot,
    part_summary,
    side_of,
    slot_of,
    slot_title,
)
from difflora_gui.qt.merge.expert_inputs import ExpertGrid
from difflora_gui.qt.merge.input_card import LoraCard, missing_text
from difflora_gui.qt.merge.input_placement import SlotPlacement
from difflora_gui.qt.merge.input_reads import INSPECT_JOB, InputReads, Read, short_name
from difflora_gui.qt.merge.input_undo import InputsUndo

ROLES = SIDES  # the one-model slots (the panel's name for them)
ROLE_TITLES = {
    "a": "LoRA A: trained WITH the concept (added)",
    "b": "LoRA B: trained WITHOUT it (subtracted)",
}
ISSUE_STYLE = {
    ERROR: ("✖", "#ff8a8a"),
    WARNING: ("⚠", "#e0b060"),
    INFO: ("ℹ", "#8b9098"),
}
__all__ = ["INSPECT_JOB", "ROLES", "InputsBox", "short_name"]  # the panel's names for them
MODE_TITLES = {False: "Wan2.1 / one model", True: "Wan2.2 A14B (two experts)"}


class InputsBox(SlotPlacement, InputReads, InputsUndo, QFrame):
    """The input cards, Swap, the model choice, what a two-expert merge writes, and the issues.

    ``changed(paths_changed)``: a file was chosen, cleared, swapped or placed (True), or a read
    finished or a file went missing (False). ``reading_started``: a read job was submitted.
    ``summary_read``: a read finished with a summary.
    """

    changed = Signal(bool)
    reading_started = Signal()
    summary_read = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        self.setObjectName("sectionCard")
        self.slots: dict[str, Path | None] = dict.fromkeys(SLOTS)
        #: a slot filled along with another (a partner file, or the second slot of a joint/combo file)
        self.filled_by: dict[str, str | None] = dict.fromkeys(SLOTS)
        #: the user's override of what a file is for, by (side, file): "high" | "low" | "both"
        self.overrides: dict[tuple[str, Path], str] = {}
        #: files put in one slot on purpose (that slot's Open…, a recipe): never moved by a read
        self._pinned: set[tuple[str, Path]] = set()
        #: the role a file was placed by, by (side, file): a read that says otherwise places it again
        self._placed: dict[tuple[str, Path], str] = {}
        self._reads: dict[Path, Read] = {}
        self.missing: set[Path] = set()
        self.issues: list[Issue] = []
        self.notes: list[str] = []
        self._two_expert = False
        self._write = "both"
        self._shown_notes: list[str] = []
        # the one-model slots' state, by name (the panel reads them; kept up to date in place)
        self.paths: dict[str, Path | None] = dict.fromkeys(SIDES)
        self.summaries: dict[str, LoraSummary | None] = dict.fromkeys(SIDES)
        self.errors: dict[str, str] = dict.fromkeys(SIDES, "")
        self.folders = LastFolders()
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._on_file_changed)
        self._build()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        header = QHBoxLayout()
        heading = QLabel("Inputs")
        heading.setObjectName("cardHeading")
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("inputsModel")
        self.mode_combo.setToolTip(
            "One model (Wan2.1, TI2V-5B, or a Wan2.2 file for both experts), or Wan2.2 A14B with one "
            "A and B per expert (chosen by itself when a file names an expert)"
        )
        for two, title in MODE_TITLES.items():
            self.mode_combo.addItem(title, two)
        self.mode_combo.activated.connect(
            lambda _i: self.user_change(
                "Inputs: model layout", lambda: self.set_two_expert(bool(self.mode_combo.currentData()))
            )
        )
        header.addWidget(heading)
        header.addStretch(1)
        header.addWidget(self.mode_combo)
        layout.addLayout(header)

        self.one_model = QWidget()
        one = QVBoxLayout(self.one_model)
        one.setContentsMargins(0, 0, 0, 0)
        one.setSpacing(6)
        self.cards: dict[str, LoraCard] = {role: LoraCard(role, ROLE_TITLES[role]) for role in SIDES}
        one.addWidget(self.cards["a"])
        swap_row = QHBoxLayout()
        self.swap_button = QPushButton("⇅ Swap A and B")
        self.swap_button.setObjectName("swapButton")
        self.swap_button.setToolTip("Exchange LoRA A and LoRA B (the slider then works the other way)")
        self.swap_button.clicked.connect(lambda: self.user_change("Swap A and B", self.swap))
        swap_row.addStretch(1)
        swap_row.addWidget(self.swap_button)
        swap_row.addStretch(1)
        one.addLayout(swap_row)
        one.addWidget(self.cards["b"])
        layout.addWidget(self.one_model)

        self.expert_grid = ExpertGrid()
        self.expert_grid.swap_button.clicked.connect(lambda: self.user_change("Swap A and B", self.swap))
        self.cards.update(self.expert_grid.cards)
        self.expert_grid.hide()
        layout.addWidget(self.expert_grid)
        self.write_row = QWidget()
        write = QHBoxLayout(self.write_row)
        write.setContentsMargins(0, 0, 0, 0)
        write.addWidget(QLabel("Write"))
        self.write_combo = QComboBox()
        self.write_combo.setObjectName("writeExperts")
        self.write_combo.setToolTip(
            "Both experts: <output>_high_noise and <output>_low_noise (loaders pair them by name); "
            "or one expert's file only"
        )
        for key, title in WRITE_CHOICES.items():
            self.write_combo.addItem(title, key)
        self.write_combo.activated.connect(
            lambda _i: self.user_change(
                "Inputs: experts to write", lambda: self.set_write_expert(str(self.write_combo.currentData()))
            )
        )
        write.addWidget(self.write_combo, 1)
        self.write_row.hide()
        layout.addWidget(self.write_row)

        self.note_label = QLabel()
        self.note_label.setObjectName("inputNotes")
        self.note_label.setWordWrap(True)
        self.note_label.hide()
        layout.addWidget(self.note_label)
        self.issues_label = QLabel()
        self.issues_label.setObjectName("inputIssues")
        self.issues_label.setWordWrap(True)
        self.issues_label.setTextFormat(Qt.TextFormat.RichText)
        self.issues_label.hide()
        layout.addWidget(self.issues_label)
        for slot, card in self.cards.items():
            title = slot_title(slot)
            card.file_chosen.connect(
                lambda path, slot=slot, t=title: self.user_change(
                    f"Choose {t}", lambda: self.set_input(slot, path)
                )
            )
            card.clear_requested.connect(
                lambda slot=slot, t=title: self.user_change(f"Clear {t}", lambda: self.clear_input(slot))
            )
            card.override_chosen.connect(
                lambda role, slot=slot, t=title: self.user_change(
                    f"{t}: expert", lambda: self.set_override(slot, role)
                )
            )
            card.folder_used.connect(lambda folder, slot=slot: self.folders.remember(slot, folder))
            card.start_folder = lambda slot=slot: self.start_folder(slot)

    # --- what the panel reads ----------------------------------------------------------------

    @property
    def two_expert(self) -> bool:
        return self._two_expert

    @property
    def write_expert(self) -> str:
        """What a two-expert merge writes: "both", "high" or "low"."""
        return self._write

    def set_write_expert(self, expert: str) -> None:
        self._set_write(expert)
        self._refresh(True)

    def _set_write(self, expert: str) -> None:
        self._write = expert if expert in WRITE_CHOICES else "both"
        self.write_combo.setCurrentIndex(max(self.write_combo.findData(self._write), 0))

    def active_slots(self) -> tuple[str, ...]:
        """The slots the merge reads: A and B, or the experts' slots that are written."""
        if not self._two_expert:
            return SIDES
        experts = ("high", "low") if self.write_expert == "both" else (self.write_expert,)
        return tuple(slot_of(side, e) for side in SIDES for e in experts)

    def _slot_problem(self, slot: str) -> str:
        path, title = self.slots[slot], slot_title(slot)
        if path is None:
            return f"choose {title} (drop a .safetensors file or click Open…)"
        if path in self.missing or not path.exists():
            return f"{title}: {missing_text(path)}"
        read = self._reads.get(path)
        if read is not None and read.error:
            return f"{title}: {read.error}"
        if read is None or read.summary is None:
            return f"reading {title}…"
        return ""

    def problem(self) -> str:
        """Why nothing can run with these inputs ("" when all are read and compatible)."""
        for slot in self.active_slots():
            problem = self._slot_problem(slot)
            if problem:
                return problem
        for issue in self.issues:
            if issue.blocks_run:
                return issue.text
        return ""

    def ready(self) -> bool:
        return not self.problem()

    def summary_of(self, slot: str) -> LoraSummary | None:
        """The summary a slot uses (a combo file's part for an expert slot)."""
        path = self.slots[slot]
        read = self._reads.get(path) if path is not None else None
        if read is None or read.summary is None:
            return None
        return part_summary(read.summary, expert_of(slot))

    def known(self) -> list[LoraSummary]:
        return [s for s in (self.summary_of(slot) for slot in self.active_slots()) if s is not None]

    def block_count(self) -> int:
        """Blocks of the detected model (the larger one when inputs disagree; 0 before any read)."""
        return max((s.model.num_blocks for s in self.known()), default=0)

    def module_names(self) -> list[str]:
        """Every module of the inputs the merge reads."""
        return sorted({m.name for s in self.known() for m in s.modules})

    def primary(self, side: str) -> Path | None:
        """The file a side is named after: A or B, or its high-noise file, else its low-noise one."""
        if not self._two_expert:
            return self.slots[side]
        return self.slots[slot_of(side, "high")] or self.slots[slot_of(side, "low")]

    def name_pair(self) -> tuple[Path | None, Path | None]:
        """The files the output is named after (``default_output_name`` leaves out their expert word)."""
        return self.primary("a"), self.primary("b")

    def fields(self) -> dict:
        """The ``MergeParams`` input fields: ``lora_a`` … ``lora_b_low`` (str or None) and ``expert``."""

        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        result = {"lora_a": text(self.primary("a")), "lora_b": text(self.primary("b"))}
        for slot in EXPERT_SLOTS:
            result[field_of(slot)] = text(self.slots[slot]) if self._two_expert else None
        result["expert"] = self.write_expert if self._two_expert else "both"
        return result

    def apply_fields(self, values: dict) -> None:
        """Show stored input fields (a recipe's): per-expert fields open the expert grid."""
        self.notes = []
        per_expert = {slot: values.get(field_of(slot)) or None for slot in EXPERT_SLOTS}
        if any(per_expert.values()):
            self._set_mode(True, place=False)
            for slot, text in per_expert.items():
                path = Path(text) if text else None
                if path is None:
                    self._clear_slot(slot)
                elif self.slots[slot] != path:
                    self._put(slot, path)
                if path is not None:
                    self._pinned.add((side_of(slot), path))
                    self._override_from_placement(slot, path)
            self._set_write(str(values.get("expert") or "both"))
            for side in SIDES:
                self.slots[side] = self.primary(side)
        else:
            self._set_mode(False, place=False)
            self._set_write("both")
            for side in SIDES:
                text = values.get(field_of(side)) or None
                if not text:
                    self.clear_input(side)
                elif self.paths[side] != Path(text):
                    self.set_input(side, text)
        self._refresh(True)

    def start_folder(self, slot: str) -> str:
        """Where the slot's file dialog opens (its file's folder, its last folder, a model folder)."""
        settings = getattr(self.services, "settings", None)
        return self.folders.start(
            slot, current=self.slots[slot], model_folders=getattr(settings, "model_folders", []) or []
        )

    # --- choosing files ----------------------------------------------------------------------

    def accept_files(self, paths: list[Path]) -> None:
        """Dropped files: the first two (a pair of expert files counts as one) fill A and B."""
        self.user_change("Drop LoRA files", lambda: self._accept_files(paths))

    def _accept_files(self, paths: list[Path]) -> None:
        loras = one_per_pair([Path(p) for p in paths if Path(p).suffix.lower() == ".safetensors"])
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
        if self.primary("a") is not None and self.primary("b") is not None:
            self.services.show_status(f"Replaced LoRA B with {loras[0].name}")
        self.set_input("a" if self.primary("a") is None else "b", loras[0])

    def set_input(self, role: str, path: str | Path) -> None:
        """Use this file in a slot (``a``/``b``: for its side, placed by what it is for) and read it."""
        path = Path(path)
        self.notes = []
        self._forget_read(path)  # chosen again: read it again (it may have changed)
        self.missing.discard(path)
        if role in SIDES:
            self._pinned.discard((role, path))
            self.overrides.pop((role, path), None)
            detected = self._role(path)
            if not self._two_expert and has_expert(detected):
                self.slots[role] = path
                self._set_mode(True)
            elif self._two_expert:
                self.slots[role] = path
                self._place_side(role, path, detected.role)
            else:
                self._put(role, path)
        else:
            if not self._two_expert:
                self._set_mode(True)
            self._put_in_slot(role, path)
        self._refresh(True)

    def clear_input(self, role: str) -> None:
        """Empty a slot (and the slots filled along with it: a partner, a joint file's other slot)."""
        self.notes = []
        if role in SIDES:  # the side: in one-model mode too (no old expert files come back later)
            targets = [slot_of(role, "high"), slot_of(role, "low"), role]
        else:
            targets = [role]
        for slot in targets:
            old = self.slots[slot]
            self._clear_slot(slot)
            for other in EXPERT_SLOTS:
                if self.filled_by[other] == slot or (
                    old is not None
                    and expert_of(slot)
                    and other == other_slot(slot)
                    and self.slots[other] == old
                ):
                    self._clear_slot(other)
        self._refresh(True)

    def swap(self) -> None:
        """A becomes B and B becomes A (for both experts; reads, overrides and partners follow)."""

        def flip(name: str | None) -> str | None:
            if name is None:
                return None
            return ("b" if name[0] == "a" else "a") + name[1:]

        self.slots = {flip(slot): path for slot, path in self.slots.items()}
        self.filled_by = {flip(slot): flip(by) for slot, by in self.filled_by.items()}
        self.overrides = {(flip(side), path): role for (side, path), role in self.overrides.items()}
        self._pinned = {(flip(side), path) for side, path in self._pinned}
        self._placed = {(flip(side), path): role for (side, path), role in self._placed.items()}
        self.notes = []
        self._refresh(True)

    def set_two_expert(self, two: bool) -> None:
        """The user's choice of layout: one model, or Wan2.2 A14B's two experts."""
        self.notes = []
        self._set_mode(two)
        self._refresh(True)

    def set_override(self, slot: str, role: str) -> None:
        """The user says what the slot's file is for: "auto" (what it says), "high", "low" or "both"."""
        path = self.slots[slot]
        if path is None:
            return
        self.notes = []
        side = side_of(slot)
        if role == "auto":
            self.overrides.pop((side, path), None)
        else:
            self.overrides[(side, path)] = role
        self._pinned.discard((side, path))
        effective = self._effective_role(side, path)
        if slot in SIDES:
            if effective in ("high", "low", "combo") and not self._two_expert:
                self._set_mode(True)
        else:
            self._place_side(side, path, effective)
        self._refresh(True)

    def recheck_files(self) -> bool:
        """Notice files moved away or back since they were chosen; True if anything changed."""
        changed = False
        for path in {p for p in self.slots.values() if p is not None}:
            if path.exists() and path in self.missing:
                self.missing.discard(path)
                self._forget_read(path)  # back (or another file of the name): read it again
                changed = True
            elif not path.exists() and path not in self.missing:
                self.missing.add(path)
                changed = True
        if changed:
            self._refresh(False)
        return changed

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.WindowActivate:
            self.recheck_files()  # a file moved while the window was in the background
        return super().event(event)

    # --- showing -----------------------------------------------------------------------------

    def _refresh(self, paths_changed: bool) -> None:
        self._start_reads()
        self._sync_one_model_state()
        self._show_cards()
        self.one_model.setVisible(not self._two_expert)
        self.expert_grid.setVisible(self._two_expert)
        self.write_row.setVisible(self._two_expert)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(self._two_expert))
        self._update_issues()
        self.note_label.setText("\n".join(self.notes))
        self.note_label.setVisible(bool(self.notes))
        if self.notes and self.notes != self._shown_notes:
            self.services.show_status(self.notes[-1])
        self._shown_notes = list(self.notes)
        self.changed.emit(paths_changed)

    def _sync_one_model_state(self) -> None:
        for side in SIDES:
            path = self.primary(side)
            if not self._two_expert:
                self.slots[side] = path
            read = self._reads.get(path) if path is not None else None
            self.paths[side] = path
            self.summaries[side] = read.summary if read is not None else None
            error = read.error if read is not None else ""
            self.errors[side] = missing_text(path) if path is not None and path in self.missing else error

    def _show_cards(self) -> None:
        shown = EXPERT_SLOTS if self._two_expert else SIDES
        for slot in shown:
            card, path = self.cards[slot], self.slots[slot]
            if path is None:
                card.show_empty()
                continue
            read = self._reads.get(path)
            if path in self.missing:
                card.show_missing(path)
            elif read is not None and read.summary is not None:
                card.show_summary(part_summary(read.summary, expert_of(slot)))
            elif read is not None and read.error:
                card.show_error(path, read.error)
            elif card.path != path or card.summary is not None or card.error:
                card.show_loading(path)
            text, tooltip = role_line(self, slot, path)
            card.show_role(text, self.overrides.get((side_of(slot), path), "auto"), tooltip=tooltip)

    def _update_issues(self) -> None:
        self.issues = []
        if not self._two_expert:
            a, b = self.summary_of("a"), self.summary_of("b")
            if a is not None and b is not None:
                self.issues = compare_inputs(a, b)
        else:
            experts = ("high", "low") if self.write_expert == "both" else (self.write_expert,)
            pairs = [(e, self.summary_of(slot_of("a", e)), self.summary_of(slot_of("b", e))) for e in experts]
            pairs = [(e, a, b) for e, a, b in pairs if a is not None and b is not None]
            if pairs:
                self.issues = compare_expert_inputs(pairs)
            self.issues = misplaced_issues(self) + self.issues
        self.issues_label.setText(
            "".join(
                f"<div style='color:{ISSUE_STYLE[i.level][1]}; margin-bottom:3px'>"
                f"{ISSUE_STYLE[i.level][0]} {html.escape(i.text)}</div>"
                for i in self.issues
            )
        )
        self.issues_label.setVisible(bool(self.issues))
