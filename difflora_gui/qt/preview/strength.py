"""A LoRA's strength: a slider over −4…+4 with a field that takes any strength from −100 to 100.

The slider moves in steps of 0.05 (the arrow keys: 0.05, Page Up/Down: 0.5); the field takes
typed numbers with two decimals. A strength beyond the slider's range (users ask for ±8 and
more) is kept in the field, in amber, while the slider pins at its end and says so in its tooltip.
The "1" button puts the LoRA back as trained.

``value_changed`` fires once for each new value: while the slider is dragged, for each 0.05 step
it passes (not each pixel); for the field, when a typed number is entered (Enter, Tab, or an
arrow step — not on every keystroke). The Preview panel debounces its renders; ``committed``
fires when an edit ends (the slider let go, a field entered, a key step, the reset button) for
owners that render only then. Undo: :meth:`StrengthControl.set_undo_stack` records each edit
(a drag is one step), and ``edited(before, after)`` tells an owner that keeps its own history.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QSlider, QToolButton, QWidget
from superqt.utils import signals_blocked

from difflora_gui.errors import UserError
from difflora_gui.preview.request import STRENGTH_SLIDER_RANGE
from difflora_gui.qt.theme import COLORS

__all__ = ["FIELD_RANGE", "SLIDER_STEP", "StrengthControl"]

#: the strengths the field takes
FIELD_RANGE = (-100.0, 100.0)
#: one slider step (and one arrow-key step of the field)
SLIDER_STEP = 0.05
_TICKS_PER_UNIT = round(1 / SLIDER_STEP)
DECIMALS = 2
RESET_VALUE = 1.0


class StrengthControl(QWidget):
    """Slider + field for one strength; :meth:`value` is the field's (the true) value."""

    #: the strength changed (user or :meth:`set_value`), once per new value
    value_changed = Signal(float)
    #: a user's edit ended at this value (slider released, field entered, key step, reset)
    committed = Signal(float)
    #: a user's edit: (before, after), for an owner's undo
    edited = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("strengthControl")
        # the field's number in amber while the slider sits at its end and cannot show it
        self.setStyleSheet(f'QDoubleSpinBox#strengthField[pinned="true"] {{ color: {COLORS["warning"]}; }}')
        self._value = RESET_VALUE
        self._drag_start: float | None = None  # the value when a slider drag began
        self._drags = 0  # numbers the drags: each one is its own undo step
        self._undo = None

        low, high = STRENGTH_SLIDER_RANGE
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("strengthSlider")
        self.slider.setRange(round(low * _TICKS_PER_UNIT), round(high * _TICKS_PER_UNIT))
        self.slider.setSingleStep(1)
        self.slider.setPageStep(round(0.5 * _TICKS_PER_UNIT))
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(_TICKS_PER_UNIT)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a wheel does not take the focus
        self.slider.setMinimumWidth(120)
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.slider.sliderPressed.connect(self._on_slider_pressed)
        self.slider.sliderReleased.connect(self._on_slider_released)

        self.field = QDoubleSpinBox()
        self.field.setObjectName("strengthField")
        self.field.setRange(*FIELD_RANGE)
        self.field.setDecimals(DECIMALS)
        self.field.setSingleStep(SLIDER_STEP)
        self.field.setKeyboardTracking(False)  # "7.5" is one value, not 7 then 7.5
        self.field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.field.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.field.setToolTip(
            f"Strength, {FIELD_RANGE[0]:g} to {FIELD_RANGE[1]:g}: 1 = as trained, 0 = off, "
            "negative = the opposite direction"
        )
        self.field.valueChanged.connect(self._on_field_changed)

        self.reset_button = QToolButton()
        self.reset_button.setObjectName("strengthReset")
        self.reset_button.setText("1")
        self.reset_button.setToolTip("Back to strength 1 (the LoRA as trained)")
        self.reset_button.clicked.connect(lambda: self._user_set(RESET_VALUE, commit=True))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.field)
        layout.addWidget(self.reset_button)
        QWidget.setTabOrder(self.slider, self.field)
        QWidget.setTabOrder(self.field, self.reset_button)
        self.setFocusProxy(self.slider)
        self._show(self._value)

    # --- value -------------------------------------------------------------------------------------

    def value(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        """Show a strength (not recorded for undo); ``UserError`` outside −100…100 or not finite."""
        self._set(_checked(value))

    def slider_pinned(self) -> bool:
        """The value is beyond the slider's range (the slider sits at its end)."""
        low, high = STRENGTH_SLIDER_RANGE
        return not low <= self._value <= high

    def set_undo_stack(self, stack) -> None:
        """Record each user edit on ``stack`` (an :class:`~difflora_gui.qt.undo.UndoStack`)."""
        self._undo = stack

    # --- internals -----------------------------------------------------------------------------------

    def _set(self, value: float) -> bool:
        value = round(value, DECIMALS) + 0.0
        if value == self._value:
            self._show(value)
            return False
        self._value = value
        self._show(value)
        self.value_changed.emit(value)
        return True

    def _user_set(self, value: float, *, commit: bool, merge: bool = False) -> None:
        before = self._value
        if self._set(value):
            self._record(before, self._value, merge)
        if commit:
            self.committed.emit(self._value)

    def _record(self, before: float, after: float, merge: bool) -> None:
        self.edited.emit(before, after)
        if self._undo is None or self._undo.applying:
            return
        self._undo.record(
            f"Strength {after:g}",
            lambda: self.set_value(before),
            lambda: self.set_value(after),
            merge_key=f"strength-{id(self)}-drag-{self._drags}" if merge else None,
        )

    def _show(self, value: float) -> None:
        low, high = STRENGTH_SLIDER_RANGE
        with signals_blocked(self.slider):
            self.slider.setValue(round(min(max(value, low), high) * _TICKS_PER_UNIT))
        if self.field.value() != value:
            with signals_blocked(self.field):
                self.field.setValue(value)
        pinned = self.slider_pinned()
        self.slider.setToolTip(
            f"Strength {value:g} is beyond the slider ({low:g} to {high:g}); the field holds it"
            if pinned
            else f"Strength {low:g} to {high:g} in steps of {SLIDER_STEP:g}; the field takes more"
        )
        if bool(self.field.property("pinned")) != pinned:
            self.field.setProperty("pinned", pinned)
            self.field.style().unpolish(self.field)
            self.field.style().polish(self.field)

    def _on_slider_pressed(self) -> None:
        self._drag_start = self._value
        self._drags += 1

    def _on_slider_moved(self, ticks: int) -> None:
        dragging = self.slider.isSliderDown()
        # a drag is one undo step (merged), a key step is one step each
        self._user_set(ticks / _TICKS_PER_UNIT, commit=not dragging, merge=dragging)

    def _on_slider_released(self) -> None:
        start, self._drag_start = self._drag_start, None
        if start is not None and start != self._value:
            self.committed.emit(self._value)

    def _on_field_changed(self, value: float) -> None:
        self._user_set(value, commit=True)


def _checked(value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"a strength must be a number, not {value!r}") from None
    low, high = FIELD_RANGE
    if not math.isfinite(number) or not low <= number <= high:
        raise UserError(f"a strength must be a number from {low:g} to {high:g}, not {value!r}")
    return number
