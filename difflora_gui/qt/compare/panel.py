"""The Compare section's panel: a grid of preview renders — strengths × seeds × variants … — at once.

Left, the inputs (scrolling on their own): the render form (:class:`~difflora_gui.qt.preview.
render_form.RenderForm`: backend and model, prompt, seed, size, frames, sampling — the grid's
base request; its seed row hides while an axis sets the seed), the LoRA stack (the selected entry,
else the first, is the one the LoRA axes change: "Axes change: NAME") and the axes
(:mod:`.axes_form`). Right, the :class:`~difflora_gui.qt.compare.grid_player.GridPlayer` with the
layout and Export… over the grid bar: Render grid, Cancel, the progress "cell k of N · ETA", a
stale line (the inputs changed since the grid on show: Export waits for a new render), the
clicked cell's labels and request, and the last outcome. Jobs are :mod:`.grid_jobs`'.

State: the project's ``compare`` section keeps the form, the stack, the selected entry, the axes
(variant files by index: declared section paths) and the layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.compare.grid_spec import LAYOUTS, GridSpec
from difflora_gui.errors import UserError
from difflora_gui.merge.input_folders import LastFolders
from difflora_gui.preview.request import PreviewRequest
from difflora_gui.qt.compare.axes_form import AxesForm
from difflora_gui.qt.compare.export_dialog import ExportActions
from difflora_gui.qt.compare.grid_jobs import GridJobs
from difflora_gui.qt.compare.grid_player import GridPlayer
from difflora_gui.qt.merge.run_bar import STATUS_COLORS, StatusLine
from difflora_gui.qt.preview.backend_options import request_problem
from difflora_gui.qt.preview.lora_drops import LoraDrops
from difflora_gui.qt.preview.lora_stack import LoraStack, items_from_json, items_to_json
from difflora_gui.qt.preview.render_form import DEFAULTS, RenderForm
from difflora_gui.qt.theme import section_card

SECTION = "compare"
LORA_SLOT = "compare-lora"
RENDER_KEYS = "Ctrl+Return"
RENDER_TIP = f"Render every cell (cached cells replay at once; {RENDER_KEYS})"
STALE_TEXT = "stale: inputs changed — Render grid to update"
NOT_RENDERED = "No grid yet: set the axes, then Render grid"
LAYOUT_TITLES = {"horizontal": "Horizontal", "vertical": "Vertical"}


def _scroll_area(name: str) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


def _form_row_of(form: QFormLayout, widget: QWidget) -> int:
    """The row of ``form`` whose field holds ``widget`` (-1: none)."""
    for row in range(form.rowCount()):
        item = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        layout = item.layout() if item is not None else None
        if item is not None and (
            item.widget() is widget or (layout is not None and layout.indexOf(widget) >= 0)
        ):
            return row
    return -1


def job_signature(job) -> str:
    """What the grid on show depends on: the spec, the backend and its options."""
    return json.dumps([job.spec.to_json(), job.backend, dict(job.options)], sort_keys=True, default=str)


class ComparePanel(LoraDrops, ExportActions, GridJobs, QWidget):
    """The Compare section's panel (``PanelSpec.widget``); takes dropped ``.safetensors`` files."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("comparePanel")
        self.services = services
        self.folders = LastFolders()
        self._restoring = False
        self._init_jobs()
        self._build()
        self._connect()
        self.setAcceptDrops(True)
        self.restore_from_project()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(1100, 640)

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        frame = _scroll_area("comparePanelScroll")  # smaller than the panel: it scrolls, never clips
        outer.addWidget(frame)
        holder = QWidget()
        main = QVBoxLayout(holder)
        main.setContentsMargins(0, 0, 0, 0)
        main.setSpacing(6)
        frame.setWidget(holder)
        # wide: the inputs beside the grid; narrow (a 1280×720 window with its docks): two tabs
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("compareTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.hide()
        main.addWidget(self.splitter, 1)
        main.addWidget(self.tabs, 1)
        scroll = _scroll_area("compareInputsScroll")
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(8)
        self.render_form = RenderForm(self.backends)
        column.addWidget(self.render_form)
        self._seed_form = next(
            (
                f
                for f in self.render_form.findChildren(QFormLayout)
                if _form_row_of(f, self.render_form.seed_spin) >= 0
            ),
            None,
        )
        self.stack_card, stack_layout = section_card("LoRA stack")
        self.stack = LoraStack()
        stack_layout.addWidget(self.stack)
        column.addWidget(self.stack_card)
        self.axes_form = AxesForm()
        column.addWidget(self.axes_form)
        column.addStretch(1)
        scroll.setWidget(body)
        scroll.setMinimumWidth(
            max(400, body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        )
        self.inputs_scroll = scroll
        self.splitter.addWidget(scroll)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 0, 0, 0)
        right_layout.setSpacing(6)
        tools = QHBoxLayout()
        self.layout_combo = QComboBox()
        self.layout_combo.setObjectName("compareLayout")
        for name in LAYOUTS:
            self.layout_combo.addItem(LAYOUT_TITLES[name], name)
        self.layout_combo.setToolTip("Horizontal: the first axis along the columns; vertical: down the rows")
        layout_label = QLabel("&Layout")
        layout_label.setBuddy(self.layout_combo)
        self.open_button = QPushButton("Open grid sidecar…")
        self.open_button.setObjectName("compareOpenSidecar")
        self.open_button.setToolTip(
            "Load a grid's JSON sidecar into the form (Render grid replays its cached cells)"
        )
        self.export_button = QPushButton("&Export…")
        self.export_button.setObjectName("compareExportButton")
        tools.addWidget(layout_label)
        tools.addWidget(self.layout_combo)
        tools.addStretch(1)
        tools.addWidget(self.open_button)
        tools.addWidget(self.export_button)
        right_layout.addLayout(tools)
        self.player = GridPlayer()
        right_layout.addWidget(self.player, 1)
        self.grid_box = right
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        main.addWidget(self._build_bar())
        self._narrow = False

    def _arrange(self, *, narrow: bool) -> None:
        """The inputs beside the grid, or (``narrow``) the inputs and the grid as two tabs."""
        if narrow == self._narrow:
            return
        self._narrow = narrow
        current = self.tabs.currentIndex()
        while self.tabs.count():
            self.tabs.removeTab(0)
        if narrow:
            self.tabs.addTab(self.inputs_scroll, "Settings")
            self.tabs.addTab(self.grid_box, "Grid")
            self.tabs.setCurrentIndex(max(0, current))
        else:
            self.splitter.insertWidget(0, self.inputs_scroll)
            self.splitter.insertWidget(1, self.grid_box)
            for widget in (self.inputs_scroll, self.grid_box):
                widget.show()  # the tab widget left the one not on show hidden
        self.splitter.setVisible(not narrow)
        self.tabs.setVisible(narrow)
        self.update_tab_order()

    def narrow_width(self) -> int:
        """Below this width the inputs and the grid do not fit side by side."""
        return self.inputs_scroll.minimumWidth() + self.grid_box.minimumSizeHint().width() + 16

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange(narrow=self.width() < self.narrow_width())

    def _build_bar(self) -> QWidget:
        bar = QFrame()
        bar.setObjectName("sectionCard")
        layout = QVBoxLayout(bar)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)
        row = QHBoxLayout()
        self.render_button = QPushButton("&Render grid")
        self.render_button.setObjectName("compareRenderButton")
        self.render_button.setDefault(True)
        self.render_button.setMinimumWidth(130)
        self.render_button.setShortcut(RENDER_KEYS)
        self.render_button.setToolTip(RENDER_TIP)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("compareCancelButton")
        self.cancel_button.setToolTip(
            "Stop the grid: finished cells stay cached, the next render replays them"
        )
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("compareProgress")
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        row.addWidget(self.render_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        self.stale_line = StatusLine()
        self.stale_line.setObjectName("compareStale")
        self.details_line = StatusLine()
        self.details_line.setObjectName("compareDetails")
        self.status_line = StatusLine()
        self.status_line.setObjectName("compareStatus")
        for line in (self.stale_line, self.details_line, self.status_line):
            layout.addWidget(line)
        return bar

    def _connect(self) -> None:
        self.render_form.changed.connect(self._on_form_changed)
        self.render_form.settings_requested.connect(self._open_settings)
        self.stack.changed.connect(lambda _key: self._inputs_changed())
        self.stack.selection_changed.connect(lambda _i: self._inputs_changed())
        self.stack.folder_used.connect(self._remember_lora_folder)
        self.axes_form.changed.connect(self._inputs_changed)
        self.axes_form.folder_used.connect(self._remember_lora_folder)
        self.render_button.clicked.connect(self.render_grid)
        self.cancel_button.clicked.connect(self.cancel_grid)
        self.export_button.clicked.connect(self.export_clicked)
        self.open_button.clicked.connect(self.open_sidecar_clicked)
        self.layout_combo.currentIndexChanged.connect(self._on_layout)
        self.player.cell_clicked.connect(self.show_cell_details)
        self.player.problem.connect(lambda text: self.services.log(f"Compare: {text}", "warning"))
        self.services.project_replaced.connect(self.restore_from_project)
        self.services.settings_changed.connect(self._on_model_changed)

    def update_tab_order(self) -> list[QWidget]:
        from difflora_gui.qt.merge.shortcuts import apply_tab_order

        parts = [self.render_form, self.stack_card, self.axes_form, self.layout_combo, self.open_button]
        if getattr(self, "_narrow", False):
            parts.insert(0, self.tabs.tabBar())
        return apply_tab_order(
            [*parts, self.export_button, self.player, self.render_button, self.cancel_button]
        )

    def focus_first(self) -> None:
        self.render_form.prompt_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- the inputs --------------------------------------------------------------------------

    def target_index(self) -> int:
        """The stack entry the LoRA axes change, as an index into the request's (switched-on) stack:
        the selected entry when it is on, else the first."""
        items = self.stack.items()
        index = self.stack.selected_index()
        if 0 <= index < len(items) and items[index].enabled:
            return sum(1 for item in items[:index] if item.enabled)
        return 0

    def base_request(self) -> PreviewRequest:
        return PreviewRequest(**self.render_form.request_fields(), loras=tuple(self.stack.entries()))

    def grid_spec(self) -> GridSpec:
        """The grid the inputs make (``UserError``: what to fix, also shown where it is)."""
        axes = self.axes_form.axes()
        base = self.base_request()
        problem = request_problem(self.backend_spec(), self.backend_options(), base)
        if problem:
            raise UserError(problem)
        try:
            num_blocks = self.model_facts().num_blocks
        except UserError:
            num_blocks = None  # Render grid says what is missing; the axes can still be checked
        return GridSpec(base, tuple(axes), self.target_index(), num_blocks)

    def state(self) -> dict[str, Any]:
        return {
            "form": self.render_form.values(),
            "stack": items_to_json(self.stack.items()),
            "selected": self.stack.selected_index(),
            "axes": self.axes_form.state(),
            "layout": self.layout_combo.currentData(),
        }

    def _apply_state(self, data: dict[str, Any]) -> None:
        self._restoring = True
        try:
            self.render_form.set_values({**DEFAULTS, **(data.get("form") or {})})
            items, problems = items_from_json(data.get("stack"))
            for problem in problems:
                self.services.log(f"Compare: a LoRA of the stack was left out: {problem}", "warning")
            self.stack.set_items(items, selected=int(data.get("selected", 0) or 0))
            self.axes_form.set_state(data.get("axes"))
            layout = data.get("layout") if data.get("layout") in LAYOUTS else "horizontal"
            self.layout_combo.setCurrentIndex(self.layout_combo.findData(layout))
        finally:
            self._restoring = False
        self._refresh()

    def _on_form_changed(self, key: str) -> None:
        if key.startswith("backend"):
            self._on_model_changed()
        self._inputs_changed()

    def _inputs_changed(self) -> None:
        if self._restoring:
            return
        self.services.project.update_section(SECTION, **self.state())
        self._refresh()

    def _refresh(self) -> None:
        """The target line, the seed row, each axis's problem, the cell count, Render's gate, staleness."""
        entries = self.stack.entries()
        target = self.target_index()
        if entries:
            entry = entries[min(target, len(entries) - 1)]
            self.axes_form.set_target(Path(entry.file).name, entry.file)
        else:
            self.axes_form.set_target("")
        kinds = [row.kind() for row in self.axes_form.rows]
        if self._seed_form is not None:
            row = _form_row_of(self._seed_form, self.render_form.seed_spin)
            self._seed_form.setRowVisible(row, "seed" not in kinds)
        self._problem = ""
        try:
            spec = self.grid_spec()
            self.axes_form.show_summary(list(spec.axes))
        except UserError as exc:
            spec = None
            self._problem = str(exc)
            self.axes_form.show_summary(None, self._problem)
        self._spec_now = spec
        self._update_buttons()
        self._update_stale()

    def _update_buttons(self) -> None:
        if not hasattr(self, "render_button"):
            return
        busy = self.grid_handle is not None
        problem = getattr(self, "_problem", "") or getattr(self, "_model_problem", "")
        self.render_button.setEnabled(not busy and not problem)
        self.render_button.setToolTip(f"Render grid is disabled: {problem}" if problem else RENDER_TIP)
        self.cancel_button.setEnabled(busy)
        self.open_button.setEnabled(not busy)
        stale = self.is_stale()
        ready = self.shown_job is not None and not busy and self.export_handle is None and not stale
        self.export_button.setEnabled(ready)
        if self.shown_job is None:
            tip = "Render grid first: Export writes the grid on show"
        elif stale:
            tip = "The inputs changed since this grid: Render grid, then Export"
        elif busy or self.export_handle is not None:
            tip = "Wait for the running job to end"
        else:
            tip = "The grid as one video (mp4, webm, webp, gif), a PNG contact sheet and a JSON sidecar"
        self.export_button.setToolTip(tip)

    def is_stale(self) -> bool:
        """The grid on show no longer matches the inputs."""
        if self.shown_job is None:
            return False
        spec = getattr(self, "_spec_now", None)
        if spec is None:
            return True
        try:
            now = json.dumps(
                [spec.to_json(), self.render_form.backend_name(), dict(self.backend_options())],
                sort_keys=True,
                default=str,
            )
        except UserError:
            return True
        return now != job_signature(self.shown_job)

    def _update_stale(self) -> None:
        # why Render grid is off comes first: the Grid tab does not show the axes' own messages
        problem = getattr(self, "_problem", "") or getattr(self, "_model_problem", "")
        stale = "stale · " if self.is_stale() else ""
        if problem:
            self.stale_line.set_message(f"{stale}Render grid is off: {problem}", STATUS_COLORS["error"])
        elif self.shown_job is None:
            self.stale_line.set_message(NOT_RENDERED, STATUS_COLORS["info"])
        elif stale:
            self.stale_line.set_message(STALE_TEXT, STATUS_COLORS["warning"])
        else:
            self.stale_line.set_message("", STATUS_COLORS["info"])

    def _on_model_changed(self, *_settings) -> None:
        self._facts_cache = None
        try:
            facts = self.model_facts()
        except UserError as exc:
            self.render_form.show_model(str(exc), ok=False)
            self._model_problem = str(exc)
            self.stack.set_two_experts(False)
            self.axes_form.set_two_experts(False)
        else:
            self.render_form.show_model(
                facts.label or f"{facts.variant} ({facts.num_blocks} blocks)", ok=True
            )
            self._model_problem = ""
            self.stack.set_two_experts(facts.two_experts)
            self.axes_form.set_two_experts(facts.two_experts)
        if not self._restoring:
            self._refresh()

    def _open_settings(self) -> None:
        window = self.services.window
        if window is not None and hasattr(window, "edit_settings"):
            window.edit_settings()

    def _remember_lora_folder(self, folder: str) -> None:
        self.folders.remember(LORA_SLOT, folder)
        self.stack.start_folder = folder
        self.axes_form.set_start_folder(folder)

    # --- the grid on show --------------------------------------------------------------------

    def show_grid(self, job, result) -> None:
        self.shown_job, self.shown_result = job, result
        if self._narrow:
            self.tabs.setCurrentWidget(self.grid_box)
        self.details_line.set_message("Click a cell for its labels and request", STATUS_COLORS["info"])
        self.player.set_grid(job.spec, result, self.layout_combo.currentData())
        self._update_buttons()
        self._update_stale()

    def _on_layout(self, _index: int) -> None:
        self.player.set_layout(self.layout_combo.currentData())
        if not self._restoring:
            self.services.project.update_section(SECTION, layout=self.layout_combo.currentData())

    def show_cell_details(self, row: int, col: int) -> None:
        """The clicked cell's labels, how it was made and its whole request (the tooltip)."""
        if self.shown_result is None:
            return
        try:
            cell = self.shown_result.cell_at(row, col)
        except IndexError:
            return
        request = PreviewRequest.from_json(cell.request)
        loras = ", ".join(f"{Path(e.file).name} {e.strength:g}" for e in request.loras) or "no LoRA"
        how = "rendered" if cell.rendered else "from the cache"
        text = (
            f"{' · '.join(cell.labels)} — {cell.width}×{cell.height}, {cell.frames} frames, seed "
            f"{request.seed}, {request.steps} steps; {loras}; {how}"
        )
        self.details_line.set_message(text, STATUS_COLORS["info"])
        self.details_line.setToolTip(json.dumps(cell.request, indent=1, ensure_ascii=False))

    def take_settings(self, stack_items, selected: int, form: dict[str, Any]) -> bool:
        """The Preview's stack, selected entry and render form in the inputs, the default axes
        (strengths -2:2:1 × its seed and the next) if none is set: one project change. Returns
        whether the axes were kept."""
        from difflora_gui.qt.compare.from_preview import state_from_preview

        kept = any(row.kind() for row in self.axes_form.rows)
        self._apply_state(state_from_preview(self.state(), not kept, stack_items, selected, form))
        self.services.project.update_section(SECTION, **self.state())
        return kept

    # --- project state -----------------------------------------------------------------------

    def restore_from_project(self, *_project) -> None:
        data = self.services.project.section(SECTION)
        folder = self.folders.start(LORA_SLOT)
        self.stack.start_folder = folder
        self.axes_form.set_start_folder(folder)
        self.shown_job = self.shown_result = None
        self.player.clear("No grid yet")
        self.details_line.set_message("", STATUS_COLORS["info"])
        self._restoring = True
        try:
            self._on_model_changed()
        finally:
            self._restoring = False
        self._apply_state(dict(data))
        self.update_tab_order()

    def set_status(self, text: str, level: str = "info") -> None:
        self.status_line.set_message(text, STATUS_COLORS.get(level, STATUS_COLORS["info"]))
        if level in ("warning", "error"):
            self.services.log(f"Compare: {text}", level)
