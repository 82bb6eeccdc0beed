"""The project file (``*.difflora``): what the user is working on, as JSON (Qt-free).

A project has a name, an output folder and one dict per section (``dataset``, ``train``,
``merge``, ``preview``, ``compare``; panels may add their own keys). Panels keep their state in
their section and the window saves the whole thing. The file carries a ``"version"`` so that an
older file is migrated forward on load and a newer one is refused with a clear message.

Loading never crashes on a bad file: it raises :class:`~difflora_gui.errors.BadFileError` with
one line naming the file and the problem. Saving is atomic (a crash leaves the old file), and a
file is never overwritten by loading or autosaving.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from difflora_gui import APP_NAME, __version__
from difflora_gui.errors import BadFileError, UserError
from difflora_gui.fileio import atomic_write_json
from difflora_gui.specs import SECTIONS

PROJECT_SUFFIX = ".difflora"
PROJECT_FORMAT = "difflora-project"
#: the version this app writes; files with a lower version are migrated on load
PROJECT_VERSION = 1
DEFAULT_NAME = "Untitled"

#: change keys a listener can receive besides section keys
NAME_KEY = "name"
OUTPUT_DIR_KEY = "output_dir"
DIRTY_KEY = "dirty"
_RESERVED = {NAME_KEY, OUTPUT_DIR_KEY, DIRTY_KEY}
_SECTION_KEY_RE = re.compile(r"^[a-z][a-z0-9_\-.]*$")

#: ``{from_version: function(data) -> data}``; each step returns data for ``from_version + 1``
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

Listener = Callable[[str], None]


def register_migration(from_version: int):
    """Decorator: ``@register_migration(1)`` turns a version-1 dict into a version-2 dict."""

    def decorate(function):
        MIGRATIONS[from_version] = function
        return function

    return decorate


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

    # --- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = dict(self._extra)
        data.update(
            {
                "format": PROJECT_FORMAT,
                "version": PROJECT_VERSION,
                "app": f"{APP_NAME} {__version__}",
                "name": self._name,
                "output_dir": self._output_dir,
                "sections": copy.deepcopy(self._sections),
            }
        )
        return data

    @classmethod
    def from_json(cls, data: Any, *, source: str | Path = "<project>") -> Project:
        """Build a project from parsed JSON, migrating older versions; bad data → BadFileError."""
        if not isinstance(data, dict) or data.get("format") != PROJECT_FORMAT:
            raise BadFileError(source, f'not a {APP_NAME} project file (no "format": "{PROJECT_FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadFileError(source, f"bad or missing project version {version!r}")
        if version > PROJECT_VERSION:
            raise BadFileError(
                source,
                f"made by a newer {APP_NAME} (project version {version}; this version reads up to "
                f"{PROJECT_VERSION}); update the app to open it",
            )
        data = copy.deepcopy(data)
        migrated = version < PROJECT_VERSION
        while version < PROJECT_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise BadFileError(source, f"no migration from project version {version}")
            try:
                data = step(data)
            except Exception as exc:
                raise BadFileError(source, f"cannot migrate from project version {version}: {exc}") from exc
            version += 1
            data["version"] = version
        name = data.get("name", DEFAULT_NAME)
        output_dir = data.get("output_dir", "")
        sections = data.get("sections", {})
        if not isinstance(name, str):
            raise BadFileError(source, '"name" must be a string')
        if not isinstance(output_dir, str):
            raise BadFileError(source, '"output_dir" must be a string')
        if not isinstance(sections, dict):
            raise BadFileError(source, '"sections" must be an object')
        for key, value in sections.items():
            if not isinstance(value, dict):
                raise BadFileError(source, f"section {key!r} must be an object")
            try:
                _check_section_key(key)
            except ValueError as exc:
                raise BadFileError(source, str(exc)) from exc
        project = cls(name, output_dir=output_dir, sections=sections)
        known = {"format", "version", "app", "name", "output_dir", "sections"}
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
        project = cls.from_json(data, source=path)
        project.path = path
        return project

    def save(self, path: str | Path | None = None) -> Path:
        """Write the project (atomically) to ``path`` or its current path; clears the dirty flag."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UserError("the project has no file yet; choose where to save it")
        self._write(target)
        self.path = target
        self._set_dirty(False)
        return target

    def write_copy(self, path: str | Path) -> Path:
        """Write the project somewhere else (an autosave) without changing its path or dirty flag."""
        return self._write(Path(path))

    def _write(self, target: Path) -> Path:
        if target.exists() and target.is_dir():
            raise UserError("is a folder; choose a file name", path=target)
        if not target.parent.is_dir():
            raise UserError(f"folder does not exist: {target.parent}", path=target)
        try:
            return atomic_write_json(target, self.to_json(), overwrite=True)
        except OSError as exc:
            raise UserError(f"cannot write: {exc.strerror or exc}", path=target) from exc


def with_suffix(path: str | Path) -> Path:
    """``path`` with the ``.difflora`` suffix added when it has none."""
    path = Path(path)
    return path if path.suffix.lower() == PROJECT_SUFFIX else path.with_name(path.name + PROJECT_SUFFIX)
