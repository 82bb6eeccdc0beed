"""Frame extraction from films into set A: one frame per shot (scene cuts) or one every N seconds.

**Which frame of a shot.** Scene mode decodes the video once with PyAV (frame threads on) and
feeds PySceneDetect's detector (ContentDetector, or AdaptiveDetector) a frame shrunk by an even
integer factor to at least 256 px wide — what its auto-downscale does, measured at 1.07× a plain
decode instead of 3.6× at full size. A shot's frame is taken ``min_scene_len // 2`` frames after
its cut (0.3 s at the defaults): past the blend or motion blur right after a cut, and always inside
the shot, because the detector never reports two cuts closer than ``min_scene_len``. A shot shorter
than that (the last one, or one cut short) gives its middle frame. The detector reports some cuts
late (its flash filter waits up to ``min_scene_len`` frames), so the last frames are kept in a ring
buffer and the chosen frame is taken from there: one pass, no seeking back.

**Interval mode** takes the first frame at or after every multiple of ``every_s`` seconds; it
decodes forward over short gaps and seeks (to the keyframe before the target) over long ones.

**Filters** run on the small frame: dark (mean brightness), blank (flat: small spread), and
near-duplicates (a 64-bit dHash within ``dedupe_distance`` bits of any frame kept earlier in the
same run, from any of its videos). Each skipped candidate is listed with its reason and where it was.

**Output.** PNG files named ``<video stem>_<HH-MM-SS-mmm>_f<frame>.png``, written by a writer
thread through :func:`difflora_gui.fileio.atomic_output` (temporary file, then a rename, so a cancel
or crash never leaves half an image). An existing file is never overwritten: the new frame gets a
numbered name (``…_f000123-2.png``). Cancelling keeps the frames already written and says so.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from difflora_gui.dataset import frame_filters as filters
from difflora_gui.dataset.frame_options import FRAME_OPTIONS
from difflora_gui.errors import BadFileError, JobCancelled, UserError
from difflora_gui.fileio import atomic_output
from difflora_gui.jobs.context import JobContext, NullContext

#: interval mode seeks instead of decoding forward when the next target is this far ahead
SEEK_GAP_S = 4.0
#: at most this many frames wait for the writer thread (bounds memory on fast decodes)
MAX_PENDING_WRITES = 4
#: progress is reported every this many decoded frames
PROGRESS_EVERY = 8


@dataclass(frozen=True)
class ExtractionOptions:
    mode: str = "scenes"
    every_s: float = 2.0
    detector: str = "content"
    threshold: float = 27.0
    min_scene_len_s: float = 0.6
    skip_dark: bool = True
    dark_level: float = 20.0
    skip_blank: bool = True
    blank_level: float = 5.0
    dedupe: bool = True
    dedupe_distance: int = 6

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> ExtractionOptions:
        return cls(**FRAME_OPTIONS.resolve(values or {}, owner="frame extraction"))


@dataclass
class VideoStats:
    path: str
    fps: float = 0.0
    duration_s: float = 0.0
    frames_decoded: int = 0
    cuts: list[int] = field(default_factory=list)
    candidates: int = 0
    kept: int = 0
    skipped: int = 0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ExtractionResult:
    out_dir: Path
    frames: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (reason, where)
    per_video: dict[str, VideoStats] = field(default_factory=dict)
    renamed: int = 0  # names already taken in out_dir, written with a number instead
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "written": len(self.frames),
            "frames": [str(p) for p in self.frames],
            "skipped": [{"reason": r, "where": w} for r, w in self.skipped],
            "videos": [s.to_json() for s in self.per_video.values()],
            "renamed": self.renamed,
            "cancelled": self.cancelled,
        }

    def summary(self) -> str:
        bad = sum(1 for s in self.per_video.values() if s.error)
        text = f"{len(self.frames)} frames written to {self.out_dir}; {len(self.skipped)} candidates skipped"
        if bad:
            text += f"; {bad} video(s) unreadable or cut short"
        return text


def timecode_text(seconds: float, sep: str = ":") -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    if sep == ":":
        return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
    return f"{hours:02d}{sep}{minutes:02d}{sep}{secs:02d}{sep}{millis:03d}"


def frame_name(stem: str, seconds: float, index: int) -> str:
    """``<stem>_<HH-MM-SS-mmm>_f<frame>.png``: where the frame came from, safe on every OS."""
    return f"{stem}_{timecode_text(seconds, '-')}_f{index:06d}.png"


# --- opening ---------------------------------------------------------------------------------


def open_video(path: Path):
    """``(container, stream)`` with frame threading on, or ``BadFileError`` with the reason."""
    import av

    if not path.exists():
        raise BadFileError(path, "file not found")
    if path.is_dir():
        raise BadFileError(path, "is a folder, not a video")
    if path.stat().st_size == 0:
        raise BadFileError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise BadFileError(path, f"not a readable video (truncated or corrupt?): {_av_text(exc)}") from None
    except OSError as exc:
        raise BadFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    if not container.streams.video:
        container.close()
        raise BadFileError(path, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # PyAV's default decodes H.264 on one thread
    if not stream.codec_context.width:
        container.close()
        raise BadFileError(path, "video stream has no frame size (corrupt header?)")
    return container, stream


def _av_text(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__


def _rate(stream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def _duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


# --- writing ---------------------------------------------------------------------------------


class _FrameSink:
    """Filters candidates, names them and writes them on one writer thread (never overwriting)."""

    def __init__(self, out_dir: Path, opts: ExtractionOptions, ctx: JobContext, result: ExtractionResult):
        self.out_dir, self.opts, self.ctx, self.result = out_dir, opts, ctx, result
        self.duplicates = filters.DuplicateIndex(opts.dedupe_distance)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames-writer")
        self._pending: collections.deque[Future] = collections.deque()
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    def offer(self, stats: VideoStats, av_frame, small, index: int, seconds: float) -> None:
        stats.candidates += 1
        where = f"{Path(stats.path).name} @ {timecode_text(seconds)} (frame {index})"
        problem = filters.frame_problem(small, self.opts)
        digest = None
        if problem is None and self.opts.dedupe:
            digest = filters.dhash(small)
            twin = self.duplicates.find(digest)
            if twin is not None:
                problem = f"near-duplicate of {twin}"
        if problem is not None:
            stats.skipped += 1
            self.result.skipped.append((problem, where))
            return
        name = self._reserve(frame_name(Path(stats.path).stem, seconds, index))
        if digest is not None:
            self.duplicates.add(digest, name)
        stats.kept += 1
        while len(self._pending) >= MAX_PENDING_WRITES:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, av_frame, self.out_dir / name, where))

    def _reserve(self, name: str) -> str:
        stem, suffix = name[: -len(".png")], ".png"
        candidate, number = name, 1
        while candidate in self._reserved or (self.out_dir / candidate).exists():
            number += 1
            candidate = f"{stem}-{number}{suffix}"
        if number > 1 and name not in self._reserved:
            self.result.renamed += 1
        self._reserved.add(candidate)
        return candidate

    def _write(self, av_frame, path: Path, where: str) -> None:
        import cv2

        image = av_frame if not hasattr(av_frame, "to_ndarray") else av_frame.to_ndarray(format="bgr24")
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise UserError(f"could not encode the frame at {where} as PNG")
        with atomic_output(path) as tmp:
            data.tofile(str(tmp))  # numpy writes through Python's open: unicode-safe everywhere
        with self._lock:
            self.result.frames.append(path)
        self.ctx.artifact("image", path, source=where)

    def flush(self) -> None:
        """Wait for every write; the first write error is raised."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)


