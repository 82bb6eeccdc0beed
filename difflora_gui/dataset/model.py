"""A paired dataset: pairs of an A item (concept present) and a B item (concept absent).

Items are images (png, jpg, webp) or video clips (mp4, webm, mov, mkv), referenced where they are
(source folders are never modified) or copied into the project's workspace on request. Each pair
has a caption (empty by default: the model card found empty captions train best) and an include
flag. The set is plain data with a JSON form (``pairs.json`` in the dataset's workspace folder);
scores live beside it (:mod:`difflora_gui.dataset.checks`), keyed by pair id.

Edits (:meth:`PairSet.swap`, :meth:`~PairSet.set_included`, :meth:`~PairSet.remove`,
:meth:`~PairSet.replace_item`, :meth:`~PairSet.set_captions`) change the set in memory and return
what they replaced, so an undo stack can put it back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
SIDES = ("a", "b")
SIDE_TITLES = {"a": "A (concept present)", "b": "B (concept absent)"}

FORMAT_VERSION = 1


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``frame2`` < ``frame10``; case-insensitive."""
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, 0, part.casefold()) for part in _DIGITS.split(text)
    )


_DIGITS = re.compile(r"(\d+)")


def media_kind(path: str | Path) -> str | None:
    """``"image"`` or ``"video"`` by the file's suffix (case-insensitive); None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


@dataclass(frozen=True)
class MediaItem:
    """One image or clip, by path (absolute, or relative to the project file when stored)."""

    path: str
    kind: str  # "image" | "video"

    @classmethod
    def from_path(cls, path: str | Path) -> MediaItem:
        kind = media_kind(path)
        if kind is None:
            raise UserError(f"{path}: not an image or video file (expected {', '.join(MEDIA_SUFFIXES)})")
        return cls(str(path), kind)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def stem(self) -> str:
        return Path(self.path).stem

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind}

    @classmethod
    def from_json(cls, data: Any) -> MediaItem:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise UserError(f"a dataset item must be a table with a 'path', got {data!r}")
        kind = data.get("kind") or media_kind(data["path"])
        if kind not in ("image", "video"):
            raise UserError(f"dataset item {data['path']!r}: kind must be image or video, got {kind!r}")
        return cls(data["path"], kind)


@dataclass(frozen=True)
class Pair:
    """A and B of one training example; ``id`` is stable (the shared stem, made unique)."""

    id: str
    a: MediaItem | None
    b: MediaItem | None
    caption: str = ""
    include: bool = True

    def item(self, side: str) -> MediaItem | None:
        return self.a if side == "a" else self.b

    @property
    def complete(self) -> bool:
        return self.a is not None and self.b is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "a": None if self.a is None else self.a.to_json(),
            "b": None if self.b is None else self.b.to_json(),
            "caption": self.caption,
            "include": self.include,
        }

    @classmethod
    def from_json(cls, data: Any) -> Pair:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise UserError(f"a pair must be a table with an 'id', got {data!r}")
        caption, include = data.get("caption", ""), data.get("include", True)
        if not isinstance(caption, str) or not isinstance(include, bool):
            raise UserError(f"pair {data['id']!r}: caption must be text and include true or false")
        return cls(
            data["id"],
            None if data.get("a") is None else MediaItem.from_json(data["a"]),
            None if data.get("b") is None else MediaItem.from_json(data["b"]),
            caption,
            include,
        )


@dataclass(frozen=True)
class Skipped:
    """A file left out of the set, and why (unreadable, not media, too large …)."""

    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class PairSet:
    """The pairs of a dataset, what stayed unpaired, what was skipped, and where they came from."""

    name: str = "pairs"
    pairs: list[Pair] = field(default_factory=list)
    unpaired_a: list[MediaItem] = field(default_factory=list)
    unpaired_b: list[MediaItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # "a"/"b" → the folder each side came from
    rule: str = ""  # the pairing rule as text (see difflora_gui.dataset.pairing)
    resolution: int = 256  # the training resolution the checks and the bucket preview use

    # --- lookup ------------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return [p.id for p in self.pairs]

    def index(self, pair_id: str) -> int:
        for i, pair in enumerate(self.pairs):
            if pair.id == pair_id:
                return i
        raise KeyError(f"no pair {pair_id!r} in dataset {self.name!r}")

    def pair(self, pair_id: str) -> Pair:
        return self.pairs[self.index(pair_id)]

    def included(self) -> list[Pair]:
        """The complete pairs that take part in training and export."""
        return [p for p in self.pairs if p.include and p.complete]

    # --- edits (each returns what it replaced, for undo) ----------------------------------------

    def _put(self, pair: Pair) -> Pair:
        i = self.index(pair.id)
        old, self.pairs[i] = self.pairs[i], pair
        return old

    def restore(self, pairs: Iterable[Pair]) -> None:
        """Put pairs back as they were (an undo); a pair no longer in the set is re-inserted at its
        place in natural id order (``frame2`` before ``frame10``), the others keeping theirs."""
        for pair in pairs:
            try:
                self._put(pair)
            except KeyError:
                key = natural_key(pair.id)
                at = next((i for i, p in enumerate(self.pairs) if natural_key(p.id) > key), len(self.pairs))
                self.pairs.insert(at, pair)

    def swap(self, pair_id: str) -> Pair:
        pair = self.pair(pair_id)
        return self._put(dataclasses.replace(pair, a=pair.b, b=pair.a))

    def set_included(self, pair_ids: Iterable[str], include: bool) -> list[Pair]:
        return [self._put(dataclasses.replace(self.pair(i), include=include)) for i in pair_ids]

    def set_captions(self, pair_ids: Iterable[str], caption: str) -> list[Pair]:
        return [self._put(dataclasses.replace(self.pair(i), caption=caption)) for i in pair_ids]

    def replace_item(self, pair_id: str, side: str, item: MediaItem | None) -> Pair:
        if side not in SIDES:
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        return self._put(dataclasses.replace(self.pair(pair_id), **{side: item}))

    def remove(self, pair_ids: Iterable[str]) -> list[Pair]:
        """Delete pairs from the set (never their files); returns them for undo."""
        wanted = set(pair_ids)
        removed = [p for p in self.pairs if p.id in wanted]
        self.pairs = [p for p in self.pairs if p.id not in wanted]
        return removed

    # --- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "difflora-pairs",
            "version": FORMAT_VERSION,
            "name": self.name,
            "rule": self.rule,
            "resolution": self.resolution,
            "sources": dict(self.sources),
            "pairs": [p.to_json() for p in self.pairs],
            "unpaired_a": [i.to_json() for i in self.unpaired_a],
            "unpaired_b": [i.to_json() for i in self.unpaired_b],
            "skipped": [s.to_json() for s in self.skipped],
        }

    @classmethod
    def from_json(cls, data: Any) -> PairSet:
        if not isinstance(data, dict) or data.get("format") != "difflora-pairs":
            raise UserError("not a DiffLoRA pair list (no 'format': 'difflora-pairs')")
        if data.get("version", 0) > FORMAT_VERSION:
            raise UserError(
                f"the pair list is version {data.get('version')}, newer than this app reads ({FORMAT_VERSION})"
            )
        resolution = data.get("resolution", 256)
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution <= 0:
            raise UserError(f"the pair list's resolution must be a positive whole number, got {resolution!r}")
        return cls(
            name=str(data.get("name", "pairs")),
            pairs=[Pair.from_json(p) for p in data.get("pairs", [])],
            unpaired_a=[MediaItem.from_json(i) for i in data.get("unpaired_a", [])],
            unpaired_b=[MediaItem.from_json(i) for i in data.get("unpaired_b", [])],
            skipped=[
                Skipped(str(s.get("path", "")), str(s.get("reason", ""))) for s in data.get("skipped", [])
            ],
            sources={str(k): str(v) for k, v in dict(data.get("sources", {})).items()},
            rule=str(data.get("rule", "")),
            resolution=resolution,
        )
