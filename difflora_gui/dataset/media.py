"""Reading dataset media (Qt-free): probe a file, decode an image or a video frame, fast and small.

* :func:`probe` — what a file is (kind, size, frames, fps, duration) without decoding it: image
  sizes come from the file header (PNG, JPEG, WebP parsed here, a few bytes read), a truncated
  image is caught from its missing end marker, a huge one (over :data:`MAX_IMAGE_PIXELS`) from
  its header; videos are opened with PyAV and their first frame decoded.
* :func:`load_image` / :func:`read_image` — uint8 BGR. With ``size`` the short side becomes
  ``size``: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (``cv2.IMREAD_REDUCED_COLOR_*``, the
  largest reduction that stays at or above the target), then resized once with ``INTER_LINEAR``;
  other formats are decoded in full, halved with exact-2× ``INTER_AREA`` steps while that stays at
  or above the target, then one ``INTER_LINEAR`` step. :class:`Decoded` says which path ran
  (``method``, e.g. ``"reduced4+linear"``): scores store it, since SSIM moves by ~0.004 with it.
* :func:`load_frame` / :func:`read_frame` — one video frame (the middle one by default), same sizing.

Pixels are read as stored: a JPEG's EXIF orientation is ignored, as Musubi Tuner's loader does
(PIL ``Image.open`` without ``exif_transpose``), so the decoded size is the header's size. Files
are read as bytes (``numpy.fromfile`` + ``cv2.imdecode``), never with ``cv2.imread``, so
non-ASCII names work on Windows too. Every problem is a :class:`~difflora_gui.errors.BadFileError`
naming the file and the reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from difflora_gui.dataset.image_header import image_header
from difflora_gui.dataset.model import IMAGE_SUFFIXES, VIDEO_SUFFIXES, media_kind
from difflora_gui.errors import BadFileError

#: images above this many pixels are refused from their header (30,000 × 30,000 would need 2.7 GB)
MAX_IMAGE_PIXELS = 100_000_000
#: bytes read from the start of an image to find its size (more when a JPEG's metadata is bigger)
_HEAD_BYTES = 64 * 1024
_TAIL_BYTES = 64


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found: ``frames``/``fps``/``duration_s`` are 1/0/0 for an image."""

    kind: str  # "image" | "video"
    width: int
    height: int
    frames: int = 1
    fps: float = 0.0
    duration_s: float = 0.0
    format: str = ""  # "png", "jpeg", "webp", or the video codec ("h264", "vp9" …)
    frames_estimated: bool = False  # the container gave no frame count: duration × fps

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def aspect(self) -> float:
        return self.width / self.height if self.height else 0.0

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "format": self.format,
            "frames_estimated": self.frames_estimated,
        }


class Decoded(NamedTuple):
    """A decoded image: uint8 BGR pixels, how they were sized, and the source's size (w, h)."""

    image: np.ndarray
    method: str  # "full", "reduced2+linear", "full+area2+linear", "full+linear" …
    source_size: tuple[int, int]


# --- probing ----------------------------------------------------------------------------------


def probe(path: str | Path) -> MediaInfo:
    """Kind, size, frames, fps and duration of an image or clip; BadFileError if it is unusable."""
    path = Path(path)
    kind = media_kind(path)
    if kind is None:
        raise BadFileError(
            path, f"not an image or video file (expected {', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})"
        )
    size = _file_size(path)
    if size == 0:
        raise BadFileError(path, "the file is empty (0 bytes)")
    if kind == "image":
        return _probe_image(path, size)
    return _probe_video(path)


def _file_size(path: Path) -> int:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise BadFileError(path, "the file does not exist (moved or deleted?)") from None
    except OSError as exc:
        raise BadFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise BadFileError(path, "not a file")
    return stat.st_size


def _read_ends(path: Path, size: int) -> tuple[bytes, bytes]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            if size > len(head):
                handle.seek(max(0, size - _TAIL_BYTES))
                tail = handle.read(_TAIL_BYTES)
            else:
                tail = head[-_TAIL_BYTES:]
    except FileNotFoundError:
        raise BadFileError(path, "the file does not exist (moved or deleted?)") from None
    except OSError as exc:
        raise BadFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    return head, tail


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise BadFileError(path, f"damaged image (size {width}×{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise BadFileError(
            path,
            f"image too large: {width}×{height} is {width * height / 1e6:.0f} MP "
            f"(at most {MAX_IMAGE_PIXELS / 1e6:.0f} MP)",
        )


