"""The Settings dialog: edits AppSettings with validation; Save writes them, Cancel does not."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialog

from difflora_gui.qt.settings_dialog import SettingsDialog, musubi_problem, url_problem, validate_settings
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.settings import AppSettings


@pytest.fixture
def musubi_checkout(tmp_path):
    folder = tmp_path / "musubi tuner"
    (folder / "src" / "musubi_tuner").mkdir(parents=True)
    (folder / "src" / "musubi_tuner" / "wan_train_network.py").write_text("# train\n", encoding="utf-8")
    return folder


def fill(dialog: SettingsDialog, *, models, musubi, servers, device, output):
    dialog.model_folders.set_values([str(m) for m in models])
    dialog.musubi_dir.setText(str(musubi))
    dialog.comfyui_servers.set_values(servers)
    dialog.default_device.setCurrentText(device)
    dialog.output_dir.setText(str(output))


def test_settings_round_trip_through_the_window(qtbot, monkeypatch, tmp_path, musubi_checkout):
    AppSettings(disabled_plugins=["some_plugin"], recent_projects=[str(tmp_path / "p.difflora")]).save()
    models = tmp_path / "models ü"
    models.mkdir()
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.devices.set_devices([])
    seen = []
    win.services.settings_changed.connect(seen.append)

    def edit(dialog: SettingsDialog):
        fill(
            dialog,
            models=[models],
            musubi=musubi_checkout,
            servers=["http://127.0.0.1:8188", "https://render.example.org:8443"],
            device="cpu",
            output=tmp_path / "out",
        )
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    assert win.edit_settings()
    stored = json.loads(AppSettings.path().read_text(encoding="utf-8"))
    assert stored["model_folders"] == [str(models)]
    assert stored["musubi_tuner_dir"] == str(musubi_checkout)
    assert stored["comfyui_servers"] == ["http://127.0.0.1:8188", "https://render.example.org:8443"]
    assert stored["default_device"] == "cpu"
    assert stored["output_dir"] == str(tmp_path / "out")
    assert stored["disabled_plugins"] == ["some_plugin"]  # fields the dialog does not edit survive
    assert stored["recent_projects"] == [str(tmp_path / "p.difflora")]
    assert win.services.settings.default_device == "cpu"
    assert len(seen) == 1

    reopened = SettingsDialog(AppSettings.load(), ["cpu"])
    qtbot.addWidget(reopened)
    assert reopened.model_folders.values() == [str(models)]
    assert reopened.musubi_dir.text() == str(musubi_checkout)
    assert reopened.comfyui_servers.values() == ["http://127.0.0.1:8188", "https://render.example.org:8443"]
    assert reopened.default_device.currentText() == "cpu"
    assert reopened.output_dir.text() == str(tmp_path / "out")
    close_window(win, dialogs)


def test_invalid_values_are_listed_and_nothing_is_saved(qtbot, tmp_path):
    AppSettings().save()
    before = AppSettings.path().read_bytes()
    not_musubi = tmp_path / "random folder"
    not_musubi.mkdir()
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    fill(
        dialog,
        models=[tmp_path / "gone"],
        musubi=not_musubi,
        servers=["127.0.0.1:8188", "http://host:99999"],
        device="cpu",
        output=tmp_path / "missing parent" / "out",
    )
    dialog.try_accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    errors = dialog.errors.text().splitlines()
    assert errors == [
        f"model folder not found: {tmp_path / 'gone'}",
        f"{not_musubi} does not look like a Musubi Tuner checkout (no src/musubi_tuner/wan_train_network.py)",
        "ComfyUI server not an http(s) server address: '127.0.0.1:8188' (example: http://127.0.0.1:8188)",
        "ComfyUI server bad port in 'http://host:99999'",
        f"output folder cannot be created (its parent does not exist): {tmp_path / 'missing parent' / 'out'}",
    ]
    assert AppSettings.path().read_bytes() == before


def test_cancel_changes_nothing(qtbot, monkeypatch, tmp_path):
    win, dialogs = make_main_window(qtbot, monkeypatch)

    def cancel(dialog):
        dialog.musubi_dir.setText(str(tmp_path))
        dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", cancel)
    assert not win.edit_settings()
    assert not AppSettings.path().exists()
    close_window(win, dialogs)


def test_device_choices_include_detected_and_saved_devices(qtbot):
    dialog = SettingsDialog(AppSettings(default_device="cuda:1"), ["cpu", "cuda:0"])
    qtbot.addWidget(dialog)
    items = [dialog.default_device.itemText(i) for i in range(dialog.default_device.count())]
    assert items == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert dialog.default_device.currentText() == "cuda:1"


def test_validators(tmp_path, musubi_checkout):
    assert musubi_problem("") == ""
    assert musubi_problem(str(musubi_checkout)) == ""
    old_layout = tmp_path / "old musubi"
    old_layout.mkdir()
    (old_layout / "wan_train_network.py").write_text("")
    assert musubi_problem(str(old_layout)) == ""
    assert "not found" in musubi_problem(str(tmp_path / "nope"))
    assert url_problem("http://localhost:8188") == ""
    assert url_problem("ftp://x") != ""
    assert validate_settings(AppSettings()) == []
    assert validate_settings(AppSettings(default_device="tpu")) == ["unknown device 'tpu'"]
    file_out = tmp_path / "a file"
    file_out.write_text("")
    assert validate_settings(AppSettings(output_dir=str(file_out))) == [
        f"output folder is a file: {file_out}"
    ]
