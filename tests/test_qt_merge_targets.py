"""The targets box: block grid with weights and presets, out-of-range warning, keyboard, undo."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from difflora_gui.lora.block_weights import preset_weights as core_preset_weights
from difflora_gui.lora.selector import parse_selector
from difflora_gui.lora.synthetic import module_names
from difflora_gui.qt.merge.block_grid import WeightBox
from difflora_gui.qt.merge.targets import TargetSelector
from difflora_gui.qt.undo import UndoStack


@pytest.fixture
def box(qtbot):
    widget = TargetSelector()
    qtbot.addWidget(widget)
    widget.set_block_count(40)
    widget.set_text("attn")
    return widget


def test_weights_in_the_grid_become_selector_text_and_back(box):
    box.set_text("attn blocks=0-9,10-19@0.5")
    weights = box.block_weights()
    assert weights[:10] == [1.0] * 10 and weights[10:20] == [0.5] * 10 and weights[20:] == [0.0] * 20
    assert [w.value() for w in box.weight_boxes[9:11]] == [1.0, 0.5]
    assert box.checked_blocks() == list(range(20))
    # a typed weight rewrites the text; weight 0 switches the block off
    box.weight_boxes[3].setValue(0.25)
    assert box.text() == "attn blocks=0-2,3@0.25,4-9,10-19@0.5"
    box.weight_boxes[0].setValue(0)
    assert not box.block_buttons[0].isChecked()
    assert box.text() == "attn blocks=1-2,3@0.25,4-9,10-19@0.5"
    # what the merge gets: the selector carries the weights
    selector = box.selector()
    assert selector.weight_of("blocks.12.self_attn.q") == 0.5
    assert selector.weight_of("blocks.3.cross_attn.k") == 0.25
    assert not selector.matches("blocks.0.self_attn.q")
    assert parse_selector(box.text()) == selector


def test_a_click_switches_a_block_off_and_on_keeping_its_weight(box):
    box.set_text("attn blocks=0-3@0.5")
    box.block_buttons[2].click()
    assert box.text() == "attn blocks=0-1@0.5,3@0.5" and box.weight_boxes[2].value() == 0
    box.block_buttons[2].click()
    assert box.text() == "attn blocks=0-3@0.5"
    box.block_buttons[10].click()  # an unselected block comes on at weight 1
    assert box.text() == "attn blocks=0-3@0.5,10"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("flat", "attn"),  # every block at 1: the plain every-block selector
        ("first third", "attn blocks=0-12"),
        ("middle third", "attn blocks=13-25"),
        ("last third", "attn blocks=26-39"),
    ],
)
def test_presets_fill_the_grid(box, name, expected):
    box.preset_combo.setCurrentIndex(box.preset_combo.findData(name))
    box.preset_combo.activated.emit(box.preset_combo.currentIndex())
    assert box.text() == expected
    weights = core_preset_weights(name, 40)
    assert box.block_weights() == [round(weights[b], 2) for b in range(40)]
    assert box.preset_combo.currentIndex() == 0  # an action menu: it shows "Weights…" again


def test_ramp_presets_give_rising_and_falling_weights(box):
    box.apply_preset("ramp up")
    up = box.block_weights()
    assert up == sorted(up) and up[-1] == 1.0 and 0 < up[0] < 0.05
    selector = box.selector()
    assert selector.weight_of("blocks.19.ffn.0") == up[19] == 0.5
    box.apply_preset("ramp down")
    assert box.block_weights() == up[::-1]
    assert parse_selector(box.text()).weight_of("blocks.0.self_attn.q") == 1.0


def test_blocks_beyond_the_model_are_warned(box):
    box.set_text("attn 30-45")
    assert not box.range_warning.isHidden()
    assert box.range_warning.text().startswith("⚠ Blocks 40-45 are not in this model (it has 40 blocks")
    assert box.blocks_out_of_range() == [40, 41, 42, 43, 44, 45]
    assert box.checked_blocks() == list(range(30, 40))
    box.set_text("attn 30-39")
    assert box.range_warning.isHidden()
    box.set_block_count(30)  # a smaller model: the same text now reaches beyond it
    assert "Blocks 30-39 are not in this model (it has 30 blocks, 0-29)" in box.range_warning.text()


def test_the_grid_is_reachable_by_keyboard_in_layout_order(box, qtbot):
    box.show()
    qtbot.waitExposed(box)
    box.activateWindow()
    qtbot.waitUntil(lambda: box.isActiveWindow())
    # Tab from the last group box goes to block 0, through the cells, then to the buttons under the grid
    box.group_boxes["other"].setFocus()
    chain = []
    for _ in range(2 * 40 + 1):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        chain.append(focused.parent() if isinstance(focused.parent(), WeightBox) else focused)
    assert chain[0] is box.block_buttons[0] and chain[1] is box.weight_boxes[0]
    assert chain[78] is box.block_buttons[39] and chain[80] is box.all_button
    # Space toggles the focused block
    box.block_buttons[5].setFocus()
    qtbot.keyClick(box.block_buttons[5], Qt.Key.Key_Space)
    assert box.text() == "attn blocks=0-4,6-39"
    qtbot.keyClick(box.block_buttons[5], Qt.Key.Key_Space)
    assert box.text() == "attn"


def test_undo_restores_a_selection_and_redo_reapplies_it(box):
    stack = UndoStack()
    box.set_undo_stack(stack)
    box.block_buttons[1].click()
    assert box.text() == "attn blocks=0,2-39"
    box.group_boxes["ffn"].click()
    assert box.text() == "attn,ffn blocks=0,2-39"
    assert stack.count() == 2
    stack.undo()
    assert box.text() == "attn blocks=0,2-39" and not box.group_boxes["ffn"].isChecked()
    stack.undo()
    assert box.text() == "attn" and box.block_buttons[1].isChecked()
    stack.redo()
    assert box.text() == "attn blocks=0,2-39" and not box.block_buttons[1].isChecked()
    assert stack.count() == 2  # restoring recorded nothing more


def test_a_preset_is_one_step_and_typing_a_weight_merges(box, qtbot):
    stack = UndoStack()
    box.set_undo_stack(stack)
    box.apply_preset("ramp up")  # called directly: not a user action, not recorded
    assert stack.count() == 0
    box.set_text("attn")
    box.preset_combo.activated.emit(box.preset_combo.findData("last third"))
    assert stack.count() == 1 and box.text() == "attn blocks=26-39"
    stack.undo()
    assert box.text() == "attn" and box.block_weights() == [1.0] * 40
    stack.redo()
    assert box.text() == "attn blocks=26-39"
    # typing 0.75 in one field: several value changes, one step
    field = box.weight_boxes[30]
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, "0.75")
    assert box.text() == "attn blocks=26-29,30@0.75,31-39"
    assert stack.count() == 2
    stack.undo()
    assert box.text() == "attn blocks=26-39"


def test_typed_text_is_one_step_and_restoring_a_recipe_is_none(box, qtbot):
    stack = UndoStack()
    box.set_undo_stack(stack)
    box.text_edit.selectAll()
    qtbot.keyClicks(box.text_edit, "ffn 0-4")
    assert box.text() == "ffn 0-4" and box.checked_blocks() == [0, 1, 2, 3, 4]
    assert stack.count() == 1
    box.set_text("all")  # a restored recipe
    assert stack.count() == 1
    stack.undo()
    assert box.text() == "attn"


def test_counts_with_module_names_and_weights(box):
    names = module_names("tiny")
    box.set_block_count(2)
    box.set_module_names(names)
    box.set_text("attn blocks=0@0.5,1")
    assert box.targeted_count() == sum(1 for n in names if parse_selector("attn").matches(n))
    assert "weighted 0 ×0.5" in box.status_label.text()


def test_the_block_buttons_and_the_range_are_undoable_steps(box):
    stack = UndoStack()
    box.set_undo_stack(stack)
    box.none_button.click()
    assert box.text() == "" and "no block is selected" in box.status_label.text()
    box.range_edit.setText("2-4")
    box.range_button.click()
    assert box.text() == "attn blocks=2-4"
    box.invert_button.click()
    assert box.text() == "attn blocks=0-1,5-39"
    box.all_button.click()
    assert box.text() == "attn" and stack.count() == 4
    for expected in ("attn blocks=0-1,5-39", "attn blocks=2-4", "", "attn"):
        stack.undo()
        assert box.text() == expected
        if not expected:  # the state, not only the text, comes back
            assert box.problem() == "no block is selected" and box.checked_blocks() == []
