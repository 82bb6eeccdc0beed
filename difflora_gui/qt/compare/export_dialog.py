"""The Compare panel's Export dialog: where the grid goes and how it is drawn.

The file's suffix is the format (``.mp4`` H.264, ``.webm`` VP9, ``.webp`` / ``.gif`` for short
clips); Browse… opens a save dialog in the folder the last export used (else the project's
workspace ``grids/`` folder). The layout (the first axis along the columns or down the rows), the
axis labels, a PNG contact sheet of one frame (the player's current frame by default) and the
JSON sidecar are options. The dialog never writes: the panel asks before replacing any file it
would write (:func:`existing_outputs`) and runs the export as a job.

:class:`ExportActions` (mixed into the panel) is Export… and Open grid sidecar…: the dialogs, the
overwrite question, and a sidecar's grid put back in the form.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.compare.grid_spec import LAYOUTS
from difflora_gui.compare.grid_types import EXPORT_SUFFIXES, ExportOptions
from difflora_gui.errors import UserError
from difflora_gui.qt.merge.run_bar import STATUS_COLORS
from difflora_gui.qt.replace_question import ask_replace

EXPORT_FILTER = (
    "H.264 video (*.mp4);;WebM video (*.webm);;Animated WebP, short clips (*.webp);;GIF, short clips (*.gif)"
)
EXPORT_SLOT = "compare-export"
SIDECAR_SLOT = "compare-sidecar"
SIDECAR_FILTER = "Grid sidecars (*.json);;All files (*)"
LAYOUT_TITLES = {
    "horizontal": "Horizontal (first axis along the columns)",
    "vertical": "Vertical (down the rows)",
}


def existing_outputs(out: str | Path, options: ExportOptions) -> list[Path]:
    """The files an export to ``out`` would write that exist already (the video, sheet, sidecar)."""
    from difflora_gui.compare.export import sheet_path
    from difflora_gui.compare.sidecar import sidecar_path_for

    out = Path(out)
    paths = [out]
    if options.sheet_frame is not None:
        paths.append(sheet_path(out))
    if options.sidecar:
        paths.append(sidecar_path_for(out))
    return [p for p in paths if p.exists()]


class ExportDialog(QDialog):
    """``path()`` and ``options()`` once accepted; ``folder_used(folder)`` is the panel's to remember."""

    def __init__(
        self,
        start_path: str,
        *,
        layout: str = "horizontal",
        frame: int = 0,
        frames: int = 1,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("compareExportDialog")
        self.setWindowTitle("Export the grid")
        self.chosen_folder = ""
        outer = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        path_row = QHBoxLayout()
        self.path_edit = QLineEdit(start_path)
        self.path_edit.setObjectName("compareExportPath")
        self.path_edit.setMinimumWidth(420)
        self.path_edit.setToolTip("The grid video: .mp4 (H.264), .webm, or .webp / .gif for short clips")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setObjectName("compareExportBrowse")
        self.browse_button.clicked.connect(self.browse)
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        label = QLabel("&File")
        label.setBuddy(self.path_edit)
        form.addRow(label, path_row)
        self.layout_combo = QComboBox()
        self.layout_combo.setObjectName("compareExportLayout")
        for name in LAYOUTS:
            self.layout_combo.addItem(LAYOUT_TITLES[name], name)
        self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(layout)))
        label = QLabel("&Layout")
        label.setBuddy(self.layout_combo)
        form.addRow(label, self.layout_combo)
        self.labels_check = QCheckBox("Draw the axis labels")
        self.labels_check.setObjectName("compareExportLabels")
        self.labels_check.setChecked(True)
        form.addRow("", self.labels_check)
        sheet_row = QHBoxLayout()
        self.sheet_check = QCheckBox("PNG contact sheet of frame")
        self.sheet_check.setObjectName("compareExportSheet")
        self.sheet_check.setToolTip("Also write NAME.sheet.png: one frame of every cell, labelled")
        self.sheet_check.setChecked(True)
        self.frame_spin = QSpinBox()
        self.frame_spin.setObjectName("compareExportFrame")
        self.frame_spin.setRange(0, max(0, frames - 1))
        self.frame_spin.setValue(min(max(0, frame), max(0, frames - 1)))
        self.frame_spin.setToolTip("The frame the sheet shows (the player's current frame to start with)")
        self.sheet_check.toggled.connect(self.frame_spin.setEnabled)
        sheet_row.addWidget(self.sheet_check)
        sheet_row.addWidget(self.frame_spin)
        sheet_row.addStretch(1)
        form.addRow("", sheet_row)
        self.sidecar_check = QCheckBox("JSON sidecar (renders this grid again: grid --from NAME.json)")
        self.sidecar_check.setObjectName("compareExportSidecar")
        self.sidecar_check.setChecked(True)
        form.addRow("", self.sidecar_check)
        outer.addLayout(form)
        self.problem_label = QLabel()
        self.problem_label.setObjectName("compareExportProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(f"color: {STATUS_COLORS['error']};")
        outer.addWidget(self.problem_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("compareExportOk")
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)
        self.path_edit.textChanged.connect(self._check)
        self._check()

    def browse(self) -> str:
        """The save dialog (it never replaces a file itself: the panel asks); the path chosen or ""."""
        current = self.path_edit.text().strip()
        path, chosen_filter = QFileDialog.getSaveFileName(
            self,
            "Export the grid",
            current,
            EXPORT_FILTER,
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if not path:
            return ""
        if not path.lower().endswith(EXPORT_SUFFIXES):
            # the filter chosen names the format when the typed name has no suffix of ours
            suffix = next((s for s in EXPORT_SUFFIXES if s in (chosen_filter or "")), ".mp4")
            path += suffix
        self.path_edit.setText(path)
        self.chosen_folder = str(Path(path).parent)
        return path

    def path(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def options(self) -> ExportOptions:
        return ExportOptions(
            layout=self.layout_combo.currentData(),
            sheet_frame=int(self.frame_spin.value()) if self.sheet_check.isChecked() else None,
            labels=self.labels_check.isChecked(),
            sidecar=self.sidecar_check.isChecked(),
        )

    def problem(self) -> str:
        text = self.path_edit.text().strip()
        if not text:
            return "Choose a file: Browse…"
        path = Path(text).expanduser()
        if path.suffix.lower() not in EXPORT_SUFFIXES:
            return f"End the name with {', '.join(EXPORT_SUFFIXES)}: the suffix chooses the format"
        if path.is_dir():
            return "That is a folder: add a file name"
        if not path.parent.is_dir():
            return f"The folder {path.parent} does not exist: Browse… to another one"
        return ""

    def _check(self) -> None:
        problem = self.problem()
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.export_button.setEnabled(not problem)

    def accept(self) -> None:
        if self.problem():
            return
        self.chosen_folder = str(self.path().parent)
        super().accept()


class ExportActions:
    """Export… and Open grid sidecar… (mixed into the panel)."""

    def default_export_path(self) -> Path:
        folder = self.folders.start(EXPORT_SLOT) or str(self.services.project.workspace.kind_dir("grids"))
        shape = "x".join(str(n) for n in self.shown_job.spec.shape) if self.shown_job else "grid"
        return Path(folder) / f"grid_{shape}.mp4"

    def export_clicked(self) -> bool:
        """The Export dialog, then (asking before replacing any file) the export job."""
        if not self.export_button.isEnabled():
            self.set_status(self.export_button.toolTip(), "warning")
            return False
        start = self.default_export_path()
        if not start.parent.exists():
            start.parent.mkdir(parents=True, exist_ok=True)  # the workspace's grids/ folder, made on demand
        dialog = ExportDialog(
            str(start),
            layout=self.layout_combo.currentData(),
            frame=self.player.frame_index,
            frames=max(1, self.player.frame_count),
            parent=self,
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        out, options = dialog.path(), dialog.options()
        self.folders.remember(EXPORT_SLOT, out.parent)
        existing = existing_outputs(out, options)
        overwrite = bool(existing)
        if existing and not ask_replace(self, existing, "the exported grid"):
            self.set_status("Export cancelled: nothing was written", "info")
            return False
        return self.export_grid(out, options, overwrite=overwrite) is not None

    def open_sidecar_clicked(self) -> bool:
        start = self.folders.start(SIDECAR_SLOT) or str(self.services.project.workspace.kind_dir("grids"))
        path, _ = QFileDialog.getOpenFileName(self, "Open a grid sidecar", start, SIDECAR_FILTER)
        if not path:
            return False
        self.folders.remember(SIDECAR_SLOT, Path(path).parent)
        return self.load_sidecar(path)

    def load_sidecar(self, path: str | Path) -> bool:
        """Put a sidecar's grid in the form (backend, base request, stack, target, axes)."""
        from difflora_gui.compare.sidecar import read_sidecar
        from difflora_gui.qt.preview.lora_stack import StackItem
        from difflora_gui.qt.preview.render_form import DEFAULTS

        try:
            job = read_sidecar(path)
        except UserError as exc:
            self.set_status(f"Cannot open the sidecar: {exc}", "error")
            return False
        spec = job.spec
        form = {k: v for k, v in spec.base.to_json().items() if k in DEFAULTS}
        options = {k: v for k, v in job.options.items() if k != "device"}
        self._restoring = True
        try:
            self.render_form.set_values(
                {**DEFAULTS, **form, "backend": job.backend, "options": {job.backend: options}}
            )
            self.stack.set_items([StackItem(entry) for entry in spec.base.loras], selected=spec.target)
            self.axes_form.set_axes(spec.axes)
            self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(job.export.layout)))
        finally:
            self._restoring = False
        self._on_model_changed()
        self._inputs_changed()
        missing = [e.file for e in spec.base.loras if not Path(e.file).is_file()]
        if missing:
            self.set_status(
                f"Loaded {Path(path).name}, but {Path(missing[0]).name} is missing: put it back", "warning"
            )
        else:
            self.set_status(f"Loaded {Path(path).name}: Render grid replays its cached cells", "ok")
        return True
