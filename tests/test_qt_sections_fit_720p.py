"""At 1280×720 with the Jobs and Log docks open (the tightest layout a user gets), no section
scrolls sideways and the buttons a user moves on with are drawn whole."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QAbstractButton, QScrollArea

from difflora_gui.qt.testing import close_window, make_main_window

SECTIONS = ("dataset", "train", "merge", "preview", "compare")
#: the room each section's panel keeps beyond its widest row at 1280×720
SPARE_PX = 12
#: buttons that sat at the right edge of a row and were cut off before
EDGE_BUTTONS = {
    "dataset": ("tool-export_musubi", "tool-check_pairs", "checkPairsButton"),
    "preview": ("previewStrengthGrid", "previewRenderButton", "previewCancelButton"),
}


@pytest.fixture
def window(qtbot, monkeypatch):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    window.devices.set_devices([])
    window.resize(1280, 720)
    yield window
    close_window(window, dialogs)


@pytest.mark.parametrize("section", SECTIONS)
def test_no_section_scrolls_sideways_at_1280_by_720_with_the_docks_open(window, qtbot, section):
    window.show_section(section)
    qtbot.wait(50)
    assert window.jobs_dock.isVisible() and window.log_dock.isVisible()
    wide = [
        f"{area.objectName() or type(area.widget()).__name__}: {area.horizontalScrollBar().maximum()} px"
        for area in window.findChildren(QScrollArea)
        if area.isVisible() and area.horizontalScrollBar().maximum() > 0
    ]
    assert wide == []
    # and with room to spare: another font or a plugin's longer title must not tip it over
    for area in window.findChildren(QScrollArea):
        if area.isVisible() and area.objectName().endswith("PanelScroll"):
            needed = area.widget().minimumSizeHint().width()
            assert needed <= area.viewport().width() - SPARE_PX, (area.objectName(), needed)
    for name in EDGE_BUTTONS.get(section, ()):
        button = window.findChild(QAbstractButton, name)
        assert button is not None and button.isVisible(), name
        assert button.visibleRegion().boundingRect() == button.rect(), name
