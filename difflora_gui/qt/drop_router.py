"""Which panel takes which dropped file: ``.difflora`` opens the project, other suffixes go to panels.

A panel takes files by listing their suffixes in ``PanelSpec.accepts`` and having an
``accept_files(paths)`` method on its widget. When several panels take a suffix, the one in the
section on screen wins, then the sections' order, then ``PanelSpec.order``. :func:`choose_panel`
is the choice alone; :class:`DropRouter` hands the files over and reports what nobody took.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from difflora_gui.project import PROJECT_SUFFIX
from difflora_gui.qt.sections import SECTION_INFO, PanelEntry
from difflora_gui.specs import FOLDER_ACCEPTS, SECTIONS

PROJECT, UNHANDLED = "project", "unhandled"
#: what a panel lists in ``PanelSpec.accepts`` to take dropped folders (``FOLDER_ACCEPTS`` in specs)
FOLDER = FOLDER_ACCEPTS


class DropTarget(Protocol):
    """What the router needs from the window."""

    panels: dict[str, PanelEntry]

    def current_section(self) -> str: ...
    def show_section(self, key: str) -> None: ...
    def show_panel(self, entry: PanelEntry) -> None: ...
    def open_project(self, path: str | Path) -> bool: ...
    def log(self, text: str, level: str = "info") -> None: ...
    def log_detail(self, text: str) -> None: ...
    def status(self, text: str, timeout_ms: int) -> None: ...


def choose_panel(entries: Iterable[PanelEntry], suffix: str, current_section: str) -> PanelEntry | None:
    """The panel that takes files with this suffix: one in the current section first."""
    suffix = suffix.lower()
    candidates = [e for e in entries if e.ok and suffix in e.accepts]
    if not candidates:
        return None
    candidates.sort(
        key=lambda e: (
            e.spec.section != current_section,
            SECTIONS.index(e.spec.section),
            e.spec.order,
            e.spec.title,
        )
    )
    return candidates[0]


class DropRouter:
    """Sends dropped (or opened) files to the project or to the panels of ``target``."""

    def __init__(self, target: DropTarget):
        self.target = target

    def panel_for_suffix(self, suffix: str) -> PanelEntry | None:
        return choose_panel(self.target.panels.values(), suffix, self.target.current_section())

    def route(self, paths: Iterable[str | Path]) -> dict[str, list[Path]]:
        """Send files where they belong; returns ``{panel name | "project" | "unhandled": paths}``.

        ``.difflora`` opens the project; other files go, grouped, to the panel whose
        ``PanelSpec.accepts`` lists their suffix. Files no panel takes are named in the status bar
        and the log.
        """
        target = self.target
        routed: dict[str, list[Path]] = {}
        paths = [Path(p) for p in paths]
        projects = [p for p in paths if p.suffix.lower() == PROJECT_SUFFIX]
        if projects:
            if len(projects) > 1:
                target.log(f"Dropped {len(projects)} projects; opening only {projects[0].name}", "warning")
            if target.open_project(projects[0]):
                routed[PROJECT] = [projects[0]]
        by_panel: dict[str, list[Path]] = {}
        unhandled: list[Path] = []
        for path in paths:
            if path.suffix.lower() == PROJECT_SUFFIX:
                continue
            if path.is_dir():
                entry = self.panel_for_suffix(FOLDER)
            else:
                entry = self.panel_for_suffix(path.suffix) if path.suffix else None
            if entry is None:
                unhandled.append(path)
            else:
                by_panel.setdefault(entry.spec.name, []).append(path)
        for name, files in by_panel.items():
            taken = self._hand_over(target.panels[name], files)
            if taken:
                routed[name] = files
            elif taken is None:
                unhandled.extend(files)
        if unhandled:
            routed[UNHANDLED] = unhandled
            suffixes = sorted({"folder" if p.is_dir() else (p.suffix.lower() or p.name) for p in unhandled})
            message = f"No panel takes {', '.join(suffixes)} files yet ({len(unhandled)} file(s) not opened)"
            target.status(message, 10000)
            target.log(message + ": " + ", ".join(p.name for p in unhandled), "warning")
        return routed

    def _hand_over(self, entry: PanelEntry, files: list[Path]) -> bool | None:
        """True: taken; False: the panel failed (logged); None: it has no ``accept_files``."""
        target = self.target
        accept = getattr(entry.widget, "accept_files", None)
        if accept is None:
            target.log(f"Panel '{entry.spec.title}' lists {entry.accepts} but has no accept_files()", "error")
            return None
        target.show_section(entry.spec.section)
        target.show_panel(entry)
        try:
            accept(list(files))
        except Exception as exc:  # a plugin's bug must not take the window down
            target.log(f"Panel '{entry.spec.title}' failed to take {len(files)} file(s): {exc}", "error")
            target.log_detail(traceback.format_exc())
            return False
        target.log(f"{len(files)} file(s) → {SECTION_INFO[entry.spec.section].title} ▸ {entry.spec.title}")
        return True
