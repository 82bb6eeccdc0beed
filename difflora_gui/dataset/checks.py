"""Pair checks: how alike A and B are in everything except the concept, and what differs.

For one pair, at the training resolution (A's short side at ``resolution``, B brought to exactly
A's size there — a size difference is itself a flag), :func:`check_pair` measures

* **structure**: SSIM (grey, and per channel) and mean absolute difference (grey, per channel);
* **alignment**: the translation of B against A by phase correlation on the grey images (Hanning
  window), in pixels at the check resolution and in A's source pixels; the zoom (``scale``) by
  phase correlation of the log-polar magnitude spectra (Fourier–Mellin, at the colour resolution);
* **colour drift**: mean CIE Lab difference (ΔL, Δa, Δb, and Δchroma for saturation) and the
  Bhattacharyya distance of the colour histograms;
* **size**: source sizes and aspects; for videos frame count, fps and duration, and the scores
  above on a few frames sampled at the same relative positions.

The grey SSIM and the MADs run at the check resolution itself; the phase correlation at a short
side of at most :data:`ALIGN_RESOLUTION` (the shift is scaled up; sub-pixel there, so within a
pixel at 512); the mean Lab colour, the histograms and the per-channel SSIM at
:data:`COLOUR_RESOLUTION` (mean colour and histograms hardly change with size, and the per-channel
SSIM is a coarse "which channel differs" hint — the grey SSIM is the structural score). This keeps
a check at 512 within ~1.3× of the reduced decode it needs anyway.

The numbers are stored (:class:`PairScores`, JSON); the :class:`Flag` list is derived from them
and the thresholds (:func:`flag_scores`), so changing a threshold re-flags without re-reading.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from difflora_gui.dataset import check_metrics as metrics
from difflora_gui.dataset import media
from difflora_gui.dataset.check_config import CheckThresholds
from difflora_gui.dataset.model import media_kind
from difflora_gui.errors import UserError

#: the largest short side the phase correlation runs at (a shift found there is scaled up)
ALIGN_RESOLUTION = 256
#: the short side the colour checks (mean Lab, histograms) and the per-channel SSIM run at
COLOUR_RESOLUTION = 128
#: the decode-and-resize pipeline (difflora_gui.dataset.media.load_image); a cache made by another
#: pipeline is rechecked. Each pair also stores the exact path its two images took (``resize_method``).
RESIZE_METHOD = "media.load_image: reduced decode, exact-2x INTER_AREA, INTER_LINEAR"


@dataclass(frozen=True)
class Flag:
    """One finding: ``code`` for filtering and counting, ``text`` a one-line verdict with numbers."""

    code: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


@dataclass
class PairScores:
    """Every number measured for one pair (JSON-safe), and the flags derived from them."""

    pair_id: str = ""
    resolution: int = 256
    resize_method: str = ""  # how A and B were decoded and resized ("reduced4+linear" …)
    error: str = ""  # non-empty: the pair could not be checked (the file and the reason)
    size_a: tuple[int, int] = (0, 0)
    size_b: tuple[int, int] = (0, 0)
    check_size: tuple[int, int] = (0, 0)  # (w, h) both images were compared at
    ssim: float = math.nan
    ssim_rgb: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    mad: float = math.nan
    mad_rgb: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    shift: tuple[float, float] = (0.0, 0.0)  # (dx, dy) of B against A, px at the check size
    shift_source: tuple[float, float] = (0.0, 0.0)  # the same in A's source pixels
    align_response: float = 0.0  # phase-correlation peak (confidence of the shift)
    scale: float = 1.0  # zoom of B's content against A's (> 1: zoomed in), log-polar phase correlation
    scale_response: float = 0.0  # its correlation peak (confidence)
    lab_drift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (ΔL, Δa, Δb), B − A
    chroma_drift: float = 0.0  # Δ mean chroma, B − A (saturation)
    histogram: float = 0.0  # worst channel's Bhattacharyya distance
    histogram_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    kind: str = "image"
    frames: tuple[int, int] | None = None  # videos: (A, B)
    fps: tuple[float, float] | None = None
    duration_s: tuple[float, float] | None = None
    sampled_frames: tuple[tuple[int, int], ...] = ()  # videos: (A index, B index) scored
    frame_ssim: tuple[float, ...] = ()
    flags: list[Flag] = field(default_factory=list)

    @property
    def aspect_a(self) -> float:
        return _aspect(self.size_a)

    @property
    def aspect_b(self) -> float:
        return _aspect(self.size_b)

    @property
    def shift_px(self) -> float:
        return math.hypot(*self.shift)

    @property
    def flag_codes(self) -> list[str]:
        return [f.code for f in self.flags]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = [f.to_json() for f in self.flags]
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
            elif isinstance(value, (tuple, list)) and key != "flags":
                data[key] = _json_list(value)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairScores:
        if not isinstance(data, dict):
            raise UserError(f"pair scores must be a table, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if key == "flags":
                value = [Flag(str(f["code"]), str(f["text"])) for f in value or []]
            elif isinstance(value, list):
                value = _tuple(value)
            elif value is None and key in ("ssim", "mad"):
                value = math.nan
            values[key] = value
        return cls(**values)


def _json_list(value):
    return [_json_list(v) if isinstance(v, (tuple, list)) else (None if _nan(v) else v) for v in value]


def _tuple(value):
    return tuple(_tuple(v) if isinstance(v, list) else (math.nan if v is None else v) for v in value)


def _nan(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _aspect(size: tuple[int, int]) -> float:
    return size[0] / size[1] if size[1] else 0.0


# --- measuring -------------------------------------------------------------------------------


def score_images(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """The scores of two BGR uint8 images of the same size (already at the check resolution)."""
    grey_a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
    grey_b = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
    fa, fb = grey_a.astype(np.float32), grey_b.astype(np.float32)
    mad_bgr = metrics.mad(a, b)
    align_a, align_b = metrics.shrink(fa, ALIGN_RESOLUTION), metrics.shrink(fb, ALIGN_RESOLUTION)
    dx, dy, response = metrics.phase_shift(align_a, align_b)
    up = a.shape[1] / align_a.shape[1]
    small_a, small_b = metrics.shrink(a, COLOUR_RESOLUTION), metrics.shrink(b, COLOUR_RESOLUTION)
    scale, scale_response = metrics.log_polar_scale(
        cv2.cvtColor(small_a, cv2.COLOR_BGR2GRAY).astype(np.float32),
        cv2.cvtColor(small_b, cv2.COLOR_BGR2GRAY).astype(np.float32),
    )
    lab_a, lab_b = metrics.lab_stats(small_a), metrics.lab_stats(small_b)
    hist = metrics.histogram_distance(metrics.histograms(small_a), metrics.histograms(small_b))
    return {
        "ssim": metrics.ssim(fa, fb),
        "ssim_rgb": metrics.ssim_channels(small_a, small_b),
        "mad": metrics.mad(grey_a, grey_b)[0],
        "mad_rgb": (mad_bgr[2], mad_bgr[1], mad_bgr[0]),
        "shift": (dx * up, dy * up),
        "align_response": response,
        "scale": scale,
        "scale_response": scale_response,
        "lab_drift": tuple(lab_b[i] - lab_a[i] for i in range(3)),
        "chroma_drift": lab_b[3] - lab_a[3],
        "histogram": max(hist),
        "histogram_rgb": hist,
    }


def _path(item) -> Path:
    return Path(item.path if hasattr(item, "path") else item)


def check_pair(
    a, b, resolution: int = 256, thresholds: CheckThresholds | None = None, *, pair_id: str = ""
) -> PairScores:
    """Score one pair (``a``/``b``: MediaItems or paths) at ``resolution``; flags included.

    An unreadable item does not raise: the scores carry ``error`` (file and reason) and an
    ``unreadable`` flag, so a batch lists it and goes on.
    """
    thresholds = thresholds or CheckThresholds(resolution=resolution)
    path_a, path_b = _path(a), _path(b)
    scores = PairScores(pair_id=pair_id, resolution=int(resolution))
    try:
        if media_kind(path_a) == "video" or media_kind(path_b) == "video":
            _check_videos(scores, path_a, path_b, int(resolution), thresholds.video_samples)
        else:
            _check_images(scores, path_a, path_b, int(resolution))
    except UserError as exc:
        scores.error = str(exc)
    except cv2.error as exc:
        scores.error = f"{path_a.name} / {path_b.name}: OpenCV could not read them ({str(exc).strip()[:120]})"
    scores.flags = flag_scores(scores, thresholds)
    return scores


def _apply(scores: PairScores, values: dict[str, Any]) -> None:
    for key, value in values.items():
        setattr(scores, key, value)
    w_src, w_check = scores.size_a[0], scores.check_size[0]
    factor = w_src / w_check if w_check else 1.0
    scores.shift_source = (scores.shift[0] * factor, scores.shift[1] * factor)


def _method(a: str, b: str) -> str:
    return a if a == b else f"A {a}, B {b}"


def _check_images(scores: PairScores, path_a: Path, path_b: Path, resolution: int) -> None:
    decoded_a = media.load_image(path_a, resolution)
    height, width = decoded_a.image.shape[:2]
    decoded_b = media.load_image(path_b, target=(width, height))
    scores.size_a, scores.size_b = decoded_a.source_size, decoded_b.source_size
    scores.check_size = (width, height)
    scores.resize_method = _method(decoded_a.method, decoded_b.method)
    _apply(scores, score_images(decoded_a.image, decoded_b.image))


def _positions(samples: int) -> list[float]:
    """Where in a clip the scored frames sit (fractions of its length, same in A and B)."""
    return [(i + 0.5) / samples for i in range(samples)]


def _frame_index(frames: int, position: float) -> int:
    return min(max(frames - 1, 0), int(frames * position))


def _check_videos(scores: PairScores, path_a: Path, path_b: Path, resolution: int, samples: int) -> None:
    if not (media_kind(path_a) == "video" and media_kind(path_b) == "video"):
        raise UserError(f"{path_a.name} / {path_b.name}: one is a video and the other an image")
    scores.kind = "video"
    info_a, info_b = media.probe(path_a), media.probe(path_b)
    scores.size_a, scores.size_b = (info_a.width, info_a.height), (info_b.width, info_b.height)
    scores.frames = (int(info_a.frames), int(info_b.frames))
    scores.fps = (float(info_a.fps), float(info_b.fps))
    scores.duration_s = (float(info_a.duration_s), float(info_b.duration_s))
    scores.check_size = media.target_dims(info_a.width, info_a.height, resolution)
    per_frame: list[dict[str, Any]] = []
    picked: list[tuple[int, int]] = []
    methods = set()
    for position in _positions(samples):
        ia, ib = _frame_index(info_a.frames, position), _frame_index(info_b.frames, position)
        frame_a = media.load_frame(path_a, ia, target=scores.check_size)
        frame_b = media.load_frame(path_b, ib, target=scores.check_size)
        methods.add(_method(frame_a.method, frame_b.method))
        per_frame.append(score_images(frame_a.image, frame_b.image))
        picked.append((ia, ib))
    combined: dict[str, Any] = {}
    for key, first in per_frame[0].items():
        if isinstance(first, tuple):
            combined[key] = tuple(statistics.median(p[key][i] for p in per_frame) for i in range(len(first)))
        else:
            combined[key] = statistics.median(p[key] for p in per_frame)
    combined["ssim"] = statistics.fmean(p["ssim"] for p in per_frame)
    combined["mad"] = statistics.fmean(p["mad"] for p in per_frame)
    scores.sampled_frames = tuple(picked)
    scores.frame_ssim = tuple(p["ssim"] for p in per_frame)
    scores.resize_method = "; ".join(sorted(methods))
    _apply(scores, combined)


# --- flags -----------------------------------------------------------------------------------


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def _dims(size) -> str:
    return f"{size[0]}×{size[1]}"


def shift_text(dx: float, dy: float) -> str:
    """``shifted 12.3 px right, 0.4 px down``."""
    horizontal = f"{abs(dx):.1f} px {'right' if dx >= 0 else 'left'}"
    vertical = f"{abs(dy):.1f} px {'down' if dy >= 0 else 'up'}"
    return f"shifted {horizontal}, {vertical}"


#: per colour axis: (flag code, word when B − A is negative, word when positive, symbol)
DRIFT_AXES = (
    ("lightness", "darker", "lighter", "ΔL"),
    ("green_magenta", "greener", "more magenta", "Δa"),
    ("blue_yellow", "cooler (bluer)", "warmer (yellower)", "Δb"),
    ("saturation", "less saturated", "more saturated", "Δchroma"),
)


def drift_values(scores: PairScores) -> tuple[float, float, float, float]:
    """(ΔL, Δa, Δb, Δchroma) of B against A, in the order of :data:`DRIFT_AXES`."""
    return (*scores.lab_drift, scores.chroma_drift)


def drift_limits(t: CheckThresholds) -> tuple[float, float, float, float]:
    return (t.drift_lightness, t.drift_colour, t.drift_colour, t.drift_saturation)


def drift_word(axis: int, value: float) -> str:
    return DRIFT_AXES[axis][1] if value < 0 else DRIFT_AXES[axis][2]


def flag_scores(scores: PairScores, t: CheckThresholds) -> list[Flag]:
    """The findings of one pair's numbers under thresholds ``t``."""
    if scores.error:
        return [Flag("unreadable", scores.error)]
    flags: list[Flag] = []
    a_size, b_size = scores.size_a, scores.size_b
    if abs(scores.aspect_a - scores.aspect_b) > t.aspect_tolerance * max(scores.aspect_a, 1e-9):
        flags.append(
            Flag(
                "aspect",
                f"B is {_dims(b_size)} but A {_dims(a_size)} (aspect {scores.aspect_b:.2f} vs "
                f"{scores.aspect_a:.2f}); B is stretched to A's size for the checks",
            )
        )
    elif a_size != b_size:
        flags.append(
            Flag("size", f"B is {_dims(b_size)} but A {_dims(a_size)} (same aspect {scores.aspect_a:.2f})")
        )
    if scores.kind == "video" and scores.frames and scores.fps and scores.duration_s:
        (fa, fb), (ra, rb), (da, db) = scores.frames, scores.fps, scores.duration_s
        if fa != fb:
            flags.append(Flag("frames", f"B has {fb} frames but A {fa} ({_signed(fb - fa)})"))
        if abs(ra - rb) > t.fps_tolerance:
            flags.append(Flag("fps", f"B runs at {rb:.3g} fps but A at {ra:.3g} fps"))
        if abs(da - db) > t.duration_tolerance:
            flags.append(Flag("duration", f"B lasts {db:.2f} s but A {da:.2f} s ({_signed(db - da)} s)"))
    if scores.ssim < t.ssim_min:
        flags.append(Flag("ssim", f"SSIM {scores.ssim:.3f} (below {t.ssim_min:g}): B's structure differs"))
    if scores.mad > t.mad_max:
        flags.append(Flag("mad", f"mean abs. difference {scores.mad:.1f} (above {t.mad_max:g})"))
    dx, dy = scores.shift
    if scores.shift_px > t.shift_max:
        sx, sy = scores.shift_source
        if scores.align_response >= t.align_min_response:
            flags.append(
                Flag(
                    "shift",
                    f"{shift_text(dx, dy)} at {scores.check_size[1]} px ({abs(sx):.1f}, {abs(sy):.1f} px "
                    f"in A's pixels)",
                )
            )
    if abs(scores.scale - 1.0) > t.scale_tolerance and scores.scale_response >= t.scale_min_response:
        way = "in" if scores.scale > 1 else "out"
        flags.append(
            Flag("scale", f"B is zoomed {way} {abs(scores.scale - 1) * 100:.1f} % (scale {scores.scale:.3f})")
        )
    for axis, (value, limit) in enumerate(zip(drift_values(scores), drift_limits(t), strict=True)):
        if abs(value) > limit:
            code, symbol = DRIFT_AXES[axis][0], DRIFT_AXES[axis][3]
            flags.append(Flag(code, f"B is {drift_word(axis, value)} ({symbol} {_signed(value)}) than A"))
    if scores.histogram > t.histogram_max:
        names = ("red", "green", "blue")
        worst = names[int(np.argmax(scores.histogram_rgb))]
        flags.append(
            Flag(
                "histogram",
                f"colour histograms differ (Bhattacharyya {scores.histogram:.2f}, most in {worst})",
            )
        )
    return flags


def reflag(scores: dict[str, PairScores], t: CheckThresholds) -> None:
    """Re-derive every pair's flags under new thresholds (no image is read)."""
    for value in scores.values():
        value.flags = flag_scores(value, t)
