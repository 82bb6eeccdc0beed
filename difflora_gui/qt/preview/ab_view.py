"""The Preview panel's A/B view: the render on show beside a reference, with a swipe line.

The reference (left) is the same request at strength 0 for the selected LoRA — what the clip
looks like without it, same seed — or any render of this session chosen in the list. The two
clips share one timeline (:class:`~difflora_gui.qt.preview.swipe.SwipeCompare`: drag the line,
or show them side by side), decoded on a worker thread so the window stays live. The panel
decides what to render; this widget shows and chooses.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from difflora_gui.errors import UserError
from difflora_gui.qt.preview.swipe import SwipeCompare
from difflora_gui.qt.theme import narrow_combo

#: the reference list's first choice: the render at strength 0 for the selected LoRA
ZERO_CHOICE = "zero"


def strengths_text(request) -> str:
    return ", ".join(f"{entry.strength:g}" for entry in request.loras) or "no LoRA"


class _Relay(QObject):
    #: generation, left frames, right frames, fps, left label, right label, error
    done = Signal(int, object, object, float, str, str, str)


class ABView(QWidget):
    """Reference chooser over the swipe view. ``reference_changed`` when another is chosen;
    ``failed(message)`` when a clip cannot be decoded."""

    reference_changed = Signal()
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        row = QHBoxLayout()
        label = QLabel("&Compare with")
        self.reference_combo = QComboBox()
        self.reference_combo.setObjectName("previewReference")
        narrow_combo(self.reference_combo, 24)  # long reference names must not widen the player's column
        self.reference_combo.setToolTip("The left clip: the same render at strength 0, or an earlier render")
        self.reference_combo.activated.connect(lambda _i: self.reference_changed.emit())
        label.setBuddy(self.reference_combo)
        row.addWidget(label)
        row.addWidget(self.reference_combo, 1)
        layout.addLayout(row)
        self.swipe = SwipeCompare()
        layout.addWidget(self.swipe, 1)
        self.note = QLabel("Render a clip: the A/B view then shows it beside the same seed at strength 0.")
        self.note.setObjectName("mutedLabel")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self._generation = 0
        self._decoding = False
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_decoded, Qt.ConnectionType.QueuedConnection)
        self.set_history([])

    def is_decoding(self) -> bool:
        return self._decoding

    def choice(self) -> str:
        return self.reference_combo.currentData() or ZERO_CHOICE

    def set_history(self, history, cached=()) -> None:
        """The renders of this session (newest first), then ``cached`` ones from the project's
        render cache (earlier sessions, grid cells), as references; the choice is kept."""
        combo = self.reference_combo
        chosen = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("The same render at strength 0 (selected LoRA)", ZERO_CHOICE)
        for number, result in enumerate(history, start=1):
            request = result.request
            combo.addItem(
                f"Render {number}: strength {strengths_text(request)}, seed {request.seed}", result.key
            )
        for result in cached:
            request = result.request
            combo.addItem(
                f"Cached: strength {strengths_text(request)}, seed {request.seed}, "
                f"{result.width}×{result.height}, {result.frames} frames",
                result.key,
            )
            combo.setItemData(combo.count() - 1, request.prompt or "(no prompt)", Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(combo.findData(chosen), 0))
        combo.blockSignals(False)

    def show_pair(self, reference, main, reference_label: str) -> None:
        """Show ``reference`` (left) and ``main`` (right), two render results, once decoded."""
        self._generation += 1
        self._decoding = True
        self.note.setText("Decoding the two clips…")
        right_label = f"strength {strengths_text(main.request)}"
        args = (self._generation, str(reference.video), str(main.video), reference_label, right_label)
        threading.Thread(target=self._decode, args=args, name="preview-ab-decode", daemon=True).start()

    def _decode(self, generation: int, left_path: str, right_path: str, left_label: str, right_label: str):
        from difflora_gui.preview.video_io import read_video

        left = right = None
        fps, error = 0.0, ""
        try:
            left, fps = read_video(left_path)
            right, _ = read_video(right_path)
        except (UserError, OSError) as exc:
            left = right = None
            error = str(exc)
        try:
            self._relay.done.emit(generation, left, right, float(fps), left_label, right_label, error)
        except RuntimeError:  # the view is gone (the window closed meanwhile)
            pass

    def _on_decoded(self, generation, left, right, fps, left_label, right_label, error) -> None:
        if generation != self._generation:
            return  # another pair was asked for meanwhile
        self._decoding = False
        if error:
            self.note.setText(f"Cannot show the clips: {error}")
            self.failed.emit(error)
            return
        self.swipe.set_clips(left, right, int(round(fps)) or 16, left_label, right_label)
        self.note.setText(f"Left: {left_label} · right: the render on show.")

    def waiting(self, text: str) -> None:
        self.note.setText(text)
