"""What every preview backend does with a render: the cache entry, ``out``, ``frames_dir``, artifacts.

A backend checks the outputs first (:func:`check_outputs`: before anything runs), then either
replays a cache hit or produces the frames its own way, and hands both to :func:`deliver`, so the
diffusers and ComfyUI backends write the same files, emit the same ``video``/``image`` artifacts and
return the same :class:`~difflora_gui.preview.backend.PreviewResult`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.preview.backend import IMAGE, VIDEO, PreviewJob, PreviewResult


def check_outputs(job: PreviewJob) -> None:
    """Refuse outputs that would be refused after the render, before it runs."""
    from difflora_gui.fileio import check_output_path

    if job.out:
        out = Path(job.out)
        if out.suffix.lower() not in (".mp4", ".webm", ".mkv", ".mov", ".m4v"):
            raise UserError("the video must be an .mp4 or .webm file", path=out)
        check_output_path(out, inputs=[entry.file for entry in job.request.loras], overwrite=job.overwrite)
    if job.frames_dir:
        folder = Path(job.frames_dir)
        if folder.exists() and not folder.is_dir():
            raise UserError("the frames folder is a file", path=folder)
        if folder.is_dir() and any(folder.iterdir()) and not job.overwrite:
            raise UserError(
                "the frames folder is not empty (use --overwrite to replace its frames)", path=folder
            )
        if not folder.exists() and not folder.parent.is_dir():
            raise UserError(f"output folder does not exist: {folder.parent}", path=folder)


def _first_frame_png(frames, folder: Path) -> Path:
    from difflora_gui.preview.render_cache import FIRST_FRAME_NAME, _png_bytes

    first = folder / FIRST_FRAME_NAME
    first.write_bytes(_png_bytes(frames[0]))
    return first


def _copy_video(source: Path, out: Path, overwrite: bool, frames=None, fps: int = 16) -> None:
    """``out`` from the written clip: a copy when the container matches, else encoded again."""
    from difflora_gui.fileio import atomic_output
    from difflora_gui.preview.video_io import read_video, write_video

    if out.suffix.lower() == source.suffix.lower():
        with atomic_output(out, overwrite=overwrite) as tmp:
            shutil.copyfile(source, tmp)
        return
    if frames is None:
        frames, _fps = read_video(source)
    write_video(out, frames, fps, overwrite=overwrite)


def deliver(job: PreviewJob, request, key: str, ctx, *, cache=None, hit=None, frames=None) -> PreviewResult:
    """Write what a render (``frames``, uint8 (F, H, W, 3)) or a cache ``hit`` gives: the cache
    entry (or a temporary folder without a cache), ``out`` and ``frames_dir``; emit the artifacts."""
    from difflora_gui.preview.video_io import write_frames_png, write_video

    out = Path(job.out) if job.out else None
    if hit is not None:
        ctx.status("replayed from the render cache")
        ctx.progress(request.steps, request.steps, "cached")
        video, first = hit.video, hit.first_frame
        if out is not None:
            _copy_video(video, out, job.overwrite, fps=hit.fps)
        count, height, width = hit.frames, hit.height, hit.width
    else:
        ctx.status("writing the video…")
        if cache is not None:
            entry = cache.put(key, frames, request.fps, request)
            video, first = entry.video, entry.first_frame
            if out is not None:
                _copy_video(video, out, job.overwrite, frames, request.fps)
        else:  # no cache: the first frame (and a clip without out) in a temporary folder
            folder = Path(tempfile.mkdtemp(prefix="difflora-preview-"))
            first = _first_frame_png(frames, folder)
            video = write_video(out or folder / "video.mp4", frames, request.fps, overwrite=job.overwrite)
        if job.frames_dir:
            write_frames_png(job.frames_dir, frames, overwrite=job.overwrite)
        count, height, width = (int(n) for n in frames.shape[:3])
    if out is not None:
        video = out
    meta = {"request": request.to_json(), "key": key, "cache_hit": hit is not None}
    ctx.artifact(VIDEO, str(video), frames=count, width=width, height=height, fps=request.fps, **meta)
    ctx.artifact(IMAGE, str(first), **meta)
    return PreviewResult(
        video=str(video),
        first_frame=str(first),
        key=key,
        cache_hit=hit is not None,
        frames=count,
        width=width,
        height=height,
        request=request,
        frames_dir=job.frames_dir,
    )
