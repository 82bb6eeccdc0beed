"""Project files in the window: New/Open/Save/Save As/Recent, bad files, autosave, crash recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from difflora_gui.project import Project
from difflora_gui.qt import autosave
from difflora_gui.qt.project_dialog import ProjectDialog
from difflora_gui.qt.testing import Button, close_window, make_main_window
from difflora_gui.settings import AppSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def window(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.dialogs = dialogs
    yield win
    close_window(win, dialogs)


def test_save_as_open_and_recent(window, tmp_path):
    replaced = []
    window.services.project_replaced.connect(replaced.append)
    window.project.update_section("merge", rank=16)
    assert window.isWindowModified()

    target = tmp_path / "my slider"
    assert window.save_project_as(target)
    saved = tmp_path / "my slider.difflora"
    assert saved.is_file()
    assert window.project.path == saved and window.project.name == "my slider"
    assert not window.isWindowModified()
    assert window.windowTitle() == "my slider[*] — DiffLoRA Studio"
    assert AppSettings.load().recent_projects == [str(saved)]

    assert window.new_project()  # clean: no question
    assert window.project.section("merge") == {}
    assert window.dialogs.asked == []

    window._fill_recent_menu()
    recent = [a for a in window.recent_menu.actions() if a.toolTip() == str(saved)]
    assert len(recent) == 1 and recent[0].text() == "&1 my slider.difflora"
    recent[0].trigger()
    assert window.project.section("merge") == {"rank": 16}
    assert window.project.path == saved
    assert [p.name for p in replaced] == ["Untitled", "my slider"]


def test_save_asks_for_a_file_the_first_time(window, tmp_path, monkeypatch):
    chosen = tmp_path / "chosen.difflora"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(chosen), "")))
    window.project.update_section("dataset", pairs=3)
    assert window.save_project()
    assert Project.load(chosen).section("dataset") == {"pairs": 3}
    window.project.update_section("dataset", pairs=4)
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: pytest.fail("asked again"))
    )
    assert window.save_project()
    assert Project.load(chosen).section("dataset") == {"pairs": 4}


def test_a_bad_project_file_gives_a_message_not_a_crash(window, tmp_path):
    bad = tmp_path / "broken.difflora"
    bad.write_text('{"format": "difflora-project", "version": ', encoding="utf-8")
    window.project.update_section("train", steps=5)
    window.dialogs.answers["Unsaved changes"] = Button.Discard
    assert not window.open_project(bad)
    warning = [d for d in window.dialogs.asked if d.kind == "warning"]
    assert len(warning) == 1 and warning[0].title == "Cannot open project"
    assert str(bad) in warning[0].text and "invalid JSON" in warning[0].text and "\n" not in warning[0].text
    assert bad.read_text(encoding="utf-8") == '{"format": "difflora-project", "version": '
    assert str(bad) in window.log_dock.text()


def test_a_newer_project_version_is_refused_politely(window, tmp_path):
    newer = tmp_path / "future.difflora"
    newer.write_text('{"format": "difflora-project", "version": 7, "sections": {}}', encoding="utf-8")
    assert not window.open_project(newer)
    assert "made by a newer DiffLoRA Studio" in window.dialogs.asked[-1].text


def test_unsaved_changes_are_guarded(window, tmp_path):
    window.project.update_section("merge", rank=4)
    window.dialogs.answers["Unsaved changes"] = Button.Cancel
    assert not window.new_project()
    assert window.project.section("merge") == {"rank": 4}
    window.dialogs.answers["Unsaved changes"] = Button.Save
    window.project.path = tmp_path / "kept.difflora"
    assert window.new_project()
    assert Project.load(tmp_path / "kept.difflora").section("merge") == {"rank": 4}
    window.project.update_section("merge", rank=5)
    window.dialogs.answers["Unsaved changes"] = Button.Discard
    assert window.new_project()
    assert not window.project.dirty


def test_a_missing_recent_file_is_reported_and_dropped(window, tmp_path):
    gone = tmp_path / "gone.difflora"
    window.services.update_settings(recent_projects=[str(gone)])
    assert not window._open_recent(gone)
    assert "file not found" in window.dialogs.asked[-1].text
    assert AppSettings.load().recent_projects == []


def test_opening_a_project_lists_the_files_it_uses_that_are_missing(window, tmp_path):
    weights = tmp_path / "models" / "wan2.1 t2v 14B ü.safetensors"  # outside the project folder
    project_dir = tmp_path / "slider"
    project_dir.mkdir()
    project = Project("slider", sections={"merge": {"settings": {"lora_a": str(weights), "lora_b": ""}}})
    project.save(project_dir / "slider.difflora")

    assert window.open_project(project_dir / "slider.difflora")
    assert window.dialogs.asked == []  # a missing input is no reason to refuse the project
    assert "(merge: settings.lora_a)" in window.log_dock.text()
    assert str(weights) in window.log_dock.text()
    assert "1 file(s) it uses are missing" in window.statusBar().currentMessage()


def test_project_settings_dialog(window, tmp_path, monkeypatch):
    def edit(dialog):
        dialog.name.setText("Anime denser")
        dialog.output_dir.setText(str(tmp_path))
        dialog.try_accept()
        return dialog.result()

    monkeypatch.setattr(ProjectDialog, "exec", edit)
    assert window.edit_project_settings()
    assert window.project.name == "Anime denser" and window.project.output_dir == str(tmp_path)
    assert window.windowTitle() == "Anime denser[*] — DiffLoRA Studio" and window.isWindowModified()
    assert window.services.output_dir() == str(tmp_path)


# --- autosave and recovery ------------------------------------------------------------------


def test_autosave_writes_only_unsaved_work_and_a_clean_exit_removes_it(qtbot, monkeypatch, tmp_path):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.start_session(detect_devices=False, offer_recovery=False)
    session = win.autosave_session
    assert session.locked
    assert not win.autosave_now()  # nothing unsaved
    assert not session.autosave_path.exists()

    win.project.update_section("merge", rank=24)
    assert win.autosave_now()
    assert Project.load(session.autosave_path).section("merge") == {"rank": 24}
    assert win.project.dirty and win.project.path is None  # the autosave did not change the project

    win.save_project_as(tmp_path / "saved.difflora")
    assert not session.autosave_path.exists() and not session.info_path.exists()

    win.project.update_section("merge", rank=25)
    assert win.autosave_now()
    dialogs.answers["Unsaved changes"] = Button.Discard
    assert win.close()
    assert list(autosave.autosave_dir().iterdir()) == []  # autosave, info and lock are gone


def test_the_autosave_timer_runs(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    win.start_session(detect_devices=False, offer_recovery=False, autosave_interval_s=0.05)
    win.project.update_section("train", epochs=3)
    qtbot.waitUntil(win.autosave_session.autosave_path.exists, timeout=3000)
    close_window(win, dialogs)


CRASHING_SESSION = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from PySide6.QtCore import QCoreApplication
    app = QCoreApplication([])
    from difflora_gui.project import Project
    from difflora_gui.qt.autosave import AutosaveSession
    project = Project.load(sys.argv[2])
    project.update_section("merge", rank=12, blocks=[0, 1, 2])
    session = AutosaveSession()
    session.save(project)
    print(session.id, flush=True)
    os._exit(3)  # a crash: no clean-up of any kind
    """
)


