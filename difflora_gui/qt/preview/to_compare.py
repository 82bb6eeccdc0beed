"""Preview → Compare in one click (issue 16's demo path): "Strength grid…", beside the Player and
A/B tabs, opens the Compare section with the Preview's LoRA stack, selected entry and render
settings, and (if its axes are empty) strengths -2…2 × the Preview's seed and the next."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

COMPARE_PANEL = "compare-grid"
GRID_TIP = "Open Compare with this stack and these settings: strengths -2…2 × two seeds"


def add_grid_button(panel) -> QPushButton:
    """Put "Strength grid…" in the corner of ``panel``'s Player/A/B tabs: room the render bar,
    already full at 1280×720 with the docks open, does not have."""
    button = QPushButton("Strength grid…")
    button.setObjectName("previewStrengthGrid")
    button.setToolTip(GRID_TIP)
    panel.tabs.setCornerWidget(button, Qt.Corner.TopRightCorner)
    button.clicked.connect(lambda: open_compare(panel))
    return button


def open_compare(panel) -> bool:
    """Show the Compare section filled in from ``panel`` (a PreviewPanel); False: no Compare panel."""
    window = panel.services.window
    entry = getattr(window, "panels", {}).get(COMPARE_PANEL) if window is not None else None
    if entry is None or not entry.ok or not hasattr(entry.widget, "take_settings"):
        panel.set_status("The Compare section's panel is not installed (Tools ▸ Plugins)", "error")
        return False
    window.show_section("compare")
    kept = entry.widget.take_settings(
        panel.stack.items(), panel.stack.selected_index(), panel.render_form.values()
    )
    text = "Compare: the Preview's stack and settings filled in"
    panel.services.show_status(text + ("; its axes kept as they were" if kept else ""))
    return True
