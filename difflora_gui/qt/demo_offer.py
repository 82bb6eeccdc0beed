"""The demo project in the window: the first-start offer and Help ▸ Open demo project.

:class:`DemoOfferBanner` is a slim non-modal bar at the top of the sections ("Build the demo
project? …", *Build demo* / *Not now*): it never blocks the window, and either answer is
remembered in the settings (:func:`offer_answered`), so it shows on the first start only.
:class:`DemoLauncher` builds the demo as a ``light`` job through ``services.submit`` (its steps
show in the Jobs dock: "writing pair 7 of 24", "building the tiny model") and, when the job is
done, opens the demo project on the Dataset section. An already built demo opens at once.

When Settings has no Wan diffusers folder yet, opening the demo points it at the tiny demo model
(and says so in the Log), so the Train and Preview sections work straight away; a real folder set
by the user is never replaced.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

#: the settings key remembering that the first-start offer was answered (True once answered)
OFFER_SETTING = "demo_offer_answered"
JOB_TITLE = "Build the demo project"


def offer_answered(settings) -> bool:
    """Whether the first-start offer was answered (a setting of that name, else a key the settings
    file keeps for this version: :attr:`AppSettings.extra`)."""
    value = getattr(settings, OFFER_SETTING, None)
    if value is None:
        value = getattr(settings, "extra", {}).get(OFFER_SETTING, False)
    return bool(value)


def remember_answer(services) -> None:
    """Store that the offer was answered, in the settings file (other settings are kept)."""
    from difflora_gui.settings import AppSettings

    if hasattr(services.settings, OFFER_SETTING):
        services.update_settings(**{OFFER_SETTING: True})
        return
    fresh = AppSettings.load()  # the file as it is now: choices saved elsewhere are kept
    fresh.extra[OFFER_SETTING] = True
    fresh.save()
    services.update_settings()  # re-reads the file: everyone sees the saved settings


def install_demo_action(window) -> QAction:
    """``window.action_open_demo`` (Help ▸ Open demo project, first in the Help menu), calling
    ``window.open_demo_project()``."""
    action = QAction("Open &demo project", window)
    action.setObjectName("actionOpenDemo")
    tip = "Build (once, about 15 s, no download) and open the demo: 24 image pairs and a tiny demo model"
    action.setStatusTip(tip)
    action.setToolTip(tip)
    action.triggered.connect(lambda _checked=False: window.open_demo_project())
    window.addAction(action)
    help_menu = next((a.menu() for a in window.menuBar().actions() if a.text() == "&Help"), None)
    if help_menu is not None:
        first = help_menu.actions()[0] if help_menu.actions() else None
        help_menu.insertAction(first, action)
        help_menu.insertSeparator(first)
    window.action_open_demo = action
    return action


class DemoOfferBanner(QFrame):
    """The banner "Build the demo project? …" with *Build demo* and *Not now* (non-modal)."""

    build_requested = Signal()
    dismissed = Signal()

    def __init__(self, typical_s: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("demoOfferBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#demoOfferBanner { background: #2b3440; border: 1px solid #3d4a5a; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        self.label = QLabel(
            f"<b>Build the demo project?</b> (about {typical_s} s, no download) — 24 synthetic image pairs "
            "(two of them flawed, for the checks to find) and a <i>tiny demo model</i> with random "
            "weights that renders noise-like clips: a way to try every section before you point "
            "Settings at real Wan weights."
        )
        self.label.setWordWrap(True)
        self.build_button = QPushButton("Build demo")
        self.build_button.setObjectName("demoBuildButton")
        self.later_button = QPushButton("Not now")
        self.later_button.setObjectName("demoLaterButton")
        self.later_button.setToolTip("Help ▸ Open demo project builds it any time")
        layout.addWidget(self.label, 1)
        layout.addWidget(self.build_button)
        layout.addWidget(self.later_button)
        self.build_button.clicked.connect(self.build_requested.emit)
        self.later_button.clicked.connect(self.dismissed.emit)


class DemoLauncher(QObject):
    """Offers, builds and opens the demo for a main window."""

    #: the demo project was opened: ``(path)``
    opened = Signal(str)

    def __init__(self, window, *, folder: str | Path | None = None):
        super().__init__(window)
        self.window = window
        self.folder = Path(folder) if folder else None
        self.handle = None
        self.banner: DemoOfferBanner | None = None

    @property
    def services(self):
        return self.window.services

    def paths(self) -> dict[str, Path]:
        from difflora_gui.demo.build import demo_paths

        return demo_paths(self.folder)

    # --- the first-start offer -----------------------------------------------------------------

    def offer(self, host_layout) -> DemoOfferBanner | None:
        """Show the banner at the top of ``host_layout`` unless the offer was answered or the demo
        is built already; returns it (None when not offered)."""
        from difflora_gui.demo.build import TYPICAL_BUILD_S, is_built

        if self.banner is not None or offer_answered(self.services.settings) or is_built(self.folder):
            return None
        self.banner = DemoOfferBanner(TYPICAL_BUILD_S)
        self.banner.build_requested.connect(self._accept_offer)
        self.banner.dismissed.connect(self._decline_offer)
        host_layout.insertWidget(0, self.banner)
        self.banner.show()  # a widget added to a shown window stays hidden until shown
        return self.banner

    def _close_banner(self) -> None:
        if self.banner is not None:
            self.banner.hide()
            self.banner.deleteLater()
            self.banner = None
        remember_answer(self.services)

    def _accept_offer(self) -> None:
        self._close_banner()
        self.open_demo()

    def _decline_offer(self) -> None:
        self._close_banner()
        self.window.status("The demo project is in Help ▸ Open demo project whenever you want it", 8000)

    # --- building and opening ------------------------------------------------------------------

    def open_demo(self):
        """Open the demo project, building it first (a job) when it is not complete; returns the
        build's job handle, or None when it opened at once (or a build is already running)."""
        from difflora_gui.demo.build import is_built

        if self.handle is not None and not self.handle.is_finished:
            self.window.show_jobs_dock()
            return None
        if is_built(self.folder):
            self._open(self.paths()["project"])
            return None
        from difflora_gui.jobs.job import JobRequest

        params = {"folder": str(self.folder) if self.folder else ""}
        self.handle = self.services.submit(
            JobRequest(JOB_TITLE, "difflora_gui.demo.build:build_demo", params, lane="light")
        )
        self.handle.succeeded.connect(self._on_built)
        self.window.show_jobs_dock()
        self.window.status("Building the demo project (see the Jobs dock)…", 8000)
        return self.handle

    def _on_built(self, result) -> None:
        self._open(Path(result["project"]))

    def _open(self, project: Path) -> None:
        if not self.window.open_project(project):
            return
        self._use_demo_model_if_none()
        self.window.show_section("dataset")
        self.window.log(
            f"Demo project opened: {project}. Its model is a tiny demo model with random weights "
            "that renders noise-like clips; point Settings ▸ Wan diffusers folder at real Wan weights "
            "for real results."
        )
        self.opened.emit(str(project))

    def _use_demo_model_if_none(self) -> None:
        model = self.paths()["model"]
        if self.services.settings.wan_model_dir:
            return
        self.services.update_settings(wan_model_dir=str(model))
        self.window.log(
            f"Settings ▸ Wan diffusers folder now points at the tiny demo model ({model}): it renders "
            "noise-like clips. Change it in Settings to use real Wan weights."
        )
