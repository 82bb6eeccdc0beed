"""Pairing two folders into a :class:`~difflora_gui.dataset.model.PairSet` (Qt-free).

A rule says which A file goes with which B file by a *key* taken from each file's stem:

* ``stem`` — identical stems (``frame_0001.png`` ↔ ``frame_0001.jpg``);
* ``suffix:_dense,_sparse`` — A stems end with the first suffix, B stems with the second, the key
  is the rest (``shot3_dense`` ↔ ``shot3_sparse``); either suffix may be empty
  (``suffix:,_simple``); case-insensitive;
* ``regex:PATTERN`` — the key is the named group ``key``, else the first group, else the whole
  match of ``re.search(PATTERN, stem)``; a stem that does not match stays unpaired.

Keys match case-insensitively. :func:`pair_folders` lists each folder (not recursively; hidden
files are ignored), probes every media file in parallel (bad files go to ``skipped`` with their
reason), pairs by key and lists what stayed unpaired. Pair ids are the keys, made unique, in
natural order (``frame2`` before ``frame10``). Nothing in the source folders is changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.dataset.model import MediaItem, Pair, PairSet, Skipped, media_kind, natural_key
from difflora_gui.errors import BadFileError, UserError

RULE_KINDS = ("stem", "suffix", "regex")
#: files a file manager leaves in folders: ignored, never listed as skipped
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db"})
#: a caption file beside a media file (same stem) is read as that pair's caption, never skipped
CAPTION_SUFFIX = ".txt"
MAX_CAPTION_BYTES = 64 * 1024
PROBE_WORKERS = 4


@dataclass(frozen=True)
class PairingRule:
    """How a file's stem gives its pairing key; ``str(rule)`` is the text :meth:`parse` reads."""

    kind: str = "stem"
    suffix_a: str = ""
    suffix_b: str = ""
    pattern: str = ""

    @classmethod
    def parse(cls, text: str | PairingRule | None) -> PairingRule:
        if isinstance(text, PairingRule):
            return text
        text = (text or "stem").strip()
        kind, _, rest = text.partition(":")
        kind = kind.strip().lower()
        if kind == "stem" and not rest:
            return cls("stem")
        if kind == "suffix":
            parts = rest.split(",")
            if len(parts) != 2 or not any(p.strip() for p in parts):
                raise UserError(
                    f"pairing rule {text!r}: expected suffix:A_SUFFIX,B_SUFFIX (e.g. suffix:_dense,_sparse)"
                )
            a, b = (p.strip() for p in parts)
            if a.casefold() == b.casefold():
                raise UserError(f"pairing rule {text!r}: the A and B suffixes must differ")
            return cls("suffix", suffix_a=a, suffix_b=b)
        if kind == "regex":
            if not rest:
                raise UserError(f"pairing rule {text!r}: expected regex:PATTERN")
            try:
                re.compile(rest)
            except re.error as exc:
                raise UserError(f"pairing rule {text!r}: bad regular expression ({exc})") from None
            return cls("regex", pattern=rest)
        raise UserError(
            f"unknown pairing rule {text!r}: use stem, suffix:_A,_B (e.g. suffix:_dense,_sparse) or regex:PATTERN"
        )

    def __str__(self) -> str:
        if self.kind == "suffix":
            return f"suffix:{self.suffix_a},{self.suffix_b}"
        if self.kind == "regex":
            return f"regex:{self.pattern}"
        return "stem"

    def key(self, stem: str, side: str) -> str | None:
        """The pairing key of a file on ``side`` ("a"/"b"), or None if the rule does not match it."""
        if self.kind == "suffix":
            suffix = self.suffix_a if side == "a" else self.suffix_b
            other = self.suffix_b if side == "a" else self.suffix_a
            if suffix:
                if not stem.casefold().endswith(suffix.casefold()) or len(stem) == len(suffix):
                    return None
                return stem[: len(stem) - len(suffix)]
            # an empty suffix: the plain stems, but not those carrying the other side's suffix
            if other and stem.casefold().endswith(other.casefold()):
                return None
            return stem
        if self.kind == "regex":
            match = re.search(self.pattern, stem)
            if match is None:
                return None
            if "key" in match.re.groupindex:
                key = match.group("key")
            elif match.re.groups:
                key = match.group(1)
            else:
                key = match.group(0)
            return key or None
        return stem


