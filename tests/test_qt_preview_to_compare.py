"""Preview → Compare in one click: "Strength grid…" fills Compare with the Preview's stack and
settings and (when its axes are empty) strengths -2:2:1 × the Preview's seed and the next."""

from __future__ import annotations

import pytest

from difflora_gui.qt.preview.lora_stack import items_to_json
from tests.preview_panel_helpers import PreviewWindow, make_model_and_loras

COMPARE = "compare-grid"


@pytest.fixture(scope="module")
def model_and_loras(tmp_path_factory):
    return make_model_and_loras(tmp_path_factory.mktemp("to compare models"))


@pytest.fixture
def window(qtbot, monkeypatch, model_and_loras):
    model, loras = model_and_loras
    win = PreviewWindow(qtbot, monkeypatch, model)
    win.quick_form(prompt="a blue sphere", width=64, height=32, frames=9, steps=3, seed=41)
    assert win.panel.stack.add_files([str(p) for p in loras]) == []
    win.panel.stack.set_items(win.panel.stack.items(), selected=1)
    yield win
    win.close()


def _axis_texts(compare) -> list[tuple[str, str]]:
    return [(row.kind(), row.values_edit.text()) for row in compare.axes_form.rows if row.kind()]


def test_strength_grid_fills_compare_with_the_preview_stack_and_default_axes(window):
    preview = window.panel
    compare = window.window.panels[COMPARE].widget
    assert window.window.current_section() == "preview"
    assert preview.grid_button.isVisible() and preview.grid_button.isEnabled()
    assert "strengths -2…2 × two seeds" in preview.grid_button.toolTip()

    preview.grid_button.click()

    assert window.window.current_section() == "compare"
    assert items_to_json(compare.stack.items()) == items_to_json(preview.stack.items())
    assert compare.stack.selected_index() == 1
    values = compare.render_form.values()
    for key, expected in {
        "prompt": "a blue sphere",
        "width": 64,
        "height": 32,
        "frames": 9,
        "steps": 3,
    }.items():
        assert values[key] == expected, key
    assert values == preview.render_form.values()
    assert _axis_texts(compare) == [("strength", "-2:2:1"), ("seed", "41,42")]
    assert compare.axes_form.summary_label.text() == "5 strengths × 2 seeds = 10 cells"
    assert "other.safetensors" in compare.axes_form.target_label.toolTip()  # the selected entry
    assert compare.render_button.isEnabled(), compare.render_button.toolTip()
    assert "Preview's stack and settings filled in" in window.window.statusBar().currentMessage()
    # one project change, what the panel shows: it survives a restore from the project
    saved = window.window.services.project.section("compare")
    assert saved["form"]["prompt"] == "a blue sphere" and saved["selected"] == 1
    assert saved["axes"]["1"]["texts"]["seed"] == "41,42"
    compare.restore_from_project()
    assert _axis_texts(compare) == [("strength", "-2:2:1"), ("seed", "41,42")]
    assert compare.axes_form.summary_label.text() == "5 strengths × 2 seeds = 10 cells"


def test_strength_grid_keeps_axes_the_user_set(window):
    preview = window.panel
    compare = window.window.panels[COMPARE].widget
    row = compare.axes_form.rows[0]
    row.kind_combo.setCurrentIndex(row.kind_combo.findData("strength"))
    row.values_edit.setText("0,1")

    preview.grid_button.click()

    assert window.window.current_section() == "compare"
    assert _axis_texts(compare) == [("strength", "0,1")]
    assert compare.axes_form.summary_label.text() == "2 strengths = 2 cells"
    assert compare.render_form.values()["prompt"] == "a blue sphere"
    assert items_to_json(compare.stack.items()) == items_to_json(preview.stack.items())
    assert "axes kept" in window.window.statusBar().currentMessage()


def test_without_the_compare_panel_the_preview_says_so(window):
    from difflora_gui.qt.preview.to_compare import open_compare

    panels = window.window.panels
    entry = panels.pop(COMPARE)
    try:
        assert open_compare(window.panel) is False
    finally:
        panels[COMPARE] = entry
    assert window.window.current_section() == "preview"
    assert "Compare section's panel is not installed" in window.panel.status_line.full_text()
