"""Merge → Preview: "Preview it" opens the Preview section with the merged file in its stack, once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from merge_panel_helpers import PanelWindow

from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.qt.merge.to_preview import PREVIEW_PANEL

SHOTS = Path(os.environ.get("DIFFLORA_SHOTS_H12", "")) if os.environ.get("DIFFLORA_SHOTS_H12") else None


@pytest.fixture
def loras(tmp_path):
    folder = tmp_path / "component lorås"
    folder.mkdir()
    paths = [folder / "slider A.safetensors", folder / "base B.safetensors", folder / "other C.safetensors"]
    for seed, path in enumerate(paths, start=1):
        make_wan_lora("tiny", path=path, rank=4, seed=seed)
    return paths


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    from tests.wan_tiny import save_tiny_wan

    made = PanelWindow(qtbot, monkeypatch, tmp_path)
    made.window.devices.set_devices([])  # detection done: the CPU only
    # a tiny Wan model in Settings, so that the Preview panel is usable
    made.window.services.update_settings(wan_model_dir=str(save_tiny_wan(tmp_path / "tiny wan")))
    yield made
    made.close()


def preview_files(window) -> list[Path]:
    stack = window.window.panels[PREVIEW_PANEL].widget.stack
    return [Path(item.entry.file) for item in stack.items()]


def test_preview_it_puts_the_merged_file_in_the_preview_stack_once(window, loras):
    a, b, c = loras
    panel = window.panel
    button = panel.preview_button
    assert not button.isEnabled() and "once a merge has written" in button.toolTip()  # before any merge
    window.load(a, b)
    assert not button.isEnabled()
    window.run("merge")
    written = Path(panel.last_result.output)
    assert written.is_file() and "Wrote" in panel.status_label.text()
    assert button.isEnabled(), button.toolTip()
    place = button.mapTo(window.window, button.rect().topLeft())

    button.click()
    assert window.window.current_section() == "preview"
    preview = window.window.panels[PREVIEW_PANEL].widget
    assert preview_files(window) == [written.resolve()]
    assert preview.stack.selected_index() == 0
    assert window.window.statusBar().currentMessage() == f"Preview: {written.name} added to the stack"
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        window.window.resize(1280, 720)
        window.qtbot.wait(50)
        window.window.grab().save(str(SHOTS / "preview_after_click.png"))
        window.window.resize(1500, 950)

    # something else selected in the Preview, then Preview it again: selected, not added twice
    preview.accept_files([c])
    assert preview.stack.selected_index() == 1
    window.window.show_section("merge")
    button.click()
    assert preview_files(window) == [written.resolve(), c.resolve()]
    assert preview.stack.selected_index() == 0
    assert "already in the stack" in window.window.statusBar().currentMessage()

    # a long status line does not move the button
    window.window.show_section("merge")
    panel.run_bar.status_label.set_message("Wrote " + "a very long name " * 40, "ok")
    window.qtbot.wait(10)
    assert button.mapTo(window.window, button.rect().topLeft()) == place

    # other inputs: the result on show is gone, and so is the button
    panel.set_input("b", c)
    window.wait_inputs()
    assert not button.isEnabled() and "once a merge has written" in button.toolTip()


def test_preview_it_is_disabled_once_the_written_file_is_gone(window, loras):
    a, b, _c = loras
    panel = window.panel
    window.load(a, b)
    window.run("merge")
    written = Path(panel.last_result.output)
    assert panel.preview_button.isEnabled()
    if SHOTS is not None:  # the workbench's result area, for a look (1280×720, offscreen)
        SHOTS.mkdir(parents=True, exist_ok=True)
        window.window.resize(1280, 720)
        window.qtbot.wait(50)
        window.window.grab().save(str(SHOTS / "merge_result_area.png"))
        panel.run_bar.grab().save(str(SHOTS / "merge_run_bar.png"))
    written.unlink()
    panel.preview_button.click()  # a click checks again: nothing is added
    assert not panel.preview_button.isEnabled()
    assert "no longer there" in panel.preview_button.toolTip()
    assert window.window.current_section() == "merge"
    assert preview_files(window) == []
