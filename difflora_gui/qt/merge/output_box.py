"""The workbench's Output card: the file to write, its name, the output form and the device.

The name follows the inputs (``<A>-minus-<B>.safetensors`` in the project's output folder) until the
user types or browses one; a later pair of inputs renames it again while it is automatic. An
automatic name is numbered ComfyUI-style (``…_00002.safetensors``) when the file, or any file of a
two-expert merge or its analysis files, exists, so a merge never lands on an earlier one. A name the
user chose that exists is only replaced after :func:`~difflora_gui.qt.replace_question.ask_replace` said yes. After a merge the name
still shows the file just written (Copy command reproduces it); the next Merge with an automatic
name takes the next free number. Overwrite is never stored (the panel keeps it out of the project)
and is unticked after each merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from difflora_gui.merge.config import OUTPUT_PARAMS
from difflora_gui.merge.result import analysis_paths
from difflora_gui.qt.param_form import ParamForm

OUTPUT_TIP = (
    "Where the differential LoRA is written. The name follows the inputs until you edit it; it is "
    "numbered (…_00002) when the file exists. Choosing an existing file asks before it is replaced."
)
#: the largest number tried for a free ``…_NNNNN`` name
MAX_NUMBER = 99_999


def default_name(lora_a: str | Path, lora_b: str | Path) -> str:
    """``<A stem>-minus-<B stem>.safetensors`` (H2's ``merge/output_names`` when it is there)."""
    try:
        from difflora_gui.merge.output_names import default_output_name
    except ImportError:
        from difflora_gui.merge.input_checks import default_output_name
    return default_output_name(lora_a, lora_b)


def outputs_for(output: Path, experts: Iterable[str | None]) -> list[Path]:
    """The LoRA files a merge to ``output`` writes: itself, or ``<stem>_high_noise`` … per expert."""
    try:
        from difflora_gui.merge.output_names import outputs_for as engine_outputs_for
    except ImportError:
        engine_outputs_for = None
    experts = tuple(experts)
    if engine_outputs_for is not None:
        return list(engine_outputs_for(output, experts))
    from difflora_gui.lora.experts import expert_output_path

    return [output if expert is None else expert_output_path(output, expert) for expert in experts]


def files_written(output: Path, experts: Iterable[str | None], *, analysis: bool) -> list[Path]:
    """Every file a merge to ``output`` would write (the LoRA files and, if asked, their analysis)."""
    files = outputs_for(output, experts)
    if analysis:
        files += [extra for path in list(files) for extra in analysis_paths(path)]
    return files


def numbered_free(output: Path, experts: Iterable[str | None] = (None,)) -> Path:
    """``output`` if none of its files exist, else the first free ``<stem>_00002.safetensors`` …"""
    experts = tuple(experts)
    try:
        from difflora_gui.merge.output_names import numbered_free as engine_numbered_free
    except ImportError:
        engine_numbered_free = None
    if engine_numbered_free is not None:
        return Path(engine_numbered_free(output, experts))

    def taken(path: Path) -> bool:
        return any(file.exists() for file in files_written(path, experts, analysis=True))

    if not taken(output):
        return output
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    for number in range(2, MAX_NUMBER + 1):
        candidate = output.with_name(f"{stem}_{number:05d}{output.suffix}")
        if not taken(candidate):
            return candidate
    return output


class OutputBox(QFrame):
    """The Output card; :attr:`changed` fires on every change of its settings."""

    changed = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sectionCard")
        self.services = services
        self.auto = True  # the name follows the inputs
        self._pair: tuple[Path | None, Path | None] = (None, None)
        self._experts: tuple[str | None, ...] = (None,)
        self._undo_stack = None
        self._shown = ("", True)  # (text, auto) as last shown: the "before" of an undo step
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        heading = QLabel("Output")
        heading.setObjectName("cardHeading")
        layout.addWidget(heading)
        path_row = QHBoxLayout()
        self.output_edit = QLineEdit()
        self.output_edit.setObjectName("outputPath")
        self.output_edit.setPlaceholderText("<output folder>/<A>-minus-<B>.safetensors")
        self.output_edit.setToolTip(OUTPUT_TIP)
        self.output_browse = QPushButton("Browse…")
        self.output_browse.setObjectName("outputBrowse")
        path_row.addWidget(QLabel("File"))
        path_row.addWidget(self.output_edit, 1)
        path_row.addWidget(self.output_browse)
        layout.addLayout(path_row)
        # long file names must not widen the settings column: the note elides, whole in its tooltip
        self.auto_label = QElidingLabel()
        self.auto_label.setElideMode(Qt.TextElideMode.ElideMiddle)
        self.auto_label.setObjectName("outputNameNote")
        self.auto_label.setStyleSheet("color: #8b9098;")
        layout.addWidget(self.auto_label)
        self.output_form = ParamForm(OUTPUT_PARAMS)
        self.output_form.setObjectName("outputForm")
        layout.addWidget(self.output_form)
        device_row = QHBoxLayout()
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.setToolTip(
            "Where Analyze and Merge run (one job at a time per device); low-rank merges are fast on the CPU"
        )
        device_row.addWidget(QLabel("Device"))
        device_row.addWidget(self.device_combo, 1)
        layout.addLayout(device_row)
        overwrite = self.output_form.editors.get("overwrite")
        if overwrite is not None:
            overwrite.editor.setToolTip(
                "Replace the output if it exists (asked first; never stored, unticked after each merge)"
            )
        self.output_edit.textEdited.connect(self._on_edited)
        self.output_browse.clicked.connect(self.choose_output)
        self._show_note()

    # --- the name ----------------------------------------------------------------------------

    def text(self) -> str:
        return self.output_edit.text().strip()

    def set_inputs(self, pair: tuple[Path | None, Path | None], experts: Iterable[str | None]) -> None:
        """The files the name follows and the experts a merge writes (``(None,)``: one file)."""
        pair, experts = (pair[0], pair[1]), tuple(experts) or (None,)
        if (pair, experts) == (self._pair, self._experts):
            return  # the same files read again: the name stays as it is
        self._pair, self._experts = pair, experts
        self.refresh()

    @property
    def experts(self) -> tuple[str | None, ...]:
        return self._experts

    def automatic_path(self) -> Path | None:
        """The name that follows the inputs, numbered when it is taken (None without both inputs)."""
        a, b = self._pair
        if a is None or b is None:
            return None
        return numbered_free(Path(self.services.output_dir()) / default_name(a, b), self._experts)

    def refresh(self) -> None:
        """Show the automatic name again (only while the name is automatic)."""
        if not self.auto:
            self._show_note()
            return
        path = self.automatic_path()
        text = str(path) if path is not None else ""
        if self.output_edit.text() != text:
            self.output_edit.setText(text)
            self.changed.emit()
        self._remember_shown()

    def set_output(self, path: str | Path | None, *, auto: bool = False) -> None:
        """Write to ``path`` (``auto``: the name still follows the inputs: the next inputs rename it).

        Without a path the automatic name is shown."""
        self.auto = auto or not path
        if path:
            self.output_edit.setText(str(path))
            self._remember_shown()
        else:
            self.output_edit.clear()
            self.refresh()
        self.changed.emit()

    def set_auto(self, auto: bool) -> None:
        """Follow the inputs (or not) from now on, keeping the name shown until they change."""
        self.auto = auto
        self._remember_shown()

    def free_automatic_name(self) -> bool:
        """An automatic name whose file exists moves on to the next free number; True if it did."""
        if not self.auto or not self.text():
            return False
        if not any(path.exists() for path in files_written(Path(self.text()), self._experts, analysis=True)):
            return False
        before = self.output_edit.text()
        self.refresh()
        return self.output_edit.text() != before

    def choose_output(self) -> None:
        start = self.text() or self.services.output_dir()
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Save the differential LoRA as",
            start,
            "LoRA files (*.safetensors)",
            options=QFileDialog.Option.DontConfirmOverwrite,  # Merge asks, saying what the file is
        )
        if path:
            if not path.lower().endswith(".safetensors"):
                path += ".safetensors"
            before = self._shown
            self.set_output(path)
            self._record(before, "choose the output file")

    def _on_edited(self, _text: str) -> None:
        before = self._shown
        self.auto = not self.text()
        if self.auto:
            self.refresh()
        self._remember_shown()
        self._record(before, "edit the output name", merge_key="output-name")
        self.changed.emit()

    def _remember_shown(self) -> None:
        self._shown = (self.output_edit.text(), self.auto)
        self._show_note()

    def _show_note(self) -> None:
        if self.auto:
            note = "named after the inputs (edit to choose a name)" if self.output_edit.text() else ""
        else:
            note = "your name: kept when the inputs change (clear it to follow the inputs again)"
        if len(self._experts) > 1 or self._experts[0] is not None:
            files = ", ".join(
                p.name for p in outputs_for(Path(self.text() or "output.safetensors"), self._experts)
            )
            note = f"writes {files}" + (f"; {note}" if note else "")
        self.auto_label.setText(note)
        self.auto_label.setToolTip(note)
        self.auto_label.setVisible(bool(note))

    # --- undo ----------------------------------------------------------------------------------

    def set_undo_stack(self, stack) -> None:
        self._undo_stack = stack

    def _record(self, before: tuple[str, bool], text: str, merge_key: str | None = None) -> None:
        stack = self._undo_stack
        after = self._shown
        if stack is None or stack.applying or before == after:
            return
        stack.record(text, lambda: self._restore(before), lambda: self._restore(after), merge_key=merge_key)

    def _restore(self, state: tuple[str, bool]) -> None:
        text, auto = state
        self.auto = auto
        self.output_edit.setText(text)
        if auto:
            self.refresh()
        self._remember_shown()
        self.changed.emit()

    # --- overwrite -----------------------------------------------------------------------------

    def overwrite(self) -> bool:
        return bool(self.output_form.value("overwrite"))

    def clear_overwrite(self) -> None:
        """Untick Overwrite (after each merge, and whenever settings are restored)."""
        if "overwrite" in self.output_form.editors and self.overwrite():
            self.output_form.set_values({"overwrite": False})

    def existing_files(self, output: str | Path, *, analysis: bool) -> list[Path]:
        """The files a merge to ``output`` would replace."""
        return [
            path for path in files_written(Path(output), self._experts, analysis=analysis) if path.exists()
        ]
