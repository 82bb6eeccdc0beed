"""The workbench by keyboard and on a small screen: shortcuts, tab order, focus, undo, a run bar
whose buttons stay put, plain quotes in errors, the rank hint, and a 1280×720 window that leaves the panel room."""

from __future__ import annotations

import html
import time

import pytest
from merge_panel_helpers import PanelWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QLabel

from difflora_gui import hookimpl
from difflora_gui.merge.demo_pair import make_demo_pair
from difflora_gui.qt.merge.shortcuts import focus_chain
from difflora_gui.specs import MergeStrategySpec


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    made = PanelWindow(qtbot, monkeypatch, tmp_path)
    yield made
    made.close()


@pytest.fixture
def pair(tmp_path):
    folder = tmp_path / "loras"
    folder.mkdir()
    return make_demo_pair(folder / "dense A.safetensors", folder / "sparse B.safetensors", seed=3)


def test_the_run_bar_buttons_do_not_move_when_the_status_changes(window, pair):
    panel = window.panel
    window.load(*pair)
    window.qtbot.wait(50)
    buttons = (panel.analyze_button, panel.merge_button, panel.cancel_button, panel.copy_button)
    before = [b.mapTo(window.window, b.rect().topLeft()) for b in buttons] + [b.size() for b in buttons]
    height = panel.run_bar.height()
    long_text = "\n".join(f"line {i}: " + "a very long message about what went wrong " * 6 for i in range(6))
    panel.run_bar.set_status(long_text, "error")
    panel.run_bar.set_problems(merge=long_text, analyze="", running=False)
    panel.run_bar.set_output_folder(window.out)
    window.qtbot.wait(50)
    after = [b.mapTo(window.window, b.rect().topLeft()) for b in buttons] + [b.size() for b in buttons]
    assert after == before and panel.run_bar.height() == height
    assert panel.status_label.toolTip() == long_text  # the whole text is one hover away
    assert QLabel.text(panel.status_label).count("\n") == 0  # shown as one elided line


def test_errors_show_plain_quotes_not_html_entities(window):
    panel = window.panel
    panel.run_bar.set_status("cannot read 'foo': \"bar\" & <baz>", "error")
    shown = QLabel.text(panel.status_label)
    assert "'foo'" in shown and "&#x27;" not in shown and "&amp;" not in shown
    assert panel.status_label.textFormat() == Qt.TextFormat.PlainText
    # the forms' error labels hold html-escaped text: they are rich text, so the escape is undone
    labels = panel.findChildren(QLabel, "validationErrors")
    assert labels
    for label in labels:
        label.setText(html.escape("block 'x' is not a number"))
        assert label.textFormat() == Qt.TextFormat.RichText, label.parent()


