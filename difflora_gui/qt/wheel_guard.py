"""The app-wide wheel guard: scrolling a settings column never changes the inputs under the pointer.

Qt gives a wheel event to the combo box, spin box or slider under the pointer even when it has no
focus, so scrolling a long form with the pointer passing over an input changes its value (rank mode
fixed → sv_cumulative, rank 4 → 1) without the user noticing. One event filter on the
``QApplication`` sends such an event to the scroll area around the input instead; an input the user
has focused (clicked or tabbed into) still takes the wheel, as in every browser and editor.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

#: the inputs whose value a wheel event changes
GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


def _is_guarded(widget: QObject) -> bool:
    return isinstance(widget, GUARDED) and not isinstance(widget, QScrollBar)


def _focused(widget: QWidget) -> bool:
    """The input, or a part of it (a spin box's line edit), has the keyboard focus."""
    focus = QApplication.focusWidget()
    return focus is not None and (focus is widget or widget.isAncestorOf(focus))


def scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    """The nearest scroll area the widget sits in (None outside any)."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not _is_guarded(parent):
            return parent
        parent = parent.parentWidget()
    return None


class WheelGuard(QObject):
    """The filter; :func:`install_wheel_guard` installs one per application."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.Wheel or not _is_guarded(watched):
            return False
        if _focused(watched):
            return False
        area = scroll_area_of(watched)
        if area is None:
            return False  # an input outside any scroll area: the wheel cannot mean "scroll"
        # the scroll area's viewport scrolls (and hands the event on to an outer area at its end)
        QCoreApplication.sendEvent(area.viewport(), event)
        return True


def install_wheel_guard(app: QCoreApplication | None = None) -> WheelGuard:
    """Install the guard on ``app`` (the running application by default) once; returns it."""
    app = app if app is not None else QCoreApplication.instance()
    if app is None:
        raise RuntimeError("install_wheel_guard needs a QApplication")
    existing = app.findChild(WheelGuard, "difflora_wheel_guard")
    if existing is not None:
        return existing
    guard = WheelGuard(app)
    guard.setObjectName("difflora_wheel_guard")
    app.installEventFilter(guard)
    return guard