# --- the two modes ---------------------------------------------------------------------------


class _Progress:
    def __init__(self, ctx: JobContext, total_s: float):
        self.ctx, self.total_s, self.base_s = ctx, max(total_s, 1e-6), 0.0

    def report(self, seconds: float, text: str) -> None:
        self.ctx.progress(round(min(self.base_s + seconds, self.total_s), 1), round(self.total_s, 1), text)


def _make_detector(opts: ExtractionOptions, min_len: int):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    if opts.detector == "adaptive":
        threshold = 3.0 if opts.threshold == 27.0 else opts.threshold
        return AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=min_len)
    return ContentDetector(threshold=opts.threshold, min_scene_len=min_len)


def _scan_scenes(container, stream, stats: VideoStats, sink: _FrameSink, ctx, progress: _Progress):
    """Scene mode over the whole video; returns the time of the last decoded frame."""
    from scenedetect import FrameTimecode

    fps = _rate(stream)
    min_len = max(0, round(sink.opts.min_scene_len_s * float(fps)))
    detector = _make_detector(sink.opts, min_len)
    offset = min_len // 2
    factor = filters.downscale_factor(stream.codec_context.width)
    ring: collections.deque = collections.deque(maxlen=detector.event_buffer_length + 2 * offset + 4)
    time_base = stream.time_base
    start_pts = stream.start_time or 0
    state = {"start": 0, "picked": False}
    label = Path(stats.path).name

    def seconds_of(entry) -> float:
        frame = entry[1]
        if frame.pts is not None and time_base:
            return max(0.0, float((frame.pts - start_pts) * time_base))
        return entry[0] / float(fps)

    def pick(index: int) -> None:
        position = max(0, len(ring) - 1 - (ring[-1][0] - index))
        entry = ring[position]
        sink.offer(stats, entry[1], entry[2], entry[0], seconds_of(entry))
        state["picked"] = True

    def on_cut(cut: int, current: int) -> None:
        if not state["picked"]:  # a shot shorter than the offset: its middle frame
            pick((state["start"] + max(state["start"], cut - 1)) // 2)
        stats.cuts.append(cut)
        state["start"], state["picked"] = cut, False
        if cut + offset <= current:
            pick(cut + offset)

    index = -1
    for index, frame in enumerate(container.decode(stream)):
        ctx.raise_if_cancelled()
        small = filters.small_bgr(frame, factor)
        ring.append((index, frame, small))
        for cut in detector.process_frame(FrameTimecode(index, fps), small):
            on_cut(cut.frame_num, index)
        if not state["picked"] and index >= state["start"] + offset:
            pick(state["start"] + offset)
        if index % PROGRESS_EVERY == 0:
            progress.report(seconds_of(ring[-1]), f"{label}: {len(stats.cuts)} cuts, {stats.kept} kept")
    stats.frames_decoded = index + 1
    if index < 0:
        return 0.0
    for cut in detector.post_process(FrameTimecode(index, fps)):
        on_cut(cut.frame_num, index)
    if not state["picked"]:
        pick((state["start"] + index) // 2)
    return seconds_of(ring[-1])


def _scan_interval(container, stream, stats: VideoStats, sink: _FrameSink, ctx, progress: _Progress):
    """Interval mode; returns the time of the last frame when the stream ran out, else None."""
    fps = _rate(stream)
    time_base = stream.time_base
    start_pts = stream.start_time or 0
    factor = filters.downscale_factor(stream.codec_context.width)
    every = sink.opts.every_s
    half_frame = 0.5 / float(fps)
    duration = stats.duration_s
    label = Path(stats.path).name
    target, decoded, position = 0.0, 0, 0.0
    exhausted = False
    while duration <= 0 or target < duration:
        if target - position > SEEK_GAP_S and time_base:
            container.seek(int(target / time_base) + start_pts, stream=stream, backward=True)
        advanced = False
        for frame in container.decode(stream):
            ctx.raise_if_cancelled()
            decoded += 1
            advanced = True
            if frame.pts is not None and time_base:
                position = float((frame.pts - start_pts) * time_base)
            else:
                position = decoded / float(fps)
            if position + half_frame < target:
                continue
            index = int(round(position * float(fps)))
            sink.offer(stats, frame, filters.small_bgr(frame, factor), index, position)
            progress.report(position, f"{label}: {stats.kept} kept")
            while target <= position + half_frame:
                target += every
            if target - position > SEEK_GAP_S or (duration > 0 and target >= duration):
                break
        else:
            exhausted = True  # the end of the stream
            break
        if not advanced:
            exhausted = True
            break
    stats.frames_decoded = decoded
    return position if exhausted else None


def _ends_early(stats: VideoStats, last: float | None) -> str:
    """A reason when the stream ran out well before the duration its header gives (truncated)."""
    if last is None or stats.duration_s <= 0:
        return ""
    if stats.frames_decoded == 0:
        return "no frame could be decoded (truncated or corrupt?)"
    frame_s = 1.0 / stats.fps if stats.fps else 0.04
    if last < stats.duration_s - max(1.0, 3 * frame_s):
        return (
            f"ends early: frames up to {timecode_text(last)} of {timecode_text(stats.duration_s)} "
            f"(truncated?); the {stats.kept} frames found before are kept"
        )
    return ""


# --- the entry points ------------------------------------------------------------------------


def check_out_dir(out_dir: str | Path, videos: Iterable[Path]) -> Path:
    """The output folder (made when missing); refuses a file, or a folder that holds a source video."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError("the output path is a file, not a folder", path=out)
    for video in videos:
        if out.exists() and video.parent.exists() and out.resolve() == video.parent.resolve():
            raise UserError(
                "the output folder holds the source videos (source folders are never modified); choose another",
                path=out,
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def extract_frames(
    videos: Iterable[str | Path],
    out_dir: str | Path,
    *,
    ctx: JobContext | None = None,
    **options: Any,
) -> ExtractionResult:
    """Extract candidate frames from ``videos`` into ``out_dir`` (options: :data:`FRAME_OPTIONS`).

    A video that cannot be opened or decoded is listed in ``skipped`` (and its ``VideoStats.error``)
    and the others are extracted. Raises ``UserError`` only when no video could be read at all.
    On cancel the frames already written stay; ``JobCancelled`` is raised with ``.result`` set.
    """
    ctx = ctx or NullContext()
    opts = ExtractionOptions.from_values(options)
    paths = [Path(v) for v in videos]
    if not paths:
        raise UserError("no videos given")
    out = check_out_dir(out_dir, paths)
    result = ExtractionResult(out_dir=out)
    opened = []
    for path in paths:
        stats = VideoStats(str(path))
        result.per_video[str(path)] = stats
        try:
            container, stream = open_video(path)
        except BadFileError as exc:
            stats.error = exc.problem
            result.skipped.append((exc.problem, str(path)))
            if len(paths) > 1:  # one video alone: its error is the one line the user sees
                ctx.log(f"skipped {exc}")
            continue
        stats.fps = float(_rate(stream))
        stats.duration_s = _duration(container, stream)
        opened.append((path, container, stream, stats))
    if not opened:
        if len(paths) == 1:
            raise BadFileError(paths[0], result.per_video[str(paths[0])].error)
        raise UserError(f"none of the {len(paths)} videos could be read (first: {result.skipped[0][1]})")
    progress = _Progress(ctx, sum(s.duration_s for *_, s in opened))
    sink = _FrameSink(out, opts, ctx, result)
    scan = _scan_scenes if opts.mode == "scenes" else _scan_interval
    try:
        for path, container, stream, stats in opened:
            ctx.status(f"extracting frames from {path.name} ({opts.mode})")
            try:
                last = scan(container, stream, stats, sink, ctx, progress)
                short = _ends_early(stats, last)
                if short:
                    stats.error = short
                    result.skipped.append((short, str(path)))
                    ctx.log(f"{path}: {short}")
            except JobCancelled:
                raise
            except Exception as exc:  # a decode error part-way: keep what was found, list the video
                import av

                if not isinstance(exc, av.error.FFmpegError):
                    raise
                stats.error = f"decoding stopped after {stats.kept} kept frames: {_av_text(exc)}"
                result.skipped.append((stats.error, str(path)))
                ctx.log(f"{path}: {stats.error}")
            finally:
                container.close()
            progress.base_s += stats.duration_s
        sink.close()
    except JobCancelled as exc:
        sink.close()
        result.cancelled = True
        ctx.log(f"cancelled: the {len(result.frames)} frames already written are kept in {out}")
        exc.result = result
        raise
    except BaseException:
        sink.close()
        raise
    finally:
        for _, container, _, _ in opened:
            container.close()
    result.frames.sort()
    ctx.progress(progress.total_s, progress.total_s, "done")
    return result


def run(params: Mapping[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The job (``DatasetToolSpec`` ``frame_extraction``): ``videos`` and ``out_dir`` plus the options."""
    values = dict(params)
    videos = values.pop("videos", None) or []
    out_dir = values.pop("out_dir", None)
    if isinstance(videos, (str, Path)):
        videos = [videos]
    if not out_dir:
        raise UserError("frame extraction needs an output folder (out_dir)")
    result = extract_frames(videos, out_dir, ctx=ctx, **values)
    ctx.log(result.summary())
    return result.to_json()


def expected_interval_count(duration_s: float, every_s: float) -> int:
    """How many frames interval mode takes from a video of this length."""
    return max(1, math.ceil(duration_s / every_s - 1e-9))
