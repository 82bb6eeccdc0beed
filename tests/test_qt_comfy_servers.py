"""ComfyUI servers in the app, against stand-in servers on 127.0.0.1 (tests/fixtures/comfy_standin.py):
their job lanes follow Settings and wait for a healthy server, Settings ▸ ComfyUI servers shows each
server's health and LoRA folder, "Check now" asks again while the window keeps running, and the
status bar counts the servers that are up."""

from __future__ import annotations

import os
import socket
import time

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from difflora_gui.jobs import JobRequest
from difflora_gui.plugin_host import PluginHost
from difflora_gui.qt.comfy_health import ComfyStatusLabel, lora_dir_problem
from difflora_gui.qt.devices import DeviceRegistry
from difflora_gui.qt.jobs import QUEUED, JobController
from difflora_gui.qt.services import AppServices
from difflora_gui.qt.settings_servers import ServerTable
from difflora_gui.settings import AppSettings, ComfyServer

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def controller(qtbot):
    jobs = JobController()
    yield jobs
    assert jobs.shutdown(10), "a test job did not stop"


def comfy_lanes(controller) -> list[str]:
    return [k for k in controller.lane_keys() if k.startswith("comfy:")]


def services_for(controller, servers) -> AppServices:
    settings = AppSettings(comfyui_servers=servers)
    return AppServices(host=PluginHost(), jobs=controller, devices=DeviceRegistry(), settings=settings)


def test_a_comfy_job_waits_until_a_server_comes_up(qtbot, controller, standins, tmp_path):
    port = free_port()
    services_for(controller, [ComfyServer(name="later", url=f"http://127.0.0.1:{port}")])
    handle = controller.submit(JobRequest("render", lambda p, c: c.lane_key, lane="comfy"))
    qtbot.wait(1200)  # the first health answer is in: the server is down, the job waits
    assert handle.state == QUEUED
    standins("later", port=port)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20_000)  # the next check finds it up
    assert handle.result == "comfy:later"


def test_lanes_follow_settings_and_a_disabled_server_loses_its_lane(qtbot, controller, standins):
    a, b = standins("a"), standins("b")
    services = services_for(controller, [ComfyServer(name="a", url=a.url), ComfyServer(name="b", url=b.url)])
    assert comfy_lanes(controller) == ["comfy:a", "comfy:b"]
    services.update_settings(
        comfyui_servers=[ComfyServer(name="a", url=a.url, enabled=False), ComfyServer(name="b", url=b.url)]
    )
    assert comfy_lanes(controller) == ["comfy:b"]
    handle = controller.submit(JobRequest("render", lambda p, c: c.lane_key, lane="comfy"))
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10_000)
    assert handle.result == "comfy:b"
    services.update_settings(comfyui_servers=[])
    assert comfy_lanes(controller) == []


def test_health_lines_for_a_running_and_a_stopped_server(qtbot, standins, tmp_path):
    up = standins("up")
    gone = standins("gone")
    gone.stop()
    share = tmp_path / "up" / "models" / "loras"
    table = ServerTable()
    qtbot.addWidget(table)
    table.set_servers(
        [
            ComfyServer(name="up", url=up.url, lora_dir=str(share)),
            ComfyServer(name="gone", url=gone.url, lora_dir=str(share)),
        ]
    )
    qtbot.waitUntil(lambda: table.watcher.state("up") == "up" and table.watcher.state("gone") == "down")
    qtbot.waitUntil(lambda: "gone: down" in table.health_label.text())
    text = table.health_label.text()
    assert "up: up · ComfyUI 0.3.64 · cpu 8.0/16.0 GiB free" in text
    assert "is it running?" in text
    assert "LoRA folder" not in text  # the shared folder exists and is writable
    name_cell = table.table.item(0, table.NAME)
    assert name_cell.toolTip().startswith("up · ComfyUI 0.3.64")


def test_check_now_asks_again_while_the_window_keeps_running(qtbot, standins):
    up = standins("up")
    # a server that takes the connection and never answers: the check costs its whole timeout
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        table = ServerTable()
        qtbot.addWidget(table)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        table.set_servers([ComfyServer(name="up", url=up.url), ComfyServer(name="silent", url=silent_url)])
        qtbot.waitUntil(lambda: table.watcher.state("up") == "up", timeout=10_000)
        qtbot.waitUntil(lambda: table.watcher.state("silent") == "down", timeout=10_000)
        up.stop()
        ticks = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        timer.start(50)
        started = time.monotonic()
        table.check_button.click()
        assert time.monotonic() - started < 0.3  # the click only starts the checks
        assert "silent: checking…" in table.health_label.text()
        qtbot.waitUntil(lambda: table.watcher.state("up") == "down", timeout=10_000)
        qtbot.waitUntil(lambda: table.watcher.state("silent") == "down", timeout=10_000)
        timer.stop()
        assert len(ticks) >= 10  # the silent server's check took seconds; the event loop ran on
        assert "up: down: " in table.health_label.text()
    finally:
        silent.close()


