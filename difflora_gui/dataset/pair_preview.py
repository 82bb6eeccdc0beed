"""Everything the pair view shows for one pair, computed off the UI thread (no Qt here).

:func:`build_preview` decodes A and B (a video's middle frame, or the frame asked for), brings B to A's
display size for the difference heatmap, and cuts both into their Musubi-style aspect bucket at the
training resolution (:mod:`difflora_gui.dataset.buckets`). A side that cannot be read carries its one-line
error instead of pixels; the other side still shows.

Decoding goes through :mod:`difflora_gui.dataset.media` (``probe``, then ``load_image``/``load_frame``;
an image longer than :data:`MAX_DISPLAY_SIDE` is decoded reduced, for display only).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from difflora_gui.dataset import media
from difflora_gui.dataset.buckets import BucketFit, plan_bucket, resize_to_bucket
from difflora_gui.dataset.diff_image import DiffImage, diff_heatmap
from difflora_gui.dataset.model import MediaItem, Pair
from difflora_gui.errors import UserError

#: images are shown at most this long on their long side (a larger one is reduced for display only)
MAX_DISPLAY_SIDE = 4096


def read_item(
    item: MediaItem, frame_index: int | None = None
) -> tuple[np.ndarray, tuple[int, int], int | None]:
    """The item's pixels (uint8 BGR, reduced to at most MAX_DISPLAY_SIDE long), its source size and frame count.

    A clip gives frame ``frame_index`` (its middle one by default). ``BadFileError`` for a file that cannot be used.
    """
    info = media.probe(item.path)
    long_side = max(info.width, info.height)
    size = None
    if long_side > MAX_DISPLAY_SIDE:
        size = max(1, round(min(info.width, info.height) * MAX_DISPLAY_SIDE / long_side))
    if info.kind == "video":
        if frame_index is not None and info.frames:
            frame_index = max(0, min(frame_index, info.frames - 1))  # a shorter clip shows its last frame
        decoded = media.load_frame(item.path, frame_index, size)
        return decoded.image, decoded.source_size, info.frames
    decoded = media.load_image(item.path, size)
    return decoded.image, decoded.source_size, None


@dataclass
class SidePreview:
    """One side: the display pixels, the source size, its bucket fit and crop; or an error line."""

    item: MediaItem | None
    image: np.ndarray | None = None  # BGR, at most MAX_DISPLAY_SIDE long (reduced for display only)
    source_size: tuple[int, int] | None = None  # (width, height) of the file's pixels
    frames: int | None = None  # for a clip
    fit: BucketFit | None = None
    crop: np.ndarray | None = None  # the bucket crop, as Musubi trains it
    error: str | None = None


@dataclass
class PairPreview:
    pair_id: str
    resolution: int
    frame_index: int | None
    a: SidePreview
    b: SidePreview
    heatmap: DiffImage | None = None  # at A's display size
    crop_heatmap: DiffImage | None = None  # at A's bucket size

    def side(self, side: str) -> SidePreview:
        return self.a if side == "a" else self.b


def _side(item: MediaItem | None, resolution: int, frame_index: int | None) -> SidePreview:
    side = SidePreview(item)
    if item is None:
        side.error = "no item on this side"
        return side
    try:
        pixels, (w, h), side.frames = read_item(item, frame_index)
    except (UserError, OSError, ValueError, cv2.error) as error:
        side.error = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        return side
    side.source_size = (w, h)
    side.fit = plan_bucket(w, h, resolution)
    side.crop = resize_to_bucket(pixels, side.fit)
    side.image = pixels
    return side


def build_preview(pair: Pair, resolution: int, frame_index: int | None = None) -> PairPreview:
    """Decode and prepare one pair for the view (call it off the UI thread)."""
    preview = PairPreview(
        pair.id,
        resolution,
        frame_index,
        _side(pair.a, resolution, frame_index),
        _side(pair.b, resolution, frame_index),
    )
    a, b = preview.a, preview.b
    if a.image is not None and b.image is not None:
        preview.heatmap = diff_heatmap(a.image, b.image, (a.image.shape[1], a.image.shape[0]))
        preview.crop_heatmap = diff_heatmap(a.crop, b.crop, a.fit.bucket)
    return preview
