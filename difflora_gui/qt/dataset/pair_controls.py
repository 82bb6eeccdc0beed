"""The edit controls under the pair view (include, swap, replace, caption) and the scores line.

:class:`PairControls` only asks: each control calls the :class:`~difflora_gui.qt.dataset.edits.DatasetEditor`
the pair view was given, and shows the pair again when the editor reports a change (also after an
undo). The caption is committed when the user presses Enter or leaves the field, as one undo step.
:func:`scores_text` writes a pair's check scores (D2's ``PairScores``, or its JSON form) as one line.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset.model import MEDIA_SUFFIXES, Pair
from difflora_gui.errors import UserError

CAPTION_HINT = "Caption (empty trains without one, the model card's choice) — Enter to keep"


def _get(scores, *names):
    for name in names:
        value = scores.get(name) if isinstance(scores, dict) else getattr(scores, name, None)
        if value is not None:
            return value
    return None


def _pair_of_numbers(value) -> tuple[float, float] | None:
    if isinstance(value, dict):
        value = (value.get("dx"), value.get("dy"))
    if isinstance(value, (tuple, list)) and len(value) >= 2 and all(isinstance(v, Real) for v in value[:2]):
        return float(value[0]), float(value[1])
    return None


def scores_text(scores) -> str:
    """``SSIM 0.912 · MAD 4.1 · shift +12.0, -0.5 px · Lab drift ΔL +0.3 Δa -6.2 Δb +1.0 · ⚑ B is greener``."""
    if scores is None:
        return "Not checked yet (run Check to score the pairs)."
    parts: list[str] = []
    ssim = _get(scores, "ssim")
    if isinstance(ssim, Real):
        parts.append(f"SSIM {ssim:.3f}")
    mad = _get(scores, "mad")
    if isinstance(mad, Real):
        parts.append(f"MAD {mad:.1f}")
    shift = _pair_of_numbers(_get(scores, "shift_source_px", "shift_source", "shift_px", "shift"))
    if shift is not None:
        parts.append(f"shift {shift[0]:+.1f}, {shift[1]:+.1f} px")
    drift = _get(scores, "lab_drift", "drift", "lab")
    if isinstance(drift, dict):
        drift = (drift.get("dL"), drift.get("da"), drift.get("db"))
    if isinstance(drift, (tuple, list)) and len(drift) == 3 and all(isinstance(v, Real) for v in drift):
        parts.append(f"Lab drift ΔL {drift[0]:+.1f} Δa {drift[1]:+.1f} Δb {drift[2]:+.1f}")
    flags = _get(scores, "flags") or []
    texts = []
    for flag in flags:
        text = _get(flag, "text", "code") if not isinstance(flag, str) else flag
        if text:
            texts.append(str(text))
    parts.append("⚑ " + "; ".join(texts) if texts else "no flags")
    return " · ".join(parts)


class PairControls(QWidget):
    """Include, Swap A and B, Replace A…/B… and the caption of the pair shown; they call the editor."""

    refused = Signal(str)  # a replace that was refused (the message shown)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._editor = None
        self._pair: Pair | None = None
        self._shown_caption = ""
        self.include_box = QCheckBox("Include")
        self.include_box.setToolTip("Train on this pair and export it (unticked: excluded, kept in the set)")
        self.swap_button = QPushButton("Swap A↔B")
        self.swap_button.setToolTip("A is the side with the concept, B without it: swap them in this pair")
        self.replace_a_button = QPushButton("Replace A…")
        self.replace_b_button = QPushButton("Replace B…")
        for side, button in (("a", self.replace_a_button), ("b", self.replace_b_button)):
            button.setToolTip(f"Point {side.upper()} at another file (the files themselves are not changed)")
            button.clicked.connect(lambda _=False, s=side: self.ask_replace(s))
        self.caption_edit = QLineEdit()
        self.caption_edit.setPlaceholderText(CAPTION_HINT)
        self.caption_edit.setClearButtonEnabled(True)
        self.caption_edit.setToolTip(
            "The pair's caption; Enter or leaving the field keeps it (one undo step)"
        )
        self.include_box.toggled.connect(self._include_toggled)
        self.swap_button.clicked.connect(self._swap)
        self.caption_edit.editingFinished.connect(self.commit_caption)

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.include_box)
        row.addWidget(self.swap_button)
        row.addWidget(self.replace_a_button)
        row.addWidget(self.replace_b_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.caption_edit)
        self.show_pair(None)

    def set_editor(self, editor) -> None:
        self._editor = editor
        self._update_enabled()

    def show_pair(self, pair: Pair | None) -> None:
        """Show the pair's include flag and caption (no edit is made)."""
        self._pair = pair
        self.include_box.blockSignals(True)
        self.include_box.setChecked(bool(pair and pair.include))
        self.include_box.blockSignals(False)
        # a caption being typed (focused, changed since shown) is not overwritten; anything else follows the pair
        typing = self.caption_edit.hasFocus() and self.caption_edit.text() != self._shown_caption
        if not typing or pair is None:
            self._shown_caption = pair.caption if pair else ""
            self.caption_edit.setText(self._shown_caption)
        self._update_enabled()

    def _update_enabled(self) -> None:
        usable = self._pair is not None and self._editor is not None
        for widget in (
            self.include_box,
            self.swap_button,
            self.replace_a_button,
            self.replace_b_button,
            self.caption_edit,
        ):
            widget.setEnabled(usable)

    # --- actions -------------------------------------------------------------------------------

    def _include_toggled(self, checked: bool) -> None:
        if self._pair is not None and self._editor is not None:
            self._editor.set_included([self._pair.id], checked)

    def _swap(self) -> None:
        if self._pair is not None and self._editor is not None:
            self._editor.swap([self._pair.id])

    def commit_caption(self) -> None:
        """Keep the caption typed (one undo step); nothing when it did not change."""
        if self._pair is None or self._editor is None:
            return
        text = self.caption_edit.text().strip()
        if text != self._pair.caption:
            self._shown_caption = text
            self._editor.set_captions([self._pair.id], text)

    def ask_replace(self, side: str) -> None:
        if self._pair is None:
            return
        item = self._pair.item(side)
        start = str(Path(item.path).parent) if item is not None else ""
        patterns = " ".join(f"*{s}" for s in MEDIA_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(
            self, f"Replace {side.upper()} of pair {self._pair.id}", start, f"Images and videos ({patterns})"
        )
        if path:
            self.replace(side, path)

    def replace(self, side: str, path: str) -> bool:
        """Replace one side with ``path``; a file that cannot be used is refused with one message."""
        if self._pair is None or self._editor is None:
            return False
        try:
            return bool(self._editor.replace(self._pair.id, side, path))
        except UserError as error:
            message = str(error)
            QMessageBox.warning(self, "Replace refused", message)
            self.refused.emit(message)
            return False


__all__ = ["PairControls", "scores_text"]
