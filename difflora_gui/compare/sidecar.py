"""The grid's JSON sidecar: every generation parameter, so ``python main.py grid --from NAME.json``
renders the very same cells again.

The sidecar sits next to the exported video (``grid.mp4`` → ``grid.json``). It holds the whole
:class:`~difflora_gui.compare.grid_types.GridJob` (the base request, the axes, the backend and its
options, the export options) and, for reference, each cell as rendered: its place, labels, cache
key and the request with the LoRA files' content hashes. Reading it back needs only ``job``; the
cells tell a reader which exact files and settings made each cell. Qt-free, no heavy imports.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from difflora_gui.compare.grid_types import GridJob, GridResult
from difflora_gui.errors import UserError

SIDECAR_FORMAT = "difflora-grid"
SIDECAR_VERSION = 1


def sidecar_path_for(out: str | Path) -> Path:
    """Where the sidecar of the grid video ``out`` goes: ``grid.mp4`` → ``grid.json``."""
    return Path(out).with_suffix(".json")


def sidecar_data(job: GridJob, result: GridResult | None) -> dict[str, Any]:
    """The sidecar's content: format and version, when and by which app version, the job, and the
    cells of ``result`` (none when ``result`` is None)."""
    from difflora_gui import __version__

    cells = [
        {"row": c.row, "col": c.col, "labels": list(c.labels), "key": c.key, "request": c.request}
        for c in (result.cells if result is not None else ())
    ]
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "app_version": __version__,
        "job": job.to_json(),
        "cells": cells,
    }


def write_sidecar(
    path: str | Path, job: GridJob, result: GridResult | None, *, overwrite: bool = False
) -> Path:
    """Write the sidecar to ``path`` in one rename; an existing file is refused unless ``overwrite``."""
    from difflora_gui.fileio import atomic_write_json

    return atomic_write_json(path, sidecar_data(job, result), overwrite=overwrite)


def read_sidecar(path: str | Path) -> GridJob:
    """The grid job a sidecar holds. Anything wrong with the file is one :class:`UserError` that
    names it: missing, not JSON, not a grid sidecar, written by a newer version, bad fields."""
    path = Path(path)
    if not path.is_file():
        raise UserError("grid sidecar not found" if not path.exists() else "not a file", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError("not a grid sidecar: the file is not UTF-8 text", path=path) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"not a grid sidecar: not JSON ({exc.msg}, line {exc.lineno})", path=path) from None
    except OSError as exc:
        raise UserError(f"cannot read the grid sidecar: {exc.strerror or exc}", path=path) from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise UserError(f'not a grid sidecar (no "format": "{SIDECAR_FORMAT}")', path=path)
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UserError(f"bad grid sidecar: version must be a whole number ≥ 1, got {version!r}", path=path)
    if version > SIDECAR_VERSION:
        raise UserError(
            f"the grid sidecar is version {version}, written by a newer DiffLoRA Studio "
            f"(app {data.get('app_version', '?')}); this one reads up to version {SIDECAR_VERSION}",
            path=path,
        )
    job = data.get("job")
    if not isinstance(job, dict):
        raise UserError('bad grid sidecar: no "job" object', path=path)
    for name in ("spec", "options", "export"):
        if name in job and not isinstance(job[name], dict):
            raise UserError(f"bad grid sidecar: job.{name} must be an object", path=path)
    try:
        return GridJob.from_json(job)
    except UserError as exc:
        raise UserError(f"bad grid sidecar: {exc}", path=path) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # a field of the wrong type (a list where an object belongs, a text where a number does)
        raise UserError(f"bad grid sidecar: a field has the wrong type ({exc})", path=path) from None


def recorded_lora_hashes(path: str | Path) -> dict[str, str]:
    """Each LoRA file the sidecar's cells were rendered with, and its content hash then (sha256
    hex): a file changed since renders different cells. Empty when the sidecar has no cells."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for cell in data.get("cells") or ():
        request = cell.get("request") if isinstance(cell, dict) else None
        for entry in (request or {}).get("loras") or ():
            if isinstance(entry, dict) and entry.get("file") and entry.get("sha256"):
                found[str(entry["file"])] = str(entry["sha256"])
    return found
