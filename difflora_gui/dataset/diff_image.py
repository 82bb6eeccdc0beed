"""The absolute difference of two images as a heatmap (what the pair view overlays on a pair).

Both images are brought to one size (``size`` as (width, height), or A's size), the per-pixel absolute
difference is taken over the colour channels (the largest of B, G, R, so a pure hue change shows), and
a colormap turns it into a BGR heatmap. ``gain`` stretches faint differences; the raw difference is kept
for numbers (mean, max, share of pixels that differ). No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_COLORMAP = cv2.COLORMAP_INFERNO


@dataclass(frozen=True)
class DiffImage:
    """``diff``: uint8 H×W absolute difference (0 = identical); ``heatmap``: uint8 H×W×3 BGR."""

    diff: np.ndarray
    heatmap: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.diff.mean()) if self.diff.size else 0.0

    @property
    def max(self) -> int:
        return int(self.diff.max()) if self.diff.size else 0

    def changed_fraction(self, threshold: int = 8) -> float:
        """The share of pixels whose difference exceeds ``threshold`` (of 255)."""
        return float((self.diff > threshold).mean()) if self.diff.size else 0.0


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    if (w, h) == size:
        return image
    interpolation = cv2.INTER_AREA if w * h > size[0] * size[1] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def abs_difference(a: np.ndarray, b: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 H×W: per pixel the largest channel's absolute difference, both images at ``size`` (or A's)."""
    if size is None:
        size = (a.shape[1], a.shape[0])
    a3 = _resized(_as_bgr(a), size)
    b3 = _resized(_as_bgr(b), size)
    return cv2.absdiff(a3, b3).max(axis=2)


def diff_heatmap(
    a: np.ndarray,
    b: np.ndarray,
    size: tuple[int, int] | None = None,
    *,
    gain: float = 1.0,
    colormap: int = DEFAULT_COLORMAP,
) -> DiffImage:
    """The difference and its heatmap (``gain`` multiplies the difference before the colormap)."""
    diff = abs_difference(a, b, size)
    scaled = diff if gain == 1.0 else cv2.convertScaleAbs(diff, alpha=gain)
    return DiffImage(diff, cv2.applyColorMap(scaled, colormap))
