"""Merge → Preview: "Preview it" puts the file the last merge wrote in the Preview section's stack.

The button sits in the run bar's status row, after "Open output folder", at a fixed size, so the
status text beside it never moves it. It is enabled only while the status line shows a merge's
result and every file of that result is still on disk as the merge left it (same size and
modification time); otherwise it is disabled and its tooltip says why. A file already in the
Preview's stack is selected there, not added again (the stack itself takes duplicates).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QPushButton, QScrollArea, QSizePolicy, QWidget

#: the Preview section's panel (plugins/preview_section.py)
PREVIEW_PANEL = "preview-player"
READY_TIP = "Open the Preview section with this merge's file added to its LoRA stack and selected"
NO_RESULT_TIP = "Preview it is enabled once a merge has written its file (and it is the result shown)"


def merged_files(result) -> list[tuple[Path, str]]:
    """The LoRA files a merge wrote, each with the Preview expert it goes into (Wan2.2: per expert)."""
    by_expert = getattr(result, "by_expert", None) or {}
    if by_expert:
        return [
            (Path(by_expert[expert].output), expert)
            for expert in ("high", "low")
            if expert in by_expert and by_expert[expert].output
        ]
    output = getattr(result, "output", None)
    return [(Path(output), "both")] if output else []


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


class PreviewLink:
    """The "Preview it" button and the merge result it opens in the Preview section."""

    def __init__(self, services):
        self.services = services
        self._files: list[tuple[Path, str]] = []
        self._stamps: dict[Path, tuple[int, int] | None] = {}
        self.button = QPushButton("Preview it")
        self.button.setObjectName("previewMergeButton")
        self.button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.button.clicked.connect(self.open_in_preview)
        self.refresh()

    # --- which result --------------------------------------------------------------------------

    def set_result(self, result) -> None:
        """The merge whose result the status line now shows (its files as they are on disk now)."""
        self._files = merged_files(result)
        self._stamps = {path: _stamp(path) for path, _expert in self._files}
        self.refresh()

    def clear(self) -> None:
        """The status line no longer shows a merge's result."""
        self._files, self._stamps = [], {}
        self.refresh()

    def problem(self) -> str:
        """Why there is nothing to preview ("" when the button can open the files)."""
        if not self._files:
            return NO_RESULT_TIP
        for path, _expert in self._files:
            stamp = _stamp(path)
            if stamp is None:
                return f"{path.name} is no longer there: merge again to preview it"
            if stamp != self._stamps.get(path):
                return f"{path.name} changed on disk since this merge wrote it: merge again to preview it"
        return ""

    def refresh(self) -> None:
        problem = self.problem()
        self.button.setEnabled(not problem)
        self.button.setToolTip(problem or READY_TIP)

    # --- opening the Preview -------------------------------------------------------------------

    def open_in_preview(self) -> bool:
        """Show the Preview section with the files in its stack (added once) and the first selected."""
        self.refresh()
        problem = self.problem()
        if problem:
            self.services.show_status(f"Preview: {problem}")
            return False
        window = self.services.window
        entry = getattr(window, "panels", {}).get(PREVIEW_PANEL) if window is not None else None
        if entry is None or not entry.ok or not hasattr(entry.widget, "accept_files"):
            self.services.show_status(
                "Preview: the Preview section's panel is not installed (Tools ▸ Plugins)"
            )
            return False
        panel = entry.widget
        window.show_section(entry.spec.section)
        if hasattr(window, "show_panel"):
            window.show_panel(entry)
        added, present, first = [], [], -1
        for path, expert in self._files:
            index = _index_in_stack(panel.stack, path)
            if index >= 0:
                present.append(path.name)
            else:
                panel.accept_files([path])
                index = _index_in_stack(panel.stack, path)
                if index < 0:  # refused (the stack is full): the Preview's own status line says why
                    self.services.show_status(f"Preview: {path.name} was not added to the stack")
                    return False
                added.append(path.name)
                if expert != "both":
                    panel.stack.select(index)
                    panel.stack.update_selected("expert", expert=expert)
            first = index if first < 0 else first
        panel.stack.select(first)
        _scroll_into_view(panel.stack)
        if added:
            self.services.show_status(f"Preview: {' and '.join(added)} added to the stack")
        else:
            self.services.show_status(f"Preview: {' and '.join(present)} selected (already in the stack)")
        return True


def _index_in_stack(stack, path: Path) -> int:
    """The row of ``path`` in the Preview stack (-1: not there); the stack keeps resolved paths."""
    wanted = path.resolve()
    for index, item in enumerate(stack.items()):
        if Path(item.entry.file).resolve() == wanted:
            return index
    return -1


def _scroll_into_view(widget: QWidget) -> None:
    """Scroll the Preview's settings so that the stack (where the file now is) shows, once laid out."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        scroll = parent
        QTimer.singleShot(0, widget, lambda: scroll.ensureWidgetVisible(widget, 0, 0))
