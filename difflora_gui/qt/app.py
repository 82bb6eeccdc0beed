"""Starting the GUI: ``python main.py`` / ``python -m difflora_gui`` → :func:`run_gui`.

Start-up imports only Qt, pluggy and the app's light modules; torch and diffusers are imported by
jobs and panels when they need them, so the window shows fast. Set ``DIFFLORA_STARTUP_PROBE=1``
to print one ``DIFFLORA_STARTUP {json}`` line when the window is first shown (time, and whether
torch/diffusers were imported) and quit; ``bench/startup.py`` and the tests use it.
``DIFFLORA_STARTUP_T0`` (a ``time.time()`` value from the launcher) makes the reported time
count from the launch instead of from :func:`run_gui`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

PROBE_ENV = "DIFFLORA_STARTUP_PROBE"
T0_ENV = "DIFFLORA_STARTUP_T0"
PROBE_PREFIX = "DIFFLORA_STARTUP "
HEAVY_MODULES = ("torch", "diffusers", "transformers", "peft", "safetensors", "cv2", "pyqtgraph")


def create_application(argv: list[str] | None = None):
    """The ``QApplication`` with names, dark theme and icon (reuses an existing one)."""
    os.environ.setdefault("QT_API", "pyside6")  # superqt/qtpy must pick PySide6
    from PySide6.QtWidgets import QApplication

    from difflora_gui import APP_NAME, __version__
    from difflora_gui.qt.main_thread_gc import install_main_thread_gc
    from difflora_gui.qt.theme import apply_dark_theme

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(APP_NAME)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    apply_dark_theme(app)
    install_wheel_guard(app)
    install_main_thread_gc(app)  # collect on the GUI thread only (see qt/main_thread_gc.py)
    return app


def install_wheel_guard(app=None):
    """The app-wide wheel filter (see :mod:`difflora_gui.qt.wheel_guard`); the window installs it too,
    so an application made by tests has it as well. Installing twice keeps one filter."""
    from difflora_gui.qt.wheel_guard import install_wheel_guard as install

    return install(app)


def _install_excepthook(window) -> None:
    """An exception escaping a Qt slot goes to the Log dock instead of being lost on stderr."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        try:
            window.log(f"Unexpected error: {exc_type.__name__}: {exc}", "error")
            window.log_dock.append_detail(text)
            window.statusBar().showMessage(f"Unexpected error: {exc} (details in the Log)", 10000)
        except RuntimeError:  # the window is gone
            pass
        previous(exc_type, exc, tb)

    sys.excepthook = hook


def _probe_report(started: float) -> str:
    now = time.time()
    t0 = os.environ.get(T0_ENV)
    report = {
        "since_run_gui_s": round(time.perf_counter() - started, 4),
        "since_launch_s": round(now - float(t0), 4) if t0 else None,
        "imported": {name: name in sys.modules for name in HEAVY_MODULES},
        "modules": len(sys.modules),
    }
    return PROBE_PREFIX + json.dumps(report)


def run_gui(project: str | Path | None = None) -> int:
    """Open the main window (and ``project`` if given); returns the exit code.

    On Linux, missing X11 libraries are reported in one line (exit code 2) before Qt would abort.
    """
    started = time.perf_counter()
    from difflora_gui.qt.xcb_libraries import missing_xcb_message

    missing = missing_xcb_message()
    if missing:
        print(missing, file=sys.stderr, flush=True)
        return 2
    app = create_application()
    from PySide6.QtCore import QTimer

    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.qt.main_window import MainWindow

    window = MainWindow(host=get_plugin_host())
    _install_excepthook(window)
    probe = os.environ.get(PROBE_ENV, "").strip() not in ("", "0")

    def after_first_show() -> None:
        if probe:
            print(_probe_report(started), flush=True)
            if project is not None:
                window.open_project(project)
                print(PROBE_PREFIX + json.dumps({"project": window.project.display_name}), flush=True)
            QTimer.singleShot(0, window.close)
            return
        window.start_session()
        if project is not None:
            window.open_project(project)

    window.first_shown.connect(after_first_show)
    window.show()
    return app.exec()
