"""The Preview section's panel: render a clip with the LoRA stack, play it, change it, compare, export.

Left, the inputs in the order they are chosen (scrolling on their own): the render form
(:mod:`.render_form`: backend and model, prompt, seed, size, frames, sampling, the accelerator
preset), the LoRA stack (:mod:`.lora_stack`) and the selected entry's controls: its strength
(:class:`~.strength.StrengthControl`), per-expert strengths for Wan2.2, its block weights and
layer filter (:class:`~.blocks.BlockWeightsPanel`, one cell per block of the detected model) and
Export… (bake it into a new LoRA file). Right, the player (:class:`~.player.VideoPlayer`) and the
A/B view (:class:`~.swipe.SwipeCompare`: the render beside the same request at strength 0 for the
selected entry, or beside any render of this session), over the render bar: Render, Auto-render,
Cancel, the progress with its ETA, and a line saying what changed since the render on show;
beside the tabs, Strength grid… (:mod:`.to_compare`: this stack and these settings in Compare).
Jobs are :mod:`.panel_jobs`' (newest request first per view).

State: the project's ``preview`` section keeps the form, the stack (by index, so its files are
declared section paths) and the selected entry; every edit is a step of
:attr:`PreviewPanel.undo_stack` (Edit ▸ Undo), a slider drag or a typed field one step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qdebounced

from difflora_gui.errors import UserError
from difflora_gui.merge.input_folders import LastFolders
from difflora_gui.qt.merge.run_bar import STATUS_COLORS
from difflora_gui.qt.preview.ab_view import ABView
from difflora_gui.qt.preview.blocks import BlockWeightsPanel
from difflora_gui.qt.preview.export_jobs import PanelExport
from difflora_gui.qt.preview.lora_drops import LoraDrops
from difflora_gui.qt.preview.lora_stack import ExpertStrengths, LoraStack, items_from_json, items_to_json
from difflora_gui.qt.preview.panel_jobs import MAIN, SECTION, PanelJobs
from difflora_gui.qt.preview.player import VideoPlayer
from difflora_gui.qt.preview.render_form import DEFAULTS, RENDER_KEYS, RenderBar, RenderForm, difference_text
from difflora_gui.qt.preview.strength import StrengthControl
from difflora_gui.qt.preview.to_compare import add_grid_button
from difflora_gui.qt.theme import section_card
from difflora_gui.qt.undo import UndoStack

AUTO_DELAY_MS = 300
#: from this panel width on, the stack and the selected LoRA get a column of their own
WIDE_WIDTH = 1500
LORA_SLOT = "preview-lora"
NOT_RENDERED = "Nothing rendered yet: Render (Ctrl+Return) plays the clip here"


def _scroll_area(name: str) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


class PreviewPanel(LoraDrops, PanelJobs, PanelExport, QWidget):
    """The Preview section's panel (``PanelSpec.widget``); takes dropped ``.safetensors`` files."""

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("previewPanel")
        self.services = services
        self.undo_stack = UndoStack(self)
        self.folders = LastFolders()
        self._restoring = False
        self._showing = False
        self._block_edit = False
        self._shown: dict[str, Any] = {}  # view -> the PreviewResult on show
        self._zero_asked = None
        self._drags = 0
        self._init_jobs()
        self._build()
        self._built = True
        self._auto_render = qdebounced(self._auto_render_now, timeout=AUTO_DELAY_MS, parent=self)
        self._connect()
        self.setAcceptDrops(True)
        self.restore_from_project()
        self.update_tab_order()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(1100, 640)

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # the whole panel scrolls when the window is smaller than it: it never sets the window's minimum size
        frame = _scroll_area("previewPanelScroll")
        outer.addWidget(frame)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        frame.setWidget(self.splitter)
        scroll = _scroll_area("previewInputsScroll")
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 8, 0)
        column.setSpacing(8)
        self.render_form = RenderForm(self.backends)
        column.addWidget(self.render_form)
        self.stack_card, stack_layout = section_card("LoRA stack")
        self.stack = LoraStack()
        stack_layout.addWidget(self.stack)
        column.addWidget(self.stack_card)
        column.addWidget(self._build_entry_card())
        column.addStretch(1)
        self.inputs_column = column
        scroll.setWidget(body)
        scroll.setMinimumWidth(
            max(340, body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        )
        self.inputs_scroll = scroll
        self.splitter.addWidget(scroll)
        # wide (full HD): the stack and the selected LoRA get a column of their own
        self.stack_scroll = _scroll_area("previewStackScroll")
        self.stack_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stack_scroll.setMinimumWidth(scroll.minimumWidth())
        middle = QWidget()
        self.stack_column = QVBoxLayout(middle)
        self.stack_column.setContentsMargins(0, 0, 8, 0)
        self.stack_column.setSpacing(8)
        self.stack_column.addStretch(1)
        self.stack_scroll.setWidget(middle)
        self.stack_scroll.hide()
        self.splitter.addWidget(self.stack_scroll)
        self._wide = False
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(6, 0, 0, 0)
        right_layout.setSpacing(6)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("previewTabs")
        self.tabs.setDocumentMode(True)
        self.player = VideoPlayer()
        self.tabs.addTab(self.player, "Player")
        self.ab_view = ABView()
        self.tabs.addTab(self.ab_view, "A/B")
        self.grid_button = add_grid_button(self)  # Preview → Compare: "Strength grid…"
        right_layout.addWidget(self.tabs, 1)
        self.render_bar = RenderBar()
        for name in ("render_button", "auto_check", "cancel_button", "progress", "stale_line", "status_line"):
            setattr(self, name, getattr(self.render_bar, name))
        right_layout.addWidget(self.render_bar)
        # the transport and render bars whole (with the inputs column: 1280×720 with the docks open)
        right.setMinimumWidth(max(400, right.minimumSizeHint().width()))
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setStretchFactor(2, 1)

    def _arrange(self, *, wide: bool) -> None:
        """The stack and the selected LoRA under the render form, or (``wide``) in a column of their own."""
        if wide == self._wide:
            return
        self._wide = wide
        column = self.stack_column if wide else self.inputs_column
        for card in (self.stack_card, self.entry_card):
            column.insertWidget(column.count() - 1, card)  # above the column's stretch
        self.stack_scroll.setVisible(wide)
        if wide:  # the two input columns at their width, the player takes the rest
            side = self.inputs_scroll.minimumWidth()
            self.splitter.setSizes([side, side, max(self.width() - 2 * side, 400)])
        self.update_tab_order()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange(wide=self.width() >= WIDE_WIDTH)

    def _build_entry_card(self) -> QWidget:
        card, layout = section_card("Selected LoRA")
        self.entry_card = card
        self.entry_label = QLabel("Select a LoRA in the stack to set its strength and blocks.")
        self.entry_label.setObjectName("mutedLabel")
        self.entry_label.setWordWrap(True)
        layout.addWidget(self.entry_label)
        self.strength = StrengthControl()
        self.strength.setObjectName("previewStrength")
        layout.addWidget(self.strength)
        self.expert_strengths = ExpertStrengths()
        self.expert_strengths.setVisible(False)
        layout.addWidget(self.expert_strengths)
        self.blocks = BlockWeightsPanel()
        layout.addWidget(self.blocks)
        row = QHBoxLayout()
        row.addStretch(1)
        self.export_button = QPushButton("&Export…")
        self.export_button.setObjectName("previewExportButton")
        self.export_button.setToolTip(
            "Bake this LoRA's strength, block weights and layer filter into a new LoRA file (comfy format; "
            "two expert files for Wan2.2)"
        )
        self.export_button.clicked.connect(self.export_clicked)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        return card

    def _connect(self) -> None:
        self.render_form.changed.connect(self._on_form_changed)
        self.render_button.clicked.connect(lambda: self.render(MAIN))
        self.cancel_button.clicked.connect(self.cancel_render)
        self.render_form.settings_requested.connect(self._open_settings)
        self.stack.changed.connect(self._on_stack_changed)
        self.stack.selection_changed.connect(self._on_selection)
        self.stack.folder_used.connect(lambda folder: self.folders.remember(LORA_SLOT, folder))
        self.strength.value_changed.connect(self._on_strength)
        self.strength.slider.sliderPressed.connect(lambda: setattr(self, "_drags", self._drags + 1))
        self.expert_strengths.changed.connect(self._on_expert_strengths)
        self.blocks.changed.connect(self._on_blocks_changed)
        self.blocks.edited.connect(self._on_blocks_edited)
        self.auto_check.toggled.connect(self._on_auto_toggled)
        self.tabs.currentChanged.connect(lambda _i: (self.refresh_references(), self._refresh_ab()))
        self.ab_view.reference_changed.connect(self._refresh_ab)
        self.ab_view.failed.connect(lambda message: self.set_status(f"A/B: {message}", "error"))
        # bound methods, not lambdas: Qt drops them with the panel (a plugin toggled rebuilds it)
        self.services.project_replaced.connect(self.restore_from_project)
        self.services.settings_changed.connect(self._on_model_changed)
        self.services.dirty_changed.connect(self._on_dirty_changed)

    def update_tab_order(self) -> list[QWidget]:
        if not getattr(self, "_built", False):
            return []
        from difflora_gui.qt.merge.shortcuts import apply_tab_order

        # the inputs in reading order (the form knows its own: its prompt boxes are scroll areas)
        parts = [self.render_form, self.stack_card, self.strength, self.expert_strengths, self.blocks]
        return apply_tab_order(
            [*parts, self.export_button, self.tabs.tabBar(), self.tabs.currentWidget(), self.render_bar]
        )

    def focus_first(self) -> None:
        self.render_form.prompt_edit.setFocus(Qt.FocusReason.OtherFocusReason)

    # --- edits -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "form": self.render_form.values(),
            "stack": items_to_json(self.stack.items()),
            "selected": self.stack.selected_index(),
            "auto": self.auto_check.isChecked(),
        }

    def _record(self, text: str, merge_key: str | None = None) -> None:
        # Auto-render is a way of working, not an edit: undo leaves it as it is
        before = {k: v for k, v in self._snapshot.items() if k != "auto"}
        self._snapshot = self.state()
        after = {k: v for k, v in self._snapshot.items() if k != "auto"}
        if before != after and not self.undo_stack.applying:
            self.undo_stack.record(
                text, lambda: self._apply_state(before), lambda: self._apply_state(after), merge_key=merge_key
            )

    def _apply_state(self, data: dict[str, Any], *, save: bool = True) -> None:
        self._restoring = True
        try:
            self.render_form.set_values({**DEFAULTS, **(data.get("form") or {})})
            items, problems = items_from_json(data.get("stack"))
            for problem in problems:
                self.services.log(f"Preview: a LoRA of the stack was left out: {problem}", "warning")
            self.stack.set_items(items, selected=int(data.get("selected", 0) or 0))
            self.auto_check.setChecked(bool(data.get("auto", self.auto_check.isChecked())))
        finally:
            self._restoring = False
        self._show_entry()
        self._snapshot = self.state()
        if save:
            self._inputs_changed()
        else:
            self._update_stale()

    def _on_form_changed(self, key: str) -> None:
        if key.startswith("backend"):  # the backend or its options: the model may change
            self._on_model_changed()
        self._record(f"Render: {key.replace('_', ' ')}", merge_key=f"preview-form-{key}")
        self._inputs_changed()

    def _on_stack_changed(self, key: str) -> None:
        if self._restoring:
            return
        if key in ("add", "remove", "move"):
            self._show_entry()
        if not self._block_edit:
            what, _, index = key.partition(":")
            self._record(f"LoRA stack: {what}", merge_key=f"preview-stack-{key}" if index else None)
        self._inputs_changed()

    def _on_selection(self, _index: int) -> None:
        self._show_entry()
        self._snapshot = self.state()
        self._update_stale()

    def _on_strength(self, value: float) -> None:
        index = self.stack.selected_index()
        if self._showing or index < 0:
            return
        self._block_edit = True  # one step per drag (merged), one per typed value or key step
        try:
            self.stack.update_selected("strength", strength=float(value))
        finally:
            self._block_edit = False
        dragging = self.strength.slider.isSliderDown()
        self._record(
            f"Strength {value:g}", merge_key=f"preview-strength-{index}-{self._drags}" if dragging else None
        )

    def _on_expert_strengths(self, high, low) -> None:
        if not self._showing:
            self.stack.update_selected("expert strengths", strength_high=high, strength_low=low)
            self.strength.setEnabled(high is None)  # per-expert strengths replace the shared one

    def _on_blocks_changed(self) -> None:
        if self._showing:
            return
        self._block_edit = True  # recorded with the block panel's own step name (edited)
        try:
            self.stack.update_selected("blocks", selector=self.blocks.selector())
        finally:
            self._block_edit = False

    def _on_blocks_edited(self, what: str, merge_key: str, _before, _after) -> None:
        if not self._showing:
            key = f"preview-blocks-{self.stack.selected_index()}-{merge_key}" if merge_key else None
            self._record(f"Blocks: {what}", merge_key=key)

    def _show_entry(self) -> None:
        """The selected entry in the strength control, per-expert strengths and block panel."""
        entry = self.stack.selected_entry()
        self._showing = True
        try:
            on = entry is not None
            for widget in (self.strength, self.expert_strengths, self.blocks, self.export_button):
                widget.setEnabled(on)
            if entry is None:
                self.entry_label.setText("Select a LoRA in the stack to set its strength and blocks.")
                return
            self.entry_label.setText(Path(entry.file).name)
            self.entry_label.setToolTip(entry.file)
            self.strength.set_value(entry.strength)
            self.expert_strengths.show_entry(entry)
            own = not self.expert_strengths.isHidden() and entry.strength_high is not None
            self.strength.setEnabled(not own)
            try:
                self.blocks.set_selector(entry.selector)
            except UserError as exc:
                self.set_status(
                    f"{Path(entry.file).name}: blocks '{entry.selector}' do not parse: {exc}", "warning"
                )
        finally:
            self._showing = False

    def _inputs_changed(self) -> None:
        if self._restoring:
            return
        self.save_state()
        self._update_stale()
        if self.auto_check.isChecked():
            self._auto_render()

    def _on_auto_toggled(self, on: bool) -> None:
        if self._restoring:
            return
        self.save_state()
        if on:
            self._auto_render()
        else:
            self._auto_render.cancel()

    def _auto_render_now(self) -> None:
        if self.auto_check.isChecked():
            self.render(MAIN)

    # --- the model ---------------------------------------------------------------------------

    def _on_model_changed(self, *_settings) -> None:
        """Another backend or new Settings: the model line, block count and expert controls."""
        self._facts_cache = None
        try:
            facts = self.model_facts()
        except UserError as exc:
            self.render_form.show_model(f"{exc}", ok=False)
            self.render_button.setEnabled(False)
            self.render_button.setToolTip(f"Render is disabled: {exc}")
            self.blocks.set_num_blocks(0)
            self.stack.set_two_experts(False)
            self.expert_strengths.setVisible(False)
            return
        label = facts.label or f"{facts.variant} ({facts.num_blocks} blocks)"
        self.render_form.show_model(label, ok=True)
        self.render_button.setEnabled(True)
        self.render_button.setToolTip(f"Render the clip with these settings ({RENDER_KEYS})")
        self.blocks.set_num_blocks(facts.num_blocks)
        self.stack.set_two_experts(facts.two_experts)
        self.expert_strengths.setVisible(facts.two_experts)
        self._update_stale()  # Render was switched on: a request the backend cannot do turns it off again

    def _open_settings(self) -> None:
        window = self.services.window
        if window is not None and hasattr(window, "edit_settings"):
            window.edit_settings()

    # --- showing renders ---------------------------------------------------------------------

    def _show_result(self, view: str, result, *, replayed: bool) -> None:
        self._shown[view] = result
        self.views[view].shown = result.request
        if view == MAIN:
            self.show_progress(1.0, "done")
            self.player.load(result.video)
            how = (
                "shown again (rendered before)"
                if replayed
                else ("from the cache" if result.cache_hit else "rendered")
            )
            self.set_status(f"{result.frames} frames at {result.width}×{result.height}, {how}", "ok")
            self.refresh_references()
            self._update_stale()
        self._refresh_ab()

    def _update_stale(self) -> None:
        try:
            current = self.current_request()
        except UserError as exc:
            self.stale_line.set_message(str(exc), STATUS_COLORS["error"])
            return
        if self.views[MAIN].shown is None:
            self.stale_line.set_message(NOT_RENDERED, STATUS_COLORS["info"])
            return
        text = difference_text(self.views[MAIN].shown, current, self.selected_request_index())
        self.stale_line.set_message(text, STATUS_COLORS["warning"])

    # --- project state -----------------------------------------------------------------------

    def save_state(self) -> None:
        state = self.state()
        self.services.project.update_section(SECTION, **state)

    def restore_from_project(self, *_project) -> None:
        data = self.services.project.section(SECTION)
        self._snapshot = {}
        self.stack.start_folder = self.folders.start(LORA_SLOT)
        self._restoring = True
        try:
            self._on_model_changed()
        finally:
            self._restoring = False
        # renders of the project before are not this one's to show
        self._shown, self.history, self.cached_refs, self._zero_asked = {}, [], [], None
        self._workspace = self.services.project.workspace_root
        for queue in self.views.values():
            queue.shown = queue.latest = None
        self.player.clear()
        self.ab_view.set_history([])
        self.ab_view.swipe.clear()
        self._apply_state({"auto": False, **data}, save=False)
        self.undo_stack.clear()  # steps of another project cannot apply to this one

    # --- messages and teardown ---------------------------------------------------------------

    def set_status(self, text: str, level: str = "info") -> None:
        self.status_line.set_message(text, STATUS_COLORS.get(level, STATUS_COLORS["info"]))
        if level in ("warning", "error"):
            self.services.log(f"Preview: {text}", level)
