"""Where a pair set lives: ``pairs.json`` in the dataset's folder, and the project record (Qt-free).

* :func:`save_pair_set` / :func:`load_pair_set` — the pair list as JSON, written atomically
  (temporary file + rename); a damaged file is one clear error. Paths inside the project's
  folder (or, without a project, inside the dataset folder) are stored relative to the dataset
  folder, so a moved project keeps working; they come back absolute on load.
* :func:`dataset_folder` — a dataset record's folder: its ``location``, else the workspace's
  ``datasets/<id>/``. :func:`create_dataset` / :func:`update_dataset` keep the
  :class:`~difflora_gui.project.records.DatasetRecord` and ``pairs.json`` in step.
* :func:`copy_into_workspace` — on request, copies every item into ``<folder>/a`` and
  ``<folder>/b`` (never moves, never overwrites another file) and returns the set pointing at the copies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from difflora_gui.dataset.model import MediaItem, PairSet, Skipped
from difflora_gui.errors import BadFileError, UserError
from difflora_gui.fileio import atomic_write_json

PAIRS_FILE = "pairs.json"


def map_pair_set_paths(pair_set: PairSet, function: Callable[[str], str]) -> PairSet:
    """A copy of ``pair_set`` with ``function`` applied to every path (items, skipped, sources)."""

    def item(value: MediaItem | None) -> MediaItem | None:
        return None if value is None else MediaItem(function(value.path), value.kind)

    return dataclasses.replace(
        pair_set,
        pairs=[dataclasses.replace(p, a=item(p.a), b=item(p.b)) for p in pair_set.pairs],
        unpaired_a=[item(i) for i in pair_set.unpaired_a],
        unpaired_b=[item(i) for i in pair_set.unpaired_b],
        skipped=[Skipped(function(s.path), s.reason) for s in pair_set.skipped],
        sources={k: function(v) for k, v in pair_set.sources.items()},
    )


def _stored(path: str, folder: Path, root: Path) -> str:
    """Relative (POSIX, to the dataset folder) when under ``root``, else absolute."""
    if not path:
        return path
    absolute = os.path.abspath(path)
    try:
        inside = os.path.commonpath([absolute, os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:  # another drive
        inside = False
    if not inside:
        return absolute
    return Path(os.path.relpath(absolute, os.path.abspath(folder))).as_posix()


def _resolved(text: str, folder: Path) -> str:
    if not text or os.path.isabs(text):
        return text
    return os.path.normpath(os.path.join(os.path.abspath(folder), text))


def save_pair_set(
    folder: str | Path, pair_set: PairSet, *, project=None, root: str | Path | None = None
) -> Path:
    """Write ``<folder>/pairs.json`` atomically (the folder is created); returns its path.

    Paths under ``root`` (default: the project's folder with a saved ``project``, else ``folder``
    itself) are stored relative to ``folder``, so a moved project (or workspace) keeps its items;
    others are stored absolute.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the dataset folder: {exc.strerror or exc}", path=folder) from None
    if root is None:
        root = project.folder if project is not None and project.folder is not None else folder
    stored = map_pair_set_paths(pair_set, lambda text: _stored(text, folder, Path(root)))
    try:
        return atomic_write_json(folder / PAIRS_FILE, stored.to_json())
    except OSError as exc:
        raise UserError(
            f"cannot write the pair list: {exc.strerror or exc}", path=folder / PAIRS_FILE
        ) from None


