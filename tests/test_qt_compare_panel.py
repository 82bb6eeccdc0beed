"""The Compare panel: axes and their count, a grid rendered on the tiny Wan model and replayed from
the cache, stale results, Export (H.264 and the sidecar, asking before replacing), cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

from difflora_gui.qt.compare.export_dialog import ExportDialog
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
    window.dialogs.answers["Replace files?"] = QMessageBox.StandardButton.No
    assert not panel.export_clicked()
    assert window.dialogs.titles("question") == ["Replace files?"]
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
