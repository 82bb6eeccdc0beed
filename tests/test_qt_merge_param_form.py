"""The generic form generated from a Param schema (used by the Merge workbench, reusable by any panel)."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QPushButton, QSpinBox
from superqt import QCollapsible, QLabeledDoubleSlider, QLabeledSlider

from difflora_gui.errors import UserError
from difflora_gui.params import Param
from difflora_gui.qt.param_form import CompactDoubleSpinBox, ParamForm, float_decimals

SCHEMA = (
    Param("steps", "int", 10, "how many steps", minimum=1, maximum=100),
    Param("seed", "int", 0, "random seed", minimum=0),
    Param("strength", "float", 0.25, "how strong", minimum=0.0, maximum=1.0, step=0.05),
    Param("scale", "float", 1.5, "a free number"),
    Param("enabled", "bool", True, "switch it on"),
    Param("mode", "choice", "fast", "which mode", choices=("fast", "exact")),
    Param("label", "str", "hello", "a text", title="Label text"),
    Param("config", "path", "", "a file", advanced=True),
    Param(
        "cutoff", "float", None, "optional cut-off (empty = off)", minimum=0.0, maximum=100.0, optional=True
    ),
    Param("tag", "str", None, "optional tag", optional=True, advanced=True),
)


@pytest.fixture
def form(qtbot):
    widget = ParamForm(SCHEMA)
    qtbot.addWidget(widget)
    return widget


def test_each_type_gets_its_editor_with_tooltip_and_label(form):
    editors = {name: editor.editor for name, editor in form.editors.items()}
    assert isinstance(editors["steps"], QLabeledSlider)
    assert (editors["steps"].minimum(), editors["steps"].maximum()) == (1, 100)
    assert isinstance(editors["seed"], QSpinBox) and editors["seed"].minimum() == 0
    assert isinstance(editors["strength"], QLabeledDoubleSlider)
    assert isinstance(editors["scale"], CompactDoubleSpinBox)
    assert isinstance(editors["enabled"], QCheckBox)
    assert isinstance(editors["mode"], QComboBox) and editors["mode"].count() == 2
    assert isinstance(editors["label"], QLineEdit)
    assert isinstance(editors["config"], QLineEdit)
    assert form.editors["config"].findChild(QPushButton).text() == "Browse…"
    for param in SCHEMA:
        assert form.editors[param.name].editor.toolTip() == param.help
        assert form.labels[param.name].text() == param.label
    assert form.labels["label"].text() == "Label text"


def test_advanced_parameters_are_folded_into_a_collapsible(form):
    collapsible = form.findChild(QCollapsible)
    assert collapsible is not None
    assert collapsible.isAncestorOf(form.editors["config"]) and collapsible.isAncestorOf(form.editors["tag"])
    assert not collapsible.isAncestorOf(form.editors["steps"])
    assert ParamForm(SCHEMA[:2]).findChild(QCollapsible) is None


def test_values_start_at_the_defaults_and_round_trip(form, qtbot):
    assert form.values() == {
        "steps": 10,
        "seed": 0,
        "strength": 0.25,
        "scale": 1.5,
        "enabled": True,
        "mode": "fast",
        "label": "hello",
        "config": "",
        "cutoff": None,
        "tag": None,
    }
    assert form.changed_values() == {}
    with qtbot.waitSignal(form.changed):
        form.editors["strength"].editor.setValue(0.65)
    new = {
        "steps": 42,
        "seed": 7,
        "scale": -0.125,
        "enabled": False,
        "mode": "exact",
        "cutoff": 12.5,
        "tag": "x",
    }
    unknown = form.set_values({**new, "nonsense": 1})
    assert unknown == ["nonsense"]
    values = form.values()
    assert values["strength"] == 0.65  # the slider's binary noise is rounded away
    assert {k: values[k] for k in new} == new
    assert form.changed_values() == {**new, "strength": 0.65}
    assert form.resolved()["cutoff"] == 12.5
    form.reset_defaults()
    assert form.changed_values() == {}


def test_optional_values_have_a_set_box(form):
    cutoff = form.editors["cutoff"]
    assert cutoff.set_check is not None and not cutoff.set_check.isChecked()
    assert not cutoff.editor.isEnabled()
    cutoff.set_check.setChecked(True)
    assert cutoff.editor.isEnabled() and form.value("cutoff") == 0.0
    cutoff.set_check.setChecked(False)
    assert form.value("cutoff") is None
    assert form.editors["tag"].editor.text() == ""  # an optional text is "not set" when empty


def test_values_the_editors_cannot_show_fall_back_to_valid_ones(form):
    form.set_values({"steps": 1000, "seed": -5, "mode": "no such mode", "strength": "not a number"})
    values = form.values()
    assert values["steps"] == 100 and values["seed"] == 0  # clamped to the range
    assert values["mode"] == "fast"  # unknown choice: the first one
    assert values["strength"] == 0.0
    assert form.errors() == {}
    assert form.error_label.isHidden()
    with pytest.raises(UserError):
        form.schema.resolve({"steps": 1000})  # the schema itself still refuses it


def test_rows_can_be_hidden(form):
    form.set_row_visible("scale", False)
    assert not form.is_row_visible("scale")
    form.set_row_visible("scale", True)
    assert form.is_row_visible("scale")


def test_decimals_fit_the_step_range_and_default():
    assert float_decimals(Param("x", "float", 0.99, "h", minimum=0.0, maximum=1.0, step=0.0001)) == 4
    assert float_decimals(Param("x", "float", 0.5, "h", minimum=0.0, maximum=100.0)) == 2
    assert float_decimals(Param("x", "float", 0.125, "h")) == 3


def test_compact_spin_box_keeps_precision_but_hides_trailing_zeros(qtbot):
    spin = CompactDoubleSpinBox()
    qtbot.addWidget(spin)
    spin.setDecimals(6)
    spin.setRange(-10, 10)
    spin.setValue(1.5)
    assert spin.text() == "1.5"
    spin.setValue(0.123456)
    assert spin.value() == pytest.approx(0.123456) and spin.text() == "0.123456"
    assert isinstance(spin, QDoubleSpinBox)


# --- where a form starts, named values with a number, the Advanced arrows, notes ---------------


def test_a_new_form_starts_from_the_gui_defaults_and_a_recipe_restores_exactly(qtbot):
    from difflora_gui.merge.config import OUTPUT_PARAMS, form_values
    from difflora_gui.merge.params import MergeParams

    form = ParamForm(OUTPUT_PARAMS)
    qtbot.addWidget(form)
    # the GUI leaves non-targeted modules out (the model card's advice); the CLI default stays
    assert form.value("exclude_non_targeted") is True
    assert OUTPUT_PARAMS.get("exclude_non_targeted").default is False
    assert MergeParams().exclude_non_targeted is False
    assert form.changed_values()["exclude_non_targeted"] is True  # so the recipe and command say it
    # a stored recipe that wrote zeros still shows zeros
    recipe = MergeParams(exclude_non_targeted=False).to_json()
    form.set_values(form_values(recipe)["output"])
    assert form.value("exclude_non_targeted") is False
    assert "exclude_non_targeted" not in form.changed_values()
    form.reset_defaults()  # back to a new form
    assert form.value("exclude_non_targeted") is True


def test_a_text_field_with_named_values_is_an_editable_combo_checked_as_typed(qtbot):
    from difflora_gui.merge.config import STRENGTH_PARAMS

    form = ParamForm(STRENGTH_PARAMS)
    qtbot.addWidget(form)
    combo = form.editors["target_norm"].editor
    assert isinstance(combo, QComboBox) and combo.isEditable()
    assert [combo.itemText(i) for i in range(combo.count())] == ["a", "b", "mean"]
    assert form.value("target_norm") == "a"
    form.set_values({"auto_alpha": True})  # target_norm applies (and is checked) with auto alpha
    combo.setCurrentIndex(2)
    assert form.value("target_norm") == "mean" and form.errors() == {}
    combo.setEditText("0.35")
    assert form.value("target_norm") == "0.35" and "target_norm" not in form.errors()
    assert form.changed_values()["target_norm"] == "0.35"
    for bad in ("abc", "-2", "0", "nan"):
        combo.setEditText(bad)
        assert form.errors()["target_norm"] == (
            f"Target norm must be a, b, mean or a positive number, not {bad!r}"
        ), bad
        assert not form.error_label.isHidden()
        assert "target_norm" not in form.changed_values()
    form.set_values({"target_norm": "b"})
    assert combo.currentText() == "b" and form.errors() == {}


def test_the_compressor_of_the_magnitude_filter_is_a_choice_of_registered_compressors(qtbot):
    from difflora_gui.plugin_host import get_plugin_host

    spec = get_plugin_host().merge_strategies()["magnitude_filter"]
    form = ParamForm(spec.params)
    qtbot.addWidget(form)
    combo = form.editors["compressor"].editor
    assert isinstance(combo, QComboBox) and not combo.isEditable()
    names = [combo.itemText(i) for i in range(combo.count())]
    assert names[0] == "full_svd" and set(names) == {"full_svd", "randomized_svd"}
    assert "magnitude_filter" not in names  # a filter is not a compressor
    combo.setCurrentText("randomized_svd")
    assert form.changed_values() == {"compressor": "randomized_svd"}
    with pytest.raises(UserError, match="must be one of"):
        spec.params.resolve({"compressor": "nope"})


def test_the_advanced_arrow_points_right_while_folded_and_down_while_open(form, qtbot):
    from difflora_gui.qt.param_form import ARROW_COLLAPSED, ARROW_EXPANDED

    section = form.advanced
    assert (ARROW_COLLAPSED, ARROW_EXPANDED) == ("▸", "▾")
    assert not section.isExpanded() and section.arrow() == "▸"
    section.toggleButton().click()
    assert section.isExpanded() and section.arrow() == "▾"
    section.toggleButton().click()
    assert not section.isExpanded() and section.arrow() == "▸"
    assert not section.toggleButton().icon().isNull()


def test_a_note_sits_under_or_beside_a_field(form, qtbot):
    from PySide6.QtWidgets import QLabel

    note = QLabel("a hint")
    form.set_field_note("steps", note)
    assert form.notes["steps"] is note
    field = form.editors["steps"].parentWidget()
    assert field.isAncestorOf(note)
    other = QLabel("another")
    form.set_field_note("steps", other, beside=True)  # replaces the first
    assert form.notes["steps"] is other and note.parent() is None and field.isAncestorOf(other)


def test_the_rank_hint_sits_under_the_rank_field_and_its_link_sets_the_rank(qtbot, tmp_path):
    from test_merge_support import make_modules, params, write

    from difflora_gui.merge.config import RANK_PARAMS
    from difflora_gui.merge.engine import run_analysis
    from difflora_gui.merge.rank_hint import hints_for, suggested_rank
    from difflora_gui.qt.merge.rank_hint import RankHint
    from difflora_gui.qt.undo import UndoStack

    a = write(tmp_path / "a.safetensors", make_modules(1, rank=8, decay=0.6))
    b = write(tmp_path / "b.safetensors", make_modules(2, rank=8, decay=0.6))
    result = run_analysis(params(tmp_path, a, b, targets="attn", rank=0))
    expected = suggested_rank(hints_for(result))

    form = ParamForm(RANK_PARAMS)
    qtbot.addWidget(form)
    stack = UndoStack()
    form.set_undo_stack(stack)
    hint = RankHint()
    hint.attach(form)
    assert form.notes["rank"] is hint and hint.isHidden()  # nothing before an analysis
    hint.set_analysis(result)
    assert not hint.isHidden()
    assert hint.plain_text() == f"rank {expected} keeps 99 % of the targeted energy"
    assert f"use {expected}" in hint.text()
    assert "rank 4 (set) keeps" in hint.toolTip() and "90 %: rank" in hint.toolTip()
    hint.linkActivated.emit("use")  # the "use" link
    assert form.value("rank") == expected and f"use {expected}" not in hint.text()
    stack.undo()  # one step, like typing it
    assert form.value("rank") == 4
    hint.set_analysis(None)  # the analysis was cleared (new inputs)
    assert hint.isHidden() and hint.plain_text() == ""


def test_a_third_party_filter_s_text_compressor_field_is_offered_as_a_choice(qtbot):
    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.qt.merge.strategy import StrategyChooser
    from difflora_gui.specs import MergeStrategySpec

    strategies = dict(get_plugin_host().merge_strategies())
    strategies["mine"] = MergeStrategySpec(
        name="mine",
        title="Mine",
        description="a filter declaring its compressor as text",
        params=(Param("compressor", "str", "full_svd", "any registered compressor"),),
        select=lambda stats, params, ctx: [s.name for s in stats],
    )
    strategies["sign_flip"] = MergeStrategySpec(
        name="sign_flip", title="Sign flip", description="a third-party compressor", compress=lambda *a: None
    )
    chooser = StrategyChooser(strategies)
    qtbot.addWidget(chooser)
    chooser.set_state("mine")
    combo = chooser.form("mine").editors["compressor"].editor
    assert isinstance(combo, QComboBox) and not combo.isEditable()
    assert [combo.itemText(i) for i in range(combo.count())] == ["full_svd", "randomized_svd", "sign_flip"]
    combo.setCurrentText("sign_flip")
    assert chooser.compressor_name() == "sign_flip"
    assert chooser.strategy_params() == {"mine": {"compressor": "sign_flip"}}
    assert chooser.problem() == ""
    # the magnitude filter offers the same list
    chooser.set_state("magnitude_filter")
    combo = chooser.form("magnitude_filter").editors["compressor"].editor
    assert combo.findText("sign_flip") >= 0 and combo.currentText() == "full_svd"
