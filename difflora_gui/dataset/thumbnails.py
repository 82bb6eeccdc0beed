"""Thumbnails of dataset items, cached on disk in the dataset's workspace folder ``thumbs/`` (Qt-free).

A thumbnail is a small JPEG (its long side at most :data:`THUMB_SIZE` px) made with the media
reader's reduced decode (:func:`difflora_gui.dataset.media.read_image`: ``IMREAD_REDUCED_*`` then
one linear resize; for a clip its middle frame). Its file name is a hash of the item's absolute
path, byte size, modification time and the thumbnail size, so an edited or replaced file gets a new
thumbnail and the old one is simply never read again. Source files are only read, never written;
a thumbnail is written to a temporary file and renamed (a half-written one is never seen).

The grid (``difflora_gui.qt.dataset.pair_grid``) asks for thumbnails from its worker threads, never
from the UI thread; :func:`pregenerate` makes them for a whole set (a job function).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from difflora_gui.errors import BadFileError
from difflora_gui.fileio import atomic_write_bytes

if TYPE_CHECKING:  # cv2 and numpy load when a thumbnail is made, not when the window starts
    import numpy as np

#: the long side of a thumbnail, in pixels
THUMB_SIZE = 112
THUMBS_DIR = "thumbs"
JPEG_QUALITY = 85


def _read_small(path: Path, size: int) -> np.ndarray:
    """The item as a BGR array whose short side is about ``size`` (a video: its middle frame)."""
    from difflora_gui.dataset.media import read_image

    return read_image(path, size)


def fit(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled down (never up) so that its long side is at most ``size``."""
    import cv2
    import numpy as np

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    height, width = image.shape[:2]
    scale = size / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, target, interpolation=cv2.INTER_AREA)


def make_thumbnail(path: str | Path, size: int = THUMB_SIZE) -> np.ndarray:
    """The thumbnail of one item (BGR, long side ≤ ``size``); ``BadFileError`` for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise BadFileError(path, "the file is missing")
    image = _read_small(path, size)
    if image is None or image.size == 0:
        raise BadFileError(path, "no picture could be read")
    return fit(image, size)


class ThumbnailCache:
    """Thumbnails of one dataset, as JPEG files in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path, size: int = THUMB_SIZE):
        self.folder = Path(folder)
        self.size = int(size)

    @classmethod
    def for_dataset(cls, dataset_folder: str | Path, size: int = THUMB_SIZE) -> ThumbnailCache:
        """The cache in a dataset's workspace folder (``<dataset>/thumbs``)."""
        return cls(Path(dataset_folder) / THUMBS_DIR, size)

    def key(self, path: str | Path) -> str:
        """The cache key of an item: its absolute path, size, modification time and the thumb size.

        Raises ``BadFileError`` when the file is not there."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise BadFileError(path, f"cannot read the file: {exc.strerror or exc}") from exc
        text = f"{os.path.normcase(os.path.abspath(path))}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}"
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    def path_for(self, path: str | Path) -> Path:
        """Where the thumbnail of ``path`` is (or will be) stored."""
        return self.folder / f"{self.key(path)}.jpg"

    def cached(self, path: str | Path) -> Path | None:
        """The stored thumbnail of ``path`` if it is there and current, else None."""
        try:
            target = self.path_for(path)
        except BadFileError:
            return None
        return target if target.is_file() else None

    def get(self, path: str | Path) -> Path:
        """The thumbnail file of ``path``, made (and stored) if it is not cached yet."""
        target = self.path_for(path)
        if target.is_file():
            return target
        import cv2

        image = make_thumbnail(path, self.size)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise BadFileError(path, "the thumbnail could not be encoded")
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, encoded.tobytes())
        return target

    def clear(self) -> int:
        """Delete every stored thumbnail (only files this cache wrote: ``*.jpg`` in its folder)."""
        removed = 0
        if self.folder.is_dir():
            for item in self.folder.glob("*.jpg"):
                try:
                    item.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed


def pair_paths(pair_set) -> list[str]:
    """Every item path of a pair set (A and B of each pair), in grid order."""
    paths: list[str] = []
    for pair in pair_set.pairs:
        for item in (pair.a, pair.b):
            if item is not None:
                paths.append(item.path)
    return paths


def pregenerate(cache: ThumbnailCache, paths: Iterable[str | Path], ctx=None) -> dict[str, str]:
    """Make the thumbnails of ``paths`` that are not cached yet; returns ``{path: reason}`` of the bad ones.

    A job helper: reports progress and honours cancellation through ``ctx`` when given."""
    paths = list(paths)
    bad: dict[str, str] = {}
    for done, path in enumerate(paths):
        if ctx is not None:
            ctx.raise_if_cancelled()
            ctx.progress(done, len(paths), "thumbnails")
        try:
            cache.get(path)
        except BadFileError as exc:
            bad[str(path)] = exc.problem
    if ctx is not None:
        ctx.progress(len(paths), len(paths), "thumbnails")
    return bad
