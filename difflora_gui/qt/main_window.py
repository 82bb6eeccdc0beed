"""The main window: the shell that composes sections, the Jobs and Log docks, and the window's parts.

Its parts live beside it: :mod:`~difflora_gui.qt.actions` (the action table: menus, shortcuts),
:mod:`~difflora_gui.qt.project_controller` (new/open/save/restore, autosave, dirty title, recent
files) and :mod:`~difflora_gui.qt.drop_router` (which panel takes which dropped file). The window
keeps the layout, the panels, the job and device messages, the dialogs and its saved state.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from difflora_gui import APP_NAME, __version__
from difflora_gui.plugin_host import PluginHost, get_plugin_host
from difflora_gui.project import Project
from difflora_gui.qt import autosave, gui_hookspecs, window_layout
from difflora_gui.qt.actions import install_actions, shortcut_rows
from difflora_gui.qt.comfy_health import ComfyStatusLabel
from difflora_gui.qt.demo_offer import DemoLauncher, install_demo_action
from difflora_gui.qt.devices import DeviceRegistry
from difflora_gui.qt.drop_router import DropRouter
from difflora_gui.qt.jobs import CANCELLED, DONE, RUNNING, JobController, JobHandle
from difflora_gui.qt.jobs_dock import JobsDock
from difflora_gui.qt.log_dock import LogDock
from difflora_gui.qt.project_controller import PROJECT_FILTER, ProjectController
from difflora_gui.qt.sections import SECTION_INFO, PanelEntry, SectionPage, build_panel
from difflora_gui.qt.services import AppServices
from difflora_gui.qt.theme import icon
from difflora_gui.qt.undo_actions import EditActions
from difflora_gui.qt.wheel_guard import install_wheel_guard
from difflora_gui.qt.window_layout import arrange_docks, compact_screen, current_panel, focus_panel
from difflora_gui.settings import AppSettings
from difflora_gui.specs import SECTIONS, PanelSpec

ORGANIZATION = APP_NAME
PANELS_HOOK = "difflora_gui_register_panels"
#: bump when docks are added/renamed so an old saved layout is not applied to a new window
WINDOW_STATE_VERSION = 1
#: the section a first start opens when the project is empty: what most people come for
FIRST_SECTION = "merge"
__all__ = ["PROJECT_FILTER", "MainWindow", "install_gui_hookspecs", "window_settings"]


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


def project_is_empty(project: Project) -> bool:
    """No records and nothing in any section: a new project nobody has worked on yet."""
    return not project.records() and not any(project.section(key) for key in project.section_keys())


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
        install_wheel_guard()  # one app-wide filter, also when a test made the application
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
        self.project_files = ProjectController(self, self.services, self.log)
        self.recent_menu = self.project_files.recent_menu
        self.drops = DropRouter(self)
        self.demo = DemoLauncher(self)
        self._logged_states: dict[int, str] = {}
        self._shown_once = False
        self._closed = False

        self._build_central()
        self._build_docks()
        install_actions(self, self.recent_menu)
        install_demo_action(self)  # Help ▸ Open demo project
        self.edit_actions = EditActions(self)
        self.nav.currentRowChanged.connect(lambda _row: self.bind_undo_actions())
        self.project_files.fill_recent_menu()
        self._build_status_bar()
        self._connect_signals()
        self.log_dock.attach_logging("difflora_gui", "difflora_builtin_plugins", "difflora_user_plugins")
        self.build_panels()
        self._report_plugin_problems()
        if self.services.settings.load_warning:
            self.log(self.services.settings.load_warning, "warning")
        if not self.restore_window_state():
            self._default_geometry()
            self.arrange_docks(compact=compact_screen())
        self.project_files.update_title()

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

    def arrange_docks(self, *, compact: bool) -> None:
        """Docks for the screen (see :func:`~difflora_gui.qt.window_layout.arrange_docks`)."""
        arrange_docks(self, compact=compact)

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
        # the sections' column: a banner (the first-start demo offer) may sit above the stack
        column = QWidget()
        self.section_column = QVBoxLayout(column)
        self.section_column.setContentsMargins(0, 0, 0, 0)
        self.section_column.setSpacing(0)
        self.section_column.addWidget(self.stack, 1)
        layout.addWidget(column, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.jobs_dock)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.resizeDocks([self.jobs_dock], [window_layout.jobs_dock_width(self.width())], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [190], Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        self.jobs_status = QPushButton()
        self.jobs_status.setObjectName("jobsStatus")
        self.jobs_status.setFlat(True)
        self.jobs_status.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.jobs_status.setToolTip("Show the Jobs dock (Ctrl+J)")
        self.jobs_status.clicked.connect(self.show_jobs_dock)
        self.device_status = QLabel("device: cpu")
        self.device_status.setObjectName("deviceStatus")
        self.comfy_status = ComfyStatusLabel(self.services, self)  # hidden while no server is enabled
        self.statusBar().addPermanentWidget(self.jobs_status)
        self.statusBar().addPermanentWidget(self.comfy_status)
        self.statusBar().addPermanentWidget(self.device_status)
        self._update_jobs_status()

    def _connect_signals(self) -> None:
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
        if hasattr(self, "action_undo"):
            self.bind_undo_actions()

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

    def current_panel(self) -> QWidget | None:
        """The panel on show in the current section (None on an intro page)."""
        return current_panel(self)

    def focus_current_panel(self) -> None:
        """The keyboard focus starts in the section's panel (its first input), not in a dock."""
        focus_panel(current_panel(self))

    # --- undo (each panel may keep an ``undo_stack``; see :mod:`~difflora_gui.qt.undo_actions`) -----

    def current_undo_stack(self):
        return self.edit_actions.current_stack()

    def bind_undo_actions(self) -> None:
        self.edit_actions.bind()

    @Slot()
    def undo(self) -> None:
        self.edit_actions.undo()

    @Slot()
    def redo(self) -> None:
        self.edit_actions.redo()

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

    def show_jobs_dock(self) -> None:
        self.jobs_dock.show()
        self.jobs_dock.raise_()

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
        self.jobs.devices_known(self.devices.ids())

    # --- session and project (the project controller does the work) ----------------------------

    def start_session(
        self,
        *,
        detect_devices: bool = True,
        offer_recovery: bool = True,
        autosave_interval_s: float | None = None,
        offer_demo: bool = True,
    ) -> None:
        """What happens after the window is shown (nothing here delays the first paint).

        ``offer_demo``: on a first start (the offer never answered, no demo built) a non-modal
        banner offers to build the demo project.
        """
        self.project_files.start_autosave(autosave_interval_s)
        recovered = self.offer_recovery() if offer_recovery else False
        if offer_demo and not recovered:
            self.demo.offer(self.section_column)
        if detect_devices:
            self.devices.detect()

    def open_demo_project(self):
        """Help ▸ Open demo project: open it, building it first (a job in the Jobs dock) if needed."""
        return self.demo.open_demo()

    @property
    def project(self) -> Project:
        return self.services.project

    @property
    def autosave_session(self) -> autosave.AutosaveSession | None:
        return self.project_files.autosave_session

    @property
    def _autosave_timer(self) -> QTimer:
        return self.project_files.autosave_timer

    def autosave_now(self) -> bool:
        return self.project_files.autosave_now()

    def offer_recovery(self) -> bool:
        return self.project_files.offer_recovery()

    def maybe_save(self) -> bool:
        return self.project_files.maybe_save()

    def new_project(self) -> bool:
        return self.project_files.new_project()

    def open_project_dialog(self) -> bool:
        return self.project_files.open_project_dialog()

    def open_project(self, path: str | Path) -> bool:
        return self.project_files.open_project(path)

    def save_project(self) -> bool:
        return self.project_files.save_project()

    def save_project_as_dialog(self) -> bool:
        return self.project_files.save_project_as_dialog()

    def save_project_as(self, path: str | Path) -> bool:
        return self.project_files.save_project_as(path)

    def edit_project_settings(self) -> bool:
        return self.project_files.edit_project_settings()

    def _fill_recent_menu(self) -> None:
        self.project_files.fill_recent_menu()

    def _open_recent(self, path: Path) -> bool:
        return self.project_files.open_recent(path)

    # --- dialogs -----------------------------------------------------------------------------

    @Slot()
    def edit_settings(self) -> bool:
        from difflora_gui.qt.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.services.settings, self.devices.ids(), self)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return False
        self.services.update_settings(**dialog.changes())
        self.project_files.apply_autosave_interval()
        self.log("Settings saved")
        return True

    @Slot()
    def show_plugins(self) -> None:
        from difflora_gui.qt.plugins_dialog import PluginsDialog

        dialog = PluginsDialog(self.host, self)
        dialog.plugin_toggled.connect(self._on_plugin_toggled)
        dialog.exec()

    @Slot()
    def show_comfy_bindings(self) -> None:
        from difflora_gui.qt.comfy.binding_editor import BindingEditorDialog

        BindingEditorDialog(self).exec()

    @Slot(str, bool)
    def _on_plugin_toggled(self, name: str, enabled: bool) -> None:
        info = self.host.info(name)
        state = info.status if info is not None else ("enabled" if enabled else "disabled")
        self.log(f"Plugin '{name}' {state}" + (f": {info.error}" if info is not None and info.error else ""))
        self.build_panels()

    def _show_error(self, title: str, message: str) -> None:
        self.project_files.show_error(title, message)

    @Slot()
    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>"
            for keys, what in shortcut_rows(self)
        )
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
        return self.drops.panel_for_suffix(suffix)

    def route_files(self, paths: list[str | Path]) -> dict[str, list[Path]]:
        """Send dropped files where they belong (see :class:`~difflora_gui.qt.drop_router.DropRouter`)."""
        return self.drops.route(paths)

    # what the drop router calls back
    def show_panel(self, entry: PanelEntry) -> None:
        self.pages[entry.spec.section].show_panel(entry)

    def log_detail(self, text: str) -> None:
        self.log_dock.append_detail(text)

    def status(self, text: str, timeout_ms: int = 5000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

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
        elif project_is_empty(self.project):
            self.show_section(FIRST_SECTION)  # an empty Dataset page is no place to start
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
        self.resizeDocks([self.jobs_dock], [window_layout.jobs_dock_width(self.width())], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [190], Qt.Orientation.Vertical)

    # --- title, show, close ------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.focus_current_panel)
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
        self.project_files.close()
        self.devices.stop()
        self.log_dock.detach_logging()
