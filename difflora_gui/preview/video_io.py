"""Preview clips as files: H.264 / VP9 videos and lossless PNG frames, and reading them back.

Writing goes through PyAV's bundled encoders (libx264 for ``.mp4``, libvpx for ``.webm``), so no
system ffmpeg or codec pack is needed; OpenCV's mp4v writer is only the fallback where a PyAV build
lacks libx264 (OpenCV wheels cannot write H.264). Every output is written beside its destination
and renamed into place when complete (:func:`difflora_gui.fileio.atomic_output`), so a failed or
cancelled write leaves no partial file. ``av`` and ``cv2`` are imported inside the functions: the
module is imported by the CLI and the GUI at start-up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_output

#: container suffix → the codec ``codec="auto"`` picks (before falling back)
AUTO_CODECS = {".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp9"}
#: our codec names → PyAV encoder names, best first
PYAV_ENCODERS = {"h264": ("libx264",), "vp9": ("libvpx-vp9",), "vp8": ("libvpx",)}
#: codecs each container can hold
CONTAINER_CODECS = {
    ".mp4": {"h264", "mp4v"},
    ".m4v": {"h264", "mp4v"},
    ".mov": {"h264", "mp4v"},
    ".mkv": {"h264", "mp4v", "vp9", "vp8"},
    ".webm": {"vp9", "vp8"},
}
PYAV_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
FRAME_NAME = "frame_{:05d}.png"
_FRAME_RE = re.compile(r"frame_\d{5}\.png")


def to_uint8(frames_float01) -> np.ndarray:
    """Float frames in [0, 1] (any shape) as uint8, rounded to nearest and clipped; NaN → 0.
    uint8 input is returned unchanged."""
    array = np.asarray(frames_float01)
    if array.dtype == np.uint8:
        return array
    array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def _fps_fraction(fps) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError):
        raise UserError(f"frame rate {fps!r} is not a number") from None
    if rate <= 0:
        raise UserError(f"frame rate must be positive, not {fps}")
    return rate


def _pyav_encoder(codec: str) -> str | None:
    """The first PyAV encoder for ``codec`` that this build has (None without PyAV or the encoder)."""
    try:
        import av
    except ImportError:
        return None
    available = av.codecs_available
    return next((name for name in PYAV_ENCODERS.get(codec, ()) if name in available), None)


def resolve_codec(path: str | Path, codec: str = "auto") -> str:
    """The codec a write to ``path`` uses: h264 | mp4v | vp9 | vp8 (UserError for a bad pairing)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONTAINER_CODECS:
        raise UserError(f"unsupported video file type {suffix or '(none)'}; use .mp4 or .webm", path=path)
    codec = {"libx264": "h264", "avc1": "h264", "libvpx-vp9": "vp9", "libvpx": "vp8"}.get(codec, codec)
    if codec == "auto":
        codec = AUTO_CODECS[suffix]
        if codec == "h264" and _pyav_encoder("h264") is None:
            return "mp4v"
        if codec == "vp9" and _pyav_encoder("vp9") is None:
            return "vp8"
        return codec
    if codec not in CONTAINER_CODECS[suffix]:
        raise UserError(
            f"codec {codec} cannot go in a {suffix} file (choose one of "
            f"{', '.join(sorted(CONTAINER_CODECS[suffix]))})",
            path=path,
        )
    return codec


