"""The Merge workbench panel: two component LoRAs in, a differential LoRA and its analysis out.

Left, the settings: input cards (A +, B −) with what ``inspect`` says and how A and B differ, the
strategy with its generated form, rank and strength, the targets (groups × block grid ⇄ selector
text), the output; below them the run bar (Analyze, Merge, Cancel, progress, Copy command,
Re-run recipe). Right, the analysis plots, built on first use.

Work happens in jobs: reading an input is a ``light`` job (``inspect``), Analyze and Merge run on
the chosen device's lane. The panel only connects to its jobs' handles, so it stays usable while
they run. The settings live in the project's ``merge`` section (``settings``: the form as a
``MergeParams`` recipe; ``recipe``: what the last merge ran, ``created`` included, so Re-run
recipe reproduces its file bit for bit).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import difflora_gui
from difflora_gui.errors import UserError
from difflora_gui.jobs.job import JobRequest
from difflora_gui.merge.config import OUTPUT_PARAMS, RANK_PARAMS, STRENGTH_PARAMS, form_values, merge_fields
from difflora_gui.merge.input_checks import default_output_name
from difflora_gui.merge.params import DEFAULT_STRATEGY, MergeParams
from difflora_gui.project import new_record_id
from difflora_gui.qt.heap import freeze_heap_after_heavy_imports
from difflora_gui.qt.merge.analysis_side import AnalysisSide
from difflora_gui.qt.merge.inputs import ROLES, InputsBox, short_name
from difflora_gui.qt.merge.run_bar import RunBar
from difflora_gui.qt.merge.strategy import StrategyChooser
from difflora_gui.qt.merge.targets import TargetSelector
from difflora_gui.qt.param_form import ParamForm

SECTION = "merge"
TASKS = "difflora_gui.merge.workbench_jobs"
#: how long after the last edit the settings are written into the project
SAVE_DELAY_MS = 250


def script_path() -> str:
    """``main.py`` of this app (absolute when running from a checkout), for Copy command."""
    candidate = Path(difflora_gui.__file__).resolve().parent.parent / "main.py"
    return str(candidate) if candidate.is_file() else "main.py"


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("sectionCard")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 10, 12, 10)
    layout.setSpacing(6)
    heading = QLabel(title)
    heading.setObjectName("cardHeading")
    layout.addWidget(heading)
    return frame, layout


class MergePanel(QWidget):
    """The Merge section's panel (``PanelSpec.widget``); takes dropped ``.safetensors`` files."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mergeWorkbench")
        self.services = services
        self.job = None  # the running Analyze or Merge job's handle
        self.job_kind = ""
        self._job_project = None
        self._job_record_id = ""  # the id of the running job's record and event-log folder
        self.last_result = None  # MergeResult of the last merge
        self._created: str | None = None  # the recipe's creation time while the form shows that recipe
        self._output_auto = True
        self._restoring = False
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_settings)

        self._build()
        self._connect()
        self._restoring = True
        self.strategy.set_state(self._default_strategy())
        self._restoring = False
        self.restore_from_project()

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
        frame, layout = _card("Strategy")
        self.strategy = StrategyChooser(self.services.host.merge_strategies())
        layout.addWidget(self.strategy)
        return frame

    def _build_rank_strength(self) -> QWidget:
        frame, layout = _card("Rank and strength")
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
        return frame

    def _build_targets(self) -> QWidget:
        frame, layout = _card("Targets")
        self.targets = TargetSelector()
        layout.addWidget(self.targets)
        return frame

    def _build_output(self) -> QWidget:
        frame, layout = _card("Output")
        path_row = QHBoxLayout()
        path_label = QLabel("File")
        self.output_edit = QLineEdit()
        self.output_edit.setObjectName("outputPath")
        self.output_edit.setPlaceholderText("<output folder>/<A>-minus-<B>.safetensors")
        self.output_edit.setToolTip(
            "Where the differential LoRA is written (an existing file is never replaced "
            "unless Overwrite is ticked)"
        )
        self.output_browse = QPushButton("Browse…")
        self.output_browse.setObjectName("outputBrowse")
        path_row.addWidget(path_label)
        path_row.addWidget(self.output_edit, 1)
        path_row.addWidget(self.output_browse)
        layout.addLayout(path_row)
        self.output_form = ParamForm(OUTPUT_PARAMS)
        self.output_form.setObjectName("outputForm")
        layout.addWidget(self.output_form)
        device_row = QHBoxLayout()
        device_label = QLabel("Device")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.setToolTip(
            "Where Analyze and Merge run (one job at a time per device); low-rank merges are fast on the CPU"
        )
        device_row.addWidget(device_label)
        device_row.addWidget(self.device_combo, 1)
        layout.addLayout(device_row)
        self._fill_devices()
        return frame

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
        ):
            signal.connect(self._on_settings_changed)
        self.targets.changed.connect(self._on_targets_changed)
        self.output_edit.textEdited.connect(self._on_output_edited)
        self.output_browse.clicked.connect(self.choose_output)
        self.device_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.analyze_button.clicked.connect(self.analyze)
        self.merge_button.clicked.connect(self.merge)
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button.clicked.connect(self.copy_command)
        self.rerun_button.clicked.connect(self.rerun_recipe)
        self.services.project_replaced.connect(self._on_project_replaced)
        self.services.project_info_changed.connect(self._update_default_output)
        self.services.devices.detected.connect(self._on_devices_detected)

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
        if paths_changed:
            self._update_default_output()
            self._on_settings_changed()
        else:
            self._update_run_state()

    def _on_summary_read(self) -> None:
        if self.analysis_view is not None and self.analysis_view.is_built and not self.services.jobs.running_jobs():
            freeze_heap_after_heavy_imports()  # torch came with this job (and no other job's objects are live)

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

    def _on_output_edited(self, _text: str) -> None:
        self._output_auto = not self.output_edit.text().strip()
        if self._output_auto:
            self._update_default_output()
        self._on_settings_changed()

    def _update_default_output(self) -> None:
        if not self._output_auto:
            return
        a, b = self.paths["a"], self.paths["b"]
        text = str(Path(self.services.output_dir()) / default_output_name(a, b)) if a and b else ""
        if self.output_edit.text() != text:
            self.output_edit.setText(text)
            self._update_run_state()

    def choose_output(self) -> None:
        start = self.output_edit.text() or self.services.output_dir()
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the differential LoRA as", start, "LoRA files (*.safetensors)"
        )
        if path:
            if not path.lower().endswith(".safetensors"):
                path += ".safetensors"
            self.set_output(path)

    def set_output(self, path: str | Path) -> None:
        """Write the output here (no longer the automatic name)."""
        self._output_auto = False
        self.output_edit.setText(str(path))
        self._on_settings_changed()

    # --- the recipe --------------------------------------------------------------------------

    def build_params(self, *, for_merge: bool = True) -> MergeParams:
        """The recipe the form describes, checked (``UserError`` says what is missing or wrong)."""
        for role in ROLES:
            if self.paths[role] is None:
                raise UserError(f"choose LoRA {role.upper()}")
        selector = self.targets.selector()
        problem = self.targets.problem()
        if selector is None or problem:
            raise UserError(f"targets: {problem}")
        problem = self.strategy.problem()
        if problem:
            raise UserError(f"strategy: {problem}")
        for form in (self.rank_form, self.strength_form, self.output_form):
            errors = form.errors()
            if errors:
                raise UserError(next(iter(errors.values())))
        fields = merge_fields(self.rank_form.values(), self.strength_form.values(), self.output_form.values())
        output = self.output_edit.text().strip()
        if for_merge:
            if not output:
                raise UserError("choose the output file")
            if not output.lower().endswith(".safetensors"):
                raise UserError("the output must be a .safetensors file")
        else:
            fields["overwrite"] = False
            fields["analyze"] = False
        params = MergeParams(
            lora_a=str(self.paths["a"]),
            lora_b=str(self.paths["b"]),
            output=output if for_merge else None,
            targets=selector.to_text(),
            strategy=self.strategy.strategy_name(),
            strategy_params=self.strategy.strategy_params(),
            device=self.device(),
            created=self._created,
            **fields,
        )
        return params.normalized()

    def settings_json(self) -> dict[str, Any]:
        """The form as a recipe dict for the project (whatever is set, even if incomplete)."""
        fields = merge_fields(self.rank_form.values(), self.strength_form.values(), self.output_form.values())
        data = MergeParams().to_json()
        data.update(fields)
        data.update(
            lora_a=str(self.paths["a"] or ""),
            lora_b=str(self.paths["b"] or ""),
            output=self.output_edit.text().strip() or None,
            targets=self.targets.text(),
            strategy=self.strategy.strategy_name(),
            strategy_params=self.strategy.strategy_params(),
            device=str(self.device_combo.currentData() or "cpu"),
            created=self._created,
        )
        return data

    @Slot()
    def save_settings(self) -> None:
        """Write the form into the project's ``merge`` section (the window saves the file)."""
        self._save_timer.stop()
        self.services.project.update_section(
            SECTION, settings=self.settings_json(), output_auto=self._output_auto
        )

    def apply_recipe(self, recipe: MergeParams | dict, *, output_auto: bool = False) -> list[str]:
        """Show a recipe in the form (and read its inputs); returns what could not be restored."""
        data = recipe.to_json() if isinstance(recipe, MergeParams) else dict(recipe)
        problems: list[str] = []
        try:
            params = MergeParams.from_json({k: v for k, v in data.items() if k in MergeParams().to_json()})
        except (UserError, TypeError) as exc:
            return [f"the stored merge settings cannot be used: {exc}"]
        self._restoring = True
        try:
            for role, path in (("a", params.lora_a), ("b", params.lora_b)):
                if not path:
                    self.clear_input(role)
                elif self.paths[role] != Path(path):
                    self.set_input(role, path)
            values = form_values(params.to_json())
            self.rank_form.set_values(values["rank"])
            self.strength_form.set_values(values["strength"])
            self.output_form.set_values(values["output"])
            problems += self.strategy.set_state(params.strategy, params.strategy_params)
            self.targets.set_text(params.targets or "all")
            index = self.device_combo.findData(params.device)
            if index >= 0:
                self.device_combo.setCurrentIndex(index)
            self._output_auto = output_auto or not params.output
            if params.output and not self._output_auto:
                self.output_edit.setText(str(params.output))
            else:
                self.output_edit.clear()
                self._update_default_output()
        finally:
            self._restoring = False
        self._created = params.created
        self._update_run_state()
        return problems

    def restore_from_project(self) -> None:
        """Show the open project's merge settings (nothing to do in a new project)."""
        data = self.services.project.section(SECTION)
        settings = data.get("settings") or data.get("recipe")
        if isinstance(settings, dict):
            problems = self.apply_recipe(settings, output_auto=bool(data.get("output_auto", False)))
            for problem in problems:
                self.services.log(f"Merge: {problem}", "warning")
        self._save_timer.stop()  # what was just shown came from the project: nothing to write back
        self._update_run_state()

    def reset(self) -> None:
        """Back to a fresh form: no inputs, default settings, the Settings device."""
        self._save_timer.stop()
        self.apply_recipe(MergeParams(strategy=self._default_strategy()), output_auto=True)
        index = self.device_combo.findData(self.services.default_device())
        self._restoring = True
        self.device_combo.setCurrentIndex(max(index, 0))
        self._restoring = False
        self._created = None
        self.run_bar.clear_status()

    def _default_strategy(self) -> str:
        names = list(self.strategy.strategies)
        return DEFAULT_STRATEGY if DEFAULT_STRATEGY in names else (names[0] if names else DEFAULT_STRATEGY)

    def _on_project_replaced(self, _project) -> None:
        self.reset()
        self.restore_from_project()

    def stored_recipe(self) -> MergeParams | None:
        recipe = self.services.project.section(SECTION).get("recipe")
        if not isinstance(recipe, dict):
            return None
        try:
            return MergeParams.from_json(recipe)
        except (UserError, TypeError):
            return None

    # --- running -----------------------------------------------------------------------------

    def run_problem(self, *, for_merge: bool = True) -> str:
        """Why Merge (or Analyze) cannot run now ("" when it can)."""
        if self.job is not None:
            return f"{self.job_kind} is running"
        problem = self.inputs.problem()
        if problem:
            return problem
        try:
            params = self.build_params(for_merge=for_merge)
        except UserError as exc:
            return str(exc)
        if for_merge:
            from difflora_gui.merge.engine import analysis_paths

            output = Path(params.output or "")
            if output.exists() and not params.overwrite:
                return f"{output.name} already exists: tick Overwrite or choose another file"
            if params.analyze and not params.overwrite:
                for extra in analysis_paths(output):
                    if extra.exists():
                        return f"{extra.name} already exists: tick Overwrite or untick Analysis files"
            if not output.parent.is_dir() and not self._is_default_folder(output.parent):
                return f"the output folder does not exist: {output.parent}"
        return ""

    def _is_default_folder(self, folder: Path) -> bool:
        return Path(self.services.output_dir()) == folder

    def _update_run_state(self) -> None:
        running = self.job is not None
        self.run_bar.set_problems(
            merge=self.run_problem(for_merge=True), analyze=self.run_problem(for_merge=False), running=running
        )
        self.copy_button.setEnabled(self.paths["a"] is not None and self.paths["b"] is not None)
        self.rerun_button.setEnabled(not running and self.stored_recipe() is not None)

    def analyze(self) -> None:
        """Compute the analysis of the current inputs and targets (nothing is written)."""
        try:
            params = self.build_params(for_merge=False)
        except UserError as exc:
            self._set_status(str(exc), "error")
            return
        self._submit("analyze", params)

    def merge(self) -> None:
        """Merge with the form's settings and write the output."""
        problem = self.run_problem(for_merge=True)
        if problem:
            self._set_status(problem, "error")
            return
        params = self.build_params(for_merge=True)
        self._submit("merge", params)

    def rerun_recipe(self) -> None:
        """Run the last merge's recipe again, exactly (Overwrite as ticked now)."""
        recipe = self.stored_recipe()
        if recipe is None:
            self._set_status("this project has no merge recipe yet", "error")
            return
        overwrite = bool(self.output_form.value("overwrite"))  # the user's choice now, not the recipe's
        for problem in self.apply_recipe(recipe, output_auto=False):
            self.services.log(f"Merge: {problem}", "warning")
        self._restoring = True
        self.output_form.set_values({"overwrite": overwrite})
        self._restoring = False
        recipe.overwrite = overwrite
        if recipe.device not in self.services.devices.ids():  # the device is part of the recipe (and bits)
            self.services.log(
                f"Merge: the recipe ran on {recipe.device}, which is not available; running on {self.device()} "
                "(the file may differ in its last bits)",
                "warning",
            )
            recipe.device = self.device()
        output = Path(recipe.output or "")
        if output.exists() and not recipe.overwrite:
            self._set_status(f"{output.name} already exists: tick Overwrite to write it again", "error")
            return
        self._submit("merge", recipe.normalized())

    def _submit(self, kind: str, params: MergeParams) -> None:
        if self.job is not None:
            return
        if kind == "merge" and params.output:
            folder = Path(params.output).parent
            if not folder.is_dir() and self._is_default_folder(folder):
                folder.mkdir(parents=True, exist_ok=True)
        self.analysis_side.prepare()
        a, b = short_name(params.lora_a), short_name(params.lora_b)
        title = f"Merge {a} − {b}" if kind == "merge" else f"Analyze {a} − {b}"
        function = f"{TASKS}:merge" if kind == "merge" else f"{TASKS}:analyze"
        project = self.services.project
        self._job_record_id = new_record_id()
        events = project.workspace.events_path("merges" if kind == "merge" else "jobs", self._job_record_id)
        request = JobRequest(title, function, params, lane="device", device=params.device, event_log=events)
        self.job_kind = kind
        self._job_project = project  # the recipe goes to this project, even if another opens
        self.job = handle = self.services.jobs.submit(request)
        handle.progressed.connect(self._on_progress)
        handle.succeeded.connect(self._on_succeeded)
        handle.failed.connect(self._on_failed)
        handle.finished.connect(self._on_finished)
        self.run_bar.show_queued()
        self._set_status(f"{'Merging' if kind == 'merge' else 'Analyzing'} on {params.device}…", "info")
        self._update_run_state()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.run_bar.eta_label.setText("cancelling…")

    def _on_progress(self, progress) -> None:
        if self.job is None:
            return
        self.run_bar.show_progress(
            progress.fraction, self.job.eta_text or f"{progress.done:.0f}/{progress.total or 0:.0f}"
        )

    def _on_succeeded(self, result) -> None:
        if self.job_kind == "merge":
            self.last_result = result
            record = self._job_project.record_merge(result.recipe, result.output, id=self._job_record_id)
            self._job_project.update_section(
                SECTION, recipe=result.recipe, last_output=result.output, last_merge_id=record.id
            )
            if self._job_project is self.services.project:
                self._created = result.recipe.get("created")
                self.save_settings()
            for line in result.summary().splitlines():
                self.services.log(f"Merge: {line}")
            for warning in result.warnings:
                self.services.log(f"Merge: {warning}", "warning")
            name = Path(result.output).name if result.output else "?"
            self._set_status(
                f"Wrote <b>{html.escape(name)}</b>: {result.merged} modules merged, alpha {result.alpha:.6g}, "
                f"{result.elapsed_s:.2f} s",
                "ok",
                rich=True,
            )
            if result.analysis is not None:
                self.show_analysis(result.analysis, f"Merge → {name}")
        else:
            self._set_status(f"Analysis of {len(result.rows)} modules (nothing written)", "ok")
            self.show_analysis(result, "Analysis (nothing written)")

    def _on_failed(self, message: str, _trace: str) -> None:
        what = "Merge" if self.job_kind == "merge" else "Analyze"
        self._set_status(f"{what} failed: {message}", "error")

    def _on_finished(self, state: str) -> None:
        kind = self.job_kind
        self.job = None
        self.job_kind = ""
        self.run_bar.show_ended(state == "done")
        if state == "cancelled":
            self._set_status(
                f"{'Merge' if kind == 'merge' else 'Analyze'} cancelled; nothing was written.", "warning"
            )
        self._update_run_state()

    def _set_status(self, text: str, level: str, *, rich: bool = False) -> None:
        self.run_bar.set_status(text, level, rich=rich)

    # --- analysis ----------------------------------------------------------------------------

    def ensure_analysis_view(self):
        return self.analysis_side.ensure_view()

    def show_analysis(self, result, heading: str) -> None:
        self.analysis_side.set_selected_blocks(self._selected_blocks())
        self.analysis_side.show_analysis(result, heading)

    def _export_base(self) -> Path:
        output = self.output_edit.text().strip()
        if output:
            path = Path(output)
            return path.with_name(path.name[: -len(path.suffix)] if path.suffix else path.name)
        return Path(self.services.output_dir()) / "merge-analysis"

    def _on_exported(self, path: str) -> None:
        self.services.log(f"Merge: exported {path}")
        self.services.show_status(f"Saved {Path(path).name}")

    # --- copy command ------------------------------------------------------------------------

    def command_line(self, *, windows: bool | None = None) -> str:
        """The equivalent ``python main.py merge …`` of the form (raises ``UserError`` if incomplete)."""
        return self.build_params(for_merge=True).to_command_line(script=script_path(), windows=windows)

    def copy_command(self) -> None:
        try:
            text = self.command_line()
        except UserError as exc:
            self._set_status(f"cannot build the command: {exc}", "error")
            return
        QGuiApplication.clipboard().setText(text)
        self.services.show_status("Merge command copied to the clipboard")
        self.services.log(f"Merge command: {text}")