def _probe_image(path: Path, size: int) -> MediaInfo:
    head, tail = _read_ends(path, size)
    fmt, width, height = image_header(path, head, tail, size)
    _check_pixels(path, width, height)
    return MediaInfo("image", width, height, format=fmt)


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except FileNotFoundError:
        raise BadFileError(path, "the file does not exist (moved or deleted?)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadFileError(path, f"unreadable video: {_av_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise BadFileError(path, "unreadable video: no video stream in the file")
    demuxer = container.format.name or ""
    if demuxer == "image2" or demuxer.endswith("_pipe"):  # jpeg_pipe, png_pipe … : a still image
        container.close()
        raise BadFileError(
            path, f"not a video: the content is a still image ({demuxer.removesuffix('_pipe')})"
        )
    return container


def _av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__


def _probe_video(path: Path) -> MediaInfo:
    import av

    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration, margin = 0.0, 1.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:  # the longest stream's (audio may run on a little)
            duration = container.duration / av.time_base
            margin = 2.0 + 0.1 * duration
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise BadFileError(
                path, f"unreadable video: the first frame does not decode ({_av_reason(exc)})"
            ) from None
        if first is None:
            raise BadFileError(path, "unreadable video: no frame decodes")
        width, height = first.width, first.height
        frames, estimated = int(stream.frames or 0), False
        if frames <= 0:
            frames, estimated = max(1, round(duration * fps)) if duration and fps else 1, True
        if duration <= 0 and fps:
            duration = frames / fps
        if duration > 2 / max(fps, 1.0) and not _end_decodes(container, stream, duration, margin):
            raise BadFileError(path, "truncated video: the file ends before the clip does (cut off?)")
        return MediaInfo(
            "video",
            width,
            height,
            frames,
            fps,
            duration,
            format=stream.codec_context.name or "",
            frames_estimated=estimated,
        )
    finally:
        container.close()


def _end_decodes(container, stream, duration: float, margin: float = 1.0, max_packets: int = 3000) -> bool:
    """Whether the clip's data reaches ``margin`` s before its end (a cut-off file claims more).

    Reads packets (no decoding) from a seek near the end. A container that cannot seek, or one
    that would need more than ``max_packets`` packets read, is given the benefit of the doubt.
    """
    import av

    if stream.time_base is None:
        return True
    start = stream.start_time or 0
    target = start + int(max(0.0, duration - margin) / stream.time_base)
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except (av.FFmpegError, OSError, ValueError):
        return True
    try:
        for count, packet in enumerate(container.demux(stream)):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None and stamp >= target and packet.size:
                return True
            if count >= max_packets:
                return True
    except (av.FFmpegError, OSError, ValueError):
        return False
    return False


# --- decoding ---------------------------------------------------------------------------------


def _reduced_flag(factor: int) -> int:
    """imdecode flags for a 1/``factor`` decode; EXIF orientation is ignored (see the module doc)."""
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}.get(
        factor, cv2.IMREAD_REDUCED_COLOR_8
    )
    return flag | cv2.IMREAD_IGNORE_ORIENTATION


def target_dims(width: int, height: int, size: int) -> tuple[int, int]:
    """``(w, h)`` with the short side ``size`` and the aspect kept (rounded, at least 1)."""
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def reduction_for(width: int, height: int, target: tuple[int, int]) -> int:
    """The largest of 1, 2, 4, 8 that keeps both sides at or above ``target``."""
    factor = 1
    while factor < 8 and width // (factor * 2) >= target[0] and height // (factor * 2) >= target[1]:
        factor *= 2
    return factor


def resize_to(image: np.ndarray, target: tuple[int, int], method: str = "full") -> tuple[np.ndarray, str]:
    """``image`` at ``target`` (w, h): exact-2× INTER_AREA halvings, then one INTER_LINEAR step."""
    height, width = image.shape[:2]
    if (width, height) == tuple(target):
        return image, method
    halvings = 0
    while width // 2 >= target[0] and height // 2 >= target[1] and width % 2 == 0 and height % 2 == 0:
        image = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        halvings += 1
    if halvings:
        method += f"+area{2**halvings}"
    if (width, height) != tuple(target):
        image = cv2.resize(image, tuple(target), interpolation=cv2.INTER_LINEAR)
        method += "+linear"
    return image, method


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise BadFileError(path, "the file does not exist (moved or deleted?)") from None
    except OSError as exc:
        raise BadFileError(path, f"cannot read the file: {exc.strerror or exc}") from None


def load_image(
    path: str | Path, size: int | None = None, *, target: tuple[int, int] | None = None
) -> Decoded:
    """Decode an image (a video: its middle frame) as uint8 BGR, sized as the module says.

    ``size``: the short side in pixels; ``target``: an exact ``(width, height)`` instead.
    """
    path = Path(path)
    if media_kind(path) == "video":
        return load_frame(path, None, size, target=target)
    data = _read_bytes(path)
    if data.size == 0:
        raise BadFileError(path, "the file is empty (0 bytes)")
    head, tail = data[:_HEAD_BYTES].tobytes(), data[-_TAIL_BYTES:].tobytes()
    fmt, width, height = image_header(path, head, tail, int(data.size), whole=data.tobytes)
    _check_pixels(path, width, height)
    if target is None and size is not None:
        target = target_dims(width, height, int(size))
    factor = reduction_for(width, height, target) if target is not None and fmt == "jpeg" else 1
    image = cv2.imdecode(data, _reduced_flag(factor))
    if image is None:
        raise BadFileError(path, f"the {fmt.upper()} image does not decode (damaged data)")
    method = "full" if factor == 1 else f"reduced{factor}"
    if target is not None:
        image, method = resize_to(image, target, method)
    return Decoded(np.ascontiguousarray(image), method, (width, height))


def read_image(
    path: str | Path, size: int | None = None, *, target: tuple[int, int] | None = None
) -> np.ndarray:
    """uint8 BGR pixels of an image (a video: its middle frame); see :func:`load_image`."""
    return load_image(path, size, target=target).image


def load_frame(
    path: str | Path,
    index: int | None = None,
    size: int | None = None,
    *,
    target: tuple[int, int] | None = None,
) -> Decoded:
    """Frame ``index`` of a clip (default: the middle one) as uint8 BGR, sized like images."""
    import av

    path = Path(path)
    if _file_size(path) == 0:
        raise BadFileError(path, "the file is empty (0 bytes)")
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(stream.frames or 0)
        if frames <= 0 and fps:
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None
                else (container.duration or 0) / av.time_base
            )
            frames = max(1, round(duration * fps))
        if index is None:
            index = max(0, frames // 2)
        if index < 0 or (frames and index >= frames):
            raise BadFileError(path, f"the clip has {frames} frames; there is no frame {index}")
        frame = _decode_frame_at(path, container, stream, index, fps)
        image = frame.to_ndarray(format="bgr24")
    finally:
        container.close()
    height, width = image.shape[:2]
    method = "full"
    if target is None and size is not None:
        target = target_dims(width, height, int(size))
    if target is not None:
        image, method = resize_to(image, target, method)
    return Decoded(np.ascontiguousarray(image), method, (width, height))


def _decode_frame_at(path: Path, container, stream, index: int, fps: float):
    import av

    time_base = stream.time_base
    start = stream.start_time or 0
    try:
        if index > 0 and fps and time_base:
            target_pts = start + int(math.floor(index / fps / time_base))
            container.seek(target_pts, stream=stream, backward=True, any_frame=False)
        else:
            target_pts = None
        last = None
        for count, frame in enumerate(container.decode(stream)):
            last = frame
            if target_pts is None:
                if count >= index:
                    return frame
            elif frame.pts is not None and frame.pts >= target_pts - _half_frame(fps, time_base):
                return frame
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise BadFileError(
            path, f"unreadable video: frame {index} does not decode ({_av_reason(exc)})"
        ) from None
    if last is None:
        raise BadFileError(path, "unreadable video: no frame decodes")
    return last  # the clip ended early (an estimated frame count): its last frame


def _half_frame(fps: float, time_base) -> int:
    return int(0.5 / fps / time_base) if fps and time_base else 0


def read_frame(
    path: str | Path,
    index: int | None = None,
    size: int | None = None,
    *,
    target: tuple[int, int] | None = None,
) -> np.ndarray:
    """uint8 BGR pixels of one frame of a clip; see :func:`load_frame`."""
    return load_frame(path, index, size, target=target).image


def file_size(path: str | Path) -> int:
    """The size in bytes (0 when it cannot be read), for listings."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
