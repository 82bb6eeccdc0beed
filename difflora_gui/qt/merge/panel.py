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

import gc
import html
import importlib
import sys
import threading
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
    QMenu,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

import difflora_gui
from difflora_gui.errors import UserError
from difflora_gui.jobs.job import JobRequest
from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.params import DEFAULT_STRATEGY, MergeParams
from difflora_gui.qt.merge import options
from difflora_gui.qt.merge.checks import ERROR, INFO, WARNING, Issue, compare_inputs, default_output_name
from difflora_gui.qt.merge.input_card import LoraCard
from difflora_gui.qt.merge.strategy import StrategyChooser
from difflora_gui.qt.merge.targets import TargetSelector
from difflora_gui.qt.param_form import ParamForm

SECTION = "merge"
TASKS = "difflora_gui.qt.merge.tasks"
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
#: how long after the last edit the settings are written into the project
SAVE_DELAY_MS = 250

_plotting_started = False
_plotting_ready = threading.Event()


def _import_plotting() -> None:
    try:
        importlib.import_module("pyqtgraph")
    finally:
        _plotting_ready.set()  # a failed import shows up (with its error) when the plots are built


def warm_up_plotting() -> None:
    """Import pyqtgraph on a background thread so the first plot does not freeze the window.

    (Importing it on the UI thread takes about 0.35 s on a 2-core machine; it creates no QObject.)
    """
    global _plotting_started
    if _plotting_started:
        return
    _plotting_started = True
    threading.Thread(target=_import_plotting, name="difflora-warm-plots", daemon=True).start()


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Exempt the objects of the heavy imports (torch, pyqtgraph, Qt) from Python's full collections.

    A full (generation 2) garbage collection walks every object; with torch and pyqtgraph loaded
    that takes 100-150 ms on a 2-core machine, holding the GIL: the window freezes that long at
    random moments, also while a merge runs. ``gc.freeze()`` moves the objects alive now into a
    permanent generation that later collections skip (after one last collection here, while the
    user is reading the input cards). Done once, after torch and pyqtgraph are in.
    """
    global _heap_frozen
    if _heap_frozen or "torch" not in sys.modules or "pyqtgraph" not in sys.modules:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


def short_name(path: str | Path, limit: int = 22) -> str:
    """A file's stem, shortened for job titles (the Jobs dock shows a title on one line)."""
    stem = Path(path).stem
    return stem if len(stem) <= limit else stem[: limit - 1] + "…"


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
        self.paths: dict[str, Path | None] = {"a": None, "b": None}
        self.summaries: dict[str, LoraSummary | None] = {"a": None, "b": None}
        self.errors: dict[str, str] = {"a": "", "b": ""}
        self._inspect_jobs: dict[str, Any] = {"a": None, "b": None}
        self.job = None  # the running Analyze or Merge job's handle
        self.job_kind = ""
        self._job_project = None
        self.last_result = None  # MergeResult of the last merge
        self.analysis = None  # the AnalysisResult on show
        self.analysis_view = None
        self.issues: list[Issue] = []
        self._created: str | None = None  # the recipe's creation time while the form shows that recipe
        self._output_auto = True
        self._restoring = False
        self._last_status = ""
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_settings)
        # builds the plots one piece per event-loop pass while the first job runs
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.timeout.connect(self._prepare_plots)

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
        frame, layout = _card("Inputs")
        self.cards = {role: LoraCard(role, ROLE_TITLES[role]) for role in ROLES}
        layout.addWidget(self.cards["a"])
        swap_row = QHBoxLayout()
        self.swap_button = QPushButton("⇅ Swap A and B")
        self.swap_button.setObjectName("swapButton")
        self.swap_button.setToolTip("Exchange LoRA A and LoRA B (the slider then works the other way)")
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
        return frame

    def _build_strategy(self) -> QWidget:
        frame, layout = _card("Strategy")
        self.strategy = StrategyChooser(self.services.host.merge_strategies())
        layout.addWidget(self.strategy)
        return frame

    def _build_rank_strength(self) -> QWidget:
        frame, layout = _card("Rank and strength")
        self.rank_form = ParamForm(options.RANK_PARAMS)
        self.rank_form.setObjectName("rankForm")
        self.strength_form = ParamForm(options.STRENGTH_PARAMS)
        self.strength_form.setObjectName("strengthForm")
        layout.addWidget(self.rank_form)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #30333a;")
        layout.addWidget(line)
        layout.addWidget(self.strength_form)
        self._sync_mode_rows()
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
        self.output_form = ParamForm(options.OUTPUT_PARAMS)
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
        bar = QFrame()
        bar.setObjectName("sectionCard")
        layout = QVBoxLayout(bar)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(5)
        buttons = QHBoxLayout()
        self.analyze_button = QPushButton("Analyze")
        self.analyze_button.setObjectName("analyzeButton")
        self.analyze_button.setToolTip(
            "Compute the analysis for these inputs and targets; nothing is written"
        )
        self.merge_button = QPushButton("Merge")
        self.merge_button.setObjectName("mergeButton")
        self.merge_button.setDefault(True)
        self.merge_button.setToolTip("Merge A − B and write the output file")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.copy_button = QPushButton("Copy command")
        self.copy_button.setObjectName("copyCommandButton")
        self.copy_button.setToolTip("Copy the equivalent 'python main.py merge …' command line")
        self.rerun_button = QPushButton("Re-run recipe")
        self.rerun_button.setObjectName("rerunButton")
        self.rerun_button.setToolTip(
            "Run the last merge's recipe again exactly (same settings and creation time): same file, bit for bit"
        )
        for button in (self.analyze_button, self.merge_button, self.cancel_button):
            buttons.addWidget(button)
        self.progress = QProgressBar()
        self.progress.setObjectName("mergeProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.eta_label = QLabel()
        self.eta_label.setObjectName("etaLabel")
        self.eta_label.setMinimumWidth(70)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.eta_label)
        layout.addLayout(buttons)
        recipe_row = QHBoxLayout()
        recipe_row.addWidget(self.copy_button)
        recipe_row.addWidget(self.rerun_button)
        recipe_row.addStretch(1)
        layout.addLayout(recipe_row)
        self.reason_label = QLabel()
        self.reason_label.setObjectName("runReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setStyleSheet("color: #e0b060;")
        layout.addWidget(self.reason_label)
        self.status_label = QLabel()
        self.status_label.setObjectName("runStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        return bar

    def _build_analysis_side(self) -> QWidget:
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.setSpacing(6)
        header = QHBoxLayout()
        heading = QLabel("Analysis")
        heading.setObjectName("cardHeading")
        self.export_png_button = QToolButton()
        self.export_png_button.setObjectName("exportPngButton")
        self.export_png_button.setText("Export PNG")
        self.export_png_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_png_button)
        self.export_actions = {}
        for name, text in (("blocks", "Block bars…"), ("heatmap", "Heatmap…"), ("spectrum", "Spectrum…")):
            action = menu.addAction(text)
            action.triggered.connect(lambda _checked=False, name=name: self.export_png_dialog(name))
            self.export_actions[name] = action
        self.export_png_button.setMenu(menu)
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setObjectName("exportCsvButton")
        self.export_csv_button.setToolTip(
            "Save the per-module table (norms, cancellation, ranks, energies, spectra)"
        )
        for widget in (self.export_png_button, self.export_csv_button):
            widget.setEnabled(False)
        header.addWidget(heading)
        header.addStretch(1)
        header.addWidget(self.export_png_button)
        header.addWidget(self.export_csv_button)
        layout.addLayout(header)
        self.analysis_stack = QStackedWidget()
        placeholder, placeholder_layout = _card("Where does the concept live?")
        text = QLabel(
            "Analyze (nothing is written) or Merge to see, block by block, how large LoRA A, LoRA B and their "
            "difference are, how much of A cancels against B, a blocks × layers heatmap of the output and the "
            "singular values of each module with the rank cut.<br><br>Click a block in the plots to select or "
            "deselect it in the target grid."
        )
        text.setWordWrap(True)
        text.setObjectName("mutedLabel")
        placeholder_layout.addWidget(text)
        placeholder_layout.addStretch(1)
        self.analysis_stack.addWidget(placeholder)
        layout.addWidget(self.analysis_stack, 1)
        side.setMinimumWidth(320)
        return side

    def _connect(self) -> None:
        for role, card in self.cards.items():
            card.file_chosen.connect(lambda path, role=role: self.set_input(role, path))
            card.clear_requested.connect(lambda role=role: self.clear_input(role))
        self.swap_button.clicked.connect(self.swap_inputs)
        for signal in (
            self.strategy.changed,
            self.rank_form.changed,
            self.strength_form.changed,
            self.targets.changed,
            self.output_form.changed,
        ):
            signal.connect(self._on_settings_changed)
        self.rank_form.changed.connect(self._sync_mode_rows)
        self.strength_form.changed.connect(self._sync_mode_rows)
        self.targets.changed.connect(self._on_targets_changed)
        self.output_edit.textEdited.connect(self._on_output_edited)
        self.output_browse.clicked.connect(self.choose_output)
        self.device_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.analyze_button.clicked.connect(self.analyze)
        self.merge_button.clicked.connect(self.merge)
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button.clicked.connect(self.copy_command)
        self.rerun_button.clicked.connect(self.rerun_recipe)
        self.export_csv_button.clicked.connect(self.export_csv_dialog)
        self.services.project_replaced.connect(self._on_project_replaced)
        self.services.project_info_changed.connect(self._update_default_output)
        self.services.devices.detected.connect(self._on_devices_detected)

    # --- inputs ------------------------------------------------------------------------------

    def accept_files(self, paths: list[Path]) -> None:
        """Files dropped on the window: the first two fill A and B (one file: the first empty slot)."""
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
        role = "a" if self.paths["a"] is None else "b"
        if self.paths["a"] is not None and self.paths["b"] is not None:
            self.services.show_status(f"Replaced LoRA B with {loras[0].name}")
        self.set_input(role, loras[0])

    def set_input(self, role: str, path: str | Path) -> None:
        """Use this file as LoRA A or B and read its summary (a light job)."""
        path = Path(path)
        self._cancel_inspect(role)
        self.paths[role] = path
        self.summaries[role] = None
        self.errors[role] = ""
        self.cards[role].show_loading(path)
        self._inputs_changed(paths_changed=True)
        if not path.is_file():
            self._show_input_error(role, path, f"{path}: file not found")
            return
        self._start_preparing_plots()
        handle = self.services.jobs.submit(
            JobRequest(
                f"Inspect {short_name(path)}", f"{TASKS}:inspect_lora", {"path": str(path)}, lane="light"
            )
        )
        self._inspect_jobs[role] = handle
        handle.progressed.connect(
            lambda progress, role=role, h=handle: self._on_inspect_progress(role, h, progress)
        )
        handle.succeeded.connect(lambda summary, role=role, h=handle: self._on_inspected(role, h, summary))
        handle.failed.connect(
            lambda message, _trace, role=role, h=handle: self._on_inspect_failed(role, h, message)
        )

    def clear_input(self, role: str) -> None:
        self._cancel_inspect(role)
        self.paths[role] = None
        self.summaries[role] = None
        self.errors[role] = ""
        self.cards[role].show_empty()
        self._inputs_changed(paths_changed=True)

    def swap_inputs(self) -> None:
        """A becomes B and B becomes A (summaries and running reads follow)."""
        for store in (self.paths, self.summaries, self.errors, self._inspect_jobs):
            store["a"], store["b"] = store["b"], store["a"]
        for role in ROLES:
            self._show_card(role)
        self._inputs_changed(paths_changed=True)

    def _cancel_inspect(self, role: str) -> None:
        handle = self._inspect_jobs.get(role)
        self._inspect_jobs[role] = None
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
        for role, current in self._inspect_jobs.items():
            if current is handle:
                return role
        return None

    def _on_inspect_progress(self, _role: str, handle, progress) -> None:
        role = self._role_of(handle)  # after a swap the job belongs to the other card
        if role is not None:
            self.cards[role].show_progress(progress.fraction)

    def _on_inspected(self, _role: str, handle, summary: LoraSummary) -> None:
        role = self._role_of(handle)
        if role is None:
            return  # a newer file replaced this one
        self._inspect_jobs[role] = None
        self.summaries[role] = summary
        self.cards[role].show_summary(summary)
        if self.analysis_view is not None and self.analysis_view.is_built:
            freeze_startup_heap()
        self._inputs_changed()

    def _on_inspect_failed(self, _role: str, handle, message: str) -> None:
        role = self._role_of(handle)
        if role is None:
            return
        self._inspect_jobs[role] = None
        self._show_input_error(role, self.paths[role], message)

    def _show_input_error(self, role: str, path: Path | None, message: str) -> None:
        self.errors[role] = message
        self.cards[role].show_error(path, message)
        self._inputs_changed()

    def _inputs_changed(self, *, paths_changed: bool = False) -> None:
        a, b = self.summaries["a"], self.summaries["b"]
        self.issues = compare_inputs(a, b) if a is not None and b is not None else []
        if self.issues:
            lines = []
            for issue in self.issues:
                mark, color = ISSUE_STYLE[issue.level]
                lines.append(
                    f"<div style='color:{color}; margin-bottom:3px'>{mark} {html.escape(issue.text)}</div>"
                )
            self.issues_label.setText("".join(lines))
            self.issues_label.show()
        else:
            self.issues_label.hide()
        known = [s for s in (a, b) if s is not None]
        self.targets.set_block_count(max((s.model.num_blocks for s in known), default=0))
        names = sorted({m.name for s in known for m in s.modules})
        self.targets.set_module_names(names)
        if paths_changed:
            self._update_default_output()
            self._on_settings_changed()
        else:
            self._update_run_state()

    # --- settings ----------------------------------------------------------------------------

    def _sync_mode_rows(self) -> None:
        mode = self.rank_form.value("rank_mode")
        for name in options.MODE_PARAMS.values():
            self.rank_form.set_row_visible(name, mode == name)
        auto = bool(self.strength_form.value("auto_alpha"))
        self.strength_form.set_row_visible("target_norm", auto)
        self.strength_form.set_row_visible("alpha", not auto)

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
        if self.analysis_view is not None:
            self.analysis_view.set_selected_blocks(self._selected_blocks())

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
        fields = options.merge_fields(
            self.rank_form.values(), self.strength_form.values(), self.output_form.values()
        )
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
        fields = options.merge_fields(
            self.rank_form.values(), self.strength_form.values(), self.output_form.values()
        )
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
            values = options.form_values(params)
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
            self._sync_mode_rows()
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
        self._last_status = ""
        self.status_label.clear()

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
        merge_problem = self.run_problem(for_merge=True)
        analyze_problem = self.run_problem(for_merge=False)
        self.merge_button.setEnabled(not merge_problem)
        self.analyze_button.setEnabled(not analyze_problem)
        self.merge_button.setToolTip(merge_problem or "Merge A − B and write the output file")
        self.analyze_button.setToolTip(
            analyze_problem or "Compute the analysis for these inputs and targets; nothing is written"
        )
        self.cancel_button.setEnabled(running)
        self.copy_button.setEnabled(self.paths["a"] is not None and self.paths["b"] is not None)
        self.rerun_button.setEnabled(not running and self.stored_recipe() is not None)
        self.reason_label.setText(
            "" if running or not merge_problem else f"Merge is disabled: {merge_problem}"
        )
        self.reason_label.setVisible(bool(self.reason_label.text()))

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
        self._start_preparing_plots()
        a, b = short_name(params.lora_a), short_name(params.lora_b)
        title = f"Merge {a} − {b}" if kind == "merge" else f"Analyze {a} − {b}"
        function = f"{TASKS}:merge" if kind == "merge" else f"{TASKS}:analyze"
        request = JobRequest(title, function, params, lane="device", device=params.device)
        self.job_kind = kind
        self._job_project = self.services.project  # the recipe goes to this project, even if another opens
        self.job = handle = self.services.jobs.submit(request)
        handle.progressed.connect(self._on_progress)
        handle.succeeded.connect(self._on_succeeded)
        handle.failed.connect(self._on_failed)
        handle.finished.connect(self._on_finished)
        self.progress.setRange(0, 0)
        self.eta_label.setText("queued")
        self._set_status(f"{'Merging' if kind == 'merge' else 'Analyzing'} on {params.device}…", "info")
        self._update_run_state()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.eta_label.setText("cancelling…")

    def _on_progress(self, progress) -> None:
        if self.job is None:
            return
        fraction = progress.fraction
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * fraction))
        self.eta_label.setText(self.job.eta_text or f"{progress.done:.0f}/{progress.total or 0:.0f}")

    def _on_succeeded(self, result) -> None:
        if self.job_kind == "merge":
            self.last_result = result
            self._job_project.update_section(SECTION, recipe=result.recipe, last_output=result.output)
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
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 if state == "done" else 0)
        self.eta_label.setText("")
        if state == "cancelled":
            self._set_status(
                f"{'Merge' if kind == 'merge' else 'Analyze'} cancelled; nothing was written.", "warning"
            )
        self._update_run_state()

    def _set_status(self, text: str, level: str, *, rich: bool = False) -> None:
        color = {"error": "#ff8a8a", "warning": "#e0b060", "ok": "#72d38f"}.get(level, "#aeb2b9")
        body = text if rich else html.escape(text)
        self._last_status = f"<span style='color:{color}'>{body}</span>"
        self.status_label.setText(self._last_status)

    # --- analysis ----------------------------------------------------------------------------

    def _start_preparing_plots(self) -> None:
        warm_up_plotting()
        if self.analysis_view is None or not self.analysis_view.is_built:
            self._plot_timer.start(50)

    def _prepare_plots(self) -> None:
        """One step of building the plots, without freezing the window (see warm_up_plotting)."""
        if not _plotting_ready.is_set():
            self._plot_timer.start(100)
            return
        if self.analysis_view is None or self.analysis_view.build_step():
            self.ensure_analysis_view()
            self._plot_timer.start(0)
            return
        # built: show the (still empty) plots now, so their first layout and paint is not at a result
        self.analysis_stack.setCurrentWidget(self.analysis_view)
        freeze_startup_heap()

    def ensure_analysis_view(self):
        """The plots, built on first use (this imports pyqtgraph)."""
        if self.analysis_view is None:
            from difflora_gui.qt.merge.analysis_view import AnalysisView

            self.analysis_view = AnalysisView()
            self.analysis_view.block_clicked.connect(self.targets.toggle_block)
            self.analysis_stack.addWidget(self.analysis_view)
        return self.analysis_view

    def show_analysis(self, result, heading: str) -> None:
        view = self.ensure_analysis_view()
        self.analysis = result
        view.set_analysis(result, heading, staged=True)
        view.set_selected_blocks(self._selected_blocks())
        self.analysis_stack.setCurrentWidget(view)
        self.export_png_button.setEnabled(True)
        self.export_csv_button.setEnabled(True)

    def _export_base(self) -> Path:
        output = self.output_edit.text().strip()
        if output:
            path = Path(output)
            return path.with_name(path.name[: -len(path.suffix)] if path.suffix else path.name)
        return Path(self.services.output_dir()) / "merge-analysis"

    def export_png_dialog(self, name: str) -> None:
        if self.analysis_view is None:
            return
        start = f"{self._export_base()}-{name}.png"
        path, _ = QFileDialog.getSaveFileName(self, f"Export the {name} plot", start, "PNG images (*.png)")
        if path:
            self._export(lambda: self.analysis_view.export_png(name, path), path)

    def export_csv_dialog(self) -> None:
        if self.analysis_view is None:
            return
        start = f"{self._export_base()}.analysis.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export the analysis table", start, "CSV files (*.csv)")
        if path:
            self._export(lambda: self.analysis_view.export_csv(path), path)

    def _export(self, write, path: str) -> None:
        try:
            write()
        except (OSError, UserError, ValueError) as exc:
            self._set_status(f"cannot write {path}: {exc}", "error")
            return
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