# --- scanning ----------------------------------------------------------------------------------


def _hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith(".") or entry.name.casefold() in IGNORED_NAMES:
        return True
    if os.name != "nt":
        return False
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attributes & 2)  # FILE_ATTRIBUTE_HIDDEN


def scan_folder(folder: str | Path) -> tuple[list[Path], list[Skipped], dict[str, Path]]:
    """``(media files, non-media files skipped, caption files by stem)`` of one folder, not recursive."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError("folder not found", path=folder)
    if not folder.is_dir():
        raise UserError("not a folder", path=folder)
    media: list[Path] = []
    others: list[Path] = []
    captions: dict[str, Path] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if _hidden(entry) or entry.is_dir():
                        continue
                except OSError:
                    continue
                path = folder / entry.name
                if media_kind(entry.name) is not None:
                    media.append(path)
                elif entry.name.lower().endswith(CAPTION_SUFFIX):
                    captions[Path(entry.name).stem.casefold()] = path
                else:
                    others.append(path)
    except FileNotFoundError:
        raise UserError("the folder disappeared while it was being read", path=folder) from None
    except OSError as exc:
        raise UserError(f"cannot list the folder: {exc.strerror or exc}", path=folder) from None
    stems = {p.stem.casefold() for p in media}
    skipped = [Skipped(str(p), f"not an image or video ({p.suffix or 'no extension'})") for p in others]
    skipped += [
        Skipped(str(p), "a text file with no image or video of that name")
        for s, p in captions.items()
        if s not in stems
    ]
    captions = {s: p for s, p in captions.items() if s in stems}
    media.sort(key=lambda p: natural_key(p.name))
    skipped.sort(key=lambda s: natural_key(Path(s.path).name))
    return media, skipped, captions


def probe_many(
    paths: Iterable[Path], ctx=None, *, workers: int = PROBE_WORKERS, text: str = "probing"
) -> list[Any]:
    """:func:`~difflora_gui.dataset.media.probe` each path in parallel: a MediaInfo or the BadFileError."""
    from difflora_gui.dataset.media import probe
    from difflora_gui.jobs.pipeline import ordered_map

    paths = list(paths)

    def work(path: Path):
        try:
            return probe(path)
        except BadFileError as exc:
            return exc

    results = []
    total = len(paths)
    if ctx is not None:
        ctx.progress(0, total, text)
    for done, result in enumerate(
        ordered_map(work, paths, workers=max(1, min(workers, total or 1)), ctx=ctx), 1
    ):
        results.append(result)
        if ctx is not None:
            ctx.progress(done, total, text)
    return results


def _read_caption(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        if path.stat().st_size > MAX_CAPTION_BYTES:
            return ""
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


class _Side:
    """One side's usable files after probing: items by key, unmatched files, skipped ones."""

    def __init__(self):
        self.by_key: dict[str, list[MediaItem]] = {}
        self.unmatched: list[MediaItem] = []
        self.skipped: list[Skipped] = []
        self.captions: dict[str, Path] = {}


def _scan_side(
    side: str, folder: Path, rule: PairingRule, *, same_folder: bool = False
) -> tuple[_Side, list]:
    """A side's scan: the side (captions, skipped non-media) and ``(path, key)`` of its media files."""
    media, skipped, captions = scan_folder(folder)
    result = _Side()
    result.captions = captions
    result.skipped = [] if same_folder and side == "b" else skipped
    keyed: list[tuple[Path, str | None]] = [(p, rule.key(p.stem, side)) for p in media]
    if same_folder:  # one folder holds both sides: a file belongs to the side whose key matches
        keyed = [(p, k) for p, k in keyed if k is not None]
    return result, keyed


def _fill_side(result: _Side, keyed: list, infos: list) -> None:
    for (path, key), info in zip(keyed, infos, strict=True):
        if isinstance(info, BadFileError):
            result.skipped.append(Skipped(str(path), info.problem))
            continue
        item = MediaItem(str(path), info.kind)
        if key is None:
            result.unmatched.append(item)
        else:
            result.by_key.setdefault(key.casefold(), []).append(item)


