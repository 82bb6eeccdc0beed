"""The Compare panel: axes and their count, a grid rendered on the tiny Wan model and replayed from
the cache, stale results, Export (H.264 and the sidecar, asking before replacing), cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

from difflora_gui.qt.compare.export_dialog import ExportDialog
from difflora_gui.qt.replace_question import REPLACE_TITLE
from tests.compare_panel_helpers import CompareWindow, make_model_and_loras


@pytest.fixture(scope="module")
def model_and_loras(tmp_path_factory):
    return make_model_and_loras(tmp_path_factory.mktemp("compare models"))


@pytest.fixture
def window(qtbot, monkeypatch, model_and_loras):
    model, loras = model_and_loras
    win = CompareWindow(qtbot, monkeypatch, model)
    win.loras = loras
    yield win
    win.close()


def _six_cells(window) -> None:
    window.quick_form()
    window.panel.stack.add_files([window.loras[0]])
    window.set_axis(0, "strength", "-1:1:1")
    window.set_axis(1, "seed", "1,2")


def _drive_export(monkeypatch, out: Path, **choices) -> None:
    """The Export dialog answered: Browse… picks ``out`` (the save dialog monkeypatched), then Export."""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))

    def run(dialog) -> int:
        dialog.browse()
        if "sheet" in choices:
            dialog.sheet_check.setChecked(choices["sheet"])
        dialog.accept()
        return dialog.result()

    monkeypatch.setattr(ExportDialog, "exec", run)


def test_axes_count_cells_and_a_bad_value_disables_render(window):
    panel = window.panel
    _six_cells(window)
    assert panel.axes_form.summary_label.text() == "3 strengths × 2 seeds = 6 cells"
    assert panel.render_button.isEnabled(), panel.render_button.toolTip()
    assert panel.axes_form.target_label.full_text() == "Axes change: slider ü.safetensors"
    assert panel.render_form.seed_spin.isHidden()  # the seed axis sets the seed
    assert not panel.export_button.isEnabled()  # nothing rendered yet
    window.set_axis(0, "strength", "-1:x:1")
    error = panel.axes_form.rows[0].error_label
    assert error.isVisibleTo(panel) and "not a number" in error.text()
    assert not panel.render_button.isEnabled()
    assert "not a number" in panel.render_button.toolTip()
    assert "Render grid is off: Columns: " in panel.stale_line.text()
    window.set_axis(0, "strength", "-1,1")
    assert panel.render_button.isEnabled()
    assert not error.isVisibleTo(panel)
    assert panel.axes_form.summary_label.text() == "2 strengths × 2 seeds = 4 cells"
    window.set_axis(1, "")
    assert not panel.render_form.seed_spin.isHidden()
    # the panel's inputs are kept in the project (the stack's file as a declared path)
    data = window.window.services.project.section("compare")
    assert data["axes"]["0"]["kind"] == "strength"
    assert Path(data["stack"]["0"]["file"]).name == "slider ü.safetensors"


def test_render_replay_stale_and_export(window, monkeypatch, tmp_path):
    panel = window.panel
    _six_cells(window)
    loaded = []
    panel.player.loaded.connect(lambda: loaded.append(True))
    assert panel.render_grid() is not None
    assert not panel.render_button.isEnabled() and panel.cancel_button.isEnabled()
    window.wait_grid()
    window.qtbot.waitUntil(lambda: bool(loaded), timeout=30_000)
    assert "6 rendered, 0 from the cache" in panel.status_line.text(), panel.status_line.text()
    assert any("of 6" in text and text.startswith("cell ") for text in panel.progress_texts), (
        panel.progress_texts
    )
    assert len(panel.shown_result.cells) == 6
    assert panel.player.geometry_of_grid() is not None
    assert all(panel.player.cell_frame(c.row, c.col) is not None for c in panel.shown_result.cells)
    assert panel.export_button.isEnabled()
    # a click on a cell names it
    panel.show_cell_details(1, 2)
    assert "strength 1" in panel.details_line.text() and "seed 2" in panel.details_line.text()
    # again: every cell from the cache
    assert panel.render_grid() is not None
    window.wait_grid()
    assert "0 rendered, 6 from the cache" in panel.status_line.text(), panel.status_line.text()
    # the prompt changes: the grid on show is stale, Export waits
    panel.render_form.prompt_edit.setPlainText("a blue cube")
    assert panel.stale_line.text().startswith("stale: inputs changed")
    assert not panel.export_button.isEnabled()
    panel.render_form.prompt_edit.setPlainText("a red cube")
    assert panel.stale_line.text() == "" and panel.export_button.isEnabled()
    # Export to .mp4: H.264, its sidecar and contact sheet
    out = tmp_path / "grids ü" / "strength grid.mp4"
    out.parent.mkdir()
    _drive_export(monkeypatch, out)
    assert panel.export_clicked()
    window.wait_export()
    assert out.is_file(), panel.status_line.text()
    import av

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
    assert frames == 5
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["format"] == "difflora-grid" and len(sidecar["cells"]) == 6
    assert out.with_name("strength grid.sheet.png").is_file()
    # again over the same file: asked, and No leaves it untouched
    before = out.stat().st_mtime_ns, out.read_bytes()
    window.dialogs.answers[REPLACE_TITLE] = QMessageBox.StandardButton.No
    assert not panel.export_clicked()
    assert window.dialogs.titles("question") == [REPLACE_TITLE]
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before
    assert "nothing was written" in panel.status_line.text()


def test_export_dialog_checks_the_name_and_remembers_the_folder(qtbot, monkeypatch, tmp_path):
    dialog = ExportDialog(str(tmp_path / "grid.mp4"), frame=3, frames=5)
    qtbot.addWidget(dialog)
    assert dialog.export_button.isEnabled()
    assert dialog.options().sheet_frame == 3
    dialog.path_edit.setText(str(tmp_path / "grid.avi"))
    assert not dialog.export_button.isEnabled() and ".mp4" in dialog.problem_label.text()
    dialog.path_edit.setText(str(tmp_path / "missing folder" / "grid.gif"))
    assert "does not exist" in dialog.problem()
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "clip"), "GIF (*.gif)")
    )
    assert dialog.browse() == str(tmp_path / "clip.gif")
    dialog.layout_combo.setCurrentIndex(1)
    dialog.sheet_check.setChecked(False)
    options = dialog.options()
    assert (options.layout, options.sheet_frame) == ("vertical", None)
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.chosen_folder == str(tmp_path)


def test_cancel_keeps_finished_cells_for_the_next_render(window):
    panel = window.panel
    window.quick_form(prompt="a cancelled grid")
    panel.stack.add_files([window.loras[0]])
    window.set_axis(0, "strength", "-2:2:1")
    window.set_axis(1, "seed", "1:4:1")
    assert panel.axes_form.summary_label.text() == "5 strengths × 4 seeds = 20 cells"
    assert panel.render_grid() is not None
    # the first cell finished ("cell 1 of 20: labels"), then Cancel
    window.qtbot.waitUntil(
        lambda: any(t.startswith("cell 1 of 20: ") for t in panel.progress_texts), timeout=120_000
    )
    panel.cancel_button.click()
    window.wait_grid()
    assert panel.shown_job is None  # nothing shown from a cancelled grid
    assert "cached" in panel.status_line.text() and "cancelled" in panel.status_line.text().lower()
    assert panel.render_button.isEnabled()
    assert panel.render_grid() is not None
    window.wait_grid()
    status = panel.status_line.text()
    assert status.startswith("20 cells: "), status
    cached = int(status.split(", ")[1].split(" ")[0])
    assert 1 <= cached < 20, status


def test_a_sidecar_puts_its_grid_in_the_form(window, tmp_path):
    from difflora_gui.compare.grid_spec import Axis, GridSpec
    from difflora_gui.compare.grid_types import GridJob
    from difflora_gui.compare.sidecar import write_sidecar
    from difflora_gui.preview.request import LoraEntry, PreviewRequest

    loras = [str(p) for p in window.loras]
    base = PreviewRequest(
        prompt="from a sidecar", width=32, height=32, frames=5, steps=2, loras=(LoraEntry(loras[0]),)
    )
    spec = GridSpec(base, (Axis("variant", tuple(loras)), Axis.parse("prompt", ["a cat", "a dog"])))
    path = write_sidecar(tmp_path / "grid ü.json", GridJob(spec, cache_dir=str(tmp_path / "cache")), None)
    panel = window.panel
    assert panel.load_sidecar(path)
    assert panel.render_form.prompt_edit.toPlainText() == "from a sidecar"
    rows = panel.axes_form.rows
    assert [rows[0].kind(), rows[1].kind(), rows[2].kind()] == ["variant", "prompt", ""]
    assert rows[0].variant_files() == loras
    assert panel.axes_form.summary_label.text() == "2 LoRAs × 2 prompts = 4 cells"
    assert panel.grid_spec().to_json()["axes"] == spec.to_json()["axes"]
    assert "Loaded grid ü.json" in panel.status_line.text()
    # a broken file says what is wrong and changes nothing
    bad = tmp_path / "not a grid.json"
    bad.write_text("{}", encoding="utf-8")
    assert not panel.load_sidecar(bad)
    assert "not a grid sidecar" in panel.status_line.text()


def test_narrow_window_shows_inputs_and_grid_as_tabs(window):
    panel = window.panel
    window.window.resize(1280, 720)
    window.qtbot.waitUntil(lambda: panel._narrow or panel.width() >= panel.narrow_width(), timeout=5_000)
    if panel.width() < panel.narrow_width():
        assert panel.tabs.isVisibleTo(panel) and not panel.splitter.isVisibleTo(panel)
    window.window.resize(1920, 1080)
    window.qtbot.waitUntil(lambda: not panel._narrow, timeout=5_000)
    assert panel.splitter.isVisibleTo(panel)
    assert panel.inputs_scroll.isVisibleTo(panel) and panel.grid_box.isVisibleTo(panel)
    # the buttons sit inside the panel at both sizes (nothing clipped off its right edge)
    right = panel.export_button.mapTo(panel, panel.export_button.rect().topRight()).x()
    assert right <= panel.width()