def test_recovery_after_a_real_crash(qtbot, monkeypatch, tmp_path):
    saved = tmp_path / "before crash.difflora"
    Project("before crash").save(saved)
    old = time.time() - 60
    os.utime(saved, (old, old))  # saved a minute before the crash
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_SESSION, str(ROOT), str(saved)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert crashed.returncode == 3, crashed.stderr
    session_id = crashed.stdout.strip()
    assert (autosave.autosave_dir() / f"{session_id}.lock").exists()  # the dead process left its lock

    found = autosave.find_recoverable()
    assert [r.session for r in found] == [session_id]
    assert found[0].source == saved

    win, dialogs = make_main_window(qtbot, monkeypatch)
    dialogs.answers["Recover unsaved work"] = Button.Yes
    win.start_session(detect_devices=False)
    question = [d for d in dialogs.asked if d.title == "Recover unsaved work"]
    assert len(question) == 1 and "'before crash'" in question[0].text and str(saved) in question[0].text
    assert win.project.section("merge") == {"rank": 12, "blocks": [0, 1, 2]}
    assert win.project.path == saved and win.project.dirty
    assert win.windowTitle() == "before crash[*] — DiffLoRA Studio" and win.isWindowModified()
    assert not (autosave.autosave_dir() / f"{session_id}.difflora").exists()
    assert win.autosave_session.autosave_path.exists()  # the restored work is safe in this session
    assert Project.load(saved).section("merge") == {}  # the project file itself is untouched
    dialogs.answers["Unsaved changes"] = Button.Discard
    close_window(win, dialogs)


