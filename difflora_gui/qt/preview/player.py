"""The Preview section's video player: decoded frames in memory, shown frame-exact.

A clip is decoded once (:class:`difflora_gui.preview.video_io.VideoReader`, PyAV with OpenCV as the
fallback, so no system codec is needed) on a worker thread, and kept as an (F, H, W, 3) uint8 array;
the window stays live while an 81-frame 832×480 clip decodes (about half a second here). In-memory
clips (latent previews, renders) go in with :meth:`VideoPlayer.set_frames`. The timeline, timer,
keys and controls are :class:`~difflora_gui.qt.preview.timeline.TimelineWidget`'s.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from difflora_gui.qt.preview.frame_view import ElidedLabel, FrameView
from difflora_gui.qt.preview.timeline import DEFAULT_FPS, TimelineWidget, clip_array
from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    import numpy as np

__all__ = ["VideoPlayer", "TimelineWidget", "clip_array"]


class _Relay(QObject):
    done = Signal(int, object, float, str, str)  # generation, frames | None, fps, info, error


def _decode(relay: _Relay, generation: int, path: Path) -> None:
    """The decode thread: the whole clip, or the one-line reason it cannot be read."""
    frames, fps, info, error = None, 0.0, "", ""
    try:
        from difflora_gui.preview.video_io import VideoReader

        with VideoReader(path) as reader:
            frames = clip_array(reader.frames())
            fps = reader.fps
            info = f"{reader.width}×{reader.height} · {fps:g} fps · {reader.codec}"
    except Exception as exc:  # shown in the view; the player goes on with the next load
        error = str(exc) if getattr(exc, "problem", None) else f"{path}: {type(exc).__name__}: {exc}"
    try:
        relay.done.emit(generation, frames, fps, info, error)
    except RuntimeError:  # torn down at exit
        pass


class VideoPlayer(TimelineWidget):
    """A clip from a file (:meth:`load`, decoded on a worker thread) or from memory (:meth:`set_frames`)."""

    loaded = Signal()
    #: a file could not be read: the one-line reason
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("videoPlayer")
        self.title = ElidedLabel("")
        self.title.setObjectName("clipLabel")
        self.info = QLabel()
        self.info.setObjectName("clipInfo")
        self.info.setStyleSheet(f"color: {COLORS['muted']};")
        self.view = FrameView()
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self.title, 1)
        header.addWidget(self.info)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.bar)
        self._frames: np.ndarray | None = None
        self._path: Path | None = None
        self._generation = 0
        self._loading = False
        self.error = ""
        # no parent: the decode thread holds it, so a player closed mid-decode is never emitted on
        # from a half-deleted object (the queued connection to the player goes with the player)
        self._relay = _Relay()
        self._relay.done.connect(self._on_decoded, Qt.ConnectionType.QueuedConnection)
        self.clear()

    # --- content -----------------------------------------------------------------------------

    def load(self, path: str | Path) -> None:
        """Decode ``path`` on a worker thread; ``loaded`` (or ``failed``) follows. The window stays live."""
        self._generation += 1
        generation = self._generation
        self._path = Path(path)
        self._loading = True
        self.error = ""
        self.title.set_full_text(str(self._path))
        self.info.setText("loading …")
        if self._frames is None:
            self.view.set_message(f"Loading {self._path.name} …")
        thread = threading.Thread(
            target=_decode, args=(self._relay, generation, self._path), name="preview-decode", daemon=True
        )
        thread.start()

    @Slot(int, object, float, str, str)
    def _on_decoded(self, generation: int, frames, fps: float, info: str, error: str) -> None:
        if generation != self._generation:
            return  # a newer load or clip replaced this one
        self._loading = False
        if error:
            self.error = error
            self._frames = None
            self._set_timeline(0, DEFAULT_FPS)
            self.info.setText("")
            self.view.set_frames(None)
            self.view.set_message(error)
            self.failed.emit(error)
            return
        self._set_clip(frames, fps, str(self._path), info)
        self.loaded.emit()

    def set_frames(self, frames, fps: float, label: str = "") -> None:
        """Show an in-memory clip ((F, H, W, 3) uint8 or float [0, 1]); cancels a load in flight."""
        self._generation += 1
        self._loading = False
        self._path = None
        self.error = ""
        array = clip_array(frames)
        height, width = array.shape[1:3]
        self._set_clip(array, fps, label, f"{width}×{height} · {float(fps):g} fps")
        self.loaded.emit()

    def _set_clip(self, frames: np.ndarray, fps: float, label: str, info: str) -> None:
        self._frames = frames
        self.title.set_full_text(label)
        self.info.setText(f"{info} · {len(frames)} frames")
        self._set_timeline(len(frames), fps)

    def clear(self) -> None:
        """No clip: the view says so; a load in flight is dropped."""
        self._generation += 1
        self._loading = False
        self.pause()
        self._frames = None
        self._path = None
        self.error = ""
        self._count = 0
        self._index = 0
        self.title.set_full_text("")
        self.info.setText("")
        self.view.set_frames(None)
        self.view.set_message("No clip")
        self.bar.set_state(0, 0, False)

    # --- queries -----------------------------------------------------------------------------

    def is_loading(self) -> bool:
        return self._loading

    def path(self) -> Path | None:
        return self._path

    def label(self) -> str:
        return self.title.full_text()

    def frames(self) -> np.ndarray | None:
        return self._frames

    def current_frame(self) -> np.ndarray | None:
        """The frame on screen (HxWx3 uint8 RGB)."""
        return None if self._frames is None else self._frames[self._index]

    # --- TimelineWidget ----------------------------------------------------------------------

    def _show(self, index: int) -> None:
        if self._frames is not None:
            self.view.set_frames(self._frames[index])

    def _apply_zoom(self, zoom: str | float) -> None:
        self.view.set_zoom(zoom)
