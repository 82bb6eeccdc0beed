"""The window's project file: new/open/save/restore, autosave and recovery, dirty title, recent files.

The project itself lives in :class:`~difflora_gui.qt.services.AppServices` (panels read and write
their sections there); this controller decides when it is replaced, asks before unsaved changes
are lost, writes the file, keeps the autosave copy and the recent-projects menu up to date, and
shows the project name and its unsaved-changes mark in the window title.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from difflora_gui import APP_NAME
from difflora_gui.errors import UserError
from difflora_gui.fileio import same_file
from difflora_gui.project import PROJECT_SUFFIX, Project, with_suffix
from difflora_gui.qt import autosave
from difflora_gui.qt.services import AppServices
from difflora_gui.settings import AppSettings

PROJECT_FILTER = f"{APP_NAME} projects (*{PROJECT_SUFFIX});;All files (*)"


class ProjectController(QObject):
    """Owns the project's life cycle for ``window`` (the dialogs' parent and its status bar)."""

    def __init__(self, window: QMainWindow, services: AppServices, log: Callable[..., None]):
        super().__init__(window)
        self.window = window
        self.services = services
        self.log = log
        self.autosave_session: autosave.AutosaveSession | None = None
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.recent_menu = QMenu("Open &recent", window)
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        services.dirty_changed.connect(self.update_title)
        services.project_info_changed.connect(self.update_title)
        services.project_replaced.connect(self.update_title)

    @property
    def project(self) -> Project:
        return self.services.project

    def _status(self, text: str, timeout_ms: int = 5000) -> None:
        self.window.statusBar().showMessage(text, timeout_ms)

    def show_error(self, title: str, message: str) -> None:
        self.log(message, "error")
        QMessageBox.warning(self.window, title, message)

    def update_title(self, *_args) -> None:
        project = self.project
        self.window.setWindowTitle(f"{project.display_name}[*] — {APP_NAME}")
        self.window.setWindowModified(project.dirty)

    # --- replacing the project -----------------------------------------------------------------

    def set_project(self, project: Project) -> None:
        self.services.set_project(project)
        self.autosave_now()

    def maybe_save(self) -> bool:
        """If there are unsaved changes ask Save / Discard / Cancel; False means stop."""
        project = self.project
        if not project.dirty:
            return True
        answer = QMessageBox.question(
            self.window,
            "Unsaved changes",
            f"Save the changes to '{project.display_name}'?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return answer == QMessageBox.StandardButton.Discard

    def replace_project(self, load: Callable[[], Project], error_title: str) -> bool:
        """Put ``load()`` in the open project's place, offering to save it first.

        The new file is read *before* the unsaved-changes question: a bad file gives one message and
        nothing else happens (no question, no save, the open project stays). If the user saves the
        open project over the very file being opened, that file is read again, so what opens is
        what was just saved.
        """
        try:
            project = load()
        except UserError as exc:
            self.show_error(error_title, str(exc))
            return False
        if not self.maybe_save():
            return False
        if (
            project.path is not None
            and self.project.path is not None
            and same_file(project.path, self.project.path)
        ):
            try:
                project = load()
            except UserError as exc:
                self.show_error(error_title, str(exc))
                return False
        self.set_project(project)
        return True

    @Slot()
    def new_project(self) -> bool:
        if not self.maybe_save():
            return False
        self.set_project(Project())
        self.log("New project")
        return True

    @Slot()
    def open_project_dialog(self) -> bool:
        start = str(self.project.path.parent) if self.project.path else ""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", start, PROJECT_FILTER)
        return self.open_project(path) if path else False

    def open_project(self, path: str | Path) -> bool:
        """Open a project file; a bad file gives a one-line message, never a crash."""
        path = Path(path)
        if not self.replace_project(lambda: Project.load(path), "Cannot open project"):
            return False
        self.remember_recent(path)
        self.log(f"Opened {path}")
        missing = self.project.missing_files()
        for item in missing:
            self.log(f"Missing: {item.describe()}", "warning")
        if missing:
            self._status(f"Opened {path.name}; {len(missing)} file(s) it uses are missing (see the Log)")
        else:
            self._status(f"Opened {path.name}")
        return True

    # --- saving --------------------------------------------------------------------------------

    @Slot()
    def save_project(self) -> bool:
        if self.project.path is None:
            return self.save_project_as_dialog()
        return self.save_project_as(self.project.path)

    @Slot()
    def save_project_as_dialog(self) -> bool:
        current = (
            self.project.path
            or Path(self.services.output_dir()) / f"{self.project.display_name}{PROJECT_SUFFIX}"
        )
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project as", str(current), PROJECT_FILTER)
        return self.save_project_as(path) if path else False

    def save_project_as(self, path: str | Path) -> bool:
        path = with_suffix(path)
        project = self.project
        if project.name == "Untitled":
            project.name = path.stem
        try:
            project.save(path)
        except UserError as exc:
            self.show_error("Cannot save project", str(exc))
            return False
        self.remember_recent(path)
        if self.autosave_session is not None:
            self.autosave_session.clear()
        self.log(f"Saved {path}")
        self._status(f"Saved {path.name}")
        return True

    @Slot()
    def edit_project_settings(self) -> bool:
        from difflora_gui.qt.project_dialog import ProjectDialog

        dialog = ProjectDialog(self.project, str(self.services.settings.resolved_output_dir()), self.window)
        if dialog.exec() != ProjectDialog.DialogCode.Accepted:
            return False
        dialog.apply_to(self.project)
        return True

    # --- recent projects -----------------------------------------------------------------------

    def remember_recent(self, path: Path) -> None:
        # read the file again: another window may have added projects since this one started
        fresh = AppSettings.load()
        fresh.add_recent(path)
        self.services.update_settings(recent_projects=fresh.recent_projects)

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.services.settings.recent_projects
        for index, text in enumerate(recent, start=1):
            path = Path(text)
            label = f"&{index} {path.name}" if index < 10 else path.name
            action = self.recent_menu.addAction(label)
            action.setToolTip(text)
            action.setStatusTip(text)
            action.triggered.connect(lambda _checked=False, path=path: self.open_recent(path))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.clear_recent)
        else:
            empty = self.recent_menu.addAction("No recent projects")
            empty.setEnabled(False)

    def open_recent(self, path: Path) -> bool:
        if not path.is_file():
            self.show_error("Cannot open project", f"{path}: file not found; removed from the recent list")
            remaining = [p for p in AppSettings.load().recent_projects if Path(p) != path]
            self.services.update_settings(recent_projects=remaining)
            return False
        return self.open_project(path)

    def clear_recent(self) -> None:
        self.services.update_settings(recent_projects=[])

    # --- autosave and recovery -----------------------------------------------------------------

    def start_autosave(self, interval_s: float | None = None) -> None:
        """Open this session's autosave slot and start the timer (once)."""
        if self.autosave_session is not None:
            return
        self.autosave_session = autosave.AutosaveSession()
        interval = self.services.settings.autosave_interval_s if interval_s is None else interval_s
        self.autosave_timer.start(int(interval * 1000))

    def apply_autosave_interval(self) -> None:
        """A changed interval applies now, not at the next start."""
        if self.autosave_timer.isActive():
            self.autosave_timer.setInterval(self.services.settings.autosave_interval_s * 1000)

    @Slot()
    def autosave_now(self) -> bool:
        """Write the autosave copy if the project has unsaved changes."""
        if self.autosave_session is None:
            return False
        try:
            return self.autosave_session.save(self.services.project)
        except (UserError, OSError) as exc:
            self.log(f"Autosave failed: {exc}", "warning")
            return False

    def offer_recovery(self) -> bool:
        """Offer to restore unsaved work of a session that crashed; True if something was restored."""
        exclude = self.autosave_session.id if self.autosave_session is not None else None
        found = autosave.find_recoverable(exclude=exclude)
        if not found:
            return False
        newest = found[0]
        answer = QMessageBox.question(
            self.window,
            "Recover unsaved work",
            f"{APP_NAME} did not close cleanly last time. Unsaved changes were kept:\n\n"
            f"{newest.describe()}\n\nYes: restore them now.  Discard: delete them.  "
            "Ignore: keep them and ask again next time.",
            QMessageBox.StandardButton.Yes
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Ignore,
            QMessageBox.StandardButton.Yes,
        )
        if answer == QMessageBox.StandardButton.Discard:
            autosave.discard(newest)
            self.log(f"Discarded the autosave of {newest.describe()}")
            return False
        if answer != QMessageBox.StandardButton.Yes:
            return False
        if not self.replace_project(lambda: autosave.restore(newest), "Cannot restore"):
            return False
        if self.autosave_now():  # safe in this session's slot before the old one is removed
            autosave.discard(newest)
        self.log(f"Restored unsaved work: {newest.describe()}")
        self._status("Restored unsaved work; save it to keep it", 10000)
        return True

    def close(self) -> None:
        """The window is closing cleanly: stop the timer and remove this session's autosave copy."""
        self.autosave_timer.stop()
        if self.autosave_session is not None:
            self.autosave_session.close()
