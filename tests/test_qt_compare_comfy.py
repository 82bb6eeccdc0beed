"""The Compare panel with the comfyui backend, against a stand-in server (tests/fixtures/comfy_standin.py,
not ComfyUI) set in Settings ▸ ComfyUI servers: a 2 × 1 strength grid whose cells are rendered by that
server (one prompt per cell, at the cell's strength), shown in the grid player and replayed from the
cache without the server; a LoRA the block-edit workflow would drop is refused up front."""

from __future__ import annotations

import numpy as np
import pytest

from difflora_gui.comfy.names import unique_lora_name
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview.video_io import read_video
from difflora_gui.settings import ComfyServer
from tests.compare_panel_helpers import CompareWindow
from tests.fixtures.comfy_standin import StandinComfy
from tests.test_comfy_preview_backend import BUILDER, COLOR

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("fresh_comfy_pools")]


@pytest.fixture
def setup(qtbot, monkeypatch, tmp_path):
    server = StandinComfy(tmp_path / "box").start()
    lora = tmp_path / "slider ü.safetensors"
    make_wan_lora("tiny", path=lora, rank=4, seed=3)
    # no Wan folder in Settings: the comfyui backend needs none, the server has the model
    window = CompareWindow(qtbot, monkeypatch, None)
    window.window.services.update_settings(
        comfyui_servers=[ComfyServer("box", server.url, lora_dir=str(server.base / "models/loras"))]
    )
    yield window, server, lora
    window.close()
    server.stop()


def choose_comfyui(panel, **options) -> None:
    combo = panel.render_form.backend_combo
    combo.setCurrentIndex(combo.findData("comfyui"))
    assert panel.render_form.backend_name() == "comfyui"
    assert not panel.render_form.options_box.isHidden()
    # the stand-in executes flat clips, not Wan: the backend test's builder makes one per cell
    panel.render_form.apply({"options": {"comfyui": {"server": "box", **options}}}, "backend options")


def sent_strengths(server) -> list[float]:
    return sorted(
        node["inputs"]["strength"]
        for body in server.posted
        for node in body["prompt"].values()
        if node["class_type"] == "WanVideoLoraSelect"
    )


def test_a_strength_grid_renders_its_cells_on_the_comfyui_server(setup):
    window, server, lora = setup
    panel = window.panel
    choose_comfyui(panel, builder=BUILDER, template="tiny")
    window.quick_form(width=48, height=32, frames=5, steps=2)
    panel.stack.add_files([str(lora)])
    window.set_axis(0, "strength", "0.5,1")
    assert panel.axes_form.summary_label.text() == "2 strengths = 2 cells"
    assert panel.render_button.isEnabled(), panel.render_button.toolTip()

    handle = panel.render_grid()
    assert handle is not None
    job = panel.running_job
    assert job.backend == "comfyui" and job.options["server"] == "box" and job.options["builder"] == BUILDER
    window.wait_grid()
    assert "2 rendered, 0 from the cache" in panel.status_line.text(), panel.status_line.text()

    # one prompt per cell reached the server, each at its cell's strength, naming the LoRA it was given
    assert len(server.posted) == 2 and sent_strengths(server) == [0.5, 1.0]
    assert (server.base / "models/loras" / unique_lora_name(lora)).read_bytes() == lora.read_bytes()
    cells = panel.shown_result.cells
    assert len(cells) == 2 and {(c.row, c.col) for c in cells} == {(0, 0), (0, 1)}
    for cell in cells:
        assert [e["strength"] for e in cell.request["loras"]] in ([0.5], [1.0])
        frames, _fps = read_video(cell.video)
        assert frames.shape == (5, 32, 48, 3)
        # the stand-in's flat colour, not something rendered in this app
        assert np.abs(frames.astype(float).mean(axis=(0, 1, 2)) - COLOR).max() < 8
        shown = panel.player.cell_frame(cell.row, cell.col)
        assert shown is not None
        assert np.abs(shown[2:-2, 2:-2].astype(float).mean(axis=(0, 1)) - COLOR).max() < 12

    # again: both cells from the cache, nothing sent
    assert panel.render_grid() is not None
    window.wait_grid()
    assert "0 rendered, 2 from the cache" in panel.status_line.text(), panel.status_line.text()
    assert len(server.posted) == 2


def test_a_kohya_lora_on_the_block_edit_workflow_is_refused_before_the_grid(setup, tmp_path):
    window, server, _lora = setup
    panel = window.panel
    musubi = tmp_path / "kohya.safetensors"
    make_wan_lora("tiny", path=musubi, rank=4, seed=3, format="musubi")
    choose_comfyui(panel, template="wanvideo_t2v")
    window.quick_form(width=64, height=64, frames=5, steps=2)
    panel.stack.add_files([str(musubi)])
    window.set_axis(0, "strength", "0.5,1")
    assert not panel.render_button.isEnabled()
    assert "lora_unet_" in panel.render_button.toolTip()
    assert panel.render_grid() is None and panel.submitted == 0
    assert "lora_unet_" in panel.status_line.text() and server.posted == []
