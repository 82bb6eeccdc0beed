"""The Preview panel's A/B view: the render on show beside a reference, with a swipe line.

The reference (left) is the same request at strength 0 for the selected LoRA — what the clip
looks like without it, same seed — or any render of this session chosen in the list. The two
clips share one timeline (:class:`~difflora_gui.qt.preview.swipe.SwipeCompare`: drag the line,
or show them side by side). The panel decides what to render; this widget shows and chooses.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from difflora_gui.errors import UserError
from difflora_gui.qt.preview.swipe import SwipeCompare

#: the reference list's first choice: the render at strength 0 for the selected LoRA
ZERO_CHOICE = "zero"


def strengths_text(request) -> str:
    return ", ".join(f"{entry.strength:g}" for entry in request.loras) or "no LoRA"


class ABView(QWidget):
    """Reference chooser over the swipe view. ``reference_changed`` when another is chosen."""

    reference_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        row = QHBoxLayout()
        label = QLabel("&Compare with")
        self.reference_combo = QComboBox()
        self.reference_combo.setObjectName("previewReference")
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
        self.set_history([])

    def choice(self) -> str:
        return self.reference_combo.currentData() or ZERO_CHOICE

    def set_history(self, history) -> None:
        """The renders of this session (newest first) as references; the choice is kept."""
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
        combo.setCurrentIndex(max(combo.findData(chosen), 0))
        combo.blockSignals(False)

    def show_pair(self, reference, main, reference_label: str) -> str:
        """Show ``reference`` (left) and ``main`` (right), two render results; "" or what failed."""
        from difflora_gui.preview.video_io import read_video

        try:
            left, fps = read_video(reference.video)
            right, _ = read_video(main.video)
        except (UserError, OSError) as exc:
            return str(exc)
        fps = int(round(fps)) or main.request.fps
        self.swipe.set_clips(left, right, fps, reference_label, f"strength {strengths_text(main.request)}")
        self.note.setText(f"Left: {reference_label} · right: the render on show.")
        return ""

    def waiting(self, text: str) -> None:
        self.note.setText(text)