def _collect_sides(
    sides: list[tuple[str, Path]], rule: PairingRule, ctx, *, same_folder: bool = False
) -> list[_Side]:
    """Scan every side's folder, probe all their files in one parallel pass, sort the results."""
    scans = [_scan_side(side, folder, rule, same_folder=same_folder) for side, folder in sides]
    paths = [path for _, keyed in scans for path, _ in keyed]
    infos = probe_many(paths, ctx, text="reading files")
    for _, folder in sides:
        if not folder.is_dir():
            raise UserError("the folder disappeared during the import", path=folder)
    start = 0
    for result, keyed in scans:
        _fill_side(result, keyed, infos[start : start + len(keyed)])
        start += len(keyed)
    return [result for result, _ in scans]


def _unique(key: str, used: set[str]) -> str:
    candidate, n = key, 2
    while candidate.casefold() in used:
        candidate, n = f"{key}~{n}", n + 1
    used.add(candidate.casefold())
    return candidate


def pair_folders(a_dir: str | Path, b_dir: str | Path, rule: str | PairingRule = "stem", ctx=None) -> PairSet:
    """Pair the media files of ``a_dir`` and ``b_dir`` by ``rule``; see the module docstring.

    ``a_dir`` and ``b_dir`` may be the same folder with a ``suffix`` or ``regex`` rule whose keys
    tell the sides apart. Paths are kept as given (``a_dir / name``).
    """
    rule = PairingRule.parse(rule)
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    same = os.path.normcase(os.path.abspath(a_dir)) == os.path.normcase(os.path.abspath(b_dir))
    if same and rule.kind == "stem":
        raise UserError(
            "A and B are the same folder: pair by suffix (e.g. --rule suffix:_dense,_sparse) or a regex",
            path=a_dir,
        )
    side_a, side_b = _collect_sides([("a", a_dir), ("b", b_dir)], rule, ctx, same_folder=same)
    if same:  # a file that matched neither side's rule
        matched = {i.path for items in side_a.by_key.values() for i in items}
        matched |= {i.path for items in side_b.by_key.values() for i in items}
        matched |= {s.path for s in side_a.skipped + side_b.skipped}
        media, _, _ = scan_folder(a_dir)
        side_a.skipped += [
            Skipped(str(p), f"the name matches neither side of the rule {rule}")
            for p in media
            if str(p) not in matched
        ]
        side_a.unmatched = side_b.unmatched = []

    pairs, unpaired_a, unpaired_b, skipped = _pair_sides(side_a, side_b, rule)
    for folder in (a_dir, b_dir):
        if not folder.is_dir():
            raise UserError("the folder disappeared during the import", path=folder)
    return PairSet(
        name=a_dir.name or "pairs",
        pairs=pairs,
        unpaired_a=unpaired_a,
        unpaired_b=unpaired_b,
        skipped=skipped,
        sources={"a": str(a_dir), "b": str(b_dir)},
        rule=str(rule),
    )


def _pair_sides(side_a: _Side, side_b: _Side, rule: PairingRule):
    """``(pairs, unpaired A, unpaired B, skipped)`` from two probed sides, in natural order."""
    pairs: list[Pair] = []
    unpaired_a = list(side_a.unmatched)
    unpaired_b = list(side_b.unmatched)
    used: set[str] = set()
    for key in sorted(set(side_a.by_key) | set(side_b.by_key), key=natural_key):
        items_a = side_a.by_key.get(key, [])
        items_b = side_b.by_key.get(key, [])
        items_a, items_b = _match_duplicates(items_a, items_b)
        for item_a, item_b in zip(items_a, items_b, strict=False):
            key_text = rule.key(Path(item_a.path).stem, "a") or key
            caption = _read_caption(side_a.captions.get(Path(item_a.path).stem.casefold()))
            pairs.append(Pair(_unique(key_text, used), item_a, item_b, caption=caption))
        unpaired_a += items_a[len(items_b) :]
        unpaired_b += items_b[len(items_a) :]
    order = {p.id: natural_key(p.id) for p in pairs}
    pairs.sort(key=lambda p: order[p.id])
    unpaired_a.sort(key=lambda i: natural_key(i.name))
    unpaired_b.sort(key=lambda i: natural_key(i.name))
    skipped = sorted(side_a.skipped + side_b.skipped, key=lambda s: natural_key(s.path))
    return pairs, unpaired_a, unpaired_b, skipped


