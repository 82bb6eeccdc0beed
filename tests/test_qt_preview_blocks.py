"""The Preview's block panel (weights per block, groups, selector text) and the strength control."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QLineEdit, QScrollArea, QVBoxLayout, QWidget

from difflora_gui.errors import UserError
from difflora_gui.lora.block_weights import PRESETS, preset_weights
from difflora_gui.lora.selector import parse_selector
from difflora_gui.qt.preview.blocks import OFF_SELECTOR, BlockWeightsPanel
from difflora_gui.qt.preview.strength import StrengthControl
from difflora_gui.qt.undo import UndoStack
from difflora_gui.qt.wheel_guard import install_wheel_guard


class Counter:
    def __init__(self, signal):
        self.calls: list = []
        signal.connect(lambda *args: self.calls.append(args))

    @property
    def count(self) -> int:
        return len(self.calls)


@pytest.fixture
def panel(qtbot):
    widget = BlockWeightsPanel()
    qtbot.addWidget(widget)
    widget.set_num_blocks(40)
    return widget


def test_one_cell_per_block_and_all_at_first(panel):
    assert len(panel.block_buttons) == len(panel.weight_boxes) == 40
    assert panel.selector() == "all" and panel.text_edit.text() == "all"
    assert panel.weights() == dict.fromkeys(range(40), 1.0)
    panel.set_num_blocks(30)
    assert len(panel.weight_boxes) == 30 and panel.selector() == "all"
    panel.set_num_blocks(2)
    assert len(panel.block_buttons) == 2


def test_a_block_at_weight_0_leaves_the_selector(panel):
    changed = Counter(panel.changed)
    panel.weight_boxes[3].setValue(0)
    assert changed.count == 1
    selector = parse_selector(panel.selector())
    assert "0-2,4-39" in panel.selector() and panel.text_edit.text() == panel.selector()
    assert selector.weight_of("blocks.3.self_attn.q") == 0
    assert selector.weight_of("blocks.4.self_attn.q") == 1
    assert not panel.block_buttons[3].isChecked() and panel.weight_boxes[3].property("off")
    # a click switches it back on
    panel.block_buttons[3].click()
    assert panel.selector() == "all" and changed.count == 2


def test_a_click_keeps_a_weight_to_come_back_to(panel):
    panel.set_selector("attn 0-3@0.5")
    panel.block_buttons[2].click()
    assert panel.selector() == "attn blocks=0-1@0.5,3@0.5"
    panel.block_buttons[2].click()
    assert panel.selector() == "attn blocks=0-3@0.5"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_give_the_preset_weights_in_one_signal(panel, name):
    changed = Counter(panel.changed)
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData(name))
    panel.preset_combo.activated.emit(panel.preset_combo.currentIndex())
    assert panel.weights() == preset_weights(name, 40)
    assert changed.count == (0 if name == "flat" else 1)
    assert panel.preset_combo.currentIndex() == 0  # a menu of actions
    selector = parse_selector(panel.selector())
    for block, weight in preset_weights(name, 40).items():
        assert selector.weight_of(f"blocks.{block}.ffn.0") == weight


def test_all_none_invert(panel):
    changed = Counter(panel.changed)
    panel.set_selector("0-9@0.5,20-29")
    assert changed.count == 1
    panel.invert_button.click()
    weights = panel.weights()
    assert [weights[b] for b in (0, 10, 20, 30)] == [0.0, 1.0, 0.0, 1.0]
    assert panel.selector() == "all blocks=10-19,30-39"
    panel.none_button.click()
    assert panel.is_off() and panel.selector() == OFF_SELECTOR
    assert set(panel.weights().values()) == {0.0}
    assert not any(b.isChecked() for b in panel.block_buttons)
    assert "changes nothing" in panel.message()
    selector = parse_selector(panel.selector())
    assert not selector.matches("blocks.0.self_attn.q") and not selector.matches("head.head")
    panel.invert_button.click()
    assert panel.selector() == "all" and not panel.is_off()
    panel.set_selector("ffn 0-3")
    panel.set_selector(OFF_SELECTOR)  # another entry's setting: nothing of the last one stays
    assert panel.is_off() and panel.groups() == {"self_attn", "cross_attn", "ffn"}
    panel.set_selector("all")
    panel.none_button.click()
    panel.all_button.click()
    assert panel.selector() == "all"
    assert changed.count == 9  # one per action, though each rewrites 40 weights


def test_the_group_filter(panel):
    changed = Counter(panel.changed)
    panel.group_boxes["ffn"].click()
    assert panel.selector() == "attn" and panel.groups() == {"self_attn", "cross_attn"}
    panel.group_boxes["cross_attn"].click()
    assert panel.selector() == "self_attn"
    panel.group_boxes["self_attn"].click()  # the last one stays on
    assert panel.group_boxes["self_attn"].isChecked() and panel.selector() == "self_attn"
    assert "at least one" in panel.message().lower()
    panel.group_boxes["ffn"].click()
    panel.group_boxes["cross_attn"].click()
    assert panel.selector() == "all"  # every group again: every module, the outside ones too
    assert changed.count == 4
    panel.set_groups(["ffn"])
    panel.weight_boxes[0].setValue(0.5)
    assert panel.selector() == "ffn blocks=0@0.5,1-39"
    with pytest.raises(UserError):
        panel.set_groups([])


@pytest.mark.parametrize(
    "text",
    [
        "all",
        "attn",
        "0-9@1,10-19@0.5",
        "attn blocks=0-9,10-19@0.5,20-29",
        "ffn 0-4@0.2,5-9@0.4,35-39@-1",
        "self_attn,ffn blocks=0-2,9",
        "attn,ffn",
        "attn 0-39 exclude=k_img",
        "cross_attn include=\\.(q|k)$",
    ],
)
def test_set_selector_round_trips(panel, text):
    panel.set_selector(text)
    assert panel.selector() == parse_selector(text).to_text()
    assert parse_selector(panel.selector()) == parse_selector(text)
    weights = panel.weights()
    expected = parse_selector(text)
    assert weights == {b: expected.block_weight(b) for b in range(40)}
    other = BlockWeightsPanel()
    other.set_num_blocks(40)
    other.set_weights(weights)
    other.set_groups(panel.groups())
    assert other.weights() == weights
    other.deleteLater()


def test_typed_text_applies_on_enter_and_bad_text_is_refused(panel, qtbot):
    changed = Counter(panel.changed)
    panel.text_edit.setFocus()
    panel.text_edit.selectAll()
    qtbot.keyClicks(panel.text_edit, "attn 0-9@0.5")
    assert changed.count == 0 and panel.selector() == "all"  # not applied while typing
    qtbot.keyClick(panel.text_edit, Qt.Key.Key_Return)
    assert changed.count == 1 and panel.selector() == "attn blocks=0-9@0.5"
    assert panel.weight_boxes[4].value() == 0.5 and not panel.block_buttons[10].isChecked()

    panel.text_edit.selectAll()
    qtbot.keyClicks(panel.text_edit, "atn 0-9@x")
    qtbot.keyClick(panel.text_edit, Qt.Key.Key_Return)
    assert changed.count == 1 and panel.selector() == "attn blocks=0-9@0.5"
    assert panel.text_edit.property("invalid") and "unknown layer group 'atn'" in panel.message()
    assert panel.text_edit.text() == "atn 0-9@x"  # kept for fixing
    qtbot.keyClick(panel.text_edit, Qt.Key.Key_Escape)
    assert panel.text_edit.text() == "attn blocks=0-9@0.5" and not panel.text_edit.property("invalid")
    with pytest.raises(UserError, match="9-3"):
        panel.set_selector("attn 9-3")
    assert panel.selector() == "attn blocks=0-9@0.5" and changed.count == 1


def test_blocks_beyond_the_model_are_kept_and_warned_about(panel):
    panel.set_selector("attn 20-45")
    assert "40-45" in panel.message()
    assert panel.selector() == "attn blocks=20-45"
    panel.set_num_blocks(50)
    assert panel.weights()[45] == 1.0 and "40-45" not in panel.message()


def test_setting_before_the_model_is_known(qtbot):
    panel = BlockWeightsPanel()
    qtbot.addWidget(panel)
    assert not panel.all_button.isEnabled() and panel.grid.isHidden()
    panel.set_selector("attn 0-9@0.5")
    panel.set_num_blocks(30)
    assert panel.weights()[9] == 0.5 and panel.weights()[10] == 0.0


def test_undo_takes_back_one_action(panel):
    stack = UndoStack()
    panel.set_undo_stack(stack)
    edited = Counter(panel.edited)
    panel.apply_preset("ramp up")  # called directly: not recorded
    panel.none_button.click()
    panel.weight_boxes[0].setValue(0.25)
    panel.weight_boxes[0].setValue(0.5)  # typing into one field merges
    assert stack.count() == 2 and edited.count == 3
    stack.undo()
    assert panel.is_off()
    stack.undo()
    assert panel.weights() == preset_weights("ramp up", 40)
    stack.redo()
    stack.redo()
    assert panel.selector() == "all blocks=0@0.5"
    what, _key, before, after = edited.calls[0]
    assert what == "every block off" and after[1] is True and before[1] is False
    panel.set_state(before)
    assert panel.weights() == preset_weights("ramp up", 40)


def test_tab_follows_the_layout(panel):
    chain = panel.focus_chain()
    assert chain[0] is panel.group_boxes["self_attn"] and chain[-1] is panel.text_edit
    assert chain[3] is panel.block_buttons[0] and chain[4] is panel.weight_boxes[0]
    for first, second in zip(chain, chain[1:], strict=False):
        following = first.nextInFocusChain()
        # skip a spin box's own line edit and the cells' containers
        while first.isAncestorOf(following) or following.focusPolicy() == Qt.FocusPolicy.NoFocus:
            following = following.nextInFocusChain()
        assert following is second


def _wheel(widget, steps: int = 1) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QCoreApplication.sendEvent(widget, event)


def test_the_wheel_leaves_unfocused_inputs_alone(qtbot):
    install_wheel_guard()
    area = QScrollArea()
    area.setWidgetResizable(True)
    body = QWidget()
    layout = QVBoxLayout(body)
    name = QLineEdit()
    panel = BlockWeightsPanel()
    panel.set_num_blocks(40)
    strength = StrengthControl()
    for widget in (name, strength, panel):
        layout.addWidget(widget)
    layout.addSpacing(1500)
    area.setWidget(body)
    area.resize(420, 300)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    name.setFocus()
    qtbot.waitUntil(name.hasFocus)
    changed = Counter(panel.changed)
    _wheel(panel.weight_boxes[3])
    _wheel(strength.slider)
    _wheel(strength.field)
    assert panel.weights()[3] == 1.0 and changed.count == 0 and strength.value() == 1.0
    strength.field.setFocus()
    qtbot.waitUntil(strength.field.hasFocus)
    _wheel(strength.field)
    assert strength.value() == 1.05  # a focused input still takes the wheel


def test_strength_beyond_the_slider_stays_in_the_field(qtbot):
    control = StrengthControl()
    qtbot.addWidget(control)
    values = Counter(control.value_changed)
    assert control.value() == 1.0
    control.field.setValue(7.5)
    assert control.value() == 7.5 and control.field.value() == 7.5
    assert control.slider.value() == control.slider.maximum() and control.slider_pinned()
    assert control.field.property("pinned")  # shown in amber
    assert values.calls == [(7.5,)]
    control.set_value(-12)
    assert control.slider.value() == control.slider.minimum() and control.field.value() == -12
    control.slider.setValue(round(2.5 * 20))
    assert control.value() == 2.5 and control.field.value() == 2.5 and not control.slider_pinned()
    control.reset_button.click()
    assert control.value() == 1.0
    assert [v for (v,) in values.calls] == [7.5, -12.0, 2.5, 1.0]
    control.set_value(1.0)  # no change, no signal
    assert values.count == 4
    with pytest.raises(UserError):
        control.set_value(150)
    with pytest.raises(UserError):
        control.set_value(float("nan"))


def test_strength_typing_is_one_change_and_undoable(qtbot):
    control = StrengthControl()
    qtbot.addWidget(control)
    stack = UndoStack()
    control.set_undo_stack(stack)
    values = Counter(control.value_changed)
    committed = Counter(control.committed)
    control.field.setFocus()
    control.field.selectAll()
    qtbot.keyClicks(control.field, "-3.25")
    assert values.count == 0  # not on every keystroke
    qtbot.keyClick(control.field, Qt.Key.Key_Return)
    assert values.calls == [(-3.25,)] and committed.calls == [(-3.25,)]
    assert control.slider.value() == round(-3.25 * 20)
    control.slider.setFocus()
    qtbot.keyClick(control.slider, Qt.Key.Key_Right)
    assert control.value() == -3.2 and committed.count == 2
    assert stack.count() == 2
    stack.undo()
    stack.undo()
    assert control.value() == 1.0 and control.slider.value() == 20


def test_forty_blocks_fit_a_side_column(panel):
    """Rows of 8 cells: 40 blocks in 5 rows, narrow enough for a ~380 px column."""
    rows = {panel.grid.grid.getItemPosition(panel.grid.grid.indexOf(cell))[0] for cell in panel.grid.cells}
    assert rows == set(range(5))
    assert panel.minimumSizeHint().width() <= 360
