"""Autosave and crash recovery for the open project.

Each running window owns a *session* in ``<data dir>/autosave/``: a lock file (``QLockFile``,
which knows when its owner process has died, on Windows too), and while the project has unsaved
changes an autosave copy ``<session>.difflora`` plus ``<session>.json`` saying which project file
it belongs to and when it was written. A clean exit deletes all three.

At start-up, a session whose lock is free (its process is gone) and whose autosave is newer than
the project file it belongs to is *recoverable*: the window offers to restore it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QLockFile

from difflora_gui.fileio import atomic_write_json
from difflora_gui.project import PROJECT_SUFFIX, Project
from difflora_gui.settings import data_dir


def autosave_dir() -> Path:
    return data_dir() / "autosave"


@dataclass(frozen=True)
class Recoverable:
    """Unsaved work left behind by a session that did not close cleanly."""

    session: str
    autosave_path: Path
    info_path: Path
    source: Path | None  # the project file it belongs to (None: never saved)
    name: str
    saved_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        where = f" ({self.source})" if self.source else " (never saved)"
        return f"'{self.name}'{where}, autosaved {when}"


class AutosaveSession:
    """This window's autosave slot."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else autosave_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._lock = QLockFile(str(self.folder / f"{self.id}.lock"))
        self._lock.setStaleLockTime(0)  # never stale by age: only a dead owner frees a lock
        self.locked = self._lock.tryLock(0)
        self.autosave_path = self.folder / f"{self.id}{PROJECT_SUFFIX}"
        self.info_path = self.folder / f"{self.id}.json"
        self.last_saved_at: float | None = None

    def save(self, project: Project) -> bool:
        """Write the autosave if the project has unsaved changes; drop it if it has none."""
        if not project.dirty:
            self.clear()
            return False
        project.write_copy(self.autosave_path)
        self.last_saved_at = time.time()
        atomic_write_json(
            self.info_path,
            {
                "session": self.id,
                "source": str(project.path) if project.path is not None else None,
                "name": project.display_name,
                "saved_at": self.last_saved_at,
            },
        )
        return True

    def clear(self) -> None:
        """Delete this session's autosave (the project was saved, or its changes discarded)."""
        for path in (self.info_path, self.autosave_path):
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        """A clean exit: nothing to recover from this session."""
        self.clear()
        if self.locked:
            self._lock.unlock()
            self.locked = False


def find_recoverable(folder: Path | None = None, *, exclude: str | None = None) -> list[Recoverable]:
    """Autosaves of dead sessions that are newer than their project file, newest first."""
    folder = Path(folder) if folder is not None else autosave_dir()
    if not folder.is_dir():
        return []
    found = []
    for info_path in folder.glob("*.json"):
        session = info_path.stem
        if session == exclude:
            continue
        lock = QLockFile(str(folder / f"{session}.lock"))
        lock.setStaleLockTime(0)
        if not lock.tryLock(0):
            continue  # its window is still open
        lock.unlock()
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            saved_at = float(info["saved_at"])
            source = Path(info["source"]) if info.get("source") else None
            name = str(info.get("name") or session)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours or damaged: leave it alone
        autosave_path = folder / f"{session}{PROJECT_SUFFIX}"
        if not autosave_path.is_file():
            continue
        if source is not None and source.is_file() and source.stat().st_mtime >= saved_at:
            continue  # the project was saved after this autosave: nothing is lost
        found.append(Recoverable(session, autosave_path, info_path, source, name, saved_at))
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found


def restore(recoverable: Recoverable) -> Project:
    """Load a recoverable autosave as an unsaved project belonging to its original file."""
    project = Project.load(recoverable.autosave_path)
    project.path = recoverable.source
    project.mark_dirty()
    return project


def discard(recoverable: Recoverable) -> None:
    for path in (
        recoverable.info_path,
        recoverable.autosave_path,
        recoverable.info_path.with_suffix(".lock"),
    ):
        with contextlib.suppress(OSError):
            path.unlink()
