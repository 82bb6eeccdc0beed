"""The main window: sections, Jobs and Log docks, menus, project file, drag and drop, window state."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from difflora_gui import APP_NAME, __version__
from difflora_gui.errors import UserError
from difflora_gui.plugin_host import PluginHost, get_plugin_host
from difflora_gui.project import PROJECT_SUFFIX, Project, with_suffix
from difflora_gui.qt import autosave, gui_hookspecs
from difflora_gui.qt.devices import DeviceRegistry
from difflora_gui.qt.jobs import CANCELLED, DONE, RUNNING, JobController, JobHandle
from difflora_gui.qt.jobs_dock import JobsDock
from difflora_gui.qt.log_dock import LogDock
from difflora_gui.qt.sections import SECTION_INFO, PanelEntry, SectionPage, build_panel
from difflora_gui.qt.services import AppServices
from difflora_gui.qt.theme import icon
from difflora_gui.settings import AppSettings
from difflora_gui.specs import SECTIONS, PanelSpec

ORGANIZATION = APP_NAME
PANELS_HOOK = "difflora_gui_register_panels"
#: bump when docks are added/renamed so an old saved layout is not applied to a new window
WINDOW_STATE_VERSION = 1
PROJECT_FILTER = f"{APP_NAME} projects (*{PROJECT_SUFFIX});;All files (*)"


def window_settings() -> QSettings:
    """Where window geometry and dock layout live.

    Normally the platform's store for organisation "DiffLoRA Studio" (the registry on Windows);
    when ``DIFFLORA_CONFIG_DIR`` is set (tests, portable use) an ini file in that folder, so the
    user's real layout is never touched.
    """
    override = os.environ.get("DIFFLORA_CONFIG_DIR")
    if override:
        return QSettings(str(Path(override) / "window.ini"), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APP_NAME)


def install_gui_hookspecs(host: PluginHost) -> None:
    """Add the GUI-only hookspecs to the host once (the CLI never does)."""
    caller = getattr(host.pm.hook, PANELS_HOOK, None)
    if caller is None or caller.spec is None:
        host.add_gui_hookspecs(gui_hookspecs)


class MainWindow(QMainWindow):
    """Build it, ``show()`` it, then call :meth:`start_session` (autosave, recovery, devices)."""

    #: emitted once, from the event loop, right after the window is first shown
    first_shown = Signal()

    def __init__(
        self,
        *,
        host: PluginHost | None = None,
        settings: AppSettings | None = None,
        devices: DeviceRegistry | None = None,
        jobs: JobController | None = None,
    ):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.host = host if host is not None else get_plugin_host()
        self.host.load()
        install_gui_hookspecs(self.host)
        self.devices = devices if devices is not None else DeviceRegistry(self)
        self.jobs = jobs if jobs is not None else JobController(self, resolve_device=self.devices.resolve)
        self.log_dock = LogDock(self)
        self.jobs_dock = JobsDock(self.jobs, self)
        self.services = AppServices(
            host=self.host,
            jobs=self.jobs,
            devices=self.devices,
            settings=settings if settings is not None else AppSettings.load(),
            window=self,
            log=self.log,
            parent=self,
        )
        self.panels: dict[str, PanelEntry] = {}
        self.pages: dict[str, SectionPage] = {}
        self.autosave_session: autosave.AutosaveSession | None = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._logged_states: dict[int, str] = {}
        self._shown_once = False
        self._closed = False

        self._build_central()
        self._build_docks()
        self._build_actions_and_menus()
        self._build_status_bar()
        self._connect_signals()
        self.log_dock.attach_logging("difflora_gui", "difflora_builtin_plugins", "difflora_user_plugins")
        self.build_panels()
        self._report_plugin_problems()
        if self.services.settings.load_warning:
            self.log(self.services.settings.load_warning, "warning")
        if not self.restore_window_state():
            self._default_geometry()
        self._update_title()

    def _default_geometry(self) -> None:
        """First start: most of the screen (the Merge workbench wants room), at least 1280×820."""
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1280, 820)
            return
        area = screen.availableGeometry()
        self.resize(
            max(min(1280, area.width()), int(area.width() * 0.9)),
            max(min(820, area.height()), int(area.height() * 0.9)),
        )

    # --- building ----------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.nav = QListWidget()
        self.nav.setObjectName("sectionNav")
        self.nav.setIconSize(QSize(22, 22))
        self.nav.setFixedWidth(176)
        self.nav.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stack = QStackedWidget()
        self.stack.setObjectName("sectionStack")
        for index, key in enumerate(SECTIONS):
            info = SECTION_INFO[key]
            item = QListWidgetItem(icon(key), f"  {info.title}")
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(f"{info.subtitle}  (Ctrl+{index + 1})")
            item.setSizeHint(QSize(160, 42))
            self.nav.addItem(item)
            page = SectionPage(info)
            self.pages[key] = page
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.nav.setCurrentRow(0)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.jobs_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.resizeDocks([self.jobs_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [190], Qt.Orientation.Vertical)

    def _action(self, text: str, slot, shortcut=None, tip: str = "", name: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        if name:
            action.setObjectName(name)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        return action

    def _build_actions_and_menus(self) -> None:
        std = QKeySequence.StandardKey
        self.action_new = self._action(
            "&New project", self.new_project, std.New, "Start an empty project", "actionNew"
        )
        self.action_open = self._action(
            "&Open project…", self.open_project_dialog, std.Open, "Open a .difflora file", "actionOpen"
        )
        self.action_save = self._action(
            "&Save", self.save_project, std.Save, "Save the project", "actionSave"
        )
        self.action_save_as = self._action(
            "Save &as…",
            self.save_project_as_dialog,
            std.SaveAs,
            "Save the project to a new file",
            "actionSaveAs",
        )
        if self.action_save_as.shortcut().isEmpty():
            self.action_save_as.setShortcut(QKeySequence("Ctrl+Shift+S"))
        self.action_project_settings = self._action(
            "&Project settings…",
            self.edit_project_settings,
            None,
            "Project name and output folder",
            "actionProject",
        )
        self.action_settings = self._action(
            "Se&ttings…",
            self.edit_settings,
            "Ctrl+,",
            "Model folders, Musubi Tuner, ComfyUI, device, output",
            "actionSettings",
        )
        self.action_quit = self._action("&Quit", self.close, std.Quit, "Close the window", "actionQuit")
        if self.action_quit.shortcut().isEmpty():
            self.action_quit.setShortcut(QKeySequence("Ctrl+Q"))
        self.action_plugins = self._action(
            "&Plugins…",
            self.show_plugins,
            "Ctrl+Shift+P",
            "Loaded plugins, their errors; enable or disable",
            "actionPlugins",
        )
        self.section_actions: dict[str, QAction] = {}
        for index, key in enumerate(SECTIONS):
            action = self._action(
                SECTION_INFO[key].title,
                lambda _checked=False, key=key: self.show_section(key),
                f"Ctrl+{index + 1}",
                f"Go to {SECTION_INFO[key].title}",
                f"actionSection_{key}",
            )
            action.setIcon(icon(key))
            self.section_actions[key] = action
        self.action_toggle_jobs = self.jobs_dock.toggleViewAction()
        self.action_toggle_jobs.setShortcut(QKeySequence("Ctrl+J"))
        self.action_toggle_log = self.log_dock.toggleViewAction()
        self.action_toggle_log.setShortcut(QKeySequence("Ctrl+L"))
        self.addAction(self.action_toggle_jobs)
        self.addAction(self.action_toggle_log)
        self.action_reset_layout = self._action(
            "Reset &layout", self.reset_layout, None, "Put the docks back", "actionResetLayout"
        )
        self.action_shortcuts = self._action(
            "&Keyboard shortcuts", self.show_shortcuts, None, "", "actionShortcuts"
        )
        self.action_about = self._action(f"&About {APP_NAME}", self.show_about, None, "", "actionAbout")

        menu_bar = self.menuBar()
        file_menu = menu_bar.addMenu("&File")
        file_menu.addActions([self.action_new, self.action_open])
        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.action_save, self.action_save_as, self.action_project_settings])
        file_menu.addSeparator()
        file_menu.addAction(self.action_settings)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        view_menu = menu_bar.addMenu("&View")
        view_menu.addActions(list(self.section_actions.values()))
        view_menu.addSeparator()
        view_menu.addActions([self.action_toggle_jobs, self.action_toggle_log, self.action_reset_layout])
        tools_menu = menu_bar.addMenu("&Tools")
        tools_menu.addAction(self.action_plugins)
        help_menu = menu_bar.addMenu("&Help")
        help_menu.addActions([self.action_shortcuts, self.action_about])
        self._fill_recent_menu()

    def _build_status_bar(self) -> None:
        self.jobs_status = QLabel()
        self.jobs_status.setObjectName("jobsStatus")
        self.device_status = QLabel("device: cpu")
        self.device_status.setObjectName("deviceStatus")
        self.statusBar().addPermanentWidget(self.jobs_status)
        self.statusBar().addPermanentWidget(self.device_status)
        self._update_jobs_status()

    def _connect_signals(self) -> None:
        self.services.dirty_changed.connect(self._update_title)
        self.services.project_info_changed.connect(self._update_title)
        self.services.project_replaced.connect(self._update_title)
        self.jobs.job_state_changed.connect(self._on_job_state_changed)
        self.jobs.job_failed.connect(self._on_job_failed)
        self.jobs.job_logged.connect(self._on_job_logged)
        self.devices.detected.connect(self._on_devices_detected)

    # --- panels ------------------------------------------------------------------------------

    def build_panels(self) -> None:
        """(Re)create every plugin panel, section by section, in ``PanelSpec.order``."""
        contributed = self.host.call_register(PANELS_HOOK, PanelSpec)
        by_section: dict[str, list[tuple[str, PanelSpec]]] = {key: [] for key in SECTIONS}
        for plugin, spec in contributed:
            by_section[spec.section].append((plugin, spec))
        self.panels = {}
        for key, items in by_section.items():
            items.sort(key=lambda pair: (pair[1].order, pair[1].title.lower()))
            entries = []
            for plugin, spec in items:
                entry = build_panel(spec, plugin, self.services)
                if not entry.ok:
                    self.log(f"Panel '{spec.title}' from plugin '{plugin}' failed: {entry.error}", "error")
                    self.log_dock.append_detail(entry.traceback)
                entries.append(entry)
                self.panels[spec.name] = entry
            self.pages[key].set_panels(entries)

    def _report_plugin_problems(self) -> None:
        failed = [info for info in self.host.infos() if info.status == "failed"]
        for info in failed:
            self.log(f"Plugin '{info.name}' ({info.source}) is switched off: {info.error}", "error")
        if failed:
            names = ", ".join(info.name for info in failed)
            self.statusBar().showMessage(
                f"{len(failed)} plugin(s) failed ({names}); see Tools ▸ Plugins", 15000
            )

    def show_section(self, key: str) -> None:
        self.nav.setCurrentRow(SECTIONS.index(key))

    def current_section(self) -> str:
        return SECTIONS[max(self.nav.currentRow(), 0)]

    # --- logging -----------------------------------------------------------------------------

    def log(self, text: str, level: str = "info") -> None:
        self.log_dock.append(text, level)

    @Slot(object)
    def _on_job_state_changed(self, handle: JobHandle) -> None:
        self._update_jobs_status()
        if self._logged_states.get(handle.id) == handle.state:
            return
        self._logged_states[handle.id] = handle.state
        if handle.state == RUNNING:
            self.log(f"Started: {handle.title} (lane {handle.lane_key})")
        elif handle.state == DONE:
            elapsed = handle.elapsed_s or 0.0
            self.log(f"Done: {handle.title} in {elapsed:.1f} s")
        elif handle.state == CANCELLED:
            self.log(f"Cancelled: {handle.title}", "warning")

    @Slot(object)
    def _on_job_failed(self, handle: JobHandle) -> None:
        self.log(f"Failed: {handle.title}: {handle.error_text}", "error")
        self.log_dock.append_detail(handle.traceback)
        self.statusBar().showMessage(f"Job failed: {handle.title} (see the Log)", 10000)

    @Slot(object, str)
    def _on_job_logged(self, handle: JobHandle, text: str) -> None:
        self.log(f"{handle.title}: {text}")

    def _update_jobs_status(self, *_args) -> None:
        # a job that just finished is still in its lane while its last state change is announced
        running = sum(1 for handle in self.jobs.running_jobs() if not handle.is_finished)
        queued = len(self.jobs.active_jobs()) - running
        self.jobs_status.setText(
            f"jobs: {running} running, {queued} queued" if running or queued else "jobs: idle"
        )

    @Slot(list)
    def _on_devices_detected(self, devices: list) -> None:
        labels = [d.label for d in devices]
        self.device_status.setText("devices: " + ", ".join(labels))
        if self.devices.error:
            self.log(self.devices.error, "warning")
        else:
            self.log("Devices: " + ", ".join(labels))
        self.jobs.devices_known()

    # --- session: autosave, recovery, devices ------------------------------------------------

    def start_session(
        self,
        *,
        detect_devices: bool = True,
        offer_recovery: bool = True,
        autosave_interval_s: float | None = None,
    ) -> None:
        """What happens after the window is shown (nothing here delays the first paint)."""
        if self.autosave_session is None:
            self.autosave_session = autosave.AutosaveSession()
            interval = autosave_interval_s
            if interval is None:
                interval = self.services.settings.autosave_interval_s
            self._autosave_timer.start(int(interval * 1000))
        if offer_recovery:
            self.offer_recovery()
        if detect_devices:
            self.devices.detect()

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
            self,
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
        if not self._replace_project(lambda: autosave.restore(newest), "Cannot restore"):
            return False
        if self.autosave_now():  # safe in this session's slot before the old one is removed
            autosave.discard(newest)
        self.log(f"Restored unsaved work: {newest.describe()}")
        self.statusBar().showMessage("Restored unsaved work; save it to keep it", 10000)
        return True

    # --- project -----------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self.services.project

    def _set_project(self, project: Project) -> None:
        self.services.set_project(project)
        self.autosave_now()

    def maybe_save(self) -> bool:
        """If there are unsaved changes ask Save / Discard / Cancel; False means stop."""
        project = self.project
        if not project.dirty:
            return True
        answer = QMessageBox.question(
            self,
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

    @Slot()
    def new_project(self) -> bool:
        if not self.maybe_save():
            return False
        self._set_project(Project())
        self.log("New project")
        return True

    @Slot()
    def open_project_dialog(self) -> bool:
        start = str(self.project.path.parent) if self.project.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open project", start, PROJECT_FILTER)
        return self.open_project(path) if path else False

    def _replace_project(self, load, error_title: str) -> bool:
        """Offer to save the open project, then put ``load()`` in its place; a bad file is a message."""
        if not self.maybe_save():
            return False
        try:
            project = load()
        except UserError as exc:
            self._show_error(error_title, str(exc))
            return False
        self._set_project(project)
        return True

    def open_project(self, path: str | Path) -> bool:
        """Open a project file; a bad file gives a one-line message, never a crash."""
        path = Path(path)
        if not self._replace_project(lambda: Project.load(path), "Cannot open project"):
            return False
        self._remember_recent(path)
        self.log(f"Opened {path}")
        self.statusBar().showMessage(f"Opened {path.name}", 5000)
        return True

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
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", str(current), PROJECT_FILTER)
        return self.save_project_as(path) if path else False

    def save_project_as(self, path: str | Path) -> bool:
        path = with_suffix(path)
        project = self.project
        if project.name == "Untitled":
            project.name = path.stem
        try:
            project.save(path)
        except UserError as exc:
            self._show_error("Cannot save project", str(exc))
            return False
        self._remember_recent(path)
        if self.autosave_session is not None:
            self.autosave_session.clear()
        self.log(f"Saved {path}")
        self.statusBar().showMessage(f"Saved {path.name}", 5000)
        return True

    def _remember_recent(self, path: Path) -> None:
        fresh = AppSettings.load()
        fresh.add_recent(path)
        self.services.update_settings(recent_projects=fresh.recent_projects)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.services.settings.recent_projects
        for index, text in enumerate(recent, start=1):
            path = Path(text)
            label = f"&{index} {path.name}" if index < 10 else path.name
            action = self.recent_menu.addAction(label)
            action.setToolTip(text)
            action.setStatusTip(text)
            action.triggered.connect(lambda _checked=False, path=path: self._open_recent(path))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        else:
            empty = self.recent_menu.addAction("No recent projects")
            empty.setEnabled(False)

    def _open_recent(self, path: Path) -> bool:
        if not path.is_file():
            self._show_error("Cannot open project", f"{path}: file not found; removed from the recent list")
            remaining = [p for p in AppSettings.load().recent_projects if Path(p) != path]
            self.services.update_settings(recent_projects=remaining)
            return False
        return self.open_project(path)

    def _clear_recent(self) -> None:
        self.services.update_settings(recent_projects=[])

    @Slot()
    def edit_project_settings(self) -> bool:
        from difflora_gui.qt.project_dialog import ProjectDialog

        dialog = ProjectDialog(self.project, str(self.services.settings.resolved_output_dir()), self)
        if dialog.exec() != ProjectDialog.DialogCode.Accepted:
            return False
        dialog.apply_to(self.project)
        return True

    # --- dialogs -----------------------------------------------------------------------------

    @Slot()
    def edit_settings(self) -> bool:
        from difflora_gui.qt.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.services.settings, self.devices.ids(), self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return False
        self.services.update_settings(**dialog.changes())
        if self._autosave_timer.isActive():  # a new interval applies now, not at the next start
            self._autosave_timer.setInterval(self.services.settings.autosave_interval_s * 1000)
        self.log("Settings saved")
        return True

    @Slot()
    def show_plugins(self) -> None:
        from difflora_gui.qt.plugins_dialog import PluginsDialog

        dialog = PluginsDialog(self.host, self)
        dialog.plugin_toggled.connect(self._on_plugin_toggled)
        dialog.exec()

    @Slot(str, bool)
    def _on_plugin_toggled(self, name: str, enabled: bool) -> None:
        info = self.host.info(name)
        state = info.status if info is not None else ("enabled" if enabled else "disabled")
        self.log(f"Plugin '{name}' {state}" + (f": {info.error}" if info is not None and info.error else ""))
        self.build_panels()

    def _show_error(self, title: str, message: str) -> None:
        self.log(message, "error")
        QMessageBox.warning(self, title, message)

    @Slot()
    def show_shortcuts(self) -> None:
        lines = [
            ("Ctrl+N / Ctrl+O", "new / open project"),
            ("Ctrl+S / Ctrl+Shift+S", "save / save as"),
            ("Ctrl+1 … Ctrl+5", "Dataset, Train, Merge, Preview, Compare"),
            ("Ctrl+J / Ctrl+L", "show or hide the Jobs / Log dock"),
            ("Ctrl+,", "Settings"),
            ("Ctrl+Shift+P", "Plugins"),
            ("Ctrl+Q", "quit"),
        ]
        rows = "".join(f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for keys, what in lines)
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table>")

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<b>{APP_NAME}</b> {__version__}<br>Differential (slider) LoRAs for Wan video models: "
            "train LoRA A and LoRA B on paired data, subtract B from A, re-factor the difference to a "
            "low rank restricted to chosen blocks, and preview the slider.",
        )

    # --- drag and drop -----------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.route_files(paths)

    def panel_for_suffix(self, suffix: str) -> PanelEntry | None:
        """The panel that takes files with this suffix: one in the current section first."""
        suffix = suffix.lower()
        candidates = [e for e in self.panels.values() if e.ok and suffix in e.accepts]
        if not candidates:
            return None
        current = self.current_section()
        candidates.sort(
            key=lambda e: (
                e.spec.section != current,
                SECTIONS.index(e.spec.section),
                e.spec.order,
                e.spec.title,
            )
        )
        return candidates[0]

    def route_files(self, paths: list[str | Path]) -> dict[str, list[Path]]:
        """Send dropped files where they belong; returns ``{panel name | "project" | "unhandled": paths}``.

        ``.difflora`` opens the project; other files go, grouped, to the panel whose
        ``PanelSpec.accepts`` lists their suffix (its widget's ``accept_files(paths)``). Files no
        panel takes are named in the status bar and the log.
        """
        routed: dict[str, list[Path]] = {}
        paths = [Path(p) for p in paths]
        projects = [p for p in paths if p.suffix.lower() == PROJECT_SUFFIX]
        if projects:
            if len(projects) > 1:
                self.log(f"Dropped {len(projects)} projects; opening only {projects[0].name}", "warning")
            if self.open_project(projects[0]):
                routed["project"] = [projects[0]]
        by_panel: dict[str, list[Path]] = {}
        unhandled: list[Path] = []
        for path in paths:
            if path.suffix.lower() == PROJECT_SUFFIX:
                continue
            entry = self.panel_for_suffix(path.suffix) if path.suffix else None
            if entry is None:
                unhandled.append(path)
            else:
                by_panel.setdefault(entry.spec.name, []).append(path)
        for name, files in by_panel.items():
            entry = self.panels[name]
            accept = getattr(entry.widget, "accept_files", None)
            if accept is None:
                self.log(
                    f"Panel '{entry.spec.title}' lists {entry.accepts} but has no accept_files()", "error"
                )
                unhandled.extend(files)
                continue
            self.show_section(entry.spec.section)
            self.pages[entry.spec.section].show_panel(entry)
            try:
                accept(list(files))
            except Exception as exc:  # a plugin's bug must not take the window down
                self.log(f"Panel '{entry.spec.title}' failed to take {len(files)} file(s): {exc}", "error")
                import traceback

                self.log_dock.append_detail(traceback.format_exc())
                continue
            routed[name] = files
            self.log(f"{len(files)} file(s) → {SECTION_INFO[entry.spec.section].title} ▸ {entry.spec.title}")
        if unhandled:
            routed["unhandled"] = unhandled
            suffixes = sorted({p.suffix.lower() or p.name for p in unhandled})
            message = f"No panel takes {', '.join(suffixes)} files yet ({len(unhandled)} file(s) not opened)"
            self.statusBar().showMessage(message, 10000)
            self.log(message + ": " + ", ".join(p.name for p in unhandled), "warning")
        return routed

    # --- window state ------------------------------------------------------------------------

    def save_window_state(self) -> None:
        settings = window_settings()
        settings.setValue("mainWindow/geometry", self.saveGeometry())
        settings.setValue("mainWindow/state", self.saveState(WINDOW_STATE_VERSION))
        settings.setValue("mainWindow/section", self.current_section())
        settings.sync()

    def restore_window_state(self) -> bool:
        settings = window_settings()
        geometry = settings.value("mainWindow/geometry")
        state = settings.value("mainWindow/state")
        section = settings.value("mainWindow/section")
        if isinstance(section, str) and section in SECTIONS:
            self.show_section(section)
        restored = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            restored = self.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state, WINDOW_STATE_VERSION)
        return restored

    @Slot()
    def reset_layout(self) -> None:
        for dock in (self.jobs_dock, self.log_dock):
            dock.setFloating(False)
            dock.show()
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.jobs_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.resizeDocks([self.jobs_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [190], Qt.Orientation.Vertical)

    # --- title, show, close ------------------------------------------------------------------

    def _update_title(self, *_args) -> None:
        project = self.project
        self.setWindowTitle(f"{project.display_name}[*] — {APP_NAME}")
        self.setWindowModified(project.dirty)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.first_shown.emit)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._closed:
            event.accept()
            return
        if not self.confirm_close():
            event.ignore()
            return
        self._end_session()
        event.accept()

    def confirm_close(self) -> bool:
        """Ask about running jobs and unsaved changes; cancel the jobs and wait for their threads."""
        active = self.jobs.active_jobs()
        if active:
            answer = QMessageBox.question(
                self,
                "Jobs are running",
                f"{len(active)} job(s) are running or queued. Cancel them and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        if not self.maybe_save():
            return False
        if active or self.jobs.has_live_threads():
            self.statusBar().showMessage("Cancelling jobs and waiting for them to stop…")
            self.log("Cancelling jobs before quitting")
            wait_s = self.services.settings.shutdown_timeout_s
            if not self.jobs.shutdown(wait_s):
                stuck = ", ".join(h.title for h in self.jobs.running_jobs())
                self.jobs.reopen()
                self._show_error(
                    "Jobs still running",
                    f"These jobs did not stop within {wait_s:.0f} s: {stuck}. "
                    "The window stays open; try again when they have stopped.",
                )
                return False
        return True

    def _end_session(self) -> None:
        self._closed = True
        self.jobs.shutdown(self.services.settings.shutdown_timeout_s)
        self.save_window_state()
        self._autosave_timer.stop()
        self.devices.stop()
        if self.autosave_session is not None:
            self.autosave_session.close()
        self.log_dock.detach_logging()
