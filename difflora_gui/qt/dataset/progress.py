"""The Dataset section's progress bars: a job's fraction and text on a QProgressBar."""

from __future__ import annotations

from PySide6.QtWidgets import QProgressBar


def show_progress(bar: QProgressBar, fraction: float | None, text: str) -> None:
    """Show ``fraction`` (None: busy, no known end) with ``text`` on ``bar``."""
    if fraction is None:
        bar.setRange(0, 0)
    else:
        bar.setRange(0, 1000)
        bar.setValue(round(1000 * fraction))
    bar.setFormat(text or "%p%")
