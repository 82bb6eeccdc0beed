"""The binding editor on the real Wan2.1 template and the fixture object_info: Suggest binds the
parameters the app knows, an unbound prompt is named and keeps OK off, picking a node and input
changes bindings(), bindings survive a save and load, and a UI-format file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from difflora_gui.comfy.binding import UI_FORMAT_HINT, Binding
from difflora_gui.qt.comfy.binding_editor import NOT_BOUND, BindingEditorDialog

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "resources" / "comfy_workflows" / "wan21_t2v.json"
OBJECT_INFO = json.loads((ROOT / "tests" / "fixtures" / "comfy_object_info.json").read_text(encoding="utf-8"))


@pytest.fixture
def dialog(qtbot):
    editor = BindingEditorDialog(object_info=OBJECT_INFO, object_info_source="the fixture")
    qtbot.addWidget(editor)
    assert editor.open_workflow(TEMPLATE)
    return editor


def bound(editor) -> dict[str, tuple[str, str]]:
    return {b.param: (b.node_id, b.input_name) for b in editor.bindings()}


def test_suggest_binds_the_templates_parameters(dialog, qtbot):
    assert dialog.bindings() == []
    assert not dialog.ok_button.isEnabled()
    qtbot.mouseClick(dialog.suggest_button, Qt.MouseButton.LeftButton)
    got = bound(dialog)
    assert got["prompt"] == ("4", "text")
    assert got["negative_prompt"] == ("5", "text")
    assert got["seed"] == ("8", "seed")
    assert got["steps"] == ("8", "steps")
    assert got["shift"] == ("6", "shift")
    assert got["frames"] == ("7", "length")
    assert got["fps"] == ("10", "fps")
    assert dialog.node_combos["prompt"].currentText() == "4 · CLIPTextEncode"
    # a long name is elided in the combo; the full text stays in its tooltip
    assert dialog.node_combos["frames"].toolTip() == "7 · EmptyHunyuanLatentVideo"
    assert dialog.problem_lines() == []
    assert dialog.ok_button.isEnabled()
    assert dialog.problems.isHidden()


def test_an_unbound_prompt_is_named_and_keeps_ok_off(dialog):
    dialog.suggest()
    combo = dialog.node_combos["prompt"]
    combo.setCurrentIndex(combo.findText(NOT_BOUND))
    assert "prompt" not in bound(dialog)
    assert "prompt is not bound to any input (every preview sets it)" in dialog.problems.text()
    assert not dialog.problems.isHidden()
    assert not dialog.ok_button.isEnabled()


def test_choosing_a_node_and_input_updates_the_bindings(dialog):
    dialog.suggest()
    nodes = dialog.node_combos["width"]
    nodes.setCurrentIndex(nodes.findText(NOT_BOUND))
    assert "width" not in bound(dialog)
    assert not dialog.input_combos["width"].isEnabled()
    nodes.setCurrentIndex(nodes.findData("7"))
    assert bound(dialog)["width"] == ("7", "width")
    inputs = dialog.input_combos["width"]
    inputs.setCurrentIndex(inputs.findData("height"))
    assert bound(dialog)["width"] == ("7", "height")
    # height was suggested onto the same input: the check says so in the user's words
    assert any("both bound to height" in line for line in dialog.problem_lines())
    assert not dialog.ok_button.isEnabled()
    # an input of the wrong type is named too
    dialog.node_combos["seed"].setCurrentIndex(dialog.node_combos["seed"].findData("4"))
    assert bound(dialog)["seed"] == ("4", "text")
    assert any(line.startswith("seed → node 4 (CLIPTextEncode)") for line in dialog.problem_lines())
    # linked inputs (clip) cannot take a value and are not offered
    assert dialog.input_combos["seed"].findData("clip") < 0


def test_bindings_survive_a_save_and_a_load(dialog, tmp_path, qtbot):
    dialog.suggest()
    saved = dialog.bindings()
    path = tmp_path / "wan.bindings.json"
    assert dialog.save_bindings_to(path)
    assert json.loads(path.read_text(encoding="utf-8"))[0] == saved[0].to_json()
    # saving again without leave to overwrite writes nothing and says so
    before = path.read_text(encoding="utf-8")
    dialog.node_combos["steps"].setCurrentIndex(0)
    assert not dialog.save_bindings_to(path)
    assert path.read_text(encoding="utf-8") == before
    assert "already exists" in dialog.status.text()

    other = BindingEditorDialog(object_info=OBJECT_INFO, workflow_path=TEMPLATE)
    qtbot.addWidget(other)
    assert other.bindings() == []
    assert other.load_bindings_from(path)
    assert other.bindings() == saved
    assert other.ok_button.isEnabled()


def test_a_node_the_workflow_lacks_stays_visible_in_the_check(dialog):
    dialog.set_bindings([Binding("prompt", "99", "text"), Binding("seed", "8", "seed")])
    assert bound(dialog)["prompt"] == ("99", "text")
    assert "prompt: node 99 is not in the workflow" in dialog.problem_lines()


def test_a_ui_format_workflow_is_refused_with_the_reason(dialog, tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}), encoding="utf-8")
    assert not dialog.open_workflow(ui)
    assert UI_FORMAT_HINT in dialog.status.text()
    assert dialog.workflow_path() == TEMPLATE  # the open workflow stays


def test_without_object_info_the_dialog_says_where_to_get_it(qtbot, tmp_path):
    editor = BindingEditorDialog(workflow_path=TEMPLATE)
    qtbot.addWidget(editor)
    editor.suggest()
    assert any("load a saved object_info JSON file" in line for line in editor.problem_lines())
    assert not editor.ok_button.isEnabled()
    saved = tmp_path / "object_info.json"
    saved.write_text(json.dumps(OBJECT_INFO), encoding="utf-8")
    assert editor.load_object_info(saved)
    editor.suggest()
    assert editor.problem_lines() == []


def test_an_unfocused_combo_ignores_the_wheel_and_the_dialog_fits_720p(dialog, qtbot):
    dialog.suggest()
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.width() <= 1280 and dialog.height() <= 720 - 60
    combo = dialog.node_combos["steps"]
    before = combo.currentIndex()
    dialog.open_button.setFocus()
    centre = QPointF(combo.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(combo.mapToGlobal(combo.rect().center())),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(combo, event)
    assert combo.currentIndex() == before
