"""The grid canvas without its cells: background, gaps and the axis-label bands, as one RGB image.

An export renders this once and pastes the cells over it on every frame, so the labels cost
nothing per frame. Text is drawn with OpenCV's antialiased Hershey font, sized to the band and
elided ("...") when a label does not fit. The Hershey font has only ASCII glyphs, so other
characters are transliterated first (``·`` → ``-``, ``é`` → ``e``; what has no ASCII form → ``?``).
``cv2`` is imported inside the functions (core module).
"""

from __future__ import annotations

import unicodedata

import numpy as np

from difflora_gui.compare.grid_canvas import BACKGROUND_RGB, LABEL_RGB, GridGeometry
from difflora_gui.compare.grid_spec import short_label

#: characters with a readable ASCII stand-in (NFKD leaves them alone)
_ASCII = {"·": "-", "•": "-", "×": "x", "…": "...", "–": "-", "—": "-", "−": "-", "±": "+/-", "µ": "u"}
ELLIPSIS = "..."
#: the text's cap height as a share of the band (the rest is margin)
TEXT_SHARE = 0.45
#: below this scale text is elided rather than shrunk further (about 8 px tall)
MIN_SCALE = 0.3


def ascii_label(text: str) -> str:
    """``text`` in the characters the Hershey font can draw."""
    out = []
    for char in str(text):
        char = _ASCII.get(char, char)
        if not char.isascii():
            decomposed = unicodedata.normalize("NFKD", char)
            char = "".join(c for c in decomposed if c.isascii() and not unicodedata.combining(c)) or "?"
        out.append(char if char.isprintable() else " ")
    return "".join(out).strip()


def _font():
    import cv2

    return cv2.FONT_HERSHEY_SIMPLEX


def fit_label(
    text: str, width: int, height: int, *, max_scale: float | None = None
) -> tuple[str, float, int]:
    """The text (elided if need be), font scale and thickness that fit a ``width`` × ``height`` box."""
    import cv2

    text = ascii_label(text)
    (_w, cap), _base = cv2.getTextSize("Hg", _font(), 1.0, 1)
    scale = height * TEXT_SHARE / max(cap, 1)
    if max_scale is not None:
        scale = min(scale, max_scale)
    thickness = max(1, round(scale * 1.4))
    room = max(1, width - max(4, round(cap * scale)))  # a margin of about half the text height a side
    while scale > MIN_SCALE and cv2.getTextSize(text, _font(), scale, thickness)[0][0] > room:
        scale = max(MIN_SCALE, scale * 0.93)
        thickness = max(1, round(scale * 1.4))
    shown = text
    while shown and cv2.getTextSize(shown, _font(), scale, thickness)[0][0] > room:
        text = text[:-1].rstrip()
        shown = text + ELLIPSIS if text else ""
    return shown, scale, thickness


def draw_label(canvas: np.ndarray, rect: tuple[int, int, int, int], text: str, *, scale: float | None = None):
    """Draw ``text`` centred in ``rect`` (x, y, w, h) of the RGB ``canvas``, in place."""
    import cv2

    x, y, w, h = rect
    if not text or w < 4 or h < 4:
        return
    shown, size, thickness = fit_label(text, w, h, max_scale=scale)
    if shown != ascii_label(text):  # elided: the values alone may fit ("-1", not "stre...")
        shown, size, thickness = fit_label(short_label(text), w, h, max_scale=scale)
    if not shown:
        return
    (tw, th), _baseline = cv2.getTextSize(shown, _font(), size, thickness)
    origin = (x + (w - tw) // 2, y + (h + th) // 2)
    cv2.putText(canvas, shown, origin, _font(), size, LABEL_RGB, thickness, cv2.LINE_AA)


def label_canvas(geometry: GridGeometry) -> np.ndarray:
    """The grid's RGB canvas (H, W, 3 uint8): background everywhere, label text in the bands."""
    canvas = np.empty((geometry.height, geometry.width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    # row labels use the column band's text size (a tall row band would otherwise get huge text)
    band = geometry.top or max(20, min(geometry.cell_w, geometry.cell_h) * 0.09)
    _shown, scale, _t = fit_label("Hg", 10**6, int(band))
    for col, text in enumerate(geometry.column_labels):
        if geometry.top:
            draw_label(canvas, geometry.column_label_rect(col), text, scale=scale)
    for row, text in enumerate(geometry.row_labels):
        if geometry.left:
            x, y, w, h = geometry.row_label_rect(row)
            draw_label(canvas, (x, y, w, h), text, scale=scale)
    return canvas