def load_pair_set(folder: str | Path) -> PairSet:
    """Read ``<folder>/pairs.json`` (or a pairs JSON file given directly); BadFileError if damaged.

    Relative paths are made absolute against the folder holding the file.
    """
    path = Path(folder)
    if path.is_dir() or not path.suffix:
        path = path / PAIRS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadFileError(path, "no pair list here (the dataset was never saved, or was moved)") from None
    except UnicodeDecodeError:
        raise BadFileError(path, "the pair list is damaged (not UTF-8 text)") from None
    except OSError as exc:
        raise BadFileError(path, f"cannot read the pair list: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFileError(
            path, f"the pair list is damaged (bad JSON at line {exc.lineno}: {exc.msg})"
        ) from None
    try:
        pair_set = PairSet.from_json(data)
    except UserError as exc:
        raise BadFileError(path, f"the pair list is damaged: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadFileError(path, f"the pair list is damaged ({type(exc).__name__}: {exc})") from None
    return map_pair_set_paths(pair_set, lambda text: _resolved(text, path.parent))


# --- project records ---------------------------------------------------------------------------


def dataset_folder(project, record_id: str) -> Path:
    """The folder of dataset ``record_id``: its record's ``location``, else ``datasets/<id>/``."""
    from difflora_gui.project.records import DatasetRecord

    record = next((r for r in project.records(DatasetRecord) if r.id == record_id), None)
    if record is not None and record.location:
        return Path(record.location)
    return project.workspace.dir_for("dataset", record_id)


def create_dataset(project, pair_set: PairSet, *, name: str = "", location: str | Path | None = None):
    """A new DatasetRecord for ``pair_set`` (folder ``location`` or the workspace), saved and added."""
    from difflora_gui.project.records import DatasetRecord

    record = DatasetRecord(name=name or pair_set.name)
    folder = Path(location) if location is not None else project.workspace.dir_for("dataset", record.id)
    record.location = os.path.abspath(folder)
    return update_dataset(project, record, pair_set)


def update_dataset(project, record, pair_set: PairSet):
    """Save ``pair_set`` into the record's folder and update the record (sources, pair count)."""
    folder = Path(record.location) if record.location else project.workspace.dir_for("dataset", record.id)
    save_pair_set(folder, pair_set, project=project)
    record = dataclasses.replace(
        record,
        location=os.path.abspath(folder),
        sources=[os.path.abspath(s) for s in dict.fromkeys(pair_set.sources.values()) if s],
        pair_count=len(pair_set.pairs),
    )
    project.add_record(record)
    return record


# --- copying into the workspace ------------------------------------------------------------------


def _same_content(a: Path, b: Path) -> bool:
    from difflora_gui.fileio import sha256_file

    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


def _copy_one(source: Path, folder: Path, taken: set[str]) -> Path:
    """Copy ``source`` into ``folder`` under its name (made unique if another file has it)."""
    stem, suffix = source.stem, source.suffix
    name, n = source.name, 2
    while True:
        target = folder / name
        if name.casefold() not in taken:
            if not target.exists():
                break
            if _same_content(source, target):  # copied before: reuse it
                taken.add(name.casefold())
                return target
        name, n = f"{stem}~{n}{suffix}", n + 1
    taken.add(name.casefold())
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        shutil.copy2(source, tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return target


def copy_into_workspace(pair_set: PairSet, folder: str | Path, ctx=None) -> PairSet:
    """Copy every A and B item into ``<folder>/a`` and ``<folder>/b``; the set pointing at the copies.

    The sources are only read. A name already taken by another file gets ``~2``, ``~3`` …;
    a file already copied (same content) is reused, so copying twice is cheap.
    """
    folder = Path(folder)
    dirs = {side: folder / side for side in ("a", "b")}
    taken: dict[str, set[str]] = {"a": set(), "b": set()}
    copied: dict[tuple[str, str], str] = {}
    items = [(side, it) for p in pair_set.pairs for side, it in (("a", p.a), ("b", p.b)) if it is not None]
    items += [("a", it) for it in pair_set.unpaired_a] + [("b", it) for it in pair_set.unpaired_b]
    total = len(items)
    for done, (side, item) in enumerate(items, 1):
        if ctx is not None:
            ctx.raise_if_cancelled()
        if (side, item.path) in copied:
            continue
        source = Path(item.path)
        if not source.is_file():
            raise BadFileError(source, "cannot copy: the file is gone (moved or deleted?)")
        try:
            dirs[side].mkdir(parents=True, exist_ok=True)
            copied[side, item.path] = str(_copy_one(source, dirs[side], taken[side]))
        except OSError as exc:
            raise UserError(f"cannot copy into the workspace: {exc.strerror or exc}", path=source) from None
        if ctx is not None:
            ctx.progress(done, total, "copying")

    def moved(side: str, item: MediaItem | None) -> MediaItem | None:
        return None if item is None else MediaItem(copied[side, item.path], item.kind)

    return dataclasses.replace(
        pair_set,
        pairs=[dataclasses.replace(p, a=moved("a", p.a), b=moved("b", p.b)) for p in pair_set.pairs],
        unpaired_a=[moved("a", i) for i in pair_set.unpaired_a],
        unpaired_b=[moved("b", i) for i in pair_set.unpaired_b],
        sources={**pair_set.sources, **{side: str(d) for side, d in dirs.items() if d.is_dir()}},
    )


__all__ = [
    "PAIRS_FILE",
    "copy_into_workspace",
    "create_dataset",
    "dataset_folder",
    "load_pair_set",
    "map_pair_set_paths",
    "save_pair_set",
    "update_dataset",
]
