"""The project file (``*.difflora``): what the user is working on, as JSON (Qt-free).

A project has a name, an output folder, one dict per section (``dataset``, ``train``,
``merge``, ``preview``, ``compare``; panels may add their own keys) and typed records with lineage
(:mod:`difflora_gui.project.records`). Panels keep their state in their section and the window
saves the whole thing. The file carries a layout ``"version"`` and a version per section
(:mod:`difflora_gui.project.versions`): an older file is migrated forward on load and a newer one
is refused with a clear message. Heavy data lives in the workspace beside the file
(:mod:`difflora_gui.project.workspace`).

Paths are absolute in memory; the file stores those inside the project folder relative to it
(:mod:`difflora_gui.project.paths`), so a moved project folder still finds its files.

Loading never crashes on a bad file: it raises :class:`~difflora_gui.errors.BadFileError` with
one line naming the file and the problem. Saving is atomic (a crash leaves the old file), and a
file is never overwritten by loading or autosaving.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from difflora_gui import APP_NAME, __version__
from difflora_gui.errors import BadFileError, UserError
from difflora_gui.fileio import atomic_write_json
from difflora_gui.jobs.eventlog import flush_open_logs
from difflora_gui.project import paths as project_paths
from difflora_gui.project import versions
from difflora_gui.project.paths import MissingFile
from difflora_gui.project.records import MergeRecord, Record, RecordError, RunRecord, new_record_id
from difflora_gui.project.workspace import (
    Workspace,
    copy_workspace,
    is_unsaved_root,
    remove_if_unchanged,
    snapshot,
    unsaved_root,
    workspace_root_for,
)
from difflora_gui.specs import SECTIONS

PROJECT_SUFFIX = ".difflora"
PROJECT_FORMAT = "difflora-project"
DEFAULT_NAME = "Untitled"
#: where a copy of the project (an autosave) names the workspace it belongs to
WORKSPACE_KEY = "workspace"

#: change keys a listener can receive besides section keys
NAME_KEY = "name"
OUTPUT_DIR_KEY = "output_dir"
DIRTY_KEY = "dirty"
RECORDS_KEY = versions.RECORDS_KEY
_RESERVED = {NAME_KEY, OUTPUT_DIR_KEY, DIRTY_KEY, RECORDS_KEY}
_SECTION_KEY_RE = re.compile(r"^[a-z][a-z0-9_\-.]*$")

Listener = Callable[[str], None]


def _check_section_key(key: str) -> None:
    if not isinstance(key, str) or not _SECTION_KEY_RE.match(key) or key in _RESERVED:
        raise ValueError(f"bad project section key {key!r}")


def _json_copy(value: Any, what: str) -> Any:
    """A deep copy that is guaranteed to survive a JSON round trip (so Save can never fail later)."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} cannot be stored in a project file: {exc}") from exc


