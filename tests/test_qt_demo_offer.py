"""The demo in the window: Help ▸ Open demo project builds it in a job and opens it on the Dataset
section (24 pairs); the first-start banner is answered once; a first start with an empty project
opens Merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from difflora_gui.demo.build import build_demo, default_demo_folder
from difflora_gui.qt.demo_offer import JOB_TITLE, offer_answered
from difflora_gui.qt.jobs_dock import JobRow
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.settings import AppSettings

DATASET_PANEL = "dataset-pairs"
BUILD_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def built_demo(tmp_path_factory) -> Path:
    """A demo built once (the tests that open an existing one point the launcher at it)."""
    folder = tmp_path_factory.mktemp("built") / "démo built"
    build_demo({"folder": str(folder)})
    return folder


def _dataset_panel(window):
    entry = window.panels[DATASET_PANEL]
    assert entry.ok, entry.error + entry.traceback
    return entry.widget


def _close(window, dialogs) -> None:
    _dataset_panel(window).loader.shutdown()
    close_window(window, dialogs)


def test_a_first_start_with_an_empty_project_opens_merge(qtbot, monkeypatch):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    assert window.current_section() == "merge"
    assert window.stack.currentWidget() is window.pages["merge"]
    _close(window, dialogs)


def test_help_open_demo_project_builds_it_in_a_job_and_shows_its_24_pairs(qtbot, monkeypatch):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert help_menu.actions()[0] is window.action_open_demo
    assert not default_demo_folder().exists()
    window.action_open_demo.trigger()
    handle = window.demo.handle
    assert handle is not None and handle.title == JOB_TITLE and handle.lane_key == "light"
    assert any(row.handle is handle for row in window.jobs_dock.findChildren(JobRow))  # in the Jobs dock
    steps: list[str] = []
    handle.progressed.connect(lambda progress: steps.append(progress.text))
    qtbot.waitUntil(lambda: handle.is_finished, timeout=BUILD_TIMEOUT_MS)
    assert handle.state == "done", handle.error_text
    assert "building the tiny model" in steps and steps[-1] == "demo ready"
    qtbot.waitUntil(lambda: window.project.name == "DiffLoRA demo", timeout=10_000)
    assert window.project.path == default_demo_folder() / "DiffLoRA demo.difflora"
    assert window.current_section() == "dataset"
    panel = _dataset_panel(window)
    assert panel.pair_set is not None and len(panel.pair_set.pairs) == 24
    assert panel.grid.model.rowCount() == 24
    model = default_demo_folder() / "tiny-random-wan (demo)"
    assert window.services.settings.wan_model_dir == str(model)  # Settings had none: the demo's
    assert "tiny demo model" in window.log_dock.text()
    _close(window, dialogs)


def test_the_first_start_banner_is_answered_once(qtbot, monkeypatch, tmp_path):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    assert window.demo.banner is None  # building a window (every test) offers nothing
    window.start_session(detect_devices=False, offer_recovery=False)
    banner = window.demo.banner
    assert banner is not None and banner.isVisible()
    assert "Build the demo project?" in banner.label.text() and "no download" in banner.label.text()
    assert "tiny demo model" in banner.label.text()
    banner.later_button.click()
    assert window.demo.banner is None and window.demo.handle is None
    assert offer_answered(AppSettings.load()) and offer_answered(window.services.settings)
    _close(window, dialogs)

    again, dialogs = make_main_window(qtbot, monkeypatch)
    again.start_session(detect_devices=False, offer_recovery=False)
    assert again.demo.banner is None
    _close(again, dialogs)


def test_build_demo_on_the_banner_opens_an_existing_demo_at_once(qtbot, monkeypatch, built_demo):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    window.services.update_settings(wan_model_dir="/models/real wan")
    window.demo.folder = built_demo
    assert window.demo.offer(window.section_column) is None  # built already: nothing to offer
    window.demo.folder = None
    window.start_session(detect_devices=False, offer_recovery=False)
    window.demo.folder = built_demo
    window.demo.banner.build_button.click()
    assert window.demo.handle is None  # nothing to build
    assert window.project.path == built_demo / "DiffLoRA demo.difflora"
    assert window.current_section() == "dataset" and len(_dataset_panel(window).pair_set.pairs) == 24
    assert window.services.settings.wan_model_dir == "/models/real wan"  # a real folder is kept
    assert offer_answered(AppSettings.load())
    _close(window, dialogs)
