"""The Merge workbench panel: two component LoRAs in, a differential LoRA and its analysis out.

Left, the settings: input cards (A +, B −) with what ``inspect`` says and how A and B differ, the
strategy with its generated form, rank and strength, the targets (groups × block grid ⇄ selector
text), the output (:mod:`~difflora_gui.qt.merge.output_box`); below them the run bar (Analyze,
Merge, Cancel, progress, Copy command, Re-run recipe). Right, the analysis plots, built on first use.

Work happens in jobs (:mod:`~difflora_gui.qt.merge.panel_jobs`): reading an input is a ``light`` job
(``inspect``), Analyze and Merge run on the chosen device's lane. The panel only connects to its
jobs' handles, so it stays usable while they run. The settings live in the project's ``merge``
section (``settings``: the form as a ``MergeParams`` recipe, Overwrite never included; ``recipe``:
what the last merge ran, ``created`` included, so Re-run recipe reproduces its file bit for bit);
every merge is also a record of the project's merge history
(:mod:`~difflora_gui.merge.history`). Edits to targets, block weights, forms and the output
name go on :attr:`MergePanel.undo_stack` (Edit ▸ Undo).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QSplitter, QVBoxLayout, QWidget

import difflora_gui
from difflora_gui.errors import UserError
from difflora_gui.merge.config import RANK_PARAMS, STRENGTH_PARAMS
from difflora_gui.merge.params import MergeParams
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.merge.analysis_side import AnalysisSide
from difflora_gui.qt.merge.inputs import InputsBox
from difflora_gui.qt.merge.output_box import OutputBox
from difflora_gui.qt.merge.panel_jobs import PanelJobs
from difflora_gui.qt.merge.panel_recipe import INPUT_KEYS, PanelRecipe
from difflora_gui.qt.merge.run_bar import RunBar
from difflora_gui.qt.merge.shortcuts import apply_tab_order, install_shortcuts
from difflora_gui.qt.merge.strategy import StrategyChooser
from difflora_gui.qt.merge.targets import TargetSelector
from difflora_gui.qt.merge.to_preview import PreviewLink
from difflora_gui.qt.param_form import ParamForm
from difflora_gui.qt.theme import section_card
from difflora_gui.qt.undo import UndoStack

SECTION = "merge"
#: how long after the last edit the settings are written into the project
SAVE_DELAY_MS = 250


def script_path() -> str:
    """``main.py`` of this app (absolute when running from a checkout), for Copy command."""
    candidate = Path(difflora_gui.__file__).resolve().parent.parent / "main.py"
    return str(candidate) if candidate.is_file() else "main.py"


class MergePanel(PanelRecipe, PanelJobs, QWidget):
    """The Merge section's panel (``PanelSpec.widget``); takes dropped ``.safetensors`` files."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mergeWorkbench")
        self.services = services
        self.job = None  # the running Analyze or Merge job's handle
        self.job_kind = ""
        self._job_project = None
        self._job_record_id = ""  # the id of the running job's record and event-log folder
        self._replacing: list[str] = []  # files the running merge replaces (the user said yes)
        self.last_result = None  # MergeResult of the last merge
        self._created: str | None = None  # the recipe's creation time while the form shows that recipe
        self._restoring = False
        self._input_signature: tuple = ()  # the input fields last seen (to tell other inputs from a re-read)
        self.undo_stack = UndoStack(self)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_settings)

        self._build()
        self._connect()
        self._share_undo_stack()
        self.shortcuts = install_shortcuts(self)
        self._restoring = True
        self.strategy.set_state(self._default_strategy())
        self._restoring = False
        self.restore_from_project()
        self.update_tab_order()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # modest, so the window keeps its docks at their widths; the panel scrolls when it is short of room
        return QSize(900, 640)

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # the whole panel scrolls when the window is smaller than it: it never sets the window's minimum size
        frame = QScrollArea()
        frame.setObjectName("mergePanelScroll")
        frame.setWidgetResizable(True)
        frame.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(frame)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        frame.setWidget(self.splitter)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 6, 0)
        left_layout.setSpacing(6)
        scroll = QScrollArea()
        scroll.setObjectName("mergeSettingsScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(8)
        column.addWidget(self._build_inputs())
        column.addWidget(self._build_strategy())
        column.addWidget(self._build_rank_strength())
        column.addWidget(self._build_targets())
        column.addWidget(self._build_output())
        column.addStretch(1)
        scroll.setWidget(body)
        left_layout.addWidget(scroll, 1)
        left_layout.addWidget(self._build_run_bar())
        left.setMinimumWidth(400)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self._build_analysis_side())
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([470, 700])

    def _build_inputs(self) -> QWidget:
        self.inputs = box = InputsBox(self.services)
        # the inputs' state, by name (the same objects the box keeps up to date)
        self.paths, self.summaries, self.errors = box.paths, box.summaries, box.errors
        self.cards, self.swap_button, self.issues_label = box.cards, box.swap_button, box.issues_label
        return box

    def _build_strategy(self) -> QWidget:
        frame, layout = section_card("Strategy")
        self.strategy = StrategyChooser(self.services.host.merge_strategies())
        layout.addWidget(self.strategy)
        return frame

    def _build_rank_strength(self) -> QWidget:
        frame, layout = section_card("Rank and strength")
        self.rank_form = ParamForm(RANK_PARAMS)
        self.rank_form.setObjectName("rankForm")
        self.strength_form = ParamForm(STRENGTH_PARAMS)
        self.strength_form.setObjectName("strengthForm")
        layout.addWidget(self.rank_form)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #30333a;")
        layout.addWidget(line)
        layout.addWidget(self.strength_form)
        self.rank_hint = None  # "rank 8 keeps 99 % of the targeted energy", once an analysis is there
        try:
            from difflora_gui.qt.merge.rank_hint import RankHint
        except ImportError:
            return frame
        self.rank_hint = RankHint()
        self.rank_hint.attach(self.rank_form, "rank")
        return frame

    def _build_targets(self) -> QWidget:
        frame, layout = section_card("Targets")
        self.targets = TargetSelector()
        layout.addWidget(self.targets)
        return frame

    def _build_output(self) -> QWidget:
        self.output_box = box = OutputBox(self.services)
        # the output's widgets, by name (tests and screenshots use them)
        self.output_edit, self.output_browse = box.output_edit, box.output_browse
        self.output_form, self.device_combo = box.output_form, box.device_combo
        self._fill_devices()
        return box

    def _build_run_bar(self) -> QWidget:
        self.run_bar = bar = RunBar()
        # the buttons and labels, by name (tests and screenshots use them)
        self.analyze_button, self.merge_button, self.cancel_button = (
            bar.analyze_button,
            bar.merge_button,
            bar.cancel_button,
        )
        self.copy_button, self.rerun_button = bar.copy_button, bar.rerun_button
        self.reason_label, self.status_label = bar.reason_label, bar.status_label
        self.open_folder_button = bar.open_folder_button
        self.preview_link = PreviewLink(self.services)  # Merge → Preview: "Preview it"
        bar.attach_preview_link(self.preview_link)
        self.preview_button = self.preview_link.button
        return bar

    def _build_analysis_side(self) -> QWidget:
        self.analysis_side = side = AnalysisSide(self._export_base)
        side.block_clicked.connect(self.targets.toggle_block)
        side.exported.connect(self._on_exported)
        side.export_failed.connect(lambda message: self._set_status(message, "error"))
        self.export_png_button, self.export_csv_button = side.export_png_button, side.export_csv_button
        self.export_actions = side.export_actions
        return side

    @property
    def analysis_view(self):
        """The plots (None until they are first needed)."""
        return self.analysis_side.view

    @property
    def analysis(self):
        """The analysis on show (of the last Analyze or Merge)."""
        return self.analysis_side.result

    def _connect(self) -> None:
        self.inputs.changed.connect(self._on_inputs_changed)
        self.inputs.reading_started.connect(self.analysis_side.prepare)
        self.inputs.summary_read.connect(self._on_summary_read)
        for signal in (
            self.strategy.changed,
            self.rank_form.changed,
            self.strength_form.changed,
            self.targets.changed,
            self.output_form.changed,
            self.output_box.changed,
        ):
            signal.connect(self._on_settings_changed)
        self.targets.changed.connect(self._on_targets_changed)
        self.device_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.analyze_button.clicked.connect(self.analyze)
        self.merge_button.clicked.connect(self.merge)
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button.clicked.connect(self.copy_command)
        self.rerun_button.clicked.connect(self.rerun_recipe)
        self.services.project_replaced.connect(self._on_project_replaced)
        self.services.project_info_changed.connect(self.output_box.refresh)
        self.services.devices.detected.connect(self._on_devices_detected)

    def _share_undo_stack(self) -> None:
        """One undo stack for the panel: each part records its own edits on it (when it can)."""
        for part in (
            self.inputs,
            self.strategy,
            self.rank_form,
            self.strength_form,
            self.targets,
            self.output_form,  # Overwrite too: undoing into it is harmless, a replacement always asks
            self.output_box,
        ):
            setter = getattr(part, "set_undo_stack", None)
            if setter is not None:
                setter(self.undo_stack)
        grid = getattr(self.targets, "block_grid", None)
        if grid is not None and hasattr(grid, "set_undo_stack"):
            grid.set_undo_stack(self.undo_stack)

    # --- keyboard ----------------------------------------------------------------------------

    def update_tab_order(self) -> None:
        """Tab goes top to bottom: inputs, strategy, rank, targets (block grid included), output,
        run bar, analysis."""
        sections = [self.inputs, self.strategy, self.rank_form, self.strength_form, self.targets]
        apply_tab_order([*sections, self.output_box, self.run_bar, self.analysis_side])

    def focus_first(self) -> None:
        """Put the keyboard focus on the panel's first input (the window does, when it shows)."""
        chain = [w for w in self._tab_chain() if w.isVisibleTo(self) and w.isEnabled()]
        if chain:
            chain[0].setFocus(Qt.FocusReason.TabFocusReason)

    def _tab_chain(self):
        from difflora_gui.qt.merge.shortcuts import focus_chain

        return focus_chain(self.inputs)

    # --- inputs ------------------------------------------------------------------------------

    def accept_files(self, paths: list[Path]) -> None:
        """Files dropped on the window (``PanelSpec.accepts``): they fill LoRA A and LoRA B."""
        self.inputs.accept_files(paths)

    def set_input(self, role: str, path: str | Path) -> None:
        self.inputs.set_input(role, path)

    def clear_input(self, role: str) -> None:
        self.inputs.clear_input(role)

    @property
    def issues(self):
        return self.inputs.issues

    def _on_inputs_changed(self, paths_changed: bool) -> None:
        self.targets.set_block_count(self.inputs.block_count())
        self.targets.set_module_names(self.inputs.module_names())
        signature = tuple(sorted((key, str(value)) for key, value in self._input_fields().items()))
        if signature != self._input_signature:  # other files (or experts) than before
            self._input_signature = signature
            self._follow_inputs()
            self.mark_analysis_stale("the inputs changed")
            if self.job is None:
                self.run_bar.clear_status()  # the last job's line was about other inputs
        if paths_changed:
            self._on_settings_changed()
        else:
            self._update_run_state()
        QTimer.singleShot(
            0, self, self.update_tab_order
        )  # the block grid is (re)made when the inputs are read

    def _follow_inputs(self) -> None:
        """Tell the output which files it is named after and which experts it writes."""
        name_pair = getattr(self.inputs, "name_pair", None)
        pair = name_pair() if name_pair is not None else (self.paths["a"], self.paths["b"])
        experts: tuple[str | None, ...] = (None,)
        if getattr(self.inputs, "two_expert", False):
            expert = (
                getattr(self.inputs, "write_expert", None) or self._input_fields().get("expert") or "both"
            )
            experts = ("high", "low") if expert == "both" else (expert,)
        self.output_box.set_inputs(pair, experts)

    def _input_fields(self) -> dict[str, Any]:
        """The recipe's input fields (per expert when the inputs box has them)."""
        fields = getattr(self.inputs, "fields", None)
        if fields is not None:
            data = dict(fields())
        else:
            data = {
                role: str(self.paths[r]) if self.paths[r] else None
                for role, r in (("lora_a", "a"), ("lora_b", "b"))
            }
        known = MergeParams().to_json()
        return {key: value for key, value in data.items() if key in known and key in INPUT_KEYS}

    def _on_summary_read(self) -> None:
        if (
            self.analysis_view is not None
            and self.analysis_view.is_built
            and not self.services.jobs.running_jobs()
        ):
            freeze_heap_after_heavy_imports()  # torch came with this job (and no other job's objects are live)

    # --- analysis ----------------------------------------------------------------------------

    def mark_analysis_stale(self, reason: str) -> None:
        """The analysis on show is not of these settings: marked stale (or hidden), export disabled."""
        side = self.analysis_side
        if side.result is None:
            return
        for target in (side, side.view):
            if target is not None and hasattr(target, "mark_stale"):
                target.mark_stale(reason)
                break
        else:  # no stale display yet: hide the old plots rather than show them beside other inputs
            side.result = None
            if side.view is not None:
                clear = getattr(side.view, "clear", None)
                clear() if clear is not None else side.view.hide()
        for button in (self.export_png_button, self.export_csv_button):
            button.setEnabled(False)
        self._show_rank_hint(None)

    def ensure_analysis_view(self):
        return self.analysis_side.ensure_view()

    def show_analysis(self, result, heading: str) -> None:
        self.analysis_side.set_selected_blocks(self._selected_blocks())
        if self.analysis_side.view is not None and not self.analysis_side.view.isVisible():
            self.analysis_side.view.show()
        self.analysis_side.show_analysis(result, heading)
        self._show_rank_hint(result)

    def _show_rank_hint(self, result) -> None:
        """The rank hint of this analysis (``None``: no analysis, no hint)."""
        if self.rank_hint is None:
            return
        selector = self.targets.selector()
        weight_of = getattr(selector, "weight_of", None) if selector is not None else None
        self.rank_hint.set_analysis(result, weight_of)

    def _export_base(self) -> Path:
        output = self.output_box.text()
        if output:
            path = Path(output)
            return path.with_name(path.name[: -len(path.suffix)] if path.suffix else path.name)
        return Path(self.services.output_dir()) / "merge-analysis"

    def _on_exported(self, path: str) -> None:
        self.services.log(f"Merge: exported {path}")
        self.services.show_status(f"Saved {Path(path).name}")

    # --- settings ----------------------------------------------------------------------------

    def _fill_devices(self) -> None:
        current = self.device_combo.currentData() or self.services.default_device()
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItem("auto (first GPU, else CPU)", "auto")
        for device in self.services.devices.devices():
            self.device_combo.addItem(device.label, device.id)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(index if index >= 0 else 0)
        self.device_combo.blockSignals(False)

    def _on_devices_detected(self, _devices) -> None:
        self._fill_devices()

    def device(self) -> str:
        """The device to run on (``auto`` resolved; ``cpu`` while detection has no answer yet)."""
        chosen = str(self.device_combo.currentData() or "cpu")
        if chosen == "auto":
            return self.services.devices.resolve("auto") or "cpu"
        return chosen

    def _on_settings_changed(self, *_args) -> None:
        if self._restoring:
            return
        self._created = None  # the form no longer shows exactly the last recipe
        self._update_run_state()
        self._save_timer.start()

    def _on_targets_changed(self) -> None:
        self.analysis_side.set_selected_blocks(self._selected_blocks())

    def _selected_blocks(self) -> set[int] | None:
        selector = self.targets.selector()
        if selector is None:
            return set()
        return None if selector.blocks is None else set(selector.blocks)

    def choose_output(self) -> None:
        self.output_box.choose_output()

    def set_output(self, path: str | Path) -> None:
        """Write the output here (no longer the automatic name)."""
        self.output_box.set_output(path)

    def _set_status(self, text: str, level: str) -> None:
        self.run_bar.set_status(text, level)

    # --- copy command ------------------------------------------------------------------------

    def command_line(self, *, windows: bool | None = None) -> str:
        """The equivalent ``<python> main.py merge …`` of the form (raises ``UserError`` if incomplete)."""
        params = self.build_params(for_merge=True)
        return params.to_command_line(python=sys.executable, script=script_path(), windows=windows)

    def copy_command(self) -> None:
        try:
            text = self.command_line()
        except UserError as exc:
            self._set_status(f"cannot build the command: {exc}", "error")
            return
        QGuiApplication.clipboard().setText(text)
        self.services.show_status("Merge command copied to the clipboard")
        self.services.log(f"Merge command: {text}")
