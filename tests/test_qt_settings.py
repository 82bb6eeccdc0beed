"""The Settings dialog: edits AppSettings with validation; Save writes them, Cancel does not."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication, QDialog

from difflora_gui.qt.settings_dialog import (
    SettingsDialog,
    musubi_problem,
    server_problems,
    url_problem,
    validate_settings,
)
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.qt.theme import COLORS
from difflora_gui.settings import AppSettings, ComfyServer


@pytest.fixture
def musubi_checkout(tmp_path):
    folder = tmp_path / "musubi tuner"
    (folder / "src" / "musubi_tuner").mkdir(parents=True)
    (folder / "src" / "musubi_tuner" / "wan_train_network.py").write_text("# train\n", encoding="utf-8")
    return folder


def fill(dialog: SettingsDialog, *, models, musubi, servers, device, output):
    dialog.model_folders.set_values([str(m) for m in models])
    dialog.musubi_dir.setText(str(musubi))
    dialog.comfyui_servers.set_servers(
        [
            s if isinstance(s, ComfyServer) else ComfyServer(name=f"server {i}", url=s)
            for i, s in enumerate(servers)
        ]
    )
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
            servers=[
                ComfyServer(name="local", url="http://127.0.0.1:8188", lora_dir=str(models)),
                ComfyServer(name="render box", url="https://render.example.org:8443", enabled=False),
            ],
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
    assert stored["comfyui_servers"] == [
        {"name": "local", "url": "http://127.0.0.1:8188", "lora_dir": str(models), "enabled": True},
        {"name": "render box", "url": "https://render.example.org:8443", "lora_dir": "", "enabled": False},
    ]
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
    assert reopened.comfyui_servers.servers() == [
        ComfyServer(name="local", url="http://127.0.0.1:8188", lora_dir=str(models)),
        ComfyServer(name="render box", url="https://render.example.org:8443", enabled=False),
    ]
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
        "ComfyUI server 1 (server 0): expected a URL such as http://127.0.0.1:8188 (http or https, a host, "
        "a port), got '127.0.0.1:8188'",
        "ComfyUI server 2 (server 1): expected a URL with a port from 1 to 65535, got 'http://host:99999'",
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
    # the backend runs src/musubi_tuner/*.py: a checkout from before the src/ layout cannot train
    assert "an old Musubi Tuner checkout" in musubi_problem(str(old_layout))
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


def test_server_table_add_remove_enable_and_keep_unknown_keys(qtbot, tmp_path):
    share = tmp_path / "loras ü"
    share.mkdir()
    original = AppSettings(
        comfyui_servers=[ComfyServer(name="a", url="http://127.0.0.1:8188", extra={"api_key_env": "K"})]
    )
    dialog = SettingsDialog(original, ["cpu"])
    qtbot.addWidget(dialog)
    table = dialog.comfyui_servers
    table.add_button.click()  # a new row with the next local port and a unique name, URL cell in edit
    assert [s.url for s in table.servers()] == ["http://127.0.0.1:8188", "http://127.0.0.1:8189"]
    assert table.servers()[1].name == "127.0.0.1:8189"
    # the enabled box and the LoRA folder cell
    assert table.enabled_box(1).isChecked()
    table.enabled_box(1).setChecked(False)
    table.table.item(1, table.LORA_DIR).setText(str(share))
    servers = table.servers()
    assert servers[1] == ComfyServer(
        name="127.0.0.1:8189", url="http://127.0.0.1:8189", lora_dir=str(share), enabled=False
    )
    assert servers[0].extra == {"api_key_env": "K"}  # keys this version does not know ride along
    table.table.selectRow(0)
    table.remove_button.click()
    assert [s.name for s in table.servers()] == ["127.0.0.1:8189"]
    assert validate_settings(dialog.values()) == []


def test_a_bad_url_is_marked_in_its_cell_and_blocks_save(qtbot):
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    table = dialog.comfyui_servers
    cell = table.table.item(0, table.URL)
    cell.setText("localhost:8188")
    assert cell.toolTip().startswith("expected a URL such as http://127.0.0.1:8188")
    assert cell.foreground().color() == QColor(COLORS["error"])
    dialog.try_accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.errors.text().startswith("ComfyUI server 1 (127.0.0.1:8188): expected a URL such as")
    cell.setText("http://localhost:8188")
    assert cell.toolTip() == ""
    table.table.item(0, table.NAME).setText("")
    table.add_button.click()
    table.table.item(1, table.NAME).setText("same")
    table.table.item(0, table.NAME).setText("same")
    table.table.item(1, table.LORA_DIR).setText("/no/such/folder")
    assert server_problems(dialog.values().comfyui_servers) == [
        "ComfyUI server 2 (same): another server has the same name",
        "ComfyUI server 2 (same): shared LoRA folder not found: /no/such/folder",
    ]


def test_typed_values_are_edited_and_saved(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)

    def edit(dialog: SettingsDialog):
        assert dialog.autosave_interval.value() == 60
        assert (dialog.autosave_interval.minimum(), dialog.autosave_interval.maximum()) == (5, 3600)
        assert (dialog.light_jobs.minimum(), dialog.light_jobs.maximum()) == (1, 8)
        dialog.autosave_interval.setValue(120)
        dialog.light_jobs.setValue(3)
        dialog.shutdown_timeout.setValue(45.5)
        dialog.load_user_plugins.setChecked(False)
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    assert win.edit_settings()
    stored = json.loads(AppSettings.path().read_text(encoding="utf-8"))
    assert (stored["autosave_interval_s"], stored["max_parallel_light_jobs"]) == (120, 3)
    assert stored["shutdown_timeout_s"] == 45.5 and stored["load_user_plugins"] is False
    loaded = AppSettings.load()
    assert (loaded.autosave_interval_s, loaded.shutdown_timeout_s, loaded.load_user_plugins) == (
        120,
        45.5,
        False,
    )
    close_window(win, dialogs)


def test_the_wheel_changes_a_value_only_when_the_field_has_focus(qtbot):
    dialog = SettingsDialog(AppSettings(), ["cpu", "cuda:0"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)

    def wheel(widget):
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(
            centre,
            widget.mapToGlobal(centre),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)

    spin = dialog.autosave_interval
    dialog.buttons.setFocus()
    wheel(spin)
    assert spin.value() == 60
    assert dialog.default_device.currentText() == "auto"
    wheel(dialog.default_device)
    assert dialog.default_device.currentText() == "auto"
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    wheel(spin)
    assert spin.value() == 61


def test_the_dialog_fits_a_1280x720_screen(qtbot, tmp_path):
    servers = [ComfyServer(name=f"box {i}", url=f"http://10.0.0.{i}:8188") for i in range(6)]
    dialog = SettingsDialog(AppSettings(comfyui_servers=servers, model_folders=[str(tmp_path)]), ["cpu"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    hint = dialog.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720 - 60  # room for a title bar and a task bar
    assert dialog.width() <= 1280 and dialog.height() <= 720 - 60
    dialog.resize(1280, 660)
    assert dialog.buttons.isVisible()
    dialog.grab().save(str(tmp_path / "settings.png"))
    assert (tmp_path / "settings.png").stat().st_size > 0


def test_a_damaged_settings_file_is_reported_in_the_log(qtbot, monkeypatch):
    path = AppSettings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{broken", encoding="utf-8")
    win, dialogs = make_main_window(qtbot, monkeypatch)  # the plugin host reads (and sets aside) it first
    text = win.log_dock.view.toPlainText()
    assert f"{path}: unreadable settings (" in text
    assert "kept as settings.damaged-" in text
    close_window(win, dialogs)


def test_the_window_uses_the_autosave_interval_and_the_shutdown_wait(qtbot, monkeypatch):
    AppSettings(autosave_interval_s=5, shutdown_timeout_s=2.5).save()
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.start_session(detect_devices=False, offer_recovery=False)
    assert win._autosave_timer.interval() == 5000

    def edit(dialog: SettingsDialog):
        dialog.autosave_interval.setValue(90)
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    assert win.edit_settings()
    assert win._autosave_timer.isActive() and win._autosave_timer.interval() == 90_000
    waits = []
    shutdown = win.jobs.shutdown
    monkeypatch.setattr(win.jobs, "shutdown", lambda timeout: waits.append(timeout) or shutdown(timeout))
    close_window(win, dialogs)
    assert waits and set(waits) == {2.5}


@pytest.mark.parametrize("width", [560, 820])
def test_add_server_edits_the_url_in_a_cell_that_holds_it_whole(qtbot, width):
    from PySide6.QtWidgets import QLineEdit

    from difflora_gui.qt.theme import style_sheet

    app = QApplication.instance()
    old_sheet = app.styleSheet()
    app.setStyleSheet(style_sheet())  # the themed line edit: its padding and frame take room
    try:
        dialog = SettingsDialog(AppSettings(), ["cpu"])
        qtbot.addWidget(dialog)
        dialog.resize(width, 600)
        dialog.show()
        qtbot.waitExposed(dialog)
        table = dialog.comfyui_servers
        table.add_button.click()
        editor = table.table.viewport().findChild(QLineEdit)
        assert editor is not None and editor.text() == "http://127.0.0.1:8189"
        cell = table.table.visualRect(table.table.currentIndex())
        hint = editor.sizeHint()
        assert hint.height() <= cell.height() and hint.width() <= cell.width(), (hint, cell)
        text_room = editor.contentsRect().width() - 12  # the theme's 6 px padding on each side
        assert editor.fontMetrics().horizontalAdvance(editor.text()) < text_room
        assert editor.height() >= hint.height()
        # the name cell holds a numbered default name too
        name_cell = table.table.visualRect(table.table.model().index(1, table.NAME))
        assert table.editor_size("127.0.0.1:8189 (2)").width() <= name_cell.width()
    finally:
        app.setStyleSheet(old_sheet)