class Project:
    """The open project. Change it only from one thread (the GUI thread)."""

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        *,
        output_dir: str = "",
        sections: dict[str, dict[str, Any]] | None = None,
        path: str | Path | None = None,
    ):
        self._name = str(name) or DEFAULT_NAME
        self._output_dir = str(output_dir)
        self._sections: dict[str, dict[str, Any]] = {key: {} for key in SECTIONS}
        for key, value in (sections or {}).items():
            _check_section_key(key)
            self._sections[key] = _json_copy(value, f"section {key!r}")
        self._extra: dict[str, Any] = {}  # unknown top-level keys, kept so a round trip loses nothing
        self.path: Path | None = Path(path) if path is not None else None
        self._records: dict[str, Record] = {}
        # the workspace named by an autosave copy, or an unsaved project's folder in the data dir
        self._workspace_root: Path | None = None
        self._dirty = False
        self._listeners: list[Listener] = []

    # --- properties --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        value = str(value).strip() or DEFAULT_NAME
        if value != self._name:
            self._name = value
            self._changed(NAME_KEY)

    @property
    def output_dir(self) -> str:
        return self._output_dir

    @output_dir.setter
    def output_dir(self, value: str | Path) -> None:
        value = str(value) if value else ""
        if value != self._output_dir:
            self._output_dir = value
            self._changed(OUTPUT_DIR_KEY)

    @property
    def dirty(self) -> bool:
        """True when there are changes that are not in the project file."""
        return self._dirty

    def mark_dirty(self) -> None:
        self._set_dirty(True)

    @property
    def display_name(self) -> str:
        if self.path is not None and self._name == DEFAULT_NAME:
            return self.path.stem
        return self._name

    # --- sections ----------------------------------------------------------------------------

    def section_keys(self) -> list[str]:
        return list(self._sections)

    def section(self, key: str) -> dict[str, Any]:
        """A copy of a section's data (``{}`` if the section is empty or unknown)."""
        return copy.deepcopy(self._sections.get(key, {}))

    def set_section(self, key: str, data: dict[str, Any]) -> None:
        """Replace a section's data; listeners hear ``key`` if anything changed."""
        _check_section_key(key)
        if not isinstance(data, dict):
            raise TypeError(f"section {key!r} must be a dict, got {type(data).__name__}")
        data = _json_copy(data, f"section {key!r}")
        if self._sections.get(key) == data:
            return
        self._sections[key] = data
        self._changed(key)

    def update_section(self, key: str, **values: Any) -> None:
        """Set some keys of a section, keeping the others."""
        data = self.section(key)
        data.update(values)
        self.set_section(key, data)

    # --- change notification -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(key)`` after each change; returns a function that unsubscribes.

        ``key`` is a section key, ``"name"``, ``"output_dir"``, or ``"dirty"`` when the dirty flag
        flips (after a change or a save).
        """
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, key: str) -> None:
        for listener in list(self._listeners):
            listener(key)

    def _changed(self, key: str) -> None:
        self._notify(key)
        self._set_dirty(True)

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self._notify(DIRTY_KEY)

    # --- records -----------------------------------------------------------------------------

    def add_record(self, record: Record) -> Record:
        """Add (or replace, by id) a record; listeners hear ``"records"``."""
        if not isinstance(record, Record) or not record.kind:
            raise TypeError(f"not a project record: {record!r}")
        _json_copy(record.to_json(), f"{record.kind} record {record.id}")
        self._records[record.id] = record
        self._changed(RECORDS_KEY)
        return record

    def get_record(self, record_id: str) -> Record:
        try:
            return self._records[record_id]
        except KeyError:
            raise UserError(f"this project has no record {record_id!r}") from None

    def records(self, kind: str | type[Record] | None = None) -> list[Record]:
        """The records in the order they were added; only those of ``kind`` (a name or class) if given."""
        if isinstance(kind, type):
            return [r for r in self._records.values() if isinstance(r, kind)]
        return [r for r in self._records.values() if kind is None or r.kind == kind]

    def remove_record(self, record_id: str) -> None:
        """Forget a record (its workspace folder is left alone: that is the user's data)."""
        if self._records.pop(record_id, None) is not None:
            self._changed(RECORDS_KEY)

    def lineage(self, record_id: str) -> list[Record]:
        """The record and its ancestors, nearest first (each once; ids with no record are skipped)."""
        found: list[Record] = []
        seen: set[str] = set()
        queue = [record_id]
        while queue:
            current = queue.pop(0)
            if current in seen:
                continue
            seen.add(current)
            record = self._records.get(current)
            if record is None:
                if current == record_id:
                    raise UserError(f"this project has no record {record_id!r}")
                continue
            found.append(record)
            queue.extend(record.parent_ids())
        return found

    def producer_of(self, path: str | Path) -> Record | None:
        """The record that wrote ``path`` (a run's checkpoint, a merge's or render's output), if any."""
        wanted = os.path.normcase(os.path.abspath(path))
        for record in reversed(self._records.values()):  # the newest producer wins
            if isinstance(record, RunRecord):
                written = record.checkpoints
            else:  # a merge's files (one per expert for Wan2.2), a render's output
                written = getattr(record, "written", None) or [getattr(record, "output", "")]
            if any(text and os.path.normcase(os.path.abspath(text)) == wanted for text in written):
                return record
        return None

    def record_merge(
        self, recipe: dict[str, Any], output: str | Path | None = None, **values: Any
    ) -> MergeRecord:
        """Record a finished merge of ``recipe`` (``MergeParams.to_json()``) that wrote ``output``.

        Its LoRA A and B are linked to the runs (or merges) in this project that wrote them.
        ``values`` are further :class:`MergeRecord` fields (``id=`` the id its job's events used).
        """
        record = MergeRecord.from_recipe(recipe, str(output) if output else None, **values)
        if record.id in self._records:  # the history only grows: an id in use gets a fresh one
            record.id = new_record_id()
        for role in ("a", "b"):
            source = (
                self.producer_of(getattr(record, f"lora_{role}")) if getattr(record, f"lora_{role}") else None
            )
            if source is not None and getattr(record, f"run_{role}") is None:
                setattr(record, f"run_{role}", source.id)
        self.add_record(record)
        return record

    def merge_history(self) -> list[MergeRecord]:
        """Every merge of this project, oldest first (what each wrote, with its recipe and hashes)."""
        # in the order they ran (``created`` is the recipe's time, the same for a re-run recipe)
        return [record for record in self._records.values() if isinstance(record, MergeRecord)]

    # --- paths and workspace -----------------------------------------------------------------

    @property
    def folder(self) -> Path | None:
        """The folder holding the project file (None until it is saved)."""
        return Path(os.path.abspath(self.path.parent)) if self.path is not None else None

    def store_path(self, path: str | Path) -> str:
        """How the project file writes ``path``: relative (POSIX) inside the project folder, else absolute."""
        return project_paths.store_path(path, self.folder)

    def resolve_path(self, text: str | Path) -> Path:
        """The absolute path for a stored path (relative text is relative to the project file)."""
        return project_paths.resolve_path(text, self.folder)

    @property
    def workspace_root(self) -> Path:
        """``NAME.difflora.d`` beside the file; for an unsaved project a folder in the data dir."""
        if self._workspace_root is not None:
            return self._workspace_root
        if self.path is not None:
            return Path(os.path.abspath(workspace_root_for(self.path)))
        self._workspace_root = unsaved_root()
        return self._workspace_root

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.workspace_root)

    def missing_files(self) -> list[MissingFile]:
        """Every file or folder the sections and records refer to that is not there, with where."""
        places: dict[str, list[str]] = {}  # one entry per path, in the order first named
        for key, data in self._sections.items():
            for where, text in project_paths.section_files(key, data):
                places.setdefault(text, []).append(f"{key}: {where}")
        for record in self._records.values():
            for where, text in record.paths():
                places.setdefault(text, []).append(f"{record.kind} {record.id} ({where})")
        return [
            MissingFile(", ".join(dict.fromkeys(where)), Path(text))
            for text, where in places.items()
            if not Path(text).exists()
        ]

    def _map_paths(self, function: Callable[[str], str]) -> None:
        self._output_dir = function(self._output_dir) if self._output_dir else ""
        for key, data in self._sections.items():
            project_paths.map_section_paths(key, data, function)
        self._records = {rid: record.map_paths(function) for rid, record in self._records.items()}

    # --- JSON --------------------------------------------------------------------------------

    def to_json(self, *, relative: bool = True) -> dict[str, Any]:
        """The file's content; ``relative=False`` writes every path absolute (a copy kept elsewhere)."""
        base = self.folder if relative else None

        def stored(path: str) -> str:
            return project_paths.store_path(path, base) if path else path

        sections = copy.deepcopy(self._sections)
        for key, data in sections.items():
            project_paths.map_section_paths(key, data, stored)
        data = dict(self._extra)
        data.update(
            {
                "format": PROJECT_FORMAT,
                "version": versions.PROJECT_VERSION,
                "versions": {key: versions.section_version(key) for key in [*sections, RECORDS_KEY]},
                "app": f"{APP_NAME} {__version__}",
                "name": self._name,
                "output_dir": stored(self._output_dir),
                "sections": sections,
                RECORDS_KEY: [record.map_paths(stored).to_json() for record in self._records.values()],
            }
        )
        return data

    @classmethod
    def from_json(
        cls, data: Any, *, source: str | Path = "<project>", folder: str | Path | None = None
    ) -> Project:
        """Build a project from parsed JSON, migrating older versions; bad data → BadFileError.

        Relative paths in ``data`` are relative to ``folder`` (the project file's folder).
        """
        if not isinstance(data, dict) or data.get("format") != PROJECT_FORMAT:
            raise BadFileError(source, f'not a {APP_NAME} project file (no "format": "{PROJECT_FORMAT}")')
        try:
            data, migrated = versions.migrate(data)
        except versions.MigrationError as exc:
            raise BadFileError(source, str(exc)) from exc
        name = data.get("name", DEFAULT_NAME)
        output_dir = data.get("output_dir", "")
        sections = data.get("sections", {})
        stored_records = data.get(RECORDS_KEY, [])
        if not isinstance(name, str):
            raise BadFileError(source, '"name" must be a string')
        if not isinstance(output_dir, str):
            raise BadFileError(source, '"output_dir" must be a string')
        if not isinstance(sections, dict):
            raise BadFileError(source, '"sections" must be an object')
        if not isinstance(stored_records, list):
            raise BadFileError(source, f'"{RECORDS_KEY}" must be a list')
        for key, value in sections.items():
            if not isinstance(value, dict):
                raise BadFileError(source, f"section {key!r} must be an object")
            try:
                _check_section_key(key)
            except ValueError as exc:
                raise BadFileError(source, str(exc)) from exc
        base = Path(os.path.abspath(folder)) if folder is not None else None

        def resolved(text: str) -> str:
            return str(project_paths.resolve_path(text, base)) if text else text

        project = cls(name, output_dir=resolved(output_dir), sections=sections)
        for key, value in project._sections.items():
            project_paths.map_section_paths(key, value, resolved)
        for index, item in enumerate(stored_records):
            try:
                record = Record.from_json(item)
            except RecordError as exc:
                raise BadFileError(source, f"record {index + 1}: {exc}") from exc
            project._records[record.id] = record.map_paths(resolved)
        workspace = data.get(WORKSPACE_KEY)
        if isinstance(workspace, str) and workspace:
            project._workspace_root = Path(workspace)
        known = {
            "format",
            "version",
            "versions",
            "app",
            "name",
            "output_dir",
            "sections",
            RECORDS_KEY,
            WORKSPACE_KEY,
        }
        project._extra = {k: v for k, v in data.items() if k not in known}
        project._dirty = migrated  # a migrated project needs saving in the new format
        return project

    # --- files -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Project:
        """Read a project file. Any problem → :class:`BadFileError` naming the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadFileError(path, "file not found") from None
        except IsADirectoryError:
            raise BadFileError(path, "is a folder, not a project file") from None
        except UnicodeDecodeError:
            raise BadFileError(path, f"not a {APP_NAME} project file (not UTF-8 text)") from None
        except OSError as exc:
            raise BadFileError(path, f"cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadFileError(
                path, f"not a {APP_NAME} project file (invalid JSON at line {exc.lineno}: {exc.msg})"
            ) from None
        project = cls.from_json(data, source=path, folder=path.parent)
        project.path = path
        return project

    def save(self, path: str | Path | None = None) -> Path:
        """Write the project (atomically) to ``path`` or its current path; clears the dirty flag.

        The workspace goes with it: saved somewhere new, the workspace is copied beside the new
        file (an unsaved project's is moved there), and paths into it follow.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UserError("the project has no file yet; choose where to save it")
        self._check_target(target)
        old_root = self.workspace_root
        new_root = Path(os.path.abspath(workspace_root_for(target)))
        old_path, old_state = (
            self.path,
            (copy.deepcopy(self._sections), dict(self._records), self._output_dir),
        )
        flush_open_logs()  # running jobs' buffered events belong in the copy
        before = snapshot(old_root) if is_unsaved_root(old_root) else {}
        undo_copy = copy_workspace(old_root, new_root)
        moved = os.path.normcase(str(old_root)) != os.path.normcase(str(new_root))
        try:
            if moved:
                self._map_paths(lambda text: project_paths.rebase(text, old_root, new_root))
            self.path = target
            self._write(target)
        except BaseException:
            undo_copy()
            self.path = old_path
            self._sections, self._records, self._output_dir = old_state
            raise
        if moved and is_unsaved_root(old_root):
            flush_open_logs()  # what a job wrote during the copy must count as a change
            remove_if_unchanged(old_root, before)  # it has been copied beside the file
        self._workspace_root = None
        self._set_dirty(False)
        return target

    def write_copy(self, path: str | Path) -> Path:
        """Write the project somewhere else (an autosave) without changing its path or dirty flag.

        The copy has absolute paths and names this project's workspace, so restoring it from
        anywhere finds the same files.
        """
        target = Path(path)
        self._check_target(target)
        data = self.to_json(relative=False)
        data[WORKSPACE_KEY] = str(self.workspace_root)
        return self._write_json(target, data)

    def _check_target(self, target: Path) -> None:
        if target.exists() and target.is_dir():
            raise UserError("is a folder; choose a file name", path=target)
        if not target.parent.is_dir():
            raise UserError(f"folder does not exist: {target.parent}", path=target)

    def _write(self, target: Path) -> Path:
        return self._write_json(target, self.to_json())

    def _write_json(self, target: Path, data: dict[str, Any]) -> Path:
        try:
            return atomic_write_json(target, data, overwrite=True)
        except OSError as exc:
            raise UserError(f"cannot write: {exc.strerror or exc}", path=target) from exc


def with_suffix(path: str | Path) -> Path:
    """``path`` with the ``.difflora`` suffix added when it has none."""
    path = Path(path)
    return path if path.suffix.lower() == PROJECT_SUFFIX else path.with_name(path.name + PROJECT_SUFFIX)
