"""How a project stores paths: relative to its file when inside its folder, absolute otherwise.

In memory every path is absolute (what the panels and jobs use); only the project file holds the
stored form. A path inside the project folder (the folder holding ``NAME.difflora``, workspace
included) is written relative to it with ``/`` separators, so the folder can be moved, copied or
opened from another drive letter. Anything else (model weights, source folders on another disk) is
written absolute and reported as missing, with its path, when it is gone.

Which section keys hold paths is declared here (:func:`register_section_paths`), so a section is
converted on save and load without its panel knowing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

PathMap = Callable[[str], str]


@dataclass(frozen=True)
class MissingFile:
    """A file or folder a project refers to that is not there."""

    where: str  # every place that names it, e.g. "merge: settings.lora_a, merge 3f2a9c1d0b4e (lora_a)"
    path: Path

    def describe(self) -> str:
        return f"missing {self.path} ({self.where})"


@dataclass(frozen=True)
class SectionPaths:
    """Dotted keys of a section that hold a path: ``files`` must exist, ``targets`` may not yet."""

    files: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()


#: ``{section: SectionPaths}``; a panel that keeps paths in its section registers them here
SECTION_PATHS: dict[str, SectionPaths] = {}


def register_section_paths(section: str, *, files: tuple[str, ...] = (), targets: tuple[str, ...] = ()) -> None:
    """Declare the dotted keys (``"settings.lora_a"``) of ``section`` that hold paths."""
    SECTION_PATHS[section] = SectionPaths(tuple(files), tuple(targets))


register_section_paths(
    "merge",
    files=("recipe.lora_a", "recipe.lora_b", "recipe.output", "last_output", "settings.lora_a", "settings.lora_b"),
    targets=("settings.output",),
)


def store_path(path: str | Path, base: Path | None) -> str:
    """The stored form of ``path``: relative POSIX text inside ``base``, else absolute text."""
    text = str(path)
    if not text:
        return ""
    absolute = Path(os.path.abspath(text))
    if base is not None:
        try:
            relative = PurePath(absolute).relative_to(Path(os.path.abspath(base)))
        except ValueError:
            pass  # outside the project folder (or on another drive): keep it absolute
        else:
            return relative.as_posix() if relative.parts else "."
    return str(absolute)


def resolve_path(text: str | Path, base: Path | None) -> Path:
    """The absolute path for a stored ``text`` (relative text is relative to ``base``)."""
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    return Path(os.path.abspath(path))


def rebase(path: str, old_root: Path, new_root: Path) -> str:
    """``path`` moved from under ``old_root`` to under ``new_root`` (unchanged when not under it)."""
    if not path:
        return path
    try:
        relative = PurePath(os.path.abspath(path)).relative_to(os.path.abspath(old_root))
    except ValueError:
        return path
    return str(Path(new_root, relative))


def _dotted(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str] | None:
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node, last) if isinstance(node, dict) else None


def map_section_paths(section: str, data: dict[str, Any], function: PathMap) -> dict[str, Any]:
    """``data`` (changed in place and returned) with ``function`` applied to its declared paths."""
    declared = SECTION_PATHS.get(section)
    if declared is None:
        return data
    for key in declared.files + declared.targets:
        found = _dotted(data, key)
        if found is not None:
            node, last = found
            value = node.get(last)
            if isinstance(value, str) and value:
                node[last] = function(value)
    return data


def section_files(section: str, data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(key, path)`` for each declared path of ``section`` that must exist."""
    declared = SECTION_PATHS.get(section)
    for key in declared.files if declared is not None else ():
        found = _dotted(data, key)
        if found is not None:
            value = found[0].get(found[1])
            if isinstance(value, str) and value:
                yield key, value
