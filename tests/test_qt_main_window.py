"""The main window: sections, docks, shortcuts, jobs in the docks, closing, window state, drag and drop."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from difflora_gui import hookimpl
from difflora_gui.jobs import JobRequest
from difflora_gui.project import Project
from difflora_gui.qt.devices import DeviceInfo
from difflora_gui.qt.jobs import CANCELLED, RUNNING
from difflora_gui.qt.main_window import MainWindow, window_settings
from difflora_gui.qt.testing import Button, close_window, make_main_window
from difflora_gui.specs import SECTIONS, PanelSpec


@pytest.fixture
def window(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch, builtin_panels=False)
    win.dialogs = dialogs
    yield win
    close_window(win, dialogs)


class DropPanel(QWidget):
    """A panel that takes files, like the Merge workbench will take .safetensors files."""

    def __init__(self, services):
        super().__init__()
        self.services = services
        self.received: list[list[Path]] = []
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("drop target"))

    def accept_files(self, paths):
        self.received.append(paths)


class DropPlugin:
    @hookimpl
    def difflora_gui_register_panels(self):
        return [
            PanelSpec("merge-drop", "Merge drop", "merge", DropPanel, accepts=(".safetensors",)),
            PanelSpec("dataset-drop", "Dataset drop", "dataset", DropPanel, accepts=(".png", ".mp4", "/")),
        ]


def test_window_has_five_sections_both_docks_and_an_informative_page_per_section(window):
    assert window.windowTitle() == "Untitled[*] — DiffLoRA Studio"
    assert [window.nav.item(i).text().strip() for i in range(window.nav.count())] == [
        "Dataset",
        "Train",
        "Merge",
        "Preview",
        "Compare",
    ]
    assert list(window.pages) == list(SECTIONS)
    assert window.stack.count() == 5
    for page in window.pages.values():
        assert not page.has_panels
        texts = " ".join(label.text() for label in page.findChildren(QLabel))
        assert "This section will hold" in texts
        assert "No panel is installed for this section yet" in texts
        assert not page.findChildren(type(window.jobs_dock.clear_button))  # text only, no fake buttons
    assert window.jobs_dock.isVisible() and window.log_dock.isVisible()
    assert window.dockWidgetArea(window.jobs_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert window.dockWidgetArea(window.log_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert [m.title().replace("&", "") for m in window.menuBar().findChildren(type(window.recent_menu))][:1]
    assert window.statusBar().isVisible()


def test_keyboard_shortcuts(window, qtbot):
    expected = {
        window.action_new: "Ctrl+N",
        window.action_open: "Ctrl+O",
        window.action_save: "Ctrl+S",
        window.action_save_as: "Ctrl+Shift+S",
        window.action_quit: "Ctrl+Q",
        window.action_settings: "Ctrl+,",
        window.action_plugins: "Ctrl+Shift+P",
        window.action_toggle_jobs: "Ctrl+J",
        window.action_toggle_log: "Ctrl+L",
    }
    for action, keys in expected.items():
        assert action.shortcut().toString() == keys, action.text()
    window.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is not None, timeout=3000)
    for index, key in enumerate(SECTIONS):
        assert window.section_actions[key].shortcut().toString() == f"Ctrl+{index + 1}"
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + index), Qt.KeyboardModifier.ControlModifier)
        assert window.current_section() == key
        assert window.stack.currentWidget() is window.pages[key]
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert not window.log_dock.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.log_dock.isVisible()


def test_the_shortcuts_help_lists_the_action_tables_shortcuts(window):
    from difflora_gui.qt.actions import ACTIONS, MENUS, SECTION_ACTIONS, SEPARATOR

    window.action_shortcuts.trigger()
    (shown,) = [d for d in window.dialogs.asked if d.title == "Keyboard shortcuts"]
    for keys, what in [("Ctrl+N", "New project"), ("Ctrl+Shift+S", "Save as"), ("Ctrl+Shift+P", "Plugins")]:
        assert f"<b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td>" in shown.text
    assert "<b>Ctrl+1 … Ctrl+5</b>" in shown.text and "<b>Ctrl+J</b>" in shown.text
    # every declared action is in a menu, and every menu entry is a declared action
    in_menus = {entry for _title, entries in MENUS for entry in entries if entry.startswith("action_")}
    assert {d.attr for d in ACTIONS} <= in_menus
    assert all(hasattr(window, entry) for entry in in_menus)
    assert SECTION_ACTIONS in dict(MENUS)["&View"] and SEPARATOR in dict(MENUS)["&File"]


def _progress_job(params, ctx):
    for step in range(1, params["total"] + 1):
        ctx.raise_if_cancelled()
        ctx.progress(step, params["total"], f"step {step}")
        if step == params.get("hold_at"):
            while not params["release"].wait(0.01):
                ctx.raise_if_cancelled()
        time.sleep(0.02)
    ctx.log("all steps done")
    return params["total"]


def test_jobs_dock_shows_progress_eta_and_cancel_remove(window, qtbot):
    release = threading.Event()
    handle = window.jobs.submit(
        JobRequest("Count", _progress_job, {"total": 20, "hold_at": 10, "release": release}, lane="device")
    )
    row = window.jobs_dock.rows[handle.id]
    assert row.state_label.text() == "queued"
    qtbot.waitUntil(lambda: handle.progress is not None and handle.progress.done >= 10, timeout=5000)
    assert row.state_label.text() == "running"
    assert row.progress_bar.value() == 500  # 10 of 20, in thousandths
    assert row.progress_bar.format() == "50%"
    assert row.eta_label.text().startswith("ETA ")
    assert "10/20 · step 10" in row.detail_label.text()
    assert not row.remove_button.isEnabled()
    assert window.jobs_status.text() == "jobs: 1 running, 0 queued"
    row.cancel_button.click()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=5000)
    assert handle.state == CANCELLED
    assert row.state_label.text() == "cancelled"
    assert "Cancelled: Count" in window.log_dock.text()
    row.remove_button.click()
    assert handle.id not in window.jobs_dock.rows
    assert window.jobs.jobs() == []


def test_a_finished_job_is_logged_with_its_own_log_lines(window, qtbot):
    handle = window.jobs.submit(JobRequest("Short", _progress_job, {"total": 3}))
    qtbot.waitUntil(lambda: handle.is_finished, timeout=5000)
    log = window.log_dock.text()
    assert "Started: Short (lane device:cpu)" in log
    assert "Short: all steps done" in log
    assert "Done: Short in " in log
    assert window.jobs_dock.rows[handle.id].progress_bar.format() == "100%"


def _broken_job(params, ctx):
    ctx.log("about to fail")
    raise RuntimeError("CUDA out of memory (pretend)")


def test_a_failing_job_puts_its_traceback_in_the_log_and_the_ui_lives_on(window, qtbot):
    handle = window.jobs.submit(JobRequest("Doomed", _broken_job))
    qtbot.waitUntil(lambda: handle.is_finished, timeout=5000)
    log = window.log_dock.text()
    assert "Failed: Doomed: RuntimeError: CUDA out of memory (pretend)" in log
    assert "Traceback (most recent call last)" in log
    assert "in _broken_job" in log
    row = window.jobs_dock.rows[handle.id]
    assert row.state_label.text() == "failed"
    assert "CUDA out of memory" in row.detail_label.text()
    assert "Job failed: Doomed" in window.statusBar().currentMessage()
    after = window.jobs.submit(JobRequest("After", _progress_job, {"total": 2}))  # still works
    qtbot.waitUntil(lambda: after.is_finished, timeout=5000)
    assert after.result == 2


def test_log_dock_copy_and_clear(window):
    window.log("first line")
    window.log("two\nlines", "warning")
    text = window.log_dock.text()
    assert "] first line" in text and "] two\n           lines" in text
    window.log_dock.copy_button.click()
    assert QGuiApplication.clipboard().text() == text
    window.log_dock.clear_button.click()
    assert window.log_dock.text() == ""


def test_python_logging_reaches_the_log_dock(window, qtbot):
    import logging

    logging.getLogger("difflora_gui.some_module").info("hello from logging")
    qtbot.waitUntil(
        lambda: "difflora_gui.some_module: hello from logging" in window.log_dock.text(), timeout=2000
    )


def test_closing_with_running_jobs_asks_cancels_and_waits(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    saw_cancel = []

    def loop(params, ctx):
        while not ctx.cancelled:
            time.sleep(0.01)
        saw_cancel.append(params)
        ctx.raise_if_cancelled()

    running = win.jobs.submit(JobRequest("Loop", loop, "device job"))
    queued = win.jobs.submit(JobRequest("Waiting", loop, "never ran"))
    qtbot.waitUntil(lambda: running.state == RUNNING, timeout=5000)

    dialogs.answers["Jobs are running"] = Button.No
    assert not win.close()
    assert win.isVisible() and running.state == RUNNING
    assert dialogs.titles("question") == ["Jobs are running"]
    assert "2 job(s) are running or queued" in dialogs.asked[0].text

    dialogs.answers["Jobs are running"] = Button.Yes
    assert win.close()
    assert saw_cancel == ["device job"]
    assert running.state == CANCELLED and queued.state == CANCELLED
    assert not win.jobs.has_live_threads()


def test_closing_with_unsaved_changes_can_be_called_off(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.project.update_section("merge", rank=8)
    dialogs.answers["Unsaved changes"] = Button.Cancel
    assert not win.close()
    dialogs.answers["Unsaved changes"] = Button.Discard
    assert win.close()


def test_window_state_is_saved_and_restored(qtbot, monkeypatch):
    first, dialogs = make_main_window(qtbot, monkeypatch)
    first.resize(731, 517)  # the offscreen screen is small: stay inside it
    first.log_dock.hide()
    first.show_section("preview")
    close_window(first, dialogs)
    ini = Path(window_settings().fileName())
    assert ini.is_file() and ini.parent == Path(os.environ["DIFFLORA_CONFIG_DIR"])

    second, dialogs = make_main_window(qtbot, monkeypatch)
    assert (second.size().width(), second.size().height()) == (731, 517)
    assert not second.log_dock.isVisible()
    assert second.jobs_dock.isVisible()
    assert second.current_section() == "preview"
    second.reset_layout()
    assert second.log_dock.isVisible()
    close_window(second, dialogs)


def test_window_settings_never_touch_the_users_real_store(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFLORA_CONFIG_DIR", str(tmp_path / "cfg"))
    assert Path(window_settings().fileName()) == tmp_path / "cfg" / "window.ini"


def test_devices_show_in_the_status_bar_and_auto_jobs_wait_for_them(window, qtbot):
    handle = window.jobs.submit(JobRequest("Auto", lambda params, ctx: "ok", device="auto"))
    qtbot.wait(50)
    assert handle.state == "queued"
    window.devices.set_devices([DeviceInfo("cuda:0", "Test GPU", 24.0)])
    assert window.device_status.text() == "devices: cpu, cuda:0 (Test GPU, 24 GB)"
    qtbot.waitUntil(lambda: handle.is_finished, timeout=5000)
    assert handle.lane_key == "device:cuda:0"


# --- drag and drop ---------------------------------------------------------------------------


@pytest.fixture
def drop_window(qtbot, monkeypatch):
    win, dialogs = make_main_window(
        qtbot, monkeypatch, plugins=[("drop", DropPlugin())], builtin_panels=False
    )
    yield win
    close_window(win, dialogs)


def test_dropped_files_are_routed_by_suffix_to_the_panel_that_takes_them(drop_window, tmp_path):
    lora_a = tmp_path / "lora A.safetensors"
    lora_b = tmp_path / "lora B.SAFETENSORS"
    frame = tmp_path / "pair 01.png"
    for path in (lora_a, lora_b, frame):
        path.write_bytes(b"x")
    drop_window.show_section("train")
    routed = drop_window.route_files([lora_a, lora_b, frame])
    assert routed == {"merge-drop": [lora_a, lora_b], "dataset-drop": [frame]}
    assert drop_window.panels["merge-drop"].widget.received == [[lora_a, lora_b]]
    assert drop_window.panels["dataset-drop"].widget.received == [[frame]]
    assert "2 file(s) → Merge ▸ Merge drop" in drop_window.log_dock.text()
    assert drop_window.current_section() in ("merge", "dataset")


def test_dropped_folders_go_to_the_panel_that_takes_folders(drop_window, tmp_path):
    dense, sparse = tmp_path / "dense frames", tmp_path / "sparse frames"
    dense.mkdir()
    sparse.mkdir()
    routed = drop_window.route_files([dense, sparse])
    assert routed == {"dataset-drop": [dense, sparse]}
    assert drop_window.panels["dataset-drop"].widget.received == [[dense, sparse]]


def test_a_real_drop_event_reaches_the_router(drop_window, tmp_path):
    lora = tmp_path / "slider.safetensors"
    lora.write_bytes(b"x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(lora))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    drop_window.dropEvent(event)
    assert event.isAccepted()
    assert drop_window.panels["merge-drop"].widget.received == [[lora]]
    assert drop_window.current_section() == "merge"


def test_files_nobody_takes_are_reported_not_crashed_on(window, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    routed = window.route_files([notes, tmp_path / "weights.safetensors"])
    assert routed == {"unhandled": [notes, tmp_path / "weights.safetensors"]}
    assert (
        "No panel takes .safetensors, .txt files yet (2 file(s) not opened)"
        in window.statusBar().currentMessage()
    )
    assert "notes.txt" in window.log_dock.text()


def test_a_dropped_project_file_opens_it(window, tmp_path):
    path = tmp_path / "dropped.difflora"
    project = Project("Dropped")
    project.update_section("merge", rank=4)
    project.save(path)
    assert window.route_files([path]) == {"project": [path]}
    assert window.project.name == "Dropped"
    assert window.project.section("merge") == {"rank": 4}


def test_a_panel_that_raises_while_taking_files_is_contained(qtbot, monkeypatch, tmp_path):
    class Grumpy(DropPanel):
        def accept_files(self, paths):
            raise ValueError("cannot read these")

    class GrumpyPlugin:
        @hookimpl
        def difflora_gui_register_panels(self):
            return [PanelSpec("grumpy", "Grumpy", "merge", Grumpy, accepts=(".safetensors",))]

    win, dialogs = make_main_window(
        qtbot, monkeypatch, plugins=[("grumpy", GrumpyPlugin())], builtin_panels=False
    )
    routed = win.route_files([tmp_path / "a.safetensors"])
    assert routed == {}
    assert "Panel 'Grumpy' failed to take 1 file(s): cannot read these" in win.log_dock.text()
    close_window(win, dialogs)


def test_the_drop_router_prefers_the_section_on_screen_then_section_and_panel_order():
    from difflora_gui.qt.drop_router import choose_panel
    from difflora_gui.qt.sections import PanelEntry

    def entry(name, section, order=100, error=""):
        spec = PanelSpec(name, name.title(), section, "x:y", order=order, accepts=(".png",))
        return PanelEntry(spec, "p", None, error=error, accepts=spec.accepts)

    entries = [entry("late", "compare", 1), entry("second", "dataset", 50), entry("first", "dataset", 10)]
    assert choose_panel(entries, ".PNG", "train").spec.name == "first"
    assert choose_panel(entries, ".png", "compare").spec.name == "late"
    assert choose_panel([entry("broken", "merge", error="import failed")], ".png", "merge") is None
    assert choose_panel(entries, ".txt", "dataset") is None


def test_main_window_default_host_is_the_process_host(qtbot, monkeypatch):
    from difflora_gui.plugin_host import get_plugin_host

    monkeypatch.setenv("DIFFLORA_DISABLE_PLUGIN_AUTOLOAD", "1")
    from difflora_gui.qt.testing import DialogAnswers

    dialogs = DialogAnswers().install(monkeypatch)
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.host is get_plugin_host()
    assert win.host.info("core").status == "enabled"
    close_window(win, dialogs)


def test_an_exception_escaping_a_slot_goes_to_the_log(window, monkeypatch):
    import sys

    from difflora_gui.qt.app import _install_excepthook

    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args[0]))
    _install_excepthook(window)
    try:
        raise LookupError("a slot went wrong")
    except LookupError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert "Unexpected error: LookupError: a slot went wrong" in window.log_dock.text()
    assert "in test_an_exception_escaping_a_slot_goes_to_the_log" in window.log_dock.text()
    assert seen == [LookupError]  # the previous hook still runs


def test_a_small_screen_starts_with_the_docks_tabbed_and_closed(qtbot, monkeypatch):
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QGuiApplication

    from difflora_gui.qt import window_layout
    from difflora_gui.qt.testing import close_window, make_main_window

    class Screen:
        def __init__(self, width, height):
            self.area = QRect(0, 0, width, height)

        def availableGeometry(self):  # noqa: N802 - the Qt name
            return self.area

    monkeypatch.setattr(QGuiApplication, "platformName", staticmethod(lambda: "xcb"))
    for (width, height), compact in (((2560, 1440), False), ((1366, 768), True), ((1280, 720), True)):
        monkeypatch.setattr(
            QGuiApplication, "primaryScreen", staticmethod(lambda w=width, h=height: Screen(w, h))
        )
        assert window_layout.compact_screen() is compact
    window, dialogs = make_main_window(qtbot, monkeypatch)  # on the 1280×720 screen
    try:
        assert not window.log_dock.isVisible() and not window.jobs_dock.isVisible()
        window.jobs_status.click()  # the status bar's jobs count opens the Jobs dock
        assert window.jobs_dock.isVisible()
    finally:
        close_window(window, dialogs)


def test_tools_opens_the_comfyui_bindings_editor(window, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from difflora_gui.qt.comfy.binding_editor import BindingEditorDialog

    tools = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Tools")
    assert window.action_comfy_bindings in tools.actions()
    seen = []

    def close_it():
        dialog = QApplication.activeModalWidget()
        seen.append(type(dialog))
        dialog.reject()

    QTimer.singleShot(200, close_it)
    window.action_comfy_bindings.trigger()
    assert seen == [BindingEditorDialog]
