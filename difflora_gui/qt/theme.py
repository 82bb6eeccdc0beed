"""The dark theme (Fusion style + a dark palette + ``resources/style.qss``) and the app's icons."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from difflora_gui import paths

#: colours shared with code that draws (log levels, status text)
COLORS = {
    "window": "#1f2124",
    "base": "#17181b",
    "alternate": "#222428",
    "button": "#2a2d32",
    "text": "#e3e5e8",
    "muted": "#8b9098",
    "disabled": "#6d7178",
    "accent": "#5b8def",
    "ok": "#72d38f",
    "warning": "#e0b060",
    "error": "#ff7b7b",
}


def resources_dir() -> Path:
    """The app's ``resources/`` folder (see :mod:`difflora_gui.paths`)."""
    return paths.resources_dir()


@cache
def icon(name: str) -> QIcon:
    """``resources/icons/<name>.svg`` as an icon (an empty icon if the file is missing)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def dark_palette() -> QPalette:
    palette = QPalette()
    role = QPalette.ColorRole
    group = QPalette.ColorGroup
    colors = {
        role.Window: COLORS["window"],
        role.WindowText: COLORS["text"],
        role.Base: COLORS["base"],
        role.AlternateBase: COLORS["alternate"],
        role.ToolTipBase: "#2b2e33",
        role.ToolTipText: COLORS["text"],
        role.PlaceholderText: "#80858d",
        role.Text: COLORS["text"],
        role.Button: COLORS["button"],
        role.ButtonText: COLORS["text"],
        role.BrightText: "#ff6b6b",
        role.Link: "#7fb0ff",
        role.LinkVisited: "#b29cff",
        role.Highlight: "#3d6fd1",
        role.HighlightedText: "#ffffff",
        role.Light: "#3a3e45",
        role.Midlight: "#32363c",
        role.Mid: "#2a2d32",
        role.Dark: "#141517",
        role.Shadow: "#0b0b0c",
    }
    for color_role, value in colors.items():
        palette.setColor(color_role, QColor(value))
    for color_role in (role.WindowText, role.Text, role.ButtonText, role.HighlightedText):
        palette.setColor(group.Disabled, color_role, QColor(COLORS["disabled"]))
    palette.setColor(group.Disabled, role.Highlight, QColor("#2a3550"))
    return palette


#: the keyboard focus, visible on every input (a 2 px ring, brighter than the default button's border);
#: the padding shrinks by the extra pixel so nothing moves when the focus arrives
FOCUS_COLOR = "#9cc2ff"
FOCUS_RULES = f"""
QPushButton:focus, QToolButton:focus {{
    border: 2px solid {FOCUS_COLOR};
    padding: 3px 11px;
}}
QLineEdit:focus, QComboBox:focus {{
    border: 2px solid {FOCUS_COLOR};
    padding: 2px 5px;
}}
QSpinBox:focus, QDoubleSpinBox:focus, QPlainTextEdit:focus, QListWidget:focus, QTableWidget:focus {{
    border: 2px solid {FOCUS_COLOR};
}}
QCheckBox:focus, QRadioButton:focus, QSlider:focus {{
    background: #26344f;
    border-radius: 3px;
}}
"""


def style_sheet() -> str:
    """``resources/style.qss`` and the focus ring (which comes last, so it wins)."""
    path = resources_dir() / "style.qss"
    try:
        sheet = path.read_text(encoding="utf-8")
    except OSError:  # a missing sheet leaves the palette-only theme, which is still usable
        sheet = ""
    return sheet + FOCUS_RULES


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(style_sheet())
    app_icon = icon("app")
    if not app_icon.isNull():
        app.setWindowIcon(app_icon)


def section_card(title: str):
    """A titled card of a section's form (the ``sectionCard`` frame the style sheet draws):
    ``(frame, layout)``, the heading already in the layout."""
    from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout

    frame = QFrame()
    frame.setObjectName("sectionCard")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 10, 12, 10)
    layout.setSpacing(6)
    heading = QLabel(title)
    heading.setObjectName("cardHeading")
    layout.addWidget(heading)
    return frame, layout


def snug(*buttons):
    """Push buttons as wide as their text needs instead of the style's 80 px floor, so a row of short
    ones (All / None / Invert, Add / Remove / Up / Down) fits a column at 1280×720."""
    for button in buttons:
        text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        button.setMinimumWidth(button.fontMetrics().horizontalAdvance(text) + 24)
    return buttons


def narrow_combo(combo, characters: int = 12):
    """A combo box whose long items do not widen its column: it shows ``characters`` and elides the
    rest, while its open list shows every item whole."""
    combo.setSizeAdjustPolicy(combo.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    return combo
