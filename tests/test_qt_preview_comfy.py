"""The Preview panel with the comfyui backend, against a stand-in server (tests/fixtures/comfy_standin.py,
not ComfyUI) set in Settings ▸ ComfyUI servers: its options form, a render on that server's lane played in
the player, a request the workflow cannot do refused up front, and back to the in-app backend."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox, QLineEdit

from difflora_gui.qt.jobs import DONE
from difflora_gui.qt.preview.render_form import DEFAULTS
from difflora_gui.settings import ComfyServer
from tests.fixtures.comfy_standin import StandinComfy
from tests.preview_panel_helpers import JOB_TIMEOUT_MS, QUICK, PreviewWindow, make_model_and_loras

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("fresh_comfy_pools")]

#: the stand-in executes flat clips, not Wan: the backend test's builder makes one of the request's size
BUILDER = "tests.test_comfy_preview_backend:tiny_workflow"
UNET = "wan2.1_t2v_1.3B_fp16.safetensors"


@pytest.fixture
def setup(qtbot, monkeypatch, tmp_path):
    server = StandinComfy(tmp_path / "box").start()
    model_file = server.base / "models/diffusion_models" / UNET
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(b"\0" * 16)  # listed by name: the stand-in never loads it
    model, loras = make_model_and_loras(tmp_path)
    window = PreviewWindow(qtbot, monkeypatch, model)
    window.window.services.update_settings(
        comfyui_servers=[ComfyServer("box", server.url, lora_dir=str(server.base / "models/loras"))]
    )
    submitted = []
    services = window.window.services
    real_submit = services.submit
    monkeypatch.setattr(services, "submit", lambda request: submitted.append(request) or real_submit(request))
    yield window, server, loras, submitted
    window.close()
    server.stop()


def choose(panel, name: str) -> None:
    combo = panel.render_form.backend_combo
    combo.setCurrentIndex(combo.findData(name))


def type_option(form, name: str, text: str) -> None:
    editor = form.editors[name].editor
    if isinstance(editor, QComboBox):
        editor.setCurrentIndex(editor.findText(text))
    else:
        assert isinstance(editor, QLineEdit)
        editor.setText(text)


def test_comfyui_options_render_on_the_named_server_and_back_to_diffusers(setup, qtbot):
    window, server, loras, submitted = setup
    panel = window.panel
    box = panel.render_form.options_box
    assert box.isHidden()  # the in-app backend takes its model from Settings
    choose(panel, "comfyui")
    assert not box.isHidden()
    form = box.forms["comfyui"]
    assert {"template", "server", "unet", "clip", "vae", "timeout_s"} <= set(form.editors)
    assert "servers" not in form.editors and "builder" not in form.editors
    chain = panel.update_tab_order()  # Tab goes from the backend through its options to the prompt
    assert chain.index(panel.render_form.backend_combo) < chain.index(form.editors["server"].editor)
    assert chain.index(form.editors["server"].editor) < chain.index(panel.render_form.prompt_edit)
    # the Settings' Wan files are the model names' defaults; none is set here
    assert form.value("template") == "wan21_t2v" and form.value("unet") == ""

    type_option(form, "server", "box")
    type_option(form, "unet", UNET)
    stored = panel.services.project.section("preview")["form"]["options"]["comfyui"]
    assert stored == {"server": "box", "unet": UNET}  # only what differs from the defaults
    # the model line follows the options: a 1.3B model named, 30 blocks
    assert UNET in panel.render_form.model_label.text() and panel.blocks.num_blocks == 30
    # Edit ▸ Undo takes an option back
    panel.undo_stack.undo()
    assert form.value("unet") == "" and box.stored()["comfyui"] == {"server": "box"}  # one step per option
    assert panel.undo_stack.redoText() == "Render: backend option Diffusion model"
    panel.undo_stack.redo()
    assert form.value("unet") == UNET

    # a project's form without options (one from before them) sets none
    panel.render_form.set_values({**DEFAULTS, "backend": "comfyui"})
    assert box.stored() == {} and form.value("server") == ""

    # a custom builder kept in the project's options (no form field): the stand-in can run its clip
    panel.render_form.apply(
        {"options": {"comfyui": {"server": "box", "unet": UNET, "builder": BUILDER}}}, "backend options"
    )
    window.quick_form(width=48, height=32, frames=5)
    panel.stack.add_files([str(loras[0])])
    handle = panel.render()
    assert handle is not None and submitted[-1].lane == "comfy:box"
    assert handle.request.lane_key == "comfy:box"
    params = submitted[-1].params["options"]
    assert (params["server"], params["unet"], params["builder"]) == ("box", UNET, BUILDER)
    window.wait_idle()
    assert handle.state == DONE, panel.status_line.text()
    assert panel.player.frame_count == 5
    assert "5 frames at 48×32" in panel.status_line.text()
    assert server.posted  # rendered there, not in the app

    # back to the in-app backend: no options, and the render is this app's (the device lane)
    choose(panel, "diffusers")
    assert box.isHidden()
    panel.stack.set_items([])
    window.quick_form()
    handle = panel.render()
    assert handle is not None and submitted[-1].lane == "device"
    assert "builder" not in submitted[-1].params["options"]
    qtbot.waitUntil(lambda: handle.is_finished, timeout=JOB_TIMEOUT_MS)
    window.wait_idle()
    assert handle.state == DONE, panel.status_line.text()
    assert panel.player.frame_count == QUICK["frames"]


def test_a_request_the_workflow_cannot_do_is_explained_and_not_submitted(setup):
    window, server, loras, submitted = setup
    panel = window.panel
    choose(panel, "comfyui")
    form = panel.render_form.options_box.forms["comfyui"]
    type_option(form, "template", "wanvideo_t2v")
    type_option(form, "unet", UNET)
    window.quick_form()
    panel.stack.add_files([str(loras[0])])
    assert panel.render_button.isEnabled()
    # different weights per block: WanVideoWrapper's block edit only switches blocks on or off
    panel.stack.update_selected("blocks", selector="all blocks=0@0.5,1")
    panel._inputs_changed()
    assert not panel.render_button.isEnabled()
    tip = panel.render_button.toolTip()
    assert tip.startswith("Render is disabled: The wanvideo_t2v workflow cannot render this")
    assert "Export" in tip and "block edit" in tip
    assert "Export" in panel.stale_line.text()
    before = len(submitted)
    assert panel.render() is None and len(submitted) == before
    assert panel.status_line.text().startswith("Cannot render:")
    assert not server.posted
    # blocks on or off at one weight: the template can do it, Render is back
    panel.stack.update_selected("blocks", selector="all blocks=0")
    panel._inputs_changed()
    assert panel.render_button.isEnabled() and not panel.render_button.toolTip().startswith(
        "Render is disabled"
    )
