"""Undo/redo of form fields and the strategy chooser (the targets box: tests/test_qt_merge_targets.py)."""

from __future__ import annotations

import pytest

from difflora_gui.merge.config import RANK_PARAMS, STRENGTH_PARAMS
from difflora_gui.plugin_host import get_plugin_host
from difflora_gui.qt.merge.strategy import StrategyChooser
from difflora_gui.qt.param_form import ParamForm
from difflora_gui.qt.undo import UndoStack


@pytest.fixture
def stack():
    return UndoStack()


def make_form(qtbot, stack, params=RANK_PARAMS):
    form = ParamForm(params)
    qtbot.addWidget(form)
    form.set_undo_stack(stack)
    return form


def test_a_rank_change_is_undone_and_redone(qtbot, stack):
    form = make_form(qtbot, stack)
    rank = form.editors["rank"].editor
    assert form.value("rank") == 4
    rank.setValue(16)
    assert stack.count() == 1 and stack.undoText() == "Rank: 4 → 16"
    stack.undo()
    assert form.value("rank") == 4 and rank.value() == 4
    stack.redo()
    assert form.value("rank") == 16
    assert stack.count() == 1  # restoring did not record again


def test_steps_of_one_field_merge_and_other_fields_are_their_own_steps(qtbot, stack):
    form = make_form(qtbot, stack)
    rank = form.editors["rank"].editor
    for value in (5, 6, 7, 8):  # arrow keys / typing in one field
        rank.setValue(value)
    form.editors["rank_mode"].editor.setCurrentText("energy")
    assert stack.count() == 2
    stack.undo()
    assert form.value("rank_mode") == "fixed" and form.value("rank") == 8
    assert form.is_row_visible("energy") is False  # the form follows the restored value
    stack.undo()
    assert form.value("rank") == 4


def test_values_set_by_the_program_are_not_recorded(qtbot, stack):
    form = make_form(qtbot, stack)
    form.set_values({"rank": 32, "rank_mode": "sv_ratio"})
    form.reset_defaults()
    assert stack.count() == 0
    form.editors["rank"].editor.setValue(2)
    stack.undo()
    assert form.value("rank") == 4  # the value before the user's edit, not an older one


def test_a_check_box_and_a_slider_are_undone(qtbot, stack):
    form = make_form(qtbot, stack, STRENGTH_PARAMS)
    form.editors["auto_alpha"].editor.click()
    assert form.value("auto_alpha") is True and form.is_row_visible("target_norm")
    form.editors["target_norm"].editor.setEditText("0.5")
    stack.undo()
    assert form.value("target_norm") == "a"
    stack.undo()
    assert form.value("auto_alpha") is False and not form.is_row_visible("target_norm")


def test_choosing_a_strategy_and_its_parameters_are_undone(qtbot, stack):
    chooser = StrategyChooser(get_plugin_host().merge_strategies())
    qtbot.addWidget(chooser)
    chooser.set_state("full_svd")
    chooser.set_undo_stack(stack)
    chooser.combo.setCurrentIndex(chooser.combo.findData("magnitude_filter"))
    assert stack.count() == 1 and chooser.strategy_name() == "magnitude_filter"
    form = chooser.form("magnitude_filter")  # built after the stack was given: it records too
    form.editors["top_k_layers"].editor.setValue(12)
    assert chooser.strategy_params() == {"magnitude_filter": {"top_k_layers": 12}}
    assert stack.count() == 2
    stack.undo()
    assert chooser.strategy_params() == {}
    stack.undo()
    assert chooser.strategy_name() == "full_svd"
    assert chooser.stack.currentWidget() is chooser.form("full_svd")
    stack.redo()
    stack.redo()
    assert chooser.strategy_name() == "magnitude_filter"
    assert chooser.strategy_params() == {"magnitude_filter": {"top_k_layers": 12}}
    chooser.set_state("randomized_svd")  # a restored recipe: not a step
    assert stack.count() == 2
