"""A project's workspace: the folder beside ``NAME.difflora`` that holds its heavy data (Qt-free).

``NAME.difflora.d/`` has one subfolder per kind of record (``datasets``, ``runs``, ``merges``,
``renders``, ``grids``) and one folder per record in it, made on demand. A job appends its events
to ``events.jsonl`` in its record's folder. An unsaved project's workspace lives in the per-user
data folder (``unsaved/<id>``) until the first save moves it beside the file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from difflora_gui.errors import UserError

WORKSPACE_SUFFIX = ".d"
#: ``jobs`` holds the event logs of jobs that leave no record (an analysis that writes nothing)
KINDS = ("datasets", "runs", "merges", "renders", "grids", "jobs")
EVENTS_FILE = "events.jsonl"


def workspace_root_for(project_file: Path) -> Path:
    """``NAME.difflora`` → ``NAME.difflora.d`` beside it."""
    return project_file.with_name(project_file.name + WORKSPACE_SUFFIX)


def unsaved_root() -> Path:
    """A fresh folder name for an unsaved project's workspace (not created)."""
    from difflora_gui.settings import data_dir

    return data_dir() / "unsaved" / uuid.uuid4().hex[:12]


def is_unsaved_root(root: Path) -> bool:
    from difflora_gui.settings import data_dir

    parent = os.path.dirname(os.path.abspath(root))
    return os.path.normcase(parent) == os.path.normcase(os.path.abspath(data_dir() / "unsaved"))


class Workspace:
    """Folders for a project's records under ``root``; nothing is created until asked for."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def kind_dir(self, kind: str) -> Path:
        """The folder of one kind: a folder name (``"merges"``) or a record kind (``"merge"``)."""
        from difflora_gui.project.records import RECORD_TYPES

        folder = RECORD_TYPES[kind].folder if kind in RECORD_TYPES else kind
        if folder not in KINDS:
            raise ValueError(f"unknown workspace kind {kind!r} (one of {', '.join(KINDS)})")
        return self.root / folder

    def dir_for(self, kind: str, record_id: str) -> Path:
        """The folder of one record's data, created if needed."""
        if not record_id or "/" in record_id or "\\" in record_id or record_id in (".", ".."):
            raise ValueError(f"bad record id {record_id!r}")
        folder = self.kind_dir(kind) / record_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the workspace folder: {exc.strerror or exc}", path=folder) from exc
        return folder

    def events_path(self, kind: str, record_id: str) -> Path:
        """Where a record's job appends its event log (``events.jsonl`` in its folder)."""
        return self.dir_for(kind, record_id) / EVENTS_FILE

    def artifact_path(self, kind: str, record_id: str, text: str | Path) -> Path:
        """A path from a record's event log: relative ones are relative to the record's folder.

        Jobs that write artifacts into their record's folder should log them relative to it, so a
        moved project reopens with its checkpoints and samples.
        """
        path = Path(text)
        return path if path.is_absolute() else self.kind_dir(kind) / record_id / path

    def exists(self) -> bool:
        return self.root.is_dir()


def copy_workspace(source: Path, target: Path) -> Callable[[], None]:
    """Copy the workspace ``source`` into ``target``; returns a function that undoes the copy.

    Never loses data: a file already at ``target`` with other content stops it before anything is
    copied, and a failed copy removes only what it copied. Files already there with the same
    content are left as they are (saving twice, or over a copy of itself).
    """
    if not source.is_dir() or os.path.abspath(source) == os.path.abspath(target):
        return lambda: None
    for path in source.rglob("*"):
        if _in_flight(path, source):
            continue
        there = target / path.relative_to(source)
        if path.is_file() and there.exists() and not (there.is_file() and _same_content(path, there)):
            raise UserError(
                f"the workspace folder already holds another {path.relative_to(source).as_posix()}; "
                "choose another project name",
                path=target,
            )
    copied: list[Path] = []
    made: list[Path] = []

    def undo() -> None:
        for path in copied:
            path.unlink(missing_ok=True)
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    try:
        if not target.exists():
            target.mkdir(parents=True)
            made.append(target)
        for path in sorted(source.rglob("*")):
            if _in_flight(path, source):
                continue
            there = target / path.relative_to(source)
            if path.is_dir():
                if not there.exists():
                    there.mkdir()
                    made.append(there)
            elif not there.exists():
                try:
                    shutil.copy2(path, there)
                except FileNotFoundError:
                    if path.exists():
                        raise
                    continue  # a job replaced or removed it while we copied; its new file is copied
                copied.append(there)
    except OSError as exc:
        undo()
        raise UserError(f"cannot copy the workspace: {exc.strerror or exc}", path=target) from exc
    return undo


def _in_flight(path: Path, root: Path) -> bool:
    """Whether ``path`` is (inside) a temporary file a job is still writing (``.NAME.xxxx.tmp``)."""
    return any(
        part.startswith(".") and part.endswith(".tmp") for part in path.relative_to(root).parts
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime)}`` of every file under ``root`` (to tell whether it changed)."""
    found: dict[str, tuple[int, int]] = {}
    if root.is_dir():
        for path in root.rglob("*"):
            if path.is_file():
                stat = path.stat()
                found[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def remove_if_unchanged(root: Path, before: dict[str, tuple[int, int]]) -> bool:
    """Delete ``root`` (already copied elsewhere) unless a file in it changed since ``before``.

    A job still writing into an unsaved workspace while it is saved keeps its folder, so
    nothing it writes after the copy is lost.
    """
    if snapshot(root) != before:
        return False
    shutil.rmtree(root, ignore_errors=True)
    return not root.exists()


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as first, b.open("rb") as second:
        while True:
            chunk = first.read(1 << 20)
            if chunk != second.read(1 << 20):
                return False
            if not chunk:
                return True