def _checked_frames(frames, path: Path, *, even: bool = True) -> Iterator[np.ndarray]:
    """Each frame as a C-contiguous HxWx3 uint8 array, all the size of the first (UserError otherwise);
    ``even``: odd sizes padded (what yuv420p needs)."""
    first_shape = None
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise UserError(
                f"frame {index} is {frame.dtype}, not uint8 (convert float frames with to_uint8)", path=path
            )
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise UserError(f"frame {index} has shape {frame.shape}, not height x width x 3 (RGB)", path=path)
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise UserError(
                f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                f"frame 0 is {first_shape[1]}x{first_shape[0]}: every frame needs one size",
                path=path,
            )
        yield _even(frame) if even else np.ascontiguousarray(frame)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by one replicated edge column/row (yuv420p needs even sizes)."""
    height, width = frame.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def write_video(
    path: str | Path, frames, fps, *, codec: str = "auto", crf: int = 18, overwrite: bool = False
) -> Path:
    """Write RGB uint8 frames ((F, H, W, 3) array or an iterable of HxWx3) as a video; return the path.

    ``.mp4`` → H.264 yuv420p (libx264 through PyAV; mp4v through OpenCV when libx264 is missing or
    ``codec="mp4v"``), ``.webm`` → VP9 (VP8 without libvpx-vp9). Odd sizes are padded to even by
    repeating the last row/column. ``crf`` is the quality (lower is better; 18 is visually lossless
    for H.264). An existing file is refused unless ``overwrite``; nothing is left on failure.
    """
    path = Path(path)
    chosen = resolve_codec(path, codec)
    rate = _fps_fraction(fps)
    with atomic_output(path, overwrite=overwrite) as tmp:
        if chosen == "mp4v":
            count = _write_opencv(tmp, path, _checked_frames(frames, path), rate)
        else:
            count = _write_pyav(tmp, path, _checked_frames(frames, path), rate, chosen, int(crf))
        if count == 0:
            raise UserError("no frames to write", path=path)
    return path


def _write_pyav(
    tmp: Path, path: Path, frames: Iterable[np.ndarray], rate: Fraction, codec: str, crf: int
) -> int:
    import av

    encoder = _pyav_encoder(codec)
    if encoder is None:
        raise UserError(f"this PyAV build has no {codec} encoder; write .mp4 with codec='mp4v'", path=path)
    count = 0
    try:
        with av.open(str(tmp), "w", format=PYAV_FORMATS[path.suffix.lower()]) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = container.add_stream(encoder, rate=rate)
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    # frame threads only: with slice threads too, x264 wrote different bitstreams
                    # of the same small frames from run to run (a re-render must decode equal)
                    stream.thread_type = "FRAME"
                    if codec == "h264":
                        stream.options = {"crf": str(crf), "preset": "veryfast"}
                    else:  # libvpx: constant quality needs b:v 0; cpu-used 5 keeps VP9 near real time
                        stream.options = {
                            "crf": str(min(63, crf + 12)),
                            "b:v": "0",
                            "cpu-used": "5",
                            "row-mt": "1",
                        }
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
    except av.FFmpegError as exc:
        raise UserError(f"could not encode the video ({codec}): {_ffmpeg_reason(exc)}", path=path) from None
    return count


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno and file name."""
    return getattr(exc, "strerror", None) or str(exc)