def pair_files(
    a_files: Iterable[str | Path], b_files: Iterable[str | Path], rule: str | PairingRule = "stem", ctx=None
) -> PairSet:
    """Pair files given one by one (dropped onto the section) like :func:`pair_folders` pairs folders.

    A non-media file is skipped with its reason; a caption file beside a media file is read.
    ``sources`` names a side's folder when all its files are in one.
    """
    rule = PairingRule.parse(rule)
    sides = []
    for side, files in (("a", list(a_files)), ("b", list(b_files))):
        result = _Side()
        keyed = []
        for path in map(Path, files):
            if media_kind(path) is None:
                result.skipped.append(
                    Skipped(str(path), f"not an image or video ({path.suffix or 'no extension'})")
                )
                continue
            keyed.append((path, rule.key(path.stem, side)))
            caption = path.with_suffix(CAPTION_SUFFIX)
            if caption.is_file():
                result.captions[path.stem.casefold()] = caption
        sides.append((result, keyed, files))
    infos = probe_many([p for _, keyed, _ in sides for p, _ in keyed], ctx, text="reading files")
    start = 0
    for result, keyed, _ in sides:
        _fill_side(result, keyed, infos[start : start + len(keyed)])
        start += len(keyed)
    (side_a, _, files_a), (side_b, _, files_b) = sides
    pairs, unpaired_a, unpaired_b, skipped = _pair_sides(side_a, side_b, rule)
    sources = {}
    for side, files in (("a", files_a), ("b", files_b)):
        parents = {os.path.abspath(Path(f).parent) for f in files}
        if len(parents) == 1:
            sources[side] = str(Path(files[0]).parent)
    first = next(iter(files_a), None)
    return PairSet(
        name=Path(first).parent.name if first is not None else "pairs",
        pairs=pairs,
        unpaired_a=unpaired_a,
        unpaired_b=unpaired_b,
        skipped=skipped,
        sources=sources,
        rule=str(rule),
    )


def _match_duplicates(
    items_a: list[MediaItem], items_b: list[MediaItem]
) -> tuple[list[MediaItem], list[MediaItem]]:
    """Order the files sharing one key so that zipping them pairs same-extension files first.

    Returns A and B reordered: the first ``min(len)`` entries pair up, the rest stay unpaired.
    """
    if len(items_a) <= 1 and len(items_b) <= 1:
        return items_a, items_b
    rest_a = sorted(items_a, key=lambda i: natural_key(i.name))
    rest_b = sorted(items_b, key=lambda i: natural_key(i.name))
    paired: list[tuple[MediaItem, MediaItem]] = []
    for item in list(rest_a):  # same extension first (frame.png with frame.png)
        suffix = Path(item.path).suffix.lower()
        match = next((b for b in rest_b if Path(b.path).suffix.lower() == suffix), None)
        if match is not None:
            paired.append((item, match))
            rest_a.remove(item)
            rest_b.remove(match)
    while rest_a and rest_b:  # then the others in name order
        paired.append((rest_a.pop(0), rest_b.pop(0)))
    paired.sort(key=lambda pair: natural_key(pair[0].name))
    return [a for a, _ in paired] + rest_a, [b for _, b in paired] + rest_b


def import_single(a_dir: str | Path, ctx=None) -> PairSet:
    """One folder as set A: a pair per usable file with B empty (for a counterpart tool to fill)."""
    a_dir = Path(a_dir)
    (side,) = _collect_sides([("a", a_dir)], PairingRule("stem"), ctx)
    used: set[str] = set()
    pairs = []
    for key in sorted(side.by_key, key=natural_key):
        for item in sorted(side.by_key[key], key=lambda i: natural_key(i.name)):
            caption = _read_caption(side.captions.get(Path(item.path).stem.casefold()))
            pairs.append(Pair(_unique(Path(item.path).stem, used), item, None, caption=caption))
    pairs.sort(key=lambda p: natural_key(p.id))
    return PairSet(
        name=a_dir.name or "pairs",
        pairs=pairs,
        skipped=sorted(side.skipped, key=lambda s: natural_key(s.path)),
        sources={"a": str(a_dir)},
        rule="stem",
    )


def run_pairing(params: dict, ctx) -> PairSet:
    """Job: ``{"a_dir", "b_dir" (optional), "rule"}`` → the :class:`PairSet`."""
    if params.get("b_dir"):
        return pair_folders(params["a_dir"], params["b_dir"], params.get("rule") or "stem", ctx)
    return import_single(params["a_dir"], ctx)
