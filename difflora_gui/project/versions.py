"""Schema versions of a project file, one per section, and the migrations between them (Qt-free).

The file has a layout ``"version"`` (:data:`PROJECT_VERSION`; version 1 had no per-section
versions and no records) and ``"versions"``: ``{section: version}`` for each section and for the
``records`` list. A section that is older than this app's :data:`SECTION_VERSIONS` entry is
migrated step by step on load; one that is newer is refused with one line (an older app would
misread it). Sections without an entry (a panel's own keys) are version 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from difflora_gui import APP_NAME
from difflora_gui.project.records import MergeRecord

#: the file layout this app writes (2: per-section versions and records)
PROJECT_VERSION = 2
RECORDS_KEY = "records"

#: the version of each section (and of the records list) this app writes
SECTION_VERSIONS: dict[str, int] = {"merge": 2, RECORDS_KEY: 1}

Migration = Callable[[dict[str, Any]], dict[str, Any]]
#: ``{section: {from_version: step}}``; a step gets the whole project dict (stored form, layout
#: :data:`PROJECT_VERSION`) and returns it with ``section`` at ``from_version + 1``; it may add records
MIGRATIONS: dict[str, dict[int, Migration]] = {}


class MigrationError(ValueError):
    """A file that cannot be brought to this app's versions (the message is one line)."""


def register_migration(section: str, from_version: int):
    """Decorator: ``@register_migration("merge", 1)`` turns a version-1 merge section into version 2."""

    def decorate(function: Migration) -> Migration:
        MIGRATIONS.setdefault(section, {})[from_version] = function
        return function

    return decorate


def section_version(section: str) -> int:
    return SECTION_VERSIONS.get(section, 1)


def _layout_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    sections = data.get("sections", {})
    data["versions"] = {key: 1 for key in sections} if isinstance(sections, dict) else {}
    data["versions"][RECORDS_KEY] = 1
    data.setdefault(RECORDS_KEY, [])
    return data


_LAYOUT_MIGRATIONS: dict[int, Migration] = {1: _layout_1_to_2}


def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``data`` (a copy) at this app's versions, and whether anything changed; → MigrationError."""
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MigrationError(f"bad or missing project version {version!r}")
    if version > PROJECT_VERSION:
        raise MigrationError(
            f"made by a newer {APP_NAME} (project version {version}; this version reads up to "
            f"{PROJECT_VERSION}); update the app to open it"
        )
    data = copy.deepcopy(data)
    migrated = False
    while version < PROJECT_VERSION:
        step = _LAYOUT_MIGRATIONS.get(version)
        if step is None:
            raise MigrationError(f"no migration from project version {version}")
        data = step(data)
        version += 1
        data["version"] = version
        migrated = True
    versions = data.setdefault("versions", {})
    if not isinstance(versions, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions.values()
    ):
        raise MigrationError('"versions" must map each section to a whole number ≥ 1')
    sections = data.get("sections", {})
    keys = list(sections) if isinstance(sections, dict) else []
    for key in [RECORDS_KEY, *keys]:  # records first: a section's step may add current records
        have, want = versions.get(key, 1), section_version(key)
        if have > want:
            raise MigrationError(
                f"section {key!r} was made by a newer {APP_NAME} (version {have}; this version reads up "
                f"to {want}); update the app to open it"
            )
        while have < want:
            step = MIGRATIONS.get(key, {}).get(have)
            if step is None:
                raise MigrationError(f"no migration for section {key!r} from version {have}")
            try:
                data = step(data)
            except Exception as exc:
                raise MigrationError(f"cannot migrate section {key!r} from version {have}: {exc}") from exc
            have += 1
            data["versions"][key] = have
            migrated = True
    return data, migrated


@register_migration("merge", 1)
def _merge_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """The last merge of a version-1 project (its ``recipe`` and ``last_output``) becomes a MergeRecord."""
    merge = data["sections"].get("merge")
    recipe = merge.get("recipe") if isinstance(merge, dict) else None
    if isinstance(recipe, dict) and recipe.get("lora_a") and recipe.get("lora_b"):
        record = MergeRecord.from_recipe(copy.deepcopy(recipe), merge.get("last_output"))
        data.setdefault(RECORDS_KEY, []).append(record.to_json())
        merge["last_merge_id"] = record.id
    return data
