"""Musubi-style aspect buckets: which bucket an image falls in at a resolution, and how it is cut to fit.

Musubi Tuner (``src/musubi_tuner/dataset/bucket.py``, ``BucketSelector``) builds its buckets from the
dataset's ``resolution`` (an int ``r`` means ``r × r``): the bucket area is ``W × H``; for each width ``w``
from ``floor16(sqrt(area) // 2)`` to ``sqrt(area)`` in 16 px steps (Wan's step) the height is
``floor16(area // w)``, and both ``(w, h)`` and ``(h, w)`` are buckets. An image goes to the bucket whose
aspect ratio is closest to its own; with ``bucket_no_upscale`` an image no larger than the area keeps its
own size floored to the step; without ``enable_bucket`` there is one bucket, the resolution itself.
``resize_image_to_bucket`` (``media_utils.py``) then scales the image so it covers the bucket
(``scale = max(bw / w, bh / h)``, sizes rounded with ``int(x * scale + 0.5)``; Lanczos up, area down) and
crops the centre (``left = (new_w - bw) // 2``, ``top = (new_h - bh) // 2``).

No Qt here; OpenCV does the resizing (Lanczos4 stands in for PIL's Lanczos when upscaling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

#: Musubi's bucket step for Wan (and every other architecture it trains)
WAN_STEP = 16


def divisible_by(num: int, divisor: int) -> int:
    """``num`` rounded down to a multiple of ``divisor`` (Musubi's helper of that name)."""
    return num - num % divisor


def resolution_size(resolution: int | tuple[int, int]) -> tuple[int, int]:
    """The dataset TOML's ``resolution`` as (width, height): an int ``r`` is ``r × r``."""
    if isinstance(resolution, int):
        return resolution, resolution
    width, height = resolution
    return int(width), int(height)


@cache
def bucket_resolutions(
    resolution: int | tuple[int, int], step: int = WAN_STEP
) -> tuple[tuple[int, int], ...]:
    """Every (width, height) bucket Musubi makes at ``resolution``, sorted."""
    width, height = resolution_size(resolution)
    area = width * height
    sqrt_size = int(math.sqrt(area))
    min_size = divisible_by(sqrt_size // 2, step)
    buckets: set[tuple[int, int]] = set()
    for w in range(min_size, sqrt_size + step, step):
        h = divisible_by(area // w, step)
        buckets.add((w, h))
        buckets.add((h, w))
    return tuple(sorted(buckets))


def bucket_for(
    width: int,
    height: int,
    resolution: int | tuple[int, int],
    *,
    enable_bucket: bool = True,
    no_upscale: bool = False,
    step: int = WAN_STEP,
) -> tuple[int, int]:
    """The (width, height) bucket a ``width × height`` image trains in (Musubi's ``get_bucket_resolution``)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    if not enable_bucket:
        return resolution_size(resolution)
    res_w, res_h = resolution_size(resolution)
    if no_upscale and width * height <= res_w * res_h:
        return divisible_by(width, step), divisible_by(height, step)
    buckets = bucket_resolutions(resolution, step)
    ratios = np.array([w / h for w, h in buckets])
    return buckets[int(np.abs(ratios - width / height).argmin())]


@dataclass(frozen=True)
class BucketFit:
    """How one image is cut to its bucket: scaled to ``scaled`` then the ``crop`` (x, y, w, h) of that kept."""

    source: tuple[int, int]  # the image's (width, height)
    bucket: tuple[int, int]  # the bucket's (width, height)
    scaled: tuple[int, int]  # the size the image is resized to before the crop
    crop: tuple[int, int, int, int]  # (left, top, width, height) in the scaled image

    @property
    def scale(self) -> float:
        return max(self.bucket[0] / self.source[0], self.bucket[1] / self.source[1])

    @property
    def source_crop(self) -> tuple[float, float, float, float]:
        """The crop in source pixels (left, top, width, height): the part of the image that is trained on."""
        sx = self.source[0] / self.scaled[0]
        sy = self.source[1] / self.scaled[1]
        left, top, w, h = self.crop
        return left * sx, top * sy, w * sx, h * sy

    @property
    def lost_fraction(self) -> float:
        """The share of the image's area cropped away (0 when the aspect fits the bucket exactly)."""
        _, _, w, h = self.crop
        return 1.0 - (w * h) / (self.scaled[0] * self.scaled[1])

    def describe(self) -> str:
        """One line: ``bucket 336×192 · 1920×1080 scaled to 341×192, 5 px cropped across``."""
        bw, bh = self.bucket
        text = f"bucket {bw}×{bh} · {self.source[0]}×{self.source[1]}"
        if self.scaled == self.source:
            text += " kept at its size"
        else:
            text += f" scaled to {self.scaled[0]}×{self.scaled[1]}"
        cut_w, cut_h = self.scaled[0] - bw, self.scaled[1] - bh
        cuts = []
        if cut_w:
            cuts.append(f"{cut_w} px cropped across")
        if cut_h:
            cuts.append(f"{cut_h} px cropped down")
        return text + (", " + ", ".join(cuts) if cuts else ", nothing cropped")


def fit_to_bucket(width: int, height: int, bucket: tuple[int, int]) -> BucketFit:
    """The resize and centre crop that put a ``width × height`` image in ``bucket`` (Musubi's rounding)."""
    bw, bh = bucket
    if (bw, bh) == (width, height):
        return BucketFit((width, height), (bw, bh), (width, height), (0, 0, bw, bh))
    scale = max(bw / width, bh / height)
    new_w, new_h = int(width * scale + 0.5), int(height * scale + 0.5)
    left, top = (new_w - bw) // 2, (new_h - bh) // 2
    return BucketFit((width, height), (bw, bh), (new_w, new_h), (left, top, bw, bh))


def plan_bucket(width: int, height: int, resolution: int | tuple[int, int], **options) -> BucketFit:
    """:func:`bucket_for` and :func:`fit_to_bucket` in one call."""
    return fit_to_bucket(width, height, bucket_for(width, height, resolution, **options))


def resize_to_bucket(image: np.ndarray, fit: BucketFit) -> np.ndarray:
    """The image resized and centre-cropped as Musubi trains it.

    ``image`` is the source at ``fit.source`` size, or the same picture decoded reduced (for a huge image):
    either way it is resized to ``fit.scaled`` (Lanczos up, area down) and cropped.
    """
    h, w = image.shape[:2]
    if (w, h) != fit.scaled:
        interpolation = cv2.INTER_LANCZOS4 if fit.scaled[0] > w else cv2.INTER_AREA
        image = cv2.resize(image, fit.scaled, interpolation=interpolation)
    left, top, bw, bh = fit.crop
    return np.ascontiguousarray(image[top : top + bh, left : left + bw])
