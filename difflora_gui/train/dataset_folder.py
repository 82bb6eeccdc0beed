"""The items of a training folder: images and clips, their captions, and A/B items matched by name.

A training folder holds media files (``.png .jpg .jpeg .webp`` images, ``.mp4 .webm .mov .mkv``
clips) with an optional caption ``<stem>.txt`` beside each. Set A and set B of a pair are two
such folders whose items share names (what the Dataset section's export writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from difflora_gui.dataset.model import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from difflora_gui.errors import UserError

CAPTION_SUFFIX = ".txt"


@dataclass(frozen=True)
class TrainItem:
    path: Path
    kind: str  # "image" or "video"

    @property
    def stem(self) -> str:
        return self.path.stem

    def caption(self) -> str:
        """The caption file's text (stripped), or "" when there is none."""
        file = self.path.with_suffix(CAPTION_SUFFIX)
        try:
            return file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""
        except UnicodeDecodeError:
            raise UserError(f"{file}: the caption is not UTF-8 text") from None


def list_items(folder: str | Path) -> list[TrainItem]:
    """The folder's media items, sorted by name (not recursive); ``UserError`` when it has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (a training set is a folder of images or clips)")
    items = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        suffix = path.suffix.lower()
        if not path.is_file():
            continue
        if suffix in IMAGE_SUFFIXES:
            items.append(TrainItem(path, "image"))
        elif suffix in VIDEO_SUFFIXES:
            items.append(TrainItem(path, "video"))
    if not items:
        raise UserError(
            f"{folder}: no images or clips to train on ({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})"
        )
    return items


def matched_items(a_dir: str | Path, b_dir: str | Path) -> list[tuple[TrainItem, TrainItem]]:
    """A and B items paired by file stem, sorted by stem; ``UserError`` when none match.

    Items without a partner are left out (synchronised pairs and slider mode need both sides).
    """
    a_items = {item.stem: item for item in list_items(a_dir)}
    b_items = {item.stem: item for item in list_items(b_dir)}
    common = sorted(set(a_items) & set(b_items))
    if not common:
        raise UserError(f"{a_dir} and {b_dir} share no item names: A and B items are paired by file name")
    return [(a_items[stem], b_items[stem]) for stem in common]


def unmatched_names(a_dir: str | Path, b_dir: str | Path) -> tuple[list[str], list[str]]:
    """(names only in A, names only in B)."""
    a = {item.stem for item in list_items(a_dir)}
    b = {item.stem for item in list_items(b_dir)}
    return sorted(a - b), sorted(b - a)
