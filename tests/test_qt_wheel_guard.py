"""The app-wide wheel guard: a wheel over an unfocused input in a scroll area scrolls, changes nothing."""

from __future__ import annotations

import pytest
from merge_panel_helpers import PanelWindow
from PySide6.QtCore import QCoreApplication, QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QScrollArea, QSpinBox, QVBoxLayout, QWidget

from difflora_gui.merge.demo_pair import make_demo_pair
from difflora_gui.qt.app import install_wheel_guard
from difflora_gui.qt.wheel_guard import WheelGuard


def wheel(widget, steps: int = -1) -> None:
    """One wheel notch (down for negative ``steps``) over the middle of ``widget``."""
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QCoreApplication.sendEvent(widget, event)


@pytest.fixture
def form(qtbot):
    """A short scroll area over a tall form with a combo box and a spin box in it."""
    install_wheel_guard()
    area = QScrollArea()
    area.setWidgetResizable(True)
    body = QWidget()
    layout = QVBoxLayout(body)
    name = QLineEdit()  # takes the focus when the window is shown, as a first field would
    layout.addWidget(name)
    combo = QComboBox()
    combo.addItems(["fixed", "energy", "sv_cumulative"])
    spin = QSpinBox()
    spin.setRange(0, 64)
    spin.setValue(4)
    layout.addWidget(combo)
    layout.addWidget(spin)
    layout.addSpacing(2000)
    area.setWidget(body)
    area.resize(300, 200)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    name.setFocus()
    assert not combo.hasFocus() and not spin.hasFocus()
    return area, combo, spin


def test_one_guard_per_application(qapp):
    assert install_wheel_guard() is install_wheel_guard()
    assert len(QApplication.instance().findChildren(WheelGuard)) == 1


def test_a_wheel_over_unfocused_inputs_scrolls_the_area_and_changes_nothing(form):
    area, combo, spin = form
    bar = area.verticalScrollBar()
    assert bar.value() == 0
    wheel(combo)
    wheel(spin)
    assert combo.currentText() == "fixed" and spin.value() == 4
    assert bar.value() > 0  # the column scrolled instead


def test_a_focused_input_still_takes_the_wheel(form, qtbot):
    _area, combo, spin = form
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    wheel(spin, +1)
    assert spin.value() == 5
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    wheel(combo)
    assert combo.currentText() == "energy"


def test_the_workbench_settings_ignore_the_wheel_and_copy_command_is_unchanged(qtbot, monkeypatch, tmp_path):
    folder = tmp_path / "loras"
    folder.mkdir()
    a, b = make_demo_pair(folder / "a.safetensors", folder / "b.safetensors", seed=1)
    window = PanelWindow(qtbot, monkeypatch, tmp_path)
    try:
        window.window.resize(1280, 720)
        panel = window.panel
        window.load(a, b)
        command = panel.command_line(windows=False)
        scroll = panel.findChild(QScrollArea, "mergeSettingsScroll")
        mode = panel.rank_form.editors["rank_mode"].editor
        rank = panel.rank_form.editors["rank"].editor
        assert scroll.isAncestorOf(mode) and not mode.hasFocus()
        before = (mode.currentText(), rank.value())
        for widget in (mode, rank):
            wheel(widget)  # down: the next rank mode, a lower rank, if the input took it
        assert (mode.currentText(), rank.value()) == before
        assert panel.command_line(windows=False) == command
    finally:
        window.close()
