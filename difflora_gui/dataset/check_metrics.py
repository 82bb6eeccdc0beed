"""The numbers behind the pair checks, on images already at the check size (numpy + OpenCV).

* :func:`ssim` — the standard SSIM (11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03, L 255,
  population covariance, a 5-px border cropped), with ``cv2.GaussianBlur`` on float32. It matches
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`` apart from the border crop. Four blurs, not
  five: σa² + σb² is blurred in one go (the formula only needs their sum). Identical images give
  exactly 1.
* :func:`phase_shift` — the translation of B against A by phase correlation (Hanning window);
  :func:`log_polar_scale` — the zoom, by phase correlation of the log-polar magnitude spectra.
* :func:`lab_stats` — mean L*, a*, b* and chroma; :func:`histograms` / :func:`histogram_distance`.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_BORDER = 5
_HALO = 5  # rows the 11×11 window reaches beyond a strip
STRIP_ROWS = 64
HIST_BINS = 32


def _blur(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map of two float32 images (one or more channels) of the same shape."""
    mu_a, mu_b = _blur(a), _blur(b)
    mu_ab = mu_a * mu_b
    mu_sq = mu_a * mu_a
    mu_sq += mu_b * mu_b
    sq = a * a
    sq += b * b
    var_sum = _blur(sq)
    var_sum -= mu_sq  # σa² + σb²
    cov = _blur(a * b)
    cov -= mu_ab
    mu_ab *= 2
    mu_ab += _C1
    cov *= 2
    cov += _C2
    mu_ab *= cov  # numerator
    mu_sq += _C1
    var_sum += _C2
    mu_sq *= var_sum  # denominator
    mu_ab /= mu_sq
    return mu_ab


def _crop(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    if h > 4 * _BORDER and w > 4 * _BORDER:
        return x[_BORDER : h - _BORDER, _BORDER : w - _BORDER]
    return x


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two single-channel float32 images (the 5-px border left out).

    Computed in strips of :data:`STRIP_ROWS` rows (each with the 5 rows the window needs on
    either side), so the dozen temporary arrays stay in the CPU cache: the same numbers as one
    whole-image pass, about twice as fast at 512.
    """
    height, width = a.shape[:2]
    if height <= 4 * _BORDER or width <= 4 * _BORDER:
        return float(cv2.mean(ssim_map(a, b))[0])
    total = 0.0
    for y0 in range(_BORDER, height - _BORDER, STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, height - _BORDER)
        s0, s1 = max(0, y0 - _HALO), min(height, y1 + _HALO)
        strip = ssim_map(a[s0:s1], b[s0:s1])
        total += float(strip[y0 - s0 : y1 - s0, _BORDER : width - _BORDER].sum(dtype=np.float64))
    return total / ((height - 2 * _BORDER) * (width - 2 * _BORDER))


def ssim_channels(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """SSIM per channel of two BGR uint8 images, returned in R, G, B order."""
    values = []
    for channel in range(3):
        ca = a[:, :, channel].astype(np.float32)
        cb = b[:, :, channel].astype(np.float32)
        values.append(ssim(ca, cb))
    return values[2], values[1], values[0]


def mad(a: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    """Mean absolute difference per channel (0–255), in the images' channel order."""
    means = cv2.mean(cv2.absdiff(a, b))
    channels = 1 if a.ndim == 2 else a.shape[2]
    return tuple(float(m) for m in means[:channels])


@functools.lru_cache(maxsize=16)
def _hanning(width: int, height: int) -> np.ndarray:
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    window.setflags(write=False)
    return window


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, response): how far B's content lies right/down of A's, in pixels; float32 grey inputs.

    ``response`` is the normalised height of the correlation peak (near 1: a clean translation;
    near 0: no common structure to align on).
    """
    height, width = a.shape[:2]
    (dx, dy), response = cv2.phaseCorrelate(a, b, _hanning(width, height))
    return float(dx), float(dy), float(response)


_POLAR_SIZE = (256, 64)  # (log radius, angle) samples of the log-polar spectrum


def _log_spectrum(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    spectrum = cv2.dft(image * _hanning(width, height), flags=cv2.DFT_COMPLEX_OUTPUT)
    magnitude = cv2.magnitude(spectrum[:, :, 0], spectrum[:, :, 1])
    magnitude = np.fft.fftshift(magnitude)
    return cv2.log(magnitude + 1.0)


def log_polar_scale(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(scale, response): how much B's content is zoomed against A's (> 1: zoomed in), float32 grey.

    Fourier–Mellin: the magnitude spectra do not depend on a translation; in log-polar
    coordinates a zoom becomes a shift along the log-radius axis, which phase correlation finds.
    Within ~1 % for zooms of 0.9–1.2 on textured images; ``response`` is the peak's height.
    """
    height, width = a.shape[:2]
    centre, radius = (width / 2, height / 2), min(width, height) / 2
    flags = cv2.WARP_POLAR_LOG + cv2.INTER_LINEAR
    polar_a = cv2.warpPolar(_log_spectrum(a), _POLAR_SIZE, centre, radius, flags)
    polar_b = cv2.warpPolar(_log_spectrum(b), _POLAR_SIZE, centre, radius, flags)
    (shift_rho, _), response = cv2.phaseCorrelate(polar_a, polar_b)
    per_log_unit = _POLAR_SIZE[0] / math.log(radius)
    return float(math.exp(-shift_rho / per_log_unit)), float(response)


def lab_stats(image: np.ndarray) -> tuple[float, float, float, float]:
    """Mean (L*, a*, b*, chroma) of a BGR uint8 image (L* 0–100, a*/b* about ±127).

    OpenCV's 8-bit Lab (a table lookup, ~10× faster than the float conversion); its per-pixel
    rounding (0.4 L*, 1 a*/b*) averages out in the means to well under the drift thresholds.
    """
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2Lab)
    mean_l, mean_a, mean_b, _ = cv2.mean(lab)
    a = lab[:, :, 1].astype(np.float32) - np.float32(128)
    b = lab[:, :, 2].astype(np.float32) - np.float32(128)
    chroma = cv2.magnitude(a, b)
    return mean_l * 100 / 255, mean_a - 128, mean_b - 128, float(cv2.mean(chroma)[0])


def histograms(image: np.ndarray) -> list[np.ndarray]:
    """Normalised histograms (``HIST_BINS`` bins) of the B, G and R channels."""
    result = []
    for channel in range(3):
        hist = cv2.calcHist([image], [channel], None, [HIST_BINS], [0, 256])
        cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)
        result.append(hist)
    return result


def histogram_distance(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float, float]:
    """Bhattacharyya distance per channel (0 same, 1 disjoint), in R, G, B order."""
    d = [float(cv2.compareHist(ha, hb, cv2.HISTCMP_BHATTACHARYYA)) for ha, hb in zip(a, b, strict=True)]
    return d[2], d[1], d[0]


def shrink(image: np.ndarray, short_side: int) -> np.ndarray:
    """``image`` with its short side at most ``short_side`` (exact halvings, then linear)."""
    from difflora_gui.dataset.media import resize_to, target_dims

    h, w = image.shape[:2]
    if min(w, h) <= short_side:
        return image
    return resize_to(image, target_dims(w, h, short_side))[0]
