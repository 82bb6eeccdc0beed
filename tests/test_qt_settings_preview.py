"""Settings ▸ Preview: dtype, memory savers, VAE tiling and slicing and render cache size persist; bad values are refused."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from difflora_gui.qt.settings_dialog import SettingsDialog, validate_settings
from difflora_gui.qt.settings_preview import OFFLOAD, PREVIEW_FIELDS, model_summary, preview_problems
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.settings import AppSettings


def test_preview_settings_are_saved_and_reopened(qtbot, monkeypatch):
    AppSettings(recent_projects=["keep me"]).save()
    win, dialogs = make_main_window(qtbot, monkeypatch)
    wanted = {
        "preview_dtype": "fp16",
        "preview_offload": "group",
        "preview_vae_tiling": True,
        "preview_vae_slicing": True,
        "preview_cache_mb": 512,
    }

    def edit(dialog: SettingsDialog):
        group = dialog.preview
        group.dtype.setCurrentIndex(group.dtype.findData("fp16"))
        group.offload.setCurrentIndex(group.offload.findData("group"))
        group.vae_tiling.setChecked(True)
        group.vae_slicing.setChecked(True)
        group.cache_mb.setValue(512)
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    assert win.edit_settings()
    stored = json.loads(AppSettings.path().read_text(encoding="utf-8"))
    assert {name: stored[name] for name in PREVIEW_FIELDS} == wanted
    assert stored["recent_projects"] == ["keep me"]
    assert {name: getattr(win.services.settings, name) for name in PREVIEW_FIELDS} == wanted

    reopened = SettingsDialog(AppSettings.load(), ["cpu"])
    qtbot.addWidget(reopened)
    assert reopened.preview.values() == wanted
    assert {name: reopened.changes()[name] for name in PREVIEW_FIELDS} == wanted
    close_window(win, dialogs)


def test_each_memory_saver_says_what_it_costs(qtbot):
    dialog = SettingsDialog(AppSettings(), ["cpu", "cuda:0"])
    qtbot.addWidget(dialog)
    group = dialog.preview
    assert [group.offload.itemData(i) for i in range(group.offload.count())] == ["none", "model", "group"]
    seen = set()
    for key, (_title, hint) in OFFLOAD.items():
        group.offload.setCurrentIndex(group.offload.findData(key))
        assert group.offload_hint.text() == hint[0].upper() + hint[1:] + "."
        assert group.offload.toolTip() == group.offload_hint.text()
        assert group.offload.itemData(group.offload.currentIndex(), Qt.ItemDataRole.ToolTipRole) == hint
        seen.add(group.offload_hint.text())
    assert len(seen) == 3
    group.offload.setCurrentIndex(group.offload.findData("group"))
    assert "14B" in group.offload_hint.text() and "24 GB" in group.offload_hint.text()
    group.dtype.setCurrentIndex(group.dtype.findData("fp32"))
    assert "CPU" in group.dtype_hint.text()


def test_the_cache_size_refuses_what_is_out_of_range(qtbot):
    dialog = SettingsDialog(AppSettings(preview_cache_mb=2048), ["cpu"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    spin = dialog.preview.cache_mb
    spin.setFocus()
    for typed in ("5", "abc", "0"):
        spin.selectAll()
        qtbot.keyClicks(spin, typed)
        qtbot.keyClick(spin, Qt.Key.Key_Return)
        spin.clearFocus()
        assert spin.value() == 2048, typed
        spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "2000000")  # the digit that would pass 1000000 MB is not taken
    assert spin.value() == 200000
    spin.selectAll()
    qtbot.keyClicks(spin, "300")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert spin.value() == 300
    assert dialog.values().preview_cache_mb == 300


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("preview_dtype", "fp8", "Preview dtype: expected one of bf16, fp16, fp32, got 'fp8'"),
        ("preview_offload", "cpu", "Preview offload: expected one of none, model, group, got 'cpu'"),
        ("preview_cache_mb", 4, "Preview render cache: expected 16 to 1000000 MB, got 4"),
    ],
)
def test_bad_values_are_refused_and_not_saved(qtbot, field, value, message):
    AppSettings().save()
    before = AppSettings.path().read_bytes()
    bad = AppSettings(**{field: value})
    assert preview_problems(bad) == [message]
    assert message in validate_settings(bad)
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    # a value no control offers cannot come out of the dialog
    dialog.preview._select(dialog.preview.dtype, "fp8")
    assert dialog.preview.values()["preview_dtype"] == "bf16"
    assert preview_problems(dialog.values()) == []
    assert AppSettings.path().read_bytes() == before


def test_a_bad_value_in_the_file_shows_the_default_and_is_kept(qtbot, monkeypatch):
    AppSettings.path().parent.mkdir(parents=True, exist_ok=True)
    AppSettings.path().write_text(json.dumps({"version": 2, "preview_offload": "gpu"}), encoding="utf-8")
    loaded = AppSettings.load()
    assert "preview_offload" in loaded.load_warning
    dialog = SettingsDialog(loaded, ["cpu"])
    qtbot.addWidget(dialog)
    assert dialog.preview.offload.currentData() == "none"
    dialog.try_accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_the_group_names_the_model_the_training_paths_give(qtbot, tmp_path):
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    label = dialog.preview.model_label
    assert "set the Wan diffusers folder under Training" in label.text()
    folder = tmp_path / "Wan2.1-T2V-1.3B-Diffusers"
    dialog.training.fields["wan_model_dir"].setText(str(folder))
    assert label.text() == model_summary(str(folder), "", "")
    assert "Wan2.1-T2V-1.3B-Diffusers" in label.text()
    dialog.training.fields["wan_dit"].edit.setText(str(tmp_path / "low.safetensors"))  # as typed
    assert "low.safetensors" in label.text()
    # the paths are edited once, under Training: the Preview group has no copy of them
    assert not set(dialog.preview.values()) & set(dialog.training.values())


def test_the_model_line_names_separate_vae_and_text_encoder_folders(qtbot, tmp_path):
    folder = str(tmp_path / "Wan2.1-T2V-14B-Diffusers")
    vae = str(tmp_path / "shared" / "vae")
    encoder = str(tmp_path / "shared" / "umt5-xxl")
    assert model_summary(folder, "", "", vae, "") == (
        "Renders with the diffusers folder Wan2.1-T2V-14B-Diffusers (its transformer and text encoder); "
        "the VAE from shared/vae."
    )
    assert model_summary(folder, str(tmp_path / "low.safetensors"), "", vae, encoder) == (
        "Renders with the DiT file low.safetensors; the VAE from shared/vae; the text encoder from "
        "shared/umt5-xxl; the configs from the diffusers folder Wan2.1-T2V-14B-Diffusers."
    )
    assert model_summary(folder, "", "") == (
        "Renders with the diffusers folder Wan2.1-T2V-14B-Diffusers (its transformer, VAE and text encoder)."
    )
    dialog = SettingsDialog(AppSettings(wan_model_dir=folder), ["cpu"])
    qtbot.addWidget(dialog)
    dialog.training.fields["wan_text_encoder_dir"].edit.setText(encoder)  # as typed
    assert dialog.preview.model_label.text() == model_summary(folder, "", "", "", encoder)
    assert "the text encoder from shared/umt5-xxl" in dialog.preview.model_label.text()


def test_the_slicing_box_says_what_it_saves(qtbot):
    dialog = SettingsDialog(AppSettings(preview_vae_slicing=True), ["cpu"])
    qtbot.addWidget(dialog)
    box = dialog.preview.vae_slicing
    assert box.isChecked() and dialog.values().preview_vae_slicing
    assert "one clip at a time" in box.toolTip() and "single clip" in box.toolTip()
    box.setChecked(False)
    assert dialog.values().preview_vae_slicing is False


def test_the_wheel_over_a_preview_input_does_not_change_it(qtbot):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.buttons.setFocus()
    group = dialog.preview
    before = group.values()
    for widget in group.inputs():
        assert widget.focusPolicy() == Qt.FocusPolicy.StrongFocus
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(
            centre,
            QPointF(widget.mapToGlobal(centre.toPoint())),
            QPoint(0, 0),
            QPoint(0, -120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)
    assert group.values() == before