def test_shortcuts_run_analyze_and_say_so_in_the_tooltips(window, pair, qtbot):
    panel = window.panel
    window.load(*pair)
    assert "Ctrl+Return" in panel.analyze_button.toolTip()
    assert "Ctrl+Shift+Return" in panel.merge_button.toolTip()
    assert "Esc" in panel.cancel_button.toolTip()
    keys = {shortcut.key().toString() for shortcut in panel.shortcuts}
    assert {"Ctrl+Return", "Ctrl+Shift+Return", "Esc", "Ctrl+M"} <= keys
    escape = next(s for s in panel.shortcuts if s.key().toString() == "Esc")
    assert not escape.isEnabled()  # nothing runs: Esc is left to the other widgets
    panel.targets.text_edit.setFocus()
    qtbot.waitUntil(panel.targets.text_edit.hasFocus)
    qtbot.keyClick(panel.targets.text_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    window.wait_job()
    assert panel.analysis is not None and "nothing written" in panel.status_label.text()
    assert list(window.out.iterdir()) == []


def test_the_tab_order_follows_the_layout_with_the_block_grid_before_the_output(window, pair):
    panel = window.panel
    window.load(*pair)
    window.qtbot.wait(100)  # the block grid is rebuilt when the inputs are read
    grid = panel.targets.block_buttons
    first_block = next(iter(grid.values())) if isinstance(grid, dict) else grid[0]
    chain = [w for w in focus_chain(panel) if w.isVisibleTo(panel)]
    assert panel.output_edit in chain and panel.merge_button in chain
    order = {widget: index for index, widget in enumerate(chain)}
    assert order[panel.rank_form.editors["rank"].editor] < order[first_block] < order[panel.output_edit]
    assert order[panel.output_edit] < order[panel.merge_button]
    # Tab really goes there: from the last targets widget to the output row
    widget = panel.output_edit
    previous = widget.previousInFocusChain()
    while not (previous.focusPolicy() & Qt.FocusPolicy.TabFocus) or not previous.isVisibleTo(panel):
        previous = previous.previousInFocusChain()
    assert panel.targets.isAncestorOf(previous) or panel.output_box.isAncestorOf(previous)


def test_focus_starts_in_the_panel_not_in_the_log(window, qtbot):
    main = window.window
    main.focus_current_panel()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    focus = QApplication.focusWidget()
    assert window.panel.isAncestorOf(focus)
    assert not main.log_dock.view.focusPolicy() & Qt.FocusPolicy.TabFocus


def test_edit_undo_restores_the_output_name(window, pair):
    panel = window.panel
    main = window.window
    window.load(*pair)
    automatic = panel.output_edit.text()
    assert main.action_undo.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    assert QKeySequence("Ctrl+Y") in main.action_redo.shortcuts()
    edit = next(a.menu() for a in main.menuBar().actions() if a.text() == "&Edit")
    assert main.action_undo in edit.actions() and main.action_redo in edit.actions()
    panel.output_edit.setText(str(window.out / "mine.safetensors"))
    panel.output_edit.textEdited.emit(panel.output_edit.text())
    assert not panel.output_box.auto
    main.action_undo.trigger()
    assert panel.output_edit.text() == automatic and panel.output_box.auto
    main.action_redo.trigger()
    assert panel.output_edit.text().endswith("mine.safetensors") and not panel.output_box.auto


def test_edit_undo_restores_a_target_selection(window, pair):
    panel = window.panel
    if not hasattr(panel.targets, "set_undo_stack"):
        pytest.skip("the targets box records no undo steps yet (G3's set_undo_stack)")
    window.load(*pair)
    before = panel.targets.text()
    panel.targets.group_boxes["self_attn"].click()
    assert panel.targets.text() != before
    window.window.action_undo.trigger()
    assert panel.targets.text() == before
    window.window.action_redo.trigger()
    assert panel.targets.text() != before


def test_a_1280x720_window_leaves_the_workbench_its_room(window, qtbot):
    main = window.window
    main.resize(1280, 720)
    main.arrange_docks(compact=True)
    qtbot.waitUntil(lambda: main.width() == 1280 and main.height() == 720)
    qtbot.wait(50)
    assert not main.log_dock.isVisible() and not main.jobs_dock.isVisible()
    size = window.panel.size()
    assert size.width() >= 900 and size.height() >= 520, size
    main.action_toggle_log.trigger()  # the docks are one key away, tabbed together
    main.action_toggle_jobs.trigger()
    assert main.log_dock.isVisibleTo(main) and main.jobs_dock.isVisibleTo(main)
    assert main.tabifiedDockWidgets(main.log_dock) == [main.jobs_dock]


class SlowPlugin:
    """An exact SVD that takes a moment per module, so Esc can cancel it."""

    @hookimpl
    def difflora_register_merge_strategies(self):
        def compress(delta, rank_cap, params, ctx):
            from difflora_gui.merge import linalg

            for _ in range(40):
                ctx.raise_if_cancelled()
                time.sleep(0.01)
            return linalg.factored_svd(delta, rank_cap)

        return [MergeStrategySpec("slow_svd", "Slow SVD", "exact SVD, slowly", compress=compress)]


def test_ctrl_shift_return_merges_and_esc_cancels(qtbot, monkeypatch, tmp_path, pair):
    made = PanelWindow(qtbot, monkeypatch, tmp_path, (("slow", SlowPlugin()),))
    try:
        panel = made.panel
        made.load(*pair)
        panel.strategy.set_state("slow_svd")
        panel.targets.text_edit.setFocus()
        qtbot.waitUntil(panel.targets.text_edit.hasFocus)
        modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        qtbot.keyClick(panel.targets.text_edit, Qt.Key.Key_Return, modifiers)
        qtbot.waitUntil(lambda: panel.job is not None and panel.job.state == "running", timeout=30_000)
        qtbot.keyClick(panel.targets.text_edit, Qt.Key.Key_Escape)
        made.wait_job()
        assert "cancelled; nothing was written" in panel.status_label.text()
        assert list(made.out.iterdir()) == []
    finally:
        made.close()


def test_the_rank_hint_follows_the_analysis_and_goes_with_other_inputs(window, pair, tmp_path):
    panel = window.panel
    if panel.rank_hint is None:
        pytest.skip("no rank hint widget yet")
    window.load(*pair)
    assert panel.rank_hint.plain_text() == ""
    window.run("analyze")
    assert "keeps" in panel.rank_hint.plain_text() and not panel.rank_hint.isHidden()
    other = make_demo_pair(tmp_path / "c.safetensors", tmp_path / "d.safetensors", seed=9)
    window.load(*other)
    assert panel.rank_hint.plain_text() == "" and panel.rank_hint.isHidden()


def test_the_edit_menu_names_the_step_and_is_disabled_with_nothing_to_undo(window, pair):
    main, panel = window.window, window.panel
    window.load(*pair)
    panel.undo_stack.clear()
    assert not main.action_undo.isEnabled() and not main.action_redo.isEnabled()
    panel.output_edit.setText(str(window.out / "mine.safetensors"))
    panel.output_edit.textEdited.emit(panel.output_edit.text())
    assert main.action_undo.isEnabled() and main.action_undo.text() == "&Undo edit the output name"
    main.action_undo.trigger()
    assert not main.action_undo.isEnabled() and main.action_redo.text() == "&Redo edit the output name"