def test_a_missing_or_unusable_lora_folder_is_reported(qtbot, standins, tmp_path):
    up = standins("up")
    a_file = tmp_path / "loras.txt"
    a_file.write_text("not a folder")
    table = ServerTable()
    qtbot.addWidget(table)
    table.set_servers(
        [
            ComfyServer(name="missing", url=up.url, lora_dir=str(tmp_path / "no such share")),
            ComfyServer(name="file", url=up.url, lora_dir=str(a_file)),
            ComfyServer(name="unset", url=up.url),
        ]
    )
    qtbot.waitUntil(lambda: all(table.watcher.lora_problem(n) for n in ("missing", "file", "unset")))
    qtbot.waitUntil(lambda: "no shared LoRA folder" in table.health_label.text())
    text = table.health_label.text()
    assert f"LoRA folder not found: {tmp_path / 'no such share'} — mount the share" in text
    assert f"LoRA folder is a file, not a folder: {a_file}" in text
    assert "no shared LoRA folder: set one (LoRA folder…)" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_lora_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert lora_dir_problem(str(locked)).startswith("LoRA folder is not writable:")
    finally:
        locked.chmod(0o700)


def test_a_disabled_server_is_checked_but_marked(qtbot, standins):
    up = standins("up")
    table = ServerTable()
    qtbot.addWidget(table)
    table.set_servers([ComfyServer(name="spare", url=up.url, enabled=False)])
    qtbot.waitUntil(lambda: "(disabled: gets no jobs)" in table.health_label.text(), timeout=10_000)
    assert table.health_label.text().startswith("spare: up · ComfyUI 0.3.64")


def test_the_status_bar_counts_the_servers_that_are_up(qtbot, controller, standins):
    up = standins("up")
    gone_url = f"http://127.0.0.1:{free_port()}"
    services = services_for(
        controller, [ComfyServer(name="up", url=up.url), ComfyServer(name="gone", url=gone_url)]
    )
    holder = QWidget()
    qtbot.addWidget(holder)
    label = ComfyStatusLabel(services, holder)
    qtbot.waitUntil(lambda: label.text() == "ComfyUI: 1 of 2 up", timeout=10_000)
    assert "gone: down: " in label.toolTip()
    services.update_settings(comfyui_servers=[])
    assert label.isHidden()


def test_the_main_window_status_bar_shows_comfyui_only_when_servers_are_enabled(qtbot, monkeypatch, standins):
    from difflora_gui.qt.testing import close_window, make_main_window

    up = standins("up")
    win, dialogs = make_main_window(
        qtbot,
        monkeypatch,
        builtin_panels=False,
        settings=AppSettings(comfyui_servers=[ComfyServer("up", up.url)]),
    )
    qtbot.waitUntil(lambda: win.comfy_status.text() == "ComfyUI: 1 of 1 up", timeout=10_000)
    assert win.comfy_status.isVisible()
    win.services.update_settings(comfyui_servers=[])
    assert not win.comfy_status.isVisible()
    close_window(win, dialogs)


def test_an_edited_lora_folder_is_looked_at_again(qtbot, standins, tmp_path):
    up = standins("up")
    table = ServerTable()
    qtbot.addWidget(table)
    table.set_servers([ComfyServer(name="up", url=up.url, lora_dir=str(tmp_path / "later"))])
    qtbot.waitUntil(lambda: "LoRA folder not found" in table.health_label.text())
    (tmp_path / "later").mkdir()
    table.table.item(0, table.LORA_DIR).setText(str(tmp_path / "later"))  # the same text: no change
    table.check_button.click()
    qtbot.waitUntil(lambda: "LoRA folder" not in table.health_label.text())
    table.table.item(0, table.LORA_DIR).setText(str(tmp_path / "elsewhere"))
    qtbot.waitUntil(
        lambda: "LoRA folder not found: " + str(tmp_path / "elsewhere") in table.health_label.text()
    )