def _write_opencv(tmp: Path, path: Path, frames: Iterable[np.ndarray], rate: Fraction) -> int:
    import cv2

    # OpenCV picks the container from the file name, so it writes to a name ending in the suffix
    cv_tmp = tmp.with_name(tmp.name + path.suffix.lower())
    writer = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(
                    str(cv_tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(rate), (width, height)
                )
                if not writer.isOpened():
                    raise UserError("OpenCV could not open an mp4v writer", path=path)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
        if writer is not None:
            writer.release()
            writer = None
            os.replace(cv_tmp, tmp)
    finally:
        if writer is not None:
            writer.release()
        with contextlib.suppress(OSError):
            cv_tmp.unlink()
    return count


def write_frames_png(folder: str | Path, frames, *, overwrite: bool = False) -> list[Path]:
    """Every frame as a lossless PNG ``frame_00000.png`` … in ``folder``; return the paths.

    The frames go to a temporary folder beside ``folder`` that is renamed into place when all are
    written. An existing non-empty folder is refused unless ``overwrite``, and even then only when it
    holds nothing but such frame files (its old frames are replaced as a whole).
    """
    import cv2

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError("the frames folder is a file", path=folder)
    if not folder.parent.is_dir():
        raise UserError(f"output folder does not exist: {folder.parent}", path=folder)
    existing = list(folder.iterdir()) if folder.is_dir() else []
    if existing:
        if not overwrite:
            raise UserError(
                "the frames folder is not empty (use --overwrite to replace its frames)", path=folder
            )
        others = [p.name for p in existing if not (p.is_file() and _FRAME_RE.fullmatch(p.name))]
        if others:
            raise UserError(
                f"the frames folder holds other files ({others[0]}…); choose an empty folder", path=folder
            )
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        names = []
        for index, frame in enumerate(_checked_frames(frames, folder, even=False)):
            name = FRAME_NAME.format(index)
            # imencode + write_bytes, not imwrite: OpenCV's own file functions take narrow-char
            # paths on Windows and fail on non-ASCII folders
            ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if not ok:
                raise UserError(f"could not encode {name}", path=folder)
            (tmp / name).write_bytes(png.tobytes())
            names.append(name)
        if not names:
            raise UserError("no frames to write", path=folder)
        os.chmod(tmp, 0o777 & ~_umask())
        if folder.is_dir():
            old = folder.with_name(tmp.name + ".old")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [folder / name for name in names]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _TryOpenCV(Exception):
    """PyAV cannot decode this file for a reason OpenCV's own FFmpeg build may not share."""

    def __init__(self, error: UserError):
        super().__init__(str(error))
        self.error = error


#: the most decoded pixels a reader holds (4 GiB: about 3,400 frames of 832×480)
MAX_BYTES = 4 << 30


class VideoReader:
    """A video file decoded to RGB uint8 frames (PyAV; OpenCV where PyAV is missing or lacks the decoder).

    The whole clip is decoded on construction and kept in memory (preview clips are small; a clip
    over ``max_bytes`` decoded is refused): ``frame_count``, ``fps``, ``width``, ``height`` and
    ``codec`` come from what was decoded. A missing, empty, corrupt or non-video file raises a
    one-line ``UserError`` naming it.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = MAX_BYTES):
        self.path = Path(path)
        self._max_bytes = max_bytes
        if not self.path.is_file():
            raise UserError(
                "video file not found" if not self.path.exists() else "not a file", path=self.path
            )
        if self.path.stat().st_size == 0:
            raise UserError("the video file is empty (0 bytes): render or export it again", path=self.path)
        self._frames: np.ndarray | None = None
        try:
            self._open_pyav()
        except _TryOpenCV as pyav:
            try:
                self._open_opencv()
            except UserError:
                raise pyav.error from None

    def _open_pyav(self) -> None:
        try:
            import av
        except ImportError:
            raise _TryOpenCV(UserError("PyAV is not installed", path=self.path)) from None
        try:
            with av.open(str(self.path), metadata_errors="ignore") as container:
                if not container.streams.video:
                    raise UserError("the file has no video stream", path=self.path)
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                frames, held = [], 0
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    held += frames[-1].nbytes
                    self._check_size(held, frames[-1])
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                self.codec = stream.codec_context.name
        except (av.InvalidDataError, av.error.EOFError) as exc:  # OpenCV's FFmpeg would say the same
            raise UserError(f"not a readable video ({_ffmpeg_reason(exc)})", path=self.path) from None
        except av.FFmpegError as exc:
            raise _TryOpenCV(
                UserError(f"not a readable video ({_ffmpeg_reason(exc)})", path=self.path)
            ) from None
        if not frames:
            raise UserError("the video has no frames", path=self.path)
        self._set_frames(frames, float(rate) if rate else 0.0)

    def _check_size(self, held: int, frame: np.ndarray) -> None:
        if held > self._max_bytes:
            height, width = frame.shape[:2]
            raise UserError(
                f"too long to preview: over {self._max_bytes >> 20} MiB decoded "
                f"({held // frame.nbytes} frames of {width}x{height} so far); trim the clip",
                path=self.path,
            )

    def _open_opencv(self) -> None:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise UserError("not a readable video", path=self.path)
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
            frames = []
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                self._check_size(len(frames) * frames[-1].nbytes, frames[-1])
        finally:
            capture.release()
        if not frames:
            raise UserError("the video has no frames", path=self.path)
        self.codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip().lower() or "unknown"
        self._set_frames(frames, fps)

    def _set_frames(self, frames: list[np.ndarray], fps: float) -> None:
        self._frames = np.stack(frames)
        self.frame_count, self.height, self.width = self._frames.shape[:3]
        self.fps = fps if fps > 0 else 16.0

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based; negative counts from the end) as HxWx3 uint8 RGB."""
        if not -self.frame_count <= index < self.frame_count:
            raise IndexError(f"frame {index} out of range: {self.path} has {self.frame_count} frames")
        return self.frames()[index]

    def frames(self) -> np.ndarray:
        if self._frames is None:
            raise UserError("the reader is closed", path=self.path)
        return self._frames

    def close(self) -> None:
        self._frames = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video as (F, H, W, 3) uint8 RGB, and its frame rate."""
    with VideoReader(path) as reader:
        return reader.frames(), reader.fps
