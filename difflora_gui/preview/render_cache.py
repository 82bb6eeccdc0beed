"""Rendered previews cached by their request's key, least recently used evicted past a size limit.

One entry is a folder ``<key>/`` holding ``video.mp4``, ``first_frame.png`` and ``meta.json`` (the
request, frame count, size, fps, when it was made). An entry is written into a temporary folder
and renamed into place, so a reader sees a whole entry or none; a half-written or damaged one (a
crash, a disk full, a hand edit) is ignored and removed. "Recently used" is the modification time
of ``meta.json``, set on every :meth:`RenderCache.get` (no rewrite of the file). Qt-free.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError

VIDEO_NAME = "video.mp4"
FIRST_FRAME_NAME = "first_frame.png"
META_NAME = "meta.json"
_TMP_PREFIX = ".tmp-"
#: a temporary folder older than this is left over from a crash (a live write takes seconds)
_STALE_TMP_S = 3600
_KEY_RE = re.compile(r"^[0-9a-f]{8,128}$")
#: one lock for every cache in the process: two panels' caches may share a folder
_LOCK = threading.RLock()
_last_touch_ns = 0


@dataclass(frozen=True)
class CachedRender:
    """One cached render: its files and what ``meta.json`` says about it."""

    key: str
    video: Path
    first_frame: Path
    meta: dict[str, Any] = field(repr=False)
    frames: int
    width: int
    height: int

    @property
    def fps(self) -> int:
        return int(self.meta.get("fps", 16))

    @property
    def folder(self) -> Path:
        return self.video.parent


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"bad render cache key {key!r} (lower-case hex expected)")
    return key


def _touch(path: Path) -> None:
    """Set ``path``'s modification time to now, strictly after the last touch in this process
    (two gets within the file system's clock tick still order correctly)."""
    global _last_touch_ns
    stamp = max(time.time_ns(), _last_touch_ns + 1000)
    _last_touch_ns = stamp
    os.utime(path, ns=(stamp, stamp))


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _png_bytes(frame) -> bytes:
    import cv2
    import numpy as np

    rgb = np.ascontiguousarray(frame[..., :3])
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the first frame as PNG")
    return data.tobytes()


class RenderCache:
    """The renders under ``folder`` (made on first write), at most ``limit_mb`` megabytes in all."""

    def __init__(self, folder: str | Path, limit_mb: int):
        self.folder = Path(folder)
        self.limit_bytes = max(0, int(limit_mb)) * 1024 * 1024

    def __repr__(self) -> str:
        return f"RenderCache({str(self.folder)!r}, {self.limit_bytes // (1024 * 1024)} MB)"

    # reading -------------------------------------------------------------------------------

    def _load(self, key: str) -> CachedRender | None:
        """The entry ``key`` if it is whole; a damaged one is removed and gives None."""
        entry = self.folder / key
        if not entry.is_dir():
            return None
        try:
            meta = json.loads((entry / META_NAME).read_text(encoding="utf-8"))
            video, first = entry / VIDEO_NAME, entry / FIRST_FRAME_NAME
            if not isinstance(meta, dict) or meta.get("key") != key:
                raise ValueError("meta.json names another key")
            if video.stat().st_size <= 0 or first.stat().st_size <= 0:
                raise ValueError("an empty file")
            found = CachedRender(
                key=key,
                video=video,
                first_frame=first,
                meta=meta,
                frames=int(meta["frames"]),
                width=int(meta["width"]),
                height=int(meta["height"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            _remove(entry)
            return None
        return found

    def get(self, key: str) -> CachedRender | None:
        """The cached render of ``key`` (marked as just used), or None."""
        _check_key(key)
        with _LOCK:
            found = self._load(key)
            if found is not None:
                try:
                    _touch(found.folder / META_NAME)
                except OSError:  # removed under us by another process's eviction
                    return None
            return found

    def __contains__(self, key: str) -> bool:
        with _LOCK:
            return self._load(_check_key(key)) is not None

    def _entries(self) -> list[tuple[int, str, int]]:
        """``(last used ns, key, bytes)`` of every whole entry; damaged ones and stale temporary
        folders are removed on the way."""
        if not self.folder.is_dir():
            return []
        rows = []
        now = time.time()
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(_TMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > _STALE_TMP_S:
                        _remove(path)
                continue
            if not path.is_dir() or not _KEY_RE.match(name):
                continue
            if self._load(name) is None:
                continue
            try:
                used = (path / META_NAME).stat().st_mtime_ns
            except OSError:
                continue
            rows.append((used, name, _folder_bytes(path)))
        return rows

    def keys(self) -> list[str]:
        """The cached keys, most recently used first."""
        with _LOCK:
            return [key for _used, key, _size in sorted(self._entries(), reverse=True)]

    def total_bytes(self) -> int:
        with _LOCK:
            return sum(size for _used, _key, size in self._entries())

    # writing -------------------------------------------------------------------------------

    def put(self, key: str, frames_uint8, fps: int, request: Any) -> CachedRender:
        """Write ``frames_uint8`` ((F, H, W, 3) RGB) as the entry ``key``, then evict the least
        recently used entries (never this one) until the cache is within its limit.

        ``request``: a :class:`~difflora_gui.preview.request.PreviewRequest` or its JSON mapping,
        kept in ``meta.json``. An entry already there under ``key`` is kept (same key, same pixels).
        """
        from difflora_gui.preview.video_io import write_video

        _check_key(key)
        frames, height, width = (int(n) for n in frames_uint8.shape[:3])
        request_json = request.to_json() if hasattr(request, "to_json") else dict(request or {})
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the render cache folder: {exc.strerror or exc}", path=self.folder
            ) from exc
        tmp = self.folder / f"{_TMP_PREFIX}{key[:16]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write_video(tmp / VIDEO_NAME, frames_uint8, int(fps))
            (tmp / FIRST_FRAME_NAME).write_bytes(_png_bytes(frames_uint8[0]))
            now = time.time()
            meta = {
                "key": key,
                "request": request_json,
                "frames": frames,
                "width": width,
                "height": height,
                "fps": int(fps),
                "created": now,
                "last_used": now,
            }
            (tmp / META_NAME).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
            with _LOCK:
                if self._load(key) is None:
                    _remove(self.folder / key)
                    os.replace(tmp, self.folder / key)
                entry = self._load(key)
                if entry is None:
                    raise OSError(f"the render cache entry {key} vanished as it was written")
                _touch(entry.folder / META_NAME)
                self.evict(keep=key)
        finally:
            _remove(tmp)
        return entry

    def evict(self, *, keep: str | None = None) -> list[str]:
        """Remove least recently used entries (not ``keep``) until within the limit; the removed keys."""
        removed = []
        with _LOCK:
            rows = sorted(self._entries())
            total = sum(size for _used, _key, size in rows)
            for _used, key, size in rows:
                if total <= self.limit_bytes:
                    break
                if key == keep:
                    continue
                _remove(self.folder / key)
                total -= size
                removed.append(key)
        return removed

    def remove(self, key: str) -> None:
        with _LOCK:
            _remove(self.folder / _check_key(key))


def cache_dir_for(project) -> Path:
    """The render cache of a project: its workspace's ``renders/cache``.

    ``project``: a :class:`~difflora_gui.project.Project`, a
    :class:`~difflora_gui.project.workspace.Workspace`, a ``NAME.difflora`` file or a workspace folder.
    """
    from difflora_gui.project.workspace import Workspace, workspace_root_for

    if isinstance(project, Workspace):
        workspace = project
    elif hasattr(project, "workspace_root"):
        workspace = Workspace(project.workspace_root)
    else:
        path = Path(project)
        is_file = path.suffix == ".difflora" or path.is_file()
        workspace = Workspace(workspace_root_for(path) if is_file else path)
    return workspace.kind_dir("renders") / "cache"


def cached_results(folder: str | Path, *, limit: int = 20, skip=()) -> list:
    """The cache's renders, most recently used first, as
    :class:`~difflora_gui.preview.backend.PreviewResult` s the A/B view can offer as a reference
    (earlier sessions' renders and grid cells too). Entries whose request this version cannot
    read are left out; none is marked as used (looking is not using)."""
    from difflora_gui.preview.backend import PreviewResult
    from difflora_gui.preview.request import PreviewRequest

    cache = RenderCache(folder, 0)
    skipped = set(skip)
    found = []
    with _LOCK:
        # newest first by meta.json's time alone: only the entries shown are read
        dated = []
        for path in cache.folder.iterdir() if cache.folder.is_dir() else ():
            if _KEY_RE.match(path.name) and path.name not in skipped:
                with contextlib.suppress(OSError):
                    dated.append(((path / META_NAME).stat().st_mtime_ns, path.name))
        for _used, key in sorted(dated, reverse=True):
            entry = cache._load(key)
            if entry is None:
                continue
            try:
                request = PreviewRequest.from_json(entry.meta.get("request") or {})
            except (UserError, TypeError, ValueError, KeyError):
                continue
            found.append(
                PreviewResult(
                    video=str(entry.video),
                    first_frame=str(entry.first_frame),
                    key=key,
                    cache_hit=True,
                    frames=entry.frames,
                    width=entry.width,
                    height=entry.height,
                    request=request,
                )
            )
            if len(found) >= limit:
                break
    return found
