"""Plain-text tables for command output (fixed-width columns, no dependency)."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], *, right_align: Sequence[int] = ()
) -> str:
    """Columns padded to their widest cell; columns listed in ``right_align`` are right-aligned (numbers)."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells):
        parts = [
            c.rjust(w) if i in right_align else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in text_rows)])
