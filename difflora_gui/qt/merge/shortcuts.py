"""The workbench's keyboard: Analyze, Merge and Cancel shortcuts, and a tab order that follows the layout.

Ctrl+Return analyses, Ctrl+Shift+Return (or Ctrl+M) merges, Esc cancels the running job; they work
anywhere in the panel and do what the button would; each is on only while its button is enabled. The tab order is
rebuilt from the layouts, top to bottom, whenever widgets are added (the block grid is made when the
inputs are read, which used to put it at the end of the chain).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QComboBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QWidget,
)

from difflora_gui.qt.merge.run_bar import ANALYZE_KEYS, CANCEL_KEYS, MERGE_KEYS

SHORTCUTS = (
    (ANALYZE_KEYS, "analyze_button"),
    ("Ctrl+Enter", "analyze_button"),
    (MERGE_KEYS, "merge_button"),
    ("Ctrl+Shift+Enter", "merge_button"),
    ("Ctrl+M", "merge_button"),
    (CANCEL_KEYS, "cancel_button"),
)


def install_shortcuts(panel: QWidget) -> list[QShortcut]:
    """The run bar's shortcuts, active while the focus is anywhere in ``panel``."""
    made = []
    for keys, button_name in SHORTCUTS:
        shortcut = QShortcut(QKeySequence(keys), panel)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        def press(name: str = button_name) -> None:
            button: QPushButton = getattr(panel, name)
            if button.isEnabled():
                button.click()

        shortcut.activated.connect(press)
        shortcut.setProperty("button", button_name)
        made.append(shortcut)
    return made


def sync_shortcuts(panel: QWidget, shortcuts: list[QShortcut]) -> None:
    """A shortcut is on only while its button is enabled (Esc is free for others while nothing runs)."""
    for shortcut in shortcuts:
        shortcut.setEnabled(getattr(panel, shortcut.property("button")).isEnabled())


def focus_chain(root: QWidget) -> list[QWidget]:
    """The widgets that take Tab under ``root``, in layout order (top to bottom, left to right)."""
    found: list[QWidget] = []

    def visit_widget(widget: QWidget) -> None:
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus and not isinstance(widget, QAbstractScrollArea):
            found.append(widget)
            if isinstance(widget, (QComboBox, QAbstractSpinBox)):
                return  # their line edit is part of them
        if isinstance(widget, QScrollArea) and widget.widget() is not None:
            visit_widget(widget.widget())
            return
        if isinstance(widget, QSplitter):
            for index in range(widget.count()):
                visit_widget(widget.widget(index))
            return
        if widget.layout() is not None:
            visit_layout(widget.layout())

    def visit_layout(layout) -> None:
        for index in range(layout.count()):
            item = layout.itemAt(index)
            if item.widget() is not None:
                visit_widget(item.widget())
            elif item.layout() is not None:
                visit_layout(item.layout())

    visit_widget(root)
    return found


def section_chain(section: QWidget) -> list[QWidget]:
    """A section's own ``focus_chain()`` when it has one (the targets box), else its layout order."""
    own = getattr(section, "focus_chain", None)
    return list(own()) if callable(own) else focus_chain(section)


def apply_tab_order(sections: list[QWidget]) -> list[QWidget]:
    """Chain the sections' widgets in this order; returns the chain."""
    chain = [widget for section in sections for widget in section_chain(section)]
    for first, second in zip(chain, chain[1:], strict=False):
        QWidget.setTabOrder(first, second)
    return chain
