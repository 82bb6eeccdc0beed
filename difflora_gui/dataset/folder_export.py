"""Export a pair set as two plain folders, ``A/`` and ``B/``, with matching file names.

Each included, complete pair becomes ``A/<name><suffix>`` and ``B/<name><suffix>`` (the same
``<name>`` on both sides: the pair id made safe as a file name, unique even on a case-insensitive
drive; the suffix is each file's own, in lower case) plus a caption file ``<name>.txt`` beside each,
empty for an empty caption. That is the layout most trainers read (ai-toolkit's ``folder_path`` /
``control_path``, kohya-style folders); :mod:`difflora_gui.dataset.musubi_export` builds on it.

Safety, shared by both exports:

* the sources are copied (or hard-linked on request, falling back to a copy across drives),
  never moved or changed; an export folder inside a source folder, or one that holds a source
  file, is refused;
* everything is built in a temporary folder beside the destination and renamed into place when
  complete, so a cancelled or failed export leaves nothing behind;
* an existing, non-empty destination is refused unless ``overwrite`` is given, and even then only
  a previous export (one with :data:`MANIFEST_NAME`) is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.dataset.model import PairSet
from difflora_gui.errors import UserError

#: the file that marks a folder as a DiffLoRA export (and lists what it holds)
MANIFEST_NAME = "difflora-export.json"
MANIFEST_FORMAT = "difflora-export"
MANIFEST_VERSION = 1

_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED_NAMES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(10)),
    *(f"LPT{i}" for i in range(10)),
}


@dataclass(frozen=True)
class ExportItem:
    """One pair as exported: ``name`` is the file stem used on both sides."""

    pair_id: str
    name: str
    kind: str  # "image" | "video"
    a: Path
    b: Path
    caption: str

    def source(self, side: str) -> Path:
        return self.a if side == "a" else self.b

    def file_name(self, side: str) -> str:
        return self.name + self.source(side).suffix.lower()


@dataclass(frozen=True)
class LeftOut:
    """A pair that was not exported, and why."""

    pair_id: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"pair": self.pair_id, "reason": self.reason}


@dataclass(frozen=True)
class FolderExportResult:
    out_dir: Path
    folders: dict[str, Path]  # "a" / "b" → the side's folder
    items: tuple[ExportItem, ...]
    left_out: tuple[LeftOut, ...] = ()
    linked: int = 0  # files hard-linked rather than copied

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "folders": {side: str(path) for side, path in self.folders.items()},
            "pairs": len(self.items),
            "left_out": [x.to_json() for x in self.left_out],
            "linked": self.linked,
        }


# --- planning --------------------------------------------------------------------------------


def safe_file_stem(text: str) -> str:
    """``text`` as a file stem that is valid on Windows, macOS and Linux (unsafe characters → ``_``)."""
    stem = _UNSAFE_CHARS.sub("_", text).strip().rstrip(" .")
    if not stem or stem in (".", ".."):
        stem = "pair"
    if stem.split(".")[0].upper() in _RESERVED_NAMES:
        stem = "_" + stem
    return stem


def check_caption_extension(extension: str) -> str:
    """A caption suffix Musubi's caption lookup matches: one dot, then letters (``.txt``)."""
    ext = str(extension)
    if not re.fullmatch(r"\.[A-Za-z0-9_\-]+", ext):
        raise UserError(
            f"caption extension {extension!r} must be one dot and a word, such as .txt "
            "(Musubi matches captions by the part of the name before the last dot)"
        )
    from difflora_gui.dataset.model import MEDIA_SUFFIXES

    if ext.lower() in MEDIA_SUFFIXES:
        raise UserError(f"caption extension {extension!r} is a media file type; use .txt")
    return ext


def _resolve(path: str, base_dir: Path | None) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    return candidate.absolute()


def plan_export(
    pair_set: PairSet, *, base_dir: str | Path | None = None
) -> tuple[list[ExportItem], list[LeftOut]]:
    """The pairs to export (included, complete, same kind on both sides, files present) and the rest."""
    base = Path(base_dir) if base_dir is not None else None
    items: list[ExportItem] = []
    left_out: list[LeftOut] = []
    taken: set[str] = set()
    for pair in pair_set.pairs:
        if not pair.include:
            left_out.append(LeftOut(pair.id, "excluded"))
            continue
        if pair.a is None or pair.b is None:
            left_out.append(LeftOut(pair.id, f"no {'A' if pair.a is None else 'B'} item"))
            continue
        if pair.a.kind != pair.b.kind:
            left_out.append(
                LeftOut(pair.id, f"A is {pair.a.kind}, B is {pair.b.kind}: a pair needs two of a kind")
            )
            continue
        a, b = _resolve(pair.a.path, base), _resolve(pair.b.path, base)
        missing = [
            f"{side} file {path} is missing" for side, path in (("A", a), ("B", b)) if not path.is_file()
        ]
        if missing:
            left_out.append(LeftOut(pair.id, "; ".join(missing)))
            continue
        stem = safe_file_stem(pair.id)
        name, n = stem, 1
        while name.casefold() in taken:  # unique on a case-insensitive drive, too
            n += 1
            name = f"{stem}_{n}"
        taken.add(name.casefold())
        items.append(ExportItem(pair.id, name, pair.a.kind, a, b, pair.caption))
    return items, left_out


