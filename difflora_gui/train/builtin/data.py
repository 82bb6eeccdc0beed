"""The training items of a run as pixels: images as one-frame clips, videos as 4N+1-frame clips.

A run trains on its folder's items; a pair run (and slider mode) on the items both folders hold,
matched by file stem and sorted by stem, so the A and B runs see pair *i* at the same index. A
video gives one clip per ``target_frames`` length it is long enough for (its first frames, as
Musubi's ``frame_extraction = "head"``); an image is a one-frame clip. Every clip is resized and
centre-cropped to its Musubi bucket at the run's resolution (:mod:`difflora_gui.dataset.buckets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.train.dataset_folder import TrainItem, list_items, matched_items


@dataclass(frozen=True)
class Clip:
    """One training clip: ``frames`` frames from the start of ``item`` (1 for an image)."""

    item: TrainItem
    frames: int
    key: str  # stem, or stem#frames when a video gives clips of several lengths

    @property
    def path(self) -> Path:
        return self.item.path


def check_target_frames(values) -> list[int]:
    """The clip lengths, each of the form 4N+1 (Wan's VAE compresses 4 frames after the first)."""
    frames = sorted({int(v) for v in values or [1]})
    bad = [f for f in frames if f < 1 or (f - 1) % 4]
    if bad:
        raise UserError(f"target_frames must be 4N+1 (1, 5, 9, …, 81); got {', '.join(map(str, bad))}")
    return frames


def _video_frames(path: Path) -> int:
    from difflora_gui.dataset.media import probe

    return probe(path).frames


def _clips(item: TrainItem, target_frames: list[int], frame_count: int | None = None) -> dict[str, Clip]:
    if item.kind == "image":
        return {item.stem: Clip(item, 1, item.stem)}
    count = _video_frames(item.path) if frame_count is None else frame_count
    lengths = [f for f in target_frames if f <= count]
    several = len(target_frames) > 1
    return {(key := f"{item.stem}#{f}" if several else item.stem): Clip(item, f, key) for f in lengths}


def run_clips(run, target_frames) -> list[tuple[Clip, ...]]:
    """The run's clips in training order: 1-tuples, or (A clip, B clip) in slider mode.

    A run with a partner folder (``run.pair_dataset``) keeps only the items both folders hold,
    sorted by stem, and only clip lengths both items are long enough for.
    """
    lengths = check_target_frames(target_frames)
    if not run.pair_dataset:
        slots = []
        for item in list_items(run.dataset):
            slots.extend((clip,) for clip in _clips(item, lengths).values())
        if not slots:
            raise UserError(f"{run.dataset}: no clip is long enough for target_frames {lengths}")
        return slots
    slots = []
    for own, partner in matched_items(run.dataset, run.pair_dataset):
        mine, theirs = _clips(own, lengths), _clips(partner, lengths)
        for key in sorted(set(mine) & set(theirs)):
            slots.append((mine[key], theirs[key]) if run.side == "slider" else (mine[key],))
    if not slots:
        raise UserError(
            f"{run.dataset} and {run.pair_dataset}: no pair has a clip of target_frames {lengths} on both sides"
        )
    return slots


def _image_rgb(path: Path) -> np.ndarray:
    import cv2

    from difflora_gui.dataset.media import read_image

    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


def _video_rgb(path: Path, frames: int) -> list[np.ndarray]:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise BadFileError(path, f"unreadable video: {exc}") from None
    out: list[np.ndarray] = []
    try:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise BadFileError(path, f"video frame {len(out)} does not decode: {exc}") from None
    finally:
        container.close()
    if len(out) < frames:
        raise BadFileError(path, f"the video has {len(out)} frames, the clip needs {frames}")
    return out


def clip_pixels(clip: Clip, resolution: Any) -> tuple[np.ndarray, tuple[int, int]]:
    """The clip as float32 (3, F, H, W) in [-1, 1] at its bucket, and the bucket (width, height)."""
    from difflora_gui.dataset.buckets import plan_bucket, resize_to_bucket

    frames = [_image_rgb(clip.path)] if clip.item.kind == "image" else _video_rgb(clip.path, clip.frames)
    height, width = frames[0].shape[:2]
    fit = plan_bucket(width, height, resolution)
    resized = [resize_to_bucket(frame, fit) for frame in frames]
    video = np.stack(resized).astype(np.float32) / 127.5 - 1.0  # F, H, W, 3
    return np.ascontiguousarray(video.transpose(3, 0, 1, 2)), fit.bucket


def parse_training_resolution(value: Any):
    from difflora_gui.dataset.musubi_export import parse_resolution

    return parse_resolution(value)
