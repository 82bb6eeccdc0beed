"""The comfyui backend's "Custom workflow…" row in the Preview panel, against a stand-in server
(tests/fixtures/comfy_standin.py) set in Settings: the server's nodes fetched off the UI thread into
the bindings editor, OK storing the workflow and its saved bindings in the options (one undo step),
"Use the template" going back, and a server that is down still opening the editor with the hint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from difflora_gui.settings import ComfyServer
from tests.fixtures.comfy_standin import OBJECT_INFO, StandinComfy
from tests.preview_panel_helpers import PreviewWindow, make_model_and_loras

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("fresh_comfy_pools")]

TEMPLATE = Path(__file__).resolve().parent.parent / "resources" / "comfy_workflows" / "wan21_t2v.json"


@pytest.fixture
def setup(qtbot, monkeypatch, tmp_path):
    server = StandinComfy(tmp_path / "box").start()
    model, _loras = make_model_and_loras(tmp_path)
    window = PreviewWindow(qtbot, monkeypatch, model)
    window.window.services.update_settings(comfyui_servers=[ComfyServer("box", server.url)])
    workflow = tmp_path / "mine" / "my_wan.json"
    workflow.parent.mkdir()
    shutil.copy(TEMPLATE, workflow)
    panel = window.panel
    combo = panel.render_form.backend_combo
    combo.setCurrentIndex(combo.findData("comfyui"))
    panel.backend_options()  # the options box learns the Settings' servers as the panel does
    yield panel, server, workflow
    window.close()
    server.stop()


def open_editor(qtbot, row):
    row.dialog = None
    qtbot.mouseClick(row.custom_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.dialog is not None and row.dialog.isVisible(), timeout=15000)
    return row.dialog


def comfy_options(panel) -> dict:
    return panel.render_form.options_box.stored().get("comfyui", {})


def test_custom_workflow_fetches_the_nodes_stores_both_files_and_back_to_the_template(setup, qtbot):
    panel, server, workflow = setup
    box = panel.render_form.options_box
    row = box.custom_workflow
    assert row is not None and not row.isHidden()
    assert not row.template_button.isEnabled()
    qtbot.mouseClick(row.custom_button, Qt.MouseButton.LeftButton)
    assert "Fetching the server's nodes from box" in row.status.text()  # the click returned at once
    qtbot.waitUntil(lambda: row.dialog is not None and row.dialog.isVisible(), timeout=15000)
    dialog = row.dialog
    assert dialog.object_info() == OBJECT_INFO  # the stand-in's /object_info, fetched on a worker
    assert "server box" in dialog.object_info_label.text()
    assert dialog.open_workflow(workflow)
    dialog.suggest()
    assert dialog.ok_button.isEnabled(), dialog.problem_lines()
    steps = panel.undo_stack.count()
    dialog.accept()

    saved = workflow.with_name("my_wan.bindings.json")
    assert comfy_options(panel) == {"workflow_file": str(workflow), "bindings_file": str(saved)}
    assert {b["param"] for b in json.loads(saved.read_text(encoding="utf-8"))} >= {"prompt", "seed"}
    assert panel.undo_stack.count() == steps + 1  # both files in one step
    assert "my_wan.json" in row.label.text() and row.template_button.isEnabled()
    stored = panel.services.project.section("preview")["form"]["options"]["comfyui"]
    assert stored["workflow_file"] == str(workflow)

    # opened again: the chosen workflow and its bindings are shown
    dialog = open_editor(qtbot, row)
    assert dialog.workflow_path() == workflow
    assert {b.param for b in dialog.bindings()} >= {"prompt", "seed"}
    # other bindings on OK: the existing file is replaced only when the user says so
    combo = dialog.node_combos["seed"]
    combo.setCurrentIndex(0)
    asked = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.No
        )
        before = saved.read_text(encoding="utf-8")
        dialog.accept()
    assert asked and saved.read_text(encoding="utf-8") == before
    assert "kept as it was" in row.status.text()

    panel.undo_stack.undo()  # Edit ▸ Undo takes the custom workflow back in one step
    assert "workflow_file" not in comfy_options(panel)
    panel.undo_stack.redo()
    assert comfy_options(panel)["workflow_file"] == str(workflow)

    row.template_button.click()  # Use the template: both files blank, the template renders again
    assert comfy_options(panel) == {}
    assert "template" in row.label.text() and not row.template_button.isEnabled()


def test_a_server_that_is_down_still_opens_the_editor_with_the_hint(setup, qtbot):
    panel, server, workflow = setup
    server.stop()
    row = panel.render_form.options_box.custom_workflow
    dialog = open_editor(qtbot, row)
    assert dialog.object_info() == {}
    text = dialog.object_info_label.text()
    assert "could not fetch the nodes of box" in text and "Load a saved object_info JSON file" in text
    assert row.custom_button.isEnabled() and row.status.isHidden()
    dialog.reject()
    assert comfy_options(panel) == {}  # Cancel changes nothing


def test_the_row_is_shown_only_for_the_comfyui_backend(setup):
    panel, _server, _workflow = setup
    combo = panel.render_form.backend_combo
    combo.setCurrentIndex(combo.findData("diffusers"))
    assert panel.render_form.options_box.custom_workflow.isHidden()


def test_a_custom_workflow_is_not_held_to_the_templates_limits(tmp_path):
    from difflora_gui.comfy.preview_backend import ComfyOptions  # noqa: F401 - the backend is importable
    from difflora_gui.lora.synthetic import make_wan_lora
    from difflora_gui.preview.request import LoraEntry, PreviewRequest
    from difflora_gui.qt.preview.backend_options import request_problem
    from difflora_gui.specs import PreviewBackendSpec

    lora = tmp_path / "slider.safetensors"
    make_wan_lora("tiny", path=lora)
    spec = PreviewBackendSpec("comfyui", "ComfyUI", "renders on servers", run=print, lane="comfy")
    request = PreviewRequest(
        "x", width=64, height=64, frames=5, loras=(LoraEntry(str(lora), 1.0, "attn blocks=0@1,1@0.5"),)
    )
    template = {"template": "wanvideo_t2v"}
    assert "wanvideo_t2v workflow cannot render" in request_problem(spec, template, request)
    custom = {**template, "workflow_file": str(tmp_path / "mine.json")}
    assert request_problem(spec, custom, request) == ""
