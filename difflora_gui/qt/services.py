"""What a panel gets: :class:`AppServices`.

A panel's widget factory (``PanelSpec.widget``) is called as ``widget(services)``. Through it a
panel reaches the plugin host, the job controller, the open project (and hears when it changes
or is replaced), the app settings, the device list, the log and the main window.

Panels keep their state in the project under their own section key::

    data = services.project.section("merge")
    services.project.update_section("merge", recipe=recipe)
    services.section_changed.connect(self._on_section_changed)   # (key)
    services.project_replaced.connect(self._reload)              # (project) New/Open/Restore
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from difflora_gui.jobs.job import JobRequest
from difflora_gui.plugin_host import PluginHost
from difflora_gui.project import DIRTY_KEY, NAME_KEY, OUTPUT_DIR_KEY, Project
from difflora_gui.settings import AppSettings

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from difflora_gui.qt.devices import DeviceRegistry
    from difflora_gui.qt.jobs import JobController, JobHandle

LOG_LEVELS = ("info", "warning", "error")
_logger = logging.getLogger("difflora_gui")


class AppServices(QObject):
    """The running app, as seen by panels and dialogs. Use it from the GUI thread only."""

    #: a section of the current project changed: ``(key)``
    section_changed = Signal(str)
    #: the project's name or output folder changed
    project_info_changed = Signal()
    #: the project's unsaved-changes flag flipped: ``(dirty)``
    dirty_changed = Signal(bool)
    #: New, Open or Restore put another project in place: ``(project)``
    project_replaced = Signal(object)
    #: the settings were saved: ``(AppSettings)``
    settings_changed = Signal(object)

    def __init__(
        self,
        *,
        host: PluginHost,
        jobs: JobController,
        devices: DeviceRegistry,
        settings: AppSettings,
        project: Project | None = None,
        window: QMainWindow | None = None,
        log: Callable[[str, str], None] | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.host = host
        self.jobs = jobs
        self.devices = devices
        self.settings = settings
        self.window = window
        self._log = log
        self._project = project if project is not None else Project()
        self._unsubscribe = self._project.subscribe(self._on_project_change)
        self._apply_job_settings(settings)

    # --- project -----------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self._project

    def set_project(self, project: Project) -> None:
        """Replace the open project; panels hear ``project_replaced``."""
        self._unsubscribe()
        self._project = project
        self._unsubscribe = project.subscribe(self._on_project_change)
        self.project_replaced.emit(project)
        self.dirty_changed.emit(project.dirty)

    def _on_project_change(self, key: str) -> None:
        if key == DIRTY_KEY:
            self.dirty_changed.emit(self._project.dirty)
        elif key in (NAME_KEY, OUTPUT_DIR_KEY):
            self.project_info_changed.emit()
        else:
            self.section_changed.emit(key)

    # --- settings ----------------------------------------------------------------------------

    def update_settings(self, **changes: Any) -> AppSettings:
        """Change some settings and save them.

        The file is re-read first, so choices saved elsewhere meanwhile (the plugin host writes
        ``disabled_plugins``) are kept.
        """
        fresh = AppSettings.load()
        for key, value in changes.items():
            if not hasattr(fresh, key):
                raise AttributeError(f"AppSettings has no field {key!r}")
            setattr(fresh, key, value)
        fresh.save()
        self.settings = fresh
        self._apply_job_settings(fresh)
        self.settings_changed.emit(fresh)
        return fresh

    def _apply_job_settings(self, settings: AppSettings) -> None:
        """One job lane per enabled ComfyUI server (``comfy:<name>``), placed while the server is
        healthy, and the light lane's width. The process-wide pool is the one the comfy jobs use, so
        a server a job found dead is skipped by the scheduler too; its health answers are cached and
        renewed on background threads, so placing a job never waits on the network."""
        from difflora_gui.comfy.pool import shared_pool

        shared_pool(settings.enabled_comfyui_servers()).register(self.jobs)
        self.jobs.scheduler.set_light_capacity(settings.max_parallel_light_jobs)

    def output_dir(self) -> str:
        """The project's output folder, else the one from Settings."""
        return self._project.output_dir or str(self.settings.resolved_output_dir())

    # --- jobs and devices --------------------------------------------------------------------

    def default_device(self) -> str:
        """The Settings device (``"auto"`` resolves when devices are known)."""
        return self.settings.default_device or "auto"

    def submit(self, request: JobRequest) -> JobHandle:
        """Queue a job (build it with ``device=services.default_device()`` to honour Settings)."""
        return self.jobs.submit(request)

    # --- messages ----------------------------------------------------------------------------

    def log(self, text: str, level: str = "info") -> None:
        """A line in the Log dock (``level``: info, warning or error)."""
        if level not in LOG_LEVELS:
            level = "info"
        if self._log is not None:
            self._log(str(text), level)
        else:
            _logger.log({"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR), text)

    def show_status(self, text: str, timeout_ms: int = 6000) -> None:
        """A message in the window's status bar."""
        if self.window is not None:
            self.window.statusBar().showMessage(text, timeout_ms)
