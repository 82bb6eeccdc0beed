"""Where each cell and label sits on a grid's canvas, for the exported video and the grid player.

The spec's own coordinates are the horizontal layout (first axis along the columns). The vertical
layout (the model card's grids: strengths going down) swaps rows and columns. Every size is even,
so the canvas is valid yuv420p (chroma planes are half size) and each cell's chroma lands on
whole chroma pixels. Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from difflora_gui.compare.grid_spec import LAYOUTS, GridSpec
from difflora_gui.errors import UserError

#: gap between cells, in canvas pixels (even)
GAP = 4
BACKGROUND_RGB = (24, 24, 24)
LABEL_RGB = (235, 235, 235)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


@dataclass(frozen=True)
class GridGeometry:
    """Rows and columns (in the chosen layout), the cell size, the label bands and the canvas size."""

    rows: int
    cols: int
    cell_w: int
    cell_h: int
    top: int
    left: int
    gap: int
    width: int
    height: int
    column_labels: tuple[str, ...]
    row_labels: tuple[str, ...]

    def cell_rect(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the cell at ``row``, ``col`` (layout coordinates)."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise IndexError(f"no cell at row {row}, column {col} in a {self.rows} × {self.cols} grid")
        x = self.left + self.gap + col * (self.cell_w + self.gap)
        y = self.top + self.gap + row * (self.cell_h + self.gap)
        return x, y, self.cell_w, self.cell_h

    def column_label_rect(self, col: int) -> tuple[int, int, int, int]:
        x, _y, w, _h = self.cell_rect(0, col)
        return x, 0, w, self.top

    def row_label_rect(self, row: int) -> tuple[int, int, int, int]:
        _x, y, _w, h = self.cell_rect(row, 0)
        return 0, y, self.left, h

    def at(self, x: float, y: float) -> tuple[int, int] | None:
        """The (row, col) of the cell under canvas point ``x``, ``y``; None on a band or a gap."""
        for row in range(self.rows):
            for col in range(self.cols):
                cx, cy, w, h = self.cell_rect(row, col)
                if cx <= x < cx + w and cy <= y < cy + h:
                    return row, col
        return None


def layout_position(row: int, col: int, layout: str) -> tuple[int, int]:
    """A cell's (row, col) in ``layout`` from its horizontal (the spec's) position."""
    return (col, row) if layout == "vertical" else (row, col)


def spec_position(row: int, col: int, layout: str) -> tuple[int, int]:
    """The inverse of :func:`layout_position`: the spec's (row, col) of a layout position."""
    return (col, row) if layout == "vertical" else (row, col)


def grid_geometry(
    spec: GridSpec, cell_w: int, cell_h: int, *, layout: str = "horizontal", labels: bool = True
) -> GridGeometry:
    """The canvas of ``spec``'s cells of ``cell_w`` × ``cell_h`` pixels (even) in ``layout``.

    The column-label band's height and the row-label band's width follow the cell size (a label
    stays readable on a 480 × 832 cell and does not swamp a 64 × 64 one)."""
    if layout not in LAYOUTS:
        raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if cell_w < 2 or cell_h < 2 or cell_w % 2 or cell_h % 2:
        raise UserError(f"grid cells must have even sizes of at least 2 pixels, got {cell_w} × {cell_h}")
    columns, rows = spec.column_labels(), spec.row_labels()
    if layout == "vertical":
        columns, rows = rows, columns
    n_rows, n_cols = len(rows), len(columns)
    has_columns = labels and any(columns)
    has_rows = labels and any(rows)
    band = _even(min(max(20, min(cell_w, cell_h) * 0.09), 48))
    top = band if has_columns else 0
    # a row label's width from its length at the band's font size (about 0.55 em per character)
    longest = max((len(text) for text in rows), default=0)
    left = _even(min(cell_w, max(band * 2, longest * band * 0.34 + band * 0.6))) if has_rows else 0
    width = left + GAP + n_cols * (cell_w + GAP)
    height = top + GAP + n_rows * (cell_h + GAP)
    return GridGeometry(
        rows=n_rows,
        cols=n_cols,
        cell_w=cell_w,
        cell_h=cell_h,
        top=top,
        left=left,
        gap=GAP,
        width=_even(width),
        height=_even(height),
        column_labels=tuple(columns) if has_columns else ("",) * n_cols,
        row_labels=tuple(rows) if has_rows else ("",) * n_rows,
    )