def _abandoned_session(project: Project) -> autosave.AutosaveSession:
    """A session whose process 'died': its lock is released but its autosave stays."""
    session = autosave.AutosaveSession()
    session.save(project)
    session._lock.unlock()
    return session


def test_recovery_can_be_discarded_or_kept_for_later(qtbot, monkeypatch):
    project = Project("unsaved")
    project.update_section("dataset", pairs=126)
    dead = _abandoned_session(project)

    win, dialogs = make_main_window(qtbot, monkeypatch)
    dialogs.answers["Recover unsaved work"] = Button.Ignore
    assert not win.offer_recovery()
    assert dead.autosave_path.exists()  # kept: asked again next time
    dialogs.answers["Recover unsaved work"] = Button.Discard
    assert not win.offer_recovery()
    assert not dead.autosave_path.exists() and not dead.info_path.exists()
    assert autosave.find_recoverable() == []
    assert win.project.section("dataset") == {}
    close_window(win, dialogs)


def test_open_sessions_and_outdated_autosaves_are_not_offered(tmp_path):
    project = Project("p")
    project.update_section("merge", rank=1)
    live = autosave.AutosaveSession()
    live.save(project)
    assert autosave.find_recoverable() == []  # its window is still open (lock held)
    live.close()

    saved = tmp_path / "p.difflora"
    project.save(saved)
    project.update_section("merge", rank=2)
    dead = _abandoned_session(project)
    later = time.time() + 5
    os.utime(saved, (later, later))  # the project was saved after the autosave
    assert autosave.find_recoverable() == []
    assert dead.autosave_path.exists()


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"format": "difflora-project", "version": ', "invalid JSON"),
        ('{"format": "difflora-project", "version": 7, "sections": {}}', "made by a newer DiffLoRA Studio"),
        ('{"format": "something-else", "version": 1}', "not a DiffLoRA Studio project"),
    ],
)
def test_an_invalid_project_is_refused_before_the_unsaved_changes_question(window, tmp_path, content, reason):
    bad = tmp_path / "other.difflora"
    bad.write_text(content, encoding="utf-8")
    window.project.update_section("merge", rank=12)  # unsaved work in the open project
    before = window.project
    # no answer is scripted for "Unsaved changes": the question would fail the test
    assert not window.open_project(bad)
    assert [(d.kind, d.title) for d in window.dialogs.asked] == [("warning", "Cannot open project")]
    assert reason in window.dialogs.asked[0].text and str(bad) in window.dialogs.asked[0].text
    assert window.project is before and window.project.dirty
    assert window.project.section("merge") == {"rank": 12}
    assert AppSettings.load().recent_projects == []


def test_a_valid_project_still_asks_about_unsaved_changes_and_cancel_keeps_everything(window, tmp_path):
    good = tmp_path / "good.difflora"
    Project("good", sections={"merge": {"rank": 2}}).save(good)
    window.project.update_section("merge", rank=12)
    window.dialogs.answers["Unsaved changes"] = Button.Cancel
    assert not window.open_project(good)
    assert window.dialogs.titles() == ["Unsaved changes"]
    assert window.project.section("merge") == {"rank": 12}
    window.dialogs.answers["Unsaved changes"] = Button.Discard
    assert window.open_project(good)
    assert window.project.section("merge") == {"rank": 2}


def test_saving_over_the_file_being_opened_opens_what_was_saved(window, tmp_path):
    path = tmp_path / "same.difflora"
    Project("same", sections={"merge": {"rank": 1}}).save(path)
    assert window.open_project(path)
    window.project.update_section("merge", rank=9)
    window.dialogs.answers["Unsaved changes"] = Button.Save
    assert window.open_project(path)
    assert window.project.section("merge") == {"rank": 9}
    assert Project.load(path).section("merge") == {"rank": 9}
