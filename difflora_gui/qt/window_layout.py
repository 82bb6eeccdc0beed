"""The window's layout for the screen it is on, and where the keyboard focus starts.

On a small screen (a 1280×720 or 1366×768 laptop) the Jobs and Log docks start tabbed together
and closed, so the Merge workbench keeps about 1100×650 px instead of 550×370; View ▸ Jobs / Log
(Ctrl+J / Ctrl+L) or a click on the status bar's jobs count opens them, and a saved layout wins.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QWidget

#: below this available screen size (either side) the docks start tabbed and closed
COMPACT_SCREEN = QSize(1500, 880)


def jobs_dock_width(window_width: int) -> int:
    """The Jobs dock's first width: a fifth of the window, 240 to 380 px, so a 1280 px window
    leaves the sections about 800 px (Preview's inputs and player side by side)."""
    return max(240, min(380, window_width // 5))


def compact_screen() -> bool:
    """The primary screen is small: the docks start closed.

    The offscreen platform (tests, screenshots) has no real screen, so its size says nothing."""
    if QGuiApplication.platformName() == "offscreen":
        return False
    screen = QGuiApplication.primaryScreen()
    if screen is None:
        return False
    area = screen.availableGeometry()
    return area.width() < COMPACT_SCREEN.width() or area.height() < COMPACT_SCREEN.height()


def arrange_docks(window: QMainWindow, *, compact: bool) -> None:
    """The docks beside and under the sections, or (``compact``) tabbed together and closed."""
    window.reset_layout()
    if compact:
        window.tabifyDockWidget(window.log_dock, window.jobs_dock)
        window.log_dock.raise_()
        for dock in (window.jobs_dock, window.log_dock):
            dock.hide()


def current_panel(window) -> QWidget | None:
    """The panel on show in the window's current section (None on an intro page)."""
    page = window.pages[window.current_section()]
    for entry in page.entries:
        widget = entry.widget
        if entry.ok and widget is not None and widget.isVisibleTo(window):
            return widget
    return None


def focus_panel(panel: QWidget | None) -> None:
    """Put the keyboard focus on the panel's first input (``panel.focus_first()`` when it has one)."""
    if panel is None:
        return
    first = getattr(panel, "focus_first", None)
    if first is not None:
        first()
    else:
        panel.setFocus(Qt.FocusReason.OtherFocusReason)
        panel.focusNextChild()
