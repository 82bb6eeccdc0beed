"""Small per-frame helpers of frame extraction: the detector's downscaled frame, dark/blank tests, dHash.

Everything here works on the small (about 256-384 px wide) frame the scene detector sees, so the
filters cost microseconds; only the frames that are kept are converted at full size.
"""

from __future__ import annotations

import cv2
import numpy as np

#: the detector's frame is at least this wide (PySceneDetect's auto-downscale target)
DETECT_MIN_WIDTH = 256

_LIMITED_Y = (255.0 / 219.0, -16.0 * 255.0 / 219.0)
_LIMITED_C = (255.0 / 224.0, 128.0 - 128.0 * 255.0 / 224.0)


def downscale_factor(width: int) -> int:
    """An even integer factor that keeps the width at least 256 px (1 for small videos).

    Even, so that the half-size chroma planes shrink by an exact integer factor too.
    """
    factor = width // DETECT_MIN_WIDTH
    if factor < 2:
        return 1
    return factor - (factor % 2)


def small_bgr(frame, factor: int) -> np.ndarray:
    """The frame (an ``av.VideoFrame``) as a small BGR image, ``factor`` times smaller.

    8-bit 4:2:0 frames are shrunk from their Y, U and V planes directly (``INTER_LINEAR``, as
    PySceneDetect's own auto-downscale does; ``INTER_AREA`` cost 3× more here), then the small image
    is converted YCrCb→BGR; other pixel formats go through swscale.
    """
    name = frame.format.name
    width, height = frame.width, frame.height
    if factor > 1 and name in ("yuv420p", "yuvj420p"):
        sw, sh = width // factor, height // factor
        y = _plane(frame.planes[0], width, height)[: sh * factor, : sw * factor]
        cw, ch = (width + 1) // 2, (height + 1) // 2
        half = factor // 2
        u = _plane(frame.planes[1], cw, ch)[: sh * half, : sw * half]
        v = _plane(frame.planes[2], cw, ch)[: sh * half, : sw * half]
        y = cv2.resize(y, (sw, sh), interpolation=cv2.INTER_LINEAR)
        if half > 1:
            u = cv2.resize(u, (sw, sh), interpolation=cv2.INTER_LINEAR)
            v = cv2.resize(v, (sw, sh), interpolation=cv2.INTER_LINEAR)
        else:
            u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)
        if name == "yuv420p":  # limited range (16-235): stretch to full range first
            y = cv2.convertScaleAbs(y, alpha=_LIMITED_Y[0], beta=_LIMITED_Y[1])
            u = cv2.convertScaleAbs(u, alpha=_LIMITED_C[0], beta=_LIMITED_C[1])
            v = cv2.convertScaleAbs(v, alpha=_LIMITED_C[0], beta=_LIMITED_C[1])
        return cv2.cvtColor(cv2.merge((y, v, u)), cv2.COLOR_YCrCb2BGR)
    if factor > 1:
        return frame.reformat(
            width=width // factor, height=height // factor, format="bgr24", interpolation="FAST_BILINEAR"
        ).to_ndarray()
    return frame.to_ndarray(format="bgr24")


def _plane(plane, width: int, height: int) -> np.ndarray:
    data = np.frombuffer(plane, dtype=np.uint8)
    return data.reshape(-1, plane.line_size)[:height, :width]


def gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def brightness(image: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the grey levels (0-255)."""
    mean, std = cv2.meanStdDev(gray(image))
    return float(mean[0, 0]), float(std[0, 0])


def dhash(image: np.ndarray) -> int:
    """A 64-bit difference hash: the signs of the horizontal gradients of a 9×8 grey thumbnail."""
    small = cv2.resize(gray(image), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class DuplicateIndex:
    """The hashes of the frames kept so far; ``find(h)`` names the nearest within ``distance``."""

    def __init__(self, distance: int):
        self.distance = int(distance)
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._names: list[str] = []

    def find(self, value: int) -> str | None:
        if not self._names:
            return None
        xor = np.bitwise_xor(self._hashes, np.uint64(value))
        counts = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        best = int(np.argmin(counts))
        return self._names[best] if counts[best] <= self.distance else None

    def add(self, value: int, name: str) -> None:
        self._hashes = np.append(self._hashes, np.uint64(value))
        self._names.append(name)


def frame_problem(small: np.ndarray, opts) -> str | None:
    """``"dark"``/``"blank"`` (with the numbers) when the options skip such a frame, else None."""
    if not (opts.skip_dark or opts.skip_blank):
        return None
    mean, std = brightness(small)
    if opts.skip_dark and mean < opts.dark_level:
        return f"dark (mean brightness {mean:.1f} < {opts.dark_level:g})"
    if opts.skip_blank and std < opts.blank_level:
        return f"blank (brightness spread {std:.1f} < {opts.blank_level:g})"
    return None
