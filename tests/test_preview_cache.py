"""The render cache: whole entries or none, least recently used evicted past the limit, damaged entries dropped."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from difflora_gui.errors import UserError
from difflora_gui.preview.render_cache import (
    FIRST_FRAME_NAME,
    META_NAME,
    VIDEO_NAME,
    RenderCache,
    cache_dir_for,
    cached_results,
)
from difflora_gui.preview.request import PreviewRequest
from difflora_gui.preview.video_io import VideoReader


def _frames(seed: int, count: int = 5, height: int = 32, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def _key(n: int) -> str:
    return f"{n:064x}"


REQUEST = PreviewRequest(prompt="a cat", width=48, height=32, frames=5)


def test_put_then_get_gives_the_files_and_the_request(tmp_path):
    cache = RenderCache(tmp_path / "cache", limit_mb=64)
    frames = _frames(0)
    entry = cache.put(_key(1), frames, 8, REQUEST)
    assert entry.video.name == VIDEO_NAME and entry.first_frame.name == FIRST_FRAME_NAME
    assert (entry.frames, entry.width, entry.height, entry.fps) == (5, 48, 32, 8)
    again = cache.get(_key(1))
    assert again is not None and again.video == entry.video
    assert PreviewRequest.from_json(again.meta["request"]) == REQUEST
    with VideoReader(again.video) as reader:
        assert (reader.frame_count, reader.width, reader.height) == (5, 48, 32)
    import cv2

    first = cv2.cvtColor(cv2.imread(str(again.first_frame)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(first, frames[0])  # the first frame is lossless
    assert cache.get(_key(2)) is None
    assert cache.keys() == [_key(1)]
    # nothing but the entry is left behind (no temporary folder)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [_key(1)]


def test_least_recently_used_is_evicted_past_the_limit_never_the_new_one(tmp_path):
    cache = RenderCache(tmp_path / "cache", limit_mb=1)
    one = cache.put(_key(1), _frames(1), 8, REQUEST)
    size = sum(p.stat().st_size for p in one.folder.iterdir())
    cache.limit_bytes = int(size * 3.5)  # room for three entries of about this size
    cache.put(_key(2), _frames(2), 8, REQUEST)
    cache.put(_key(3), _frames(3), 8, REQUEST)
    assert cache.get(_key(1)) is not None  # 1 is now the most recently used; 2 the least
    cache.put(_key(4), _frames(4), 8, REQUEST)
    assert set(cache.keys()) == {_key(1), _key(3), _key(4)}
    assert cache.keys()[0] == _key(4) and cache.keys()[1] == _key(1)
    assert cache.total_bytes() <= cache.limit_bytes
    # a limit smaller than one entry still keeps the one just written
    cache.limit_bytes = 10
    cache.put(_key(5), _frames(5), 8, REQUEST)
    assert cache.keys() == [_key(5)]


def test_a_damaged_or_half_written_entry_is_ignored_and_removed(tmp_path):
    folder = tmp_path / "cache"
    cache = RenderCache(folder, limit_mb=64)
    good = cache.put(_key(1), _frames(1), 8, REQUEST)
    broken = cache.put(_key(2), _frames(2), 8, REQUEST)
    (broken.folder / META_NAME).write_text("{not json", encoding="utf-8")
    half = folder / _key(3)
    half.mkdir()
    (half / VIDEO_NAME).write_bytes(b"")
    wrong = cache.put(_key(4), _frames(4), 8, REQUEST)
    meta = json.loads((wrong.folder / META_NAME).read_text(encoding="utf-8"))
    (wrong.folder / META_NAME).write_text(json.dumps({**meta, "key": _key(9)}), encoding="utf-8")
    missing = cache.put(_key(5), _frames(5), 8, REQUEST)
    os.remove(missing.video)
    stale = folder / ".tmp-0123-abcd"
    stale.mkdir()
    os.utime(stale, (1, 1))  # a crash's leftover, long ago
    assert cache.get(_key(2)) is None and not broken.folder.exists()
    assert cache.keys() == [_key(1)]
    assert not half.exists() and not wrong.folder.exists() and not missing.folder.exists()
    assert not stale.exists()
    assert cache.get(_key(1)).video == good.video
    # the same key written again after the damage is a whole entry
    assert cache.put(_key(2), _frames(2), 8, REQUEST).video.is_file()


def test_a_failed_write_leaves_no_entry(tmp_path):
    cache = RenderCache(tmp_path / "cache", limit_mb=64)
    with pytest.raises(UserError):
        cache.put(_key(1), np.zeros((0, 32, 32, 3), np.uint8), 8, REQUEST)
    assert cache.keys() == [] and list((tmp_path / "cache").iterdir()) == []


def test_bad_keys_are_refused(tmp_path):
    cache = RenderCache(tmp_path / "cache", limit_mb=64)
    for key in ("../x", "ABC", "", "0" * 7):
        with pytest.raises(ValueError):
            cache.get(key)


def test_the_cache_lives_in_the_projects_workspace(tmp_path):
    from difflora_gui.project import Project

    project = Project("demo")
    project.save(tmp_path / "demo.difflora")
    expected = tmp_path / "demo.difflora.d" / "renders" / "cache"
    assert cache_dir_for(project) == expected
    assert cache_dir_for(tmp_path / "demo.difflora") == expected
    assert cache_dir_for(project.workspace) == expected


def test_cached_results_are_the_newest_readable_entries_and_looking_does_not_mark_them_used(tmp_path):
    import dataclasses
    import time

    cache = RenderCache(tmp_path / "cache", limit_mb=64)
    for n in range(4):
        cache.put(_key(n), _frames(n), 8, dataclasses.replace(REQUEST, seed=n))
        time.sleep(0.01)  # distinct modification times
    meta = tmp_path / "cache" / _key(2) / META_NAME
    data = json.loads(meta.read_text(encoding="utf-8"))
    data["request"] = {"prompt": "x", "frames": 6}  # not 4N+1: this version cannot read it
    stamp = meta.stat().st_mtime_ns
    meta.write_text(json.dumps(data), encoding="utf-8")
    os.utime(meta, ns=(stamp, stamp))
    used_before = {n: (tmp_path / "cache" / _key(n) / META_NAME).stat().st_mtime_ns for n in range(4)}

    found = cached_results(tmp_path / "cache", limit=2, skip={_key(3)})
    assert [r.key for r in found] == [_key(1), _key(0)]  # newest first, 3 skipped, 2 unreadable
    assert [r.request.seed for r in found] == [1, 0] and all(r.cache_hit for r in found)
    assert (found[0].frames, found[0].width, found[0].height) == (5, 48, 32)
    assert found[0].video == str(tmp_path / "cache" / _key(1) / VIDEO_NAME)
    after = {n: (tmp_path / "cache" / _key(n) / META_NAME).stat().st_mtime_ns for n in range(4)}
    assert after == used_before
    assert cached_results(tmp_path / "no cache yet") == []
