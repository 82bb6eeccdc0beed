"""The Train section's datasets: set A and set B folders, the output name and folder.

Each side is a folder of images or clips (``difflora_gui.train.dataset_folder``): typed, chosen
with a folder dialog that starts where the last one ended (kept in the project), or dropped on
the panel (two folders: A, then B). Under them the counts: items per side and the pairs both
sides share (a pair trains only those). "From the project's dataset" asks the panel to export
the Dataset section's pairs as plain ``A/`` and ``B/`` folders into the project workspace and
use them. Set B empty trains a single LoRA on set A.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.errors import UserError
from difflora_gui.qt.merge.run_bar import StatusLine

SIDES = ("a", "b")
SIDE_TITLES = {"a": "Set A", "b": "Set B"}
SIDE_HINTS = {
    "a": "the folder with the concept present (trains LoRA A)",
    "b": "the folder with the concept absent (trains LoRA B); empty: a single LoRA on set A",
}


def count_text(a_dir: str, b_dir: str) -> tuple[str, str]:
    """(summary, level) of the folders' item counts and matched pairs; reads only file names."""
    from difflora_gui.train.dataset_folder import list_items, matched_items

    counts = {}
    for side, folder in (("a", a_dir), ("b", b_dir)):
        if not folder:
            continue
        try:
            counts[side] = len(list_items(folder))
        except UserError as exc:
            return str(exc), "error"
    if "a" not in counts:
        return "No folders yet: choose them or drop them here", "info"
    if "b" not in counts:
        return f"{counts['a']} items in set A: a single LoRA (choose set B to train a pair)", "info"
    try:
        pairs = len(matched_items(a_dir, b_dir))
    except UserError as exc:
        return f"{counts['a']} items in A, {counts['b']} in B; {exc}", "error"
    level = "ok" if pairs == counts["a"] == counts["b"] else "warning"
    return f"{counts['a']} items in A, {counts['b']} in B: {pairs} matched pairs train", level


