"""The timeline under every preview clip: a frame index, a playback timer, the transport controls, keys.

:class:`TimelineWidget` is the part the player (:mod:`difflora_gui.qt.preview.player`) and the A/B
compare (:mod:`difflora_gui.qt.preview.swipe`) share. Playback is a ``QTimer`` at fps × speed that
shows the next frame, so every frame is shown and a test drives it with :meth:`TimelineWidget.tick`
instead of waiting. Keys as in common players: Space or K play/pause, ←/→ or ,/. one frame (Shift:
ten), Home/End, L loop, [ and ] speed, F fit, 1 100 %, 2 200 %. The step buttons do not take the
keyboard focus when clicked, so Space keeps meaning play/pause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QWidget

from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    import numpy as np

SPEEDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
ZOOMS = (("fit", "Fit"), (1.0, "100%"), (2.0, "200%"))
DEFAULT_FPS = 16.0


def clip_array(frames) -> np.ndarray:
    """Frames ((F, H, W, 3) or a list of HxWx3; uint8, or float in [0, 1]) as one C-contiguous uint8 array."""
    import numpy as np

    from difflora_gui.preview.video_io import to_uint8

    array = to_uint8(np.asarray(frames))
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise ValueError(f"frames must be (F, H, W, 3) RGB, not {array.shape}")
    return np.ascontiguousarray(array)


def transport_icon(kind: str, size: int = 16) -> QIcon:
    """Play, pause and frame-step icons in the theme's text colour (the style's media icons are
    grey and draw "skip to start/end" for what steps one frame)."""
    pixmap = QPixmap(size * 2, size * 2)  # drawn at 2x, crisp on high-DPI screens too
    pixmap.setDevicePixelRatio(2.0)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(COLORS["text"]))
    s = size
    if kind == "play":
        painter.drawPolygon(
            QPolygonF([QPointF(s * 0.25, s * 0.15), QPointF(s * 0.85, s * 0.5), QPointF(s * 0.25, s * 0.85)])
        )
    elif kind == "pause":
        painter.drawRect(QRectF(s * 0.22, s * 0.15, s * 0.2, s * 0.7))
        painter.drawRect(QRectF(s * 0.58, s * 0.15, s * 0.2, s * 0.7))
    else:
        forward = kind == "forward"
        bar_x = s * 0.72 if forward else s * 0.14
        tip, base = (s * 0.68, s * 0.18) if forward else (s * 0.32, s * 0.82)
        painter.drawRect(QRectF(bar_x, s * 0.18, s * 0.14, s * 0.64))
        painter.drawPolygon(
            QPolygonF([QPointF(base, s * 0.18), QPointF(tip, s * 0.5), QPointF(base, s * 0.82)])
        )
    painter.end()
    return QIcon(pixmap)


class TransportBar(QWidget):
    """Play/pause, frame step, scrub slider, "frame k / N", loop, speed and zoom."""

    def __init__(self, parent: QWidget | None = None, *, zoom: bool = True):
        super().__init__(parent)
        self.setObjectName("transportBar")
        # narrower buttons than the forms' (the bar sits under a clip in a half-width column); the
        # focus ring keeps the size, as the theme's own focus rule does
        self.setStyleSheet(
            "QToolButton { padding: 4px 7px; } QToolButton:focus { padding: 3px 6px; }"
            f"QToolButton#loopButton:checked {{ background: #2f4a7a; border-color: {COLORS['accent']}; }}"
        )
        self._play_icon = transport_icon("play")
        self._pause_icon = transport_icon("pause")
        self.play_button = self._button(self._play_icon, "Play (Space)", "playButton")
        self.back_button = self._button(transport_icon("back"), "Previous frame (← or ,)", "stepBack")
        self.forward_button = self._button(transport_icon("forward"), "Next frame (→ or .)", "stepForward")
        self.play_button.setAccessibleName("Play or pause")
        self.back_button.setAccessibleName("Previous frame")
        self.forward_button.setAccessibleName("Next frame")
        for button in (self.back_button, self.forward_button):
            button.setAutoRepeat(True)  # held down, it steps on, as the arrow keys do
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("scrubSlider")
        self.slider.setToolTip("Scrub through the clip (Home / End: first / last frame)")
        self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.slider.setMinimumWidth(36)
        self.counter = QLabel()
        self.counter.setObjectName("frameCounter")
        self.counter.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.loop_button = self._button(None, "Loop at the end (L)", "loopButton")
        self.loop_button.setText("Loop")
        self.loop_button.setCheckable(True)
        self.speed_combo = QComboBox()
        self.speed_combo.setObjectName("speedCombo")
        self.speed_combo.setToolTip("Playback speed ([ slower, ] faster)")
        for speed in SPEEDS:
            self.speed_combo.addItem(f"{speed:g}×", speed)
        self.zoom_combo = QComboBox()
        self.zoom_combo.setObjectName("zoomCombo")
        self.zoom_combo.setToolTip("Fit the view (F), or image pixels at 100 % (1) / 200 % (2)")
        for value, text in ZOOMS:
            self.zoom_combo.addItem(text, value)
        self.zoom_combo.setVisible(zoom)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        for widget in (self.play_button, self.back_button, self.forward_button):
            layout.addWidget(widget)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.counter)
        for widget in (self.loop_button, self.speed_combo, self.zoom_combo):
            layout.addWidget(widget)
        self.set_state(0, 0, False)

    def _button(self, icon, tip: str, name: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        if icon is not None:
            button.setIcon(icon)
            # roomy where there is room, narrower when a 1280×720 column is short of it
            button.setMinimumWidth(button.iconSize().width() + 12)
        button.setToolTip(tip)
        button.setAutoRaise(False)
        # a click leaves the keyboard focus on the player, so Space keeps meaning play/pause
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        return button

    def set_state(self, index: int, count: int, playing: bool) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, count - 1))
            self.slider.setValue(index)
        digits = len(str(max(count, 1)))
        # the widest text for this clip length, so the buttons beside it never move
        widest = f"frame {'8' * digits} / {'8' * digits}"
        self.counter.setFixedWidth(self.counter.fontMetrics().horizontalAdvance(widest) + 8)
        self.counter.setText(f"frame {index + 1} / {count}" if count else "frame – / –")
        self.counter.setToolTip(
            f"frame index {index} (frame_{index:05d}.png in a frames folder)" if count else ""
        )
        self.set_playing(playing)
        for widget in (self.play_button, self.back_button, self.forward_button, self.slider):
            widget.setEnabled(count > 0)

    def set_playing(self, playing: bool) -> None:
        self.play_button.setIcon(self._pause_icon if playing else self._play_icon)
        self.play_button.setToolTip("Pause (Space)" if playing else "Play (Space)")


class TimelineWidget(QWidget):
    """A frame index over ``frame_count`` frames, a playback timer and the transport controls.

    Subclasses show frame ``index`` in :meth:`_show` and apply a zoom in :meth:`_apply_zoom`.
    """

    frame_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, zoom: bool = True):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._count = 0
        self._index = 0
        self._fps = DEFAULT_FPS
        self._speed = 1.0
        self._loop = True
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.tick)
        self.bar = TransportBar(self, zoom=zoom)
        self.bar.play_button.clicked.connect(self.toggle)
        self.bar.back_button.clicked.connect(lambda: self.step(-1))
        self.bar.forward_button.clicked.connect(lambda: self.step(1))
        self.bar.slider.valueChanged.connect(self._scrubbed)
        self.bar.slider.installEventFilter(self)
        # dragging the slider holds playback, which goes on from where it is let go
        self._resume_after_scrub = False
        self.bar.slider.sliderPressed.connect(self._scrub_started)
        self.bar.slider.sliderReleased.connect(self._scrub_ended)
        self.bar.loop_button.toggled.connect(self.set_loop)
        self.bar.speed_combo.activated.connect(lambda _i: self._chose(self.set_speed, self.bar.speed_combo))
        self.bar.zoom_combo.activated.connect(lambda _i: self._chose(self.set_zoom, self.bar.zoom_combo))
        self.bar.loop_button.setChecked(self._loop)
        self.bar.speed_combo.setCurrentIndex(SPEEDS.index(1.0))

    # --- state -------------------------------------------------------------------------------

    @property
    def frame_index(self) -> int:
        return self._index

    @property
    def frame_count(self) -> int:
        return self._count

    def fps(self) -> float:
        return self._fps

    def is_playing(self) -> bool:
        return self._timer.isActive()

    def loop(self) -> bool:
        return self._loop

    def speed(self) -> float:
        return self._speed

    def interval_ms(self) -> int:
        """The playback timer's interval: one frame at fps × speed."""
        return max(1, round(1000.0 / (self._fps * self._speed)))

    def _set_timeline(self, count: int, fps: float) -> None:
        """A new clip: keep the frame index where it still exists (compare frame k across renders)."""
        self._count = count
        self._fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self._index = min(self._index, max(0, count - 1))
        if count < 2:
            self.pause()
        elif self.is_playing():
            self._timer.start(self.interval_ms())
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_state(self._index, self._count, self.is_playing())
        if self._count:
            self._show(self._index)

    # --- transport ---------------------------------------------------------------------------

    def play(self) -> None:
        if self._count < 2:
            return
        if self._index >= self._count - 1 and not self._loop:
            self.seek(0)  # play at the end starts again, as in every player
        self._timer.start(self.interval_ms())
        self.bar.set_playing(True)

    def pause(self) -> None:
        self._timer.stop()
        self.bar.set_playing(False)

    def toggle(self) -> None:
        self.pause() if self.is_playing() else self.play()

    def step(self, n: int = 1) -> None:
        """Pause and move ``n`` frames (negative: back), stopping at the first / last frame."""
        self.pause()
        self.seek(self._index + n)

    def seek(self, index: int) -> None:
        """Show frame ``index`` (clamped to the clip)."""
        if not self._count:
            return
        index = max(0, min(self._count - 1, int(index)))
        if index == self._index:
            return
        self._index = index
        self._show(index)
        self.bar.set_state(index, self._count, self.is_playing())
        self.frame_changed.emit(index)

    def tick(self) -> None:
        """One playback step (what the timer calls): the next frame, wrapping or stopping at the end."""
        if not self._count:
            self.pause()
            return
        following = self._index + 1
        if following >= self._count:
            if not self._loop:
                self.pause()
                return
            following = 0
        self.seek(following)
        if following == self._count - 1 and not self._loop:
            self.pause()

    def set_loop(self, loop: bool) -> None:
        self._loop = bool(loop)
        with QSignalBlocker(self.bar.loop_button):
            self.bar.loop_button.setChecked(self._loop)

    def set_speed(self, speed: float) -> None:
        """Playback speed, snapped to the nearest of 0.25× … 2×."""
        self._speed = min(SPEEDS, key=lambda s: abs(s - float(speed)))
        self.bar.speed_combo.setCurrentIndex(SPEEDS.index(self._speed))
        if self.is_playing():
            self._timer.start(self.interval_ms())

    def set_zoom(self, zoom: str | float) -> None:
        """``"fit"`` or a scale (1.0 = image pixels)."""
        zoom = "fit" if zoom == "fit" else float(zoom)
        for row in range(self.bar.zoom_combo.count()):
            if self.bar.zoom_combo.itemData(row) == zoom:
                self.bar.zoom_combo.setCurrentIndex(row)
        self._apply_zoom(zoom)

    def _chose(self, setter, combo: QComboBox) -> None:
        setter(combo.currentData())
        self.setFocus(Qt.FocusReason.OtherFocusReason)  # keys go back to the player

    def _scrubbed(self, value: int) -> None:
        self.seek(value)

    def _scrub_started(self) -> None:
        self._resume_after_scrub = self.is_playing()
        self.pause()

    def _scrub_ended(self) -> None:
        if self._resume_after_scrub:
            self._resume_after_scrub = False
            self.play()

    # --- keys ----------------------------------------------------------------------------------

    def key_action(self, event: QKeyEvent):
        """What a key does here (a callable), or None: keys with Ctrl/Alt/Meta are the window's."""
        if event.modifiers() & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier):
            return None
        jump = 10 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
        actions = {
            Qt.Key.Key_Space: self.toggle,
            Qt.Key.Key_K: self.toggle,
            Qt.Key.Key_Left: lambda: self.step(-jump),
            Qt.Key.Key_Comma: lambda: self.step(-1),
            Qt.Key.Key_Less: lambda: self.step(-1),
            Qt.Key.Key_Right: lambda: self.step(jump),
            Qt.Key.Key_Period: lambda: self.step(1),
            Qt.Key.Key_Greater: lambda: self.step(1),
            Qt.Key.Key_Home: lambda: self.seek(0),
            Qt.Key.Key_End: lambda: self.seek(self._count - 1),
            Qt.Key.Key_L: lambda: self.set_loop(not self._loop),
            Qt.Key.Key_BracketLeft: lambda: self._nudge_speed(-1),
            Qt.Key.Key_BracketRight: lambda: self._nudge_speed(1),
        }
        if self.bar.zoom_combo.isVisibleTo(self.bar):
            actions.update(
                {
                    Qt.Key.Key_F: lambda: self.set_zoom("fit"),
                    Qt.Key.Key_1: lambda: self.set_zoom(1.0),
                    Qt.Key.Key_2: lambda: self.set_zoom(2.0),
                }
            )
        return actions.get(event.key())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        action = self.key_action(event)
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        # the focused slider would take the arrows itself, without the pause a frame step makes
        if watched is self.bar.slider and event.type() == QEvent.Type.KeyPress:
            action = self.key_action(event)
            if action is not None:
                action()
                return True
        return super().eventFilter(watched, event)

    def _nudge_speed(self, direction: int) -> None:
        index = SPEEDS.index(self._speed) + direction
        self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, index))])

    # --- for subclasses ------------------------------------------------------------------------

    def _show(self, index: int) -> None:
        raise NotImplementedError

    def _apply_zoom(self, zoom: str | float) -> None:
        raise NotImplementedError