def no_pairs_error(left_out: list[LeftOut]) -> UserError:
    counts: dict[str, int] = {}
    for x in left_out:
        key = x.reason if x.reason in ("excluded", "no A item", "no B item") else "unusable"
        counts[key] = counts.get(key, 0) + 1
    detail = ", ".join(f"{n} {why}" for why, n in counts.items()) or "the set is empty"
    return UserError(f"nothing to export: no included, complete pairs ({detail})")


# --- the destination -------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_destination(
    out_dir: str | Path,
    sources: Iterable[Path],
    *,
    overwrite: bool = False,
    extra_folders: Iterable[str] = (),
) -> Path:
    """Validate the export folder before any work; return it as an absolute path."""
    out = Path(out_dir).expanduser().absolute()
    real_out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise UserError("the export destination is a file, not a folder", path=out)
    if not out.parent.is_dir():
        raise UserError(f"the folder {out.parent} does not exist", path=out)
    folders = {Path(os.path.realpath(f)) for f in extra_folders if f}
    for source in sources:
        real = Path(os.path.realpath(source))
        if _inside(real, real_out):
            raise UserError(
                f"the export folder holds the source file {source}; choose another folder", path=out
            )
        folders.add(real.parent)
    for folder in folders:
        if _inside(folder, real_out):
            raise UserError(
                f"the export folder holds the source folder {folder}; choose another folder", path=out
            )
        if _inside(real_out, folder):
            raise UserError(
                f"the export folder is inside the source folder {folder} (sources are never changed); "
                "choose a folder outside it",
                path=out,
            )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(
                "the export folder exists and is not empty (use --overwrite to replace an export)", path=out
            )
        if not (out / MANIFEST_NAME).is_file():
            raise UserError(
                f"the folder is not a DiffLoRA export (no {MANIFEST_NAME}); refusing to replace it — "
                "choose a new or empty folder",
                path=out,
            )
    return out


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it becomes ``out`` (a previous export is replaced)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if out.exists():  # a previous export (checked before): move it aside, put the new one in, drop it
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- writing ---------------------------------------------------------------------------------


def place_file(source: Path, destination: Path, *, link: bool = False) -> bool:
    """Copy ``source`` (with its times) or hard-link it; True when it was linked."""
    if link:
        try:
            os.link(source, destination)
            return True
        except OSError:  # another drive, or a file system without hard links: copy instead
            pass
    shutil.copy2(source, destination)
    return False


def write_caption(path: Path, caption: str) -> None:
    """The caption as UTF-8 text; an empty caption is an empty file (Musubi skips items without one)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(caption)


def write_items(
    items: list[ExportItem],
    root: Path,
    folder_for: Callable[[str, str], str],
    *,
    caption_extension: str = ".txt",
    link: bool = False,
    ctx=None,
) -> int:
    """Write both sides of every item under ``root``; ``folder_for(side, kind)`` is the relative folder."""
    linked = 0
    total = len(items)
    for done, item in enumerate(items):
        if ctx is not None:
            ctx.raise_if_cancelled()
            ctx.progress(done, total, item.name)
        for side in ("a", "b"):
            folder = root / folder_for(side, item.kind)
            folder.mkdir(parents=True, exist_ok=True)
            linked += place_file(item.source(side), folder / item.file_name(side), link=link)
            write_caption(folder / (item.name + caption_extension), item.caption)
    if ctx is not None:
        ctx.progress(total, total, "written")
    return linked


def write_manifest(
    root: Path, kind: str, items: list[ExportItem], left_out: list[LeftOut], **extra: Any
) -> None:
    data = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "export": kind,
        **extra,
        "pairs": [
            {
                "id": i.pair_id,
                "name": i.name,
                "kind": i.kind,
                "a": str(i.a),
                "b": str(i.b),
                "caption": i.caption,
            }
            for i in items
        ],
        "left_out": [x.to_json() for x in left_out],
    }
    (root / MANIFEST_NAME).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass
class _Prepared:
    out: Path
    items: list[ExportItem]
    left_out: list[LeftOut] = field(default_factory=list)


def prepare(
    pair_set: PairSet,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    base_dir: str | Path | None = None,
) -> _Prepared:
    """Plan the items and check the destination (nothing is written)."""
    items, left_out = plan_export(pair_set, base_dir=base_dir)
    if not items:
        raise no_pairs_error(left_out)
    sources = [path for item in items for path in (item.a, item.b)]
    out = check_destination(out_dir, sources, overwrite=overwrite, extra_folders=pair_set.sources.values())
    return _Prepared(out, items, left_out)


def export_folders(
    pair_set: PairSet,
    out_dir: str | Path,
    *,
    caption_extension: str = ".txt",
    link: bool = False,
    overwrite: bool = False,
    base_dir: str | Path | None = None,
    ctx=None,
) -> FolderExportResult:
    """Write ``out_dir/A`` and ``out_dir/B`` (matching names, a caption file per item)."""
    caption_extension = check_caption_extension(caption_extension)
    plan = prepare(pair_set, out_dir, overwrite=overwrite, base_dir=base_dir)
    with staged_folder(plan.out) as root:
        linked = write_items(
            plan.items,
            root,
            lambda side, kind: side.upper(),
            caption_extension=caption_extension,
            link=link,
            ctx=ctx,
        )
        write_manifest(root, "folders", plan.items, plan.left_out, caption_extension=caption_extension)
    if ctx is not None:
        ctx.log(f"exported {len(plan.items)} pairs to {plan.out} ({len(plan.left_out)} left out)")
    return FolderExportResult(
        plan.out, {"a": plan.out / "A", "b": plan.out / "B"}, tuple(plan.items), tuple(plan.left_out), linked
    )