class DatasetsBox(QFrame):
    """Set A, set B, the output name and folder; ``changed`` on every edit."""

    changed = Signal()
    from_project_requested = Signal()

    def __init__(self, services, undo_stack, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sectionCard")
        self.services = services
        self.undo_stack = undo_stack
        self.start_dir = ""  # where the next folder dialog opens (the last folder chosen)
        self.edits: dict[str, QLineEdit] = {}
        self.browse_buttons: dict[str, QPushButton] = {}
        self._shown: dict[str, str] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        heading = QLabel("Datasets")
        heading.setObjectName("cardHeading")
        layout.addWidget(heading)
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)
        for row, side in enumerate(SIDES):
            self._add_folder_row(grid, row, side)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("runNameEdit")
        self.name_edit.setPlaceholderText("the files' name: <name>_A, <name>_B")
        self.name_edit.setToolTip("Output name: LoRA A is <name>_A.safetensors, LoRA B <name>_B.safetensors")
        name_label = QLabel("&Name")
        name_label.setBuddy(self.name_edit)
        grid.addWidget(name_label, 2, 0)
        grid.addWidget(self.name_edit, 2, 1, 1, 2)
        self.output_edit = QLineEdit()
        self.output_edit.setObjectName("trainOutputEdit")
        self.output_edit.setPlaceholderText("the project's output folder")
        self.output_edit.setToolTip(
            "Where the LoRAs, checkpoints and states are written (empty: the project's output folder)"
        )
        self.output_browse = QPushButton("Browse…")
        self.output_browse.clicked.connect(self.choose_output)
        output_label = QLabel("&Output")
        output_label.setBuddy(self.output_edit)
        grid.addWidget(output_label, 3, 0)
        grid.addWidget(self.output_edit, 3, 1)
        grid.addWidget(self.output_browse, 3, 2)
        layout.addLayout(grid)
        row = QHBoxLayout()
        self.counts_label = StatusLine()
        self.counts_label.setObjectName("datasetCounts")
        self.project_button = QPushButton("From the project's &dataset")
        self.project_button.setObjectName("fromProjectDataset")
        self.project_button.setToolTip(
            "Export the Dataset section's pairs as plain A/ and B/ folders into the project and train on them"
        )
        self.project_button.clicked.connect(self.from_project_requested)
        row.addWidget(self.counts_label, 1)
        row.addWidget(self.project_button)
        layout.addLayout(row)
        for key, edit in self._all_edits().items():
            self._shown[key] = ""
            edit.textChanged.connect(lambda _text, k=key: self._on_typed(k))
            edit.editingFinished.connect(lambda k=key: self._record_edit(k))

    def _add_folder_row(self, grid: QGridLayout, row: int, side: str) -> None:
        label = QLabel(f"Set &{side.upper()}")
        edit = QLineEdit()
        edit.setObjectName(f"folderEdit-{side}")
        edit.setPlaceholderText(SIDE_HINTS[side])
        edit.setToolTip(SIDE_HINTS[side])
        label.setBuddy(edit)
        browse = QPushButton("Browse…")
        browse.setObjectName(f"browse-{side}")
        browse.setToolTip(f"Choose {SIDE_TITLES[side]}'s folder")
        browse.clicked.connect(lambda _checked=False, s=side: self.choose_folder(s))
        grid.addWidget(label, row, 0)
        grid.addWidget(edit, row, 1)
        grid.addWidget(browse, row, 2)
        self.edits[side] = edit
        self.browse_buttons[side] = browse

    def _all_edits(self) -> dict[str, QLineEdit]:
        return {**self.edits, "name": self.name_edit, "output": self.output_edit}

    # --- values ------------------------------------------------------------------------------

    def folder(self, side: str) -> str:
        return self.edits[side].text().strip()

    def folders(self) -> tuple[str, str]:
        return self.folder("a"), self.folder("b")

    def name(self) -> str:
        return self.name_edit.text().strip()

    def output_dir(self) -> str:
        """The output folder as typed, else the project's output folder."""
        return self.output_edit.text().strip() or self.services.output_dir()

    def set_folder(self, side: str, path: str | Path, *, record: bool = True) -> None:
        self._set_text(side, str(path) if path else "", record=record)
        if path:
            self.start_dir = str(Path(path).parent)
            if not self.name() and side == "a":
                self._set_text("name", Path(path).name, record=record)

    def set_folders(self, a_dir: str, b_dir: str, *, record: bool = True) -> None:
        self.set_folder("a", a_dir, record=record)
        self.set_folder("b", b_dir, record=record)

    def _set_text(self, key: str, text: str, *, record: bool) -> None:
        edit = self._all_edits()[key]
        edit.blockSignals(True)
        edit.setText(text)
        edit.blockSignals(False)
        edit.setToolTip(text or edit.toolTip())
        if record:
            self._record_edit(key)
        else:
            self._shown[key] = text
        self.changed.emit()

    def _on_typed(self, key: str) -> None:
        edit = self._all_edits()[key]
        if key in SIDES and edit.text():
            edit.setToolTip(edit.text())  # the whole path, however narrow the field
        self.changed.emit()

    def set_project_dataset(self, name: str | None) -> None:
        """Enable "From the project's dataset" when the project has one (``name``)."""
        self.project_button.setEnabled(bool(name))
        self.project_button.setToolTip(
            f"Export the pairs of '{name}' (Dataset section) as plain A/ and B/ folders into the project "
            "and train on them"
            if name
            else "The project has no dataset yet: import pairs in the Dataset section first"
        )

    def _record_edit(self, key: str) -> None:
        """One undo step per field edit (typing merges until the field is left)."""
        edit = self._all_edits()[key]
        before, after = self._shown.get(key, ""), edit.text()
        self._shown[key] = after
        if before == after or self.undo_stack.applying:
            return
        self.undo_stack.record(
            f"{key.capitalize() if key in ('name', 'output') else SIDE_TITLES[key]}: {after or 'empty'}",
            lambda: self._set_text(key, before, record=False),
            lambda: self._set_text(key, after, record=False),
        )

    # --- dialogs -----------------------------------------------------------------------------

    def choose_folder(self, side: str) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, f"{SIDE_TITLES[side]}: {SIDE_HINTS[side]}", self.folder(side) or self.start_dir
        )
        if folder:
            self.set_folder(side, folder)

    def choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where the LoRAs are written", self.output_dir())
        if folder:
            self._set_text("output", folder, record=True)

    # --- counts ------------------------------------------------------------------------------

    def refresh_counts(self) -> None:
        text, level = count_text(*self.folders())
        from difflora_gui.qt.merge.run_bar import STATUS_COLORS

        self.counts_label.set_message(text, STATUS_COLORS.get(level))

    # --- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, str]:
        return {
            "a_dir": self.folder("a"),
            "b_dir": self.folder("b"),
            "name": self.name(),
            "output_dir": self.output_edit.text().strip(),
            "dialog_dir": self.start_dir,
        }

    def set_state(self, data) -> None:
        for key, stored in (("a", "a_dir"), ("b", "b_dir"), ("name", "name"), ("output", "output_dir")):
            self._set_text(key, str(data.get(stored) or ""), record=False)
        self.start_dir = str(data.get("dialog_dir") or "")
        self.refresh_counts()
