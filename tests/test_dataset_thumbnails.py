"""Thumbnails cached on disk (keyed by path, size and mtime) and the grid's sort/filter logic (Qt-free)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from difflora_gui.dataset.grid_filter import (
    FLAGGED,
    UNFLAGGED,
    GridQuery,
    arrange,
    flag_codes,
    score_keys,
    worst_flag,
)
from difflora_gui.dataset.model import MediaItem, Pair
from difflora_gui.dataset.thumbnails import THUMB_SIZE, ThumbnailCache, make_thumbnail, pregenerate
from difflora_gui.errors import BadFileError


def _write(path: Path, shape=(720, 1280), colour=(40, 120, 200)) -> Path:
    image = np.zeros((*shape, 3), np.uint8)
    image[:] = colour
    cv2.rectangle(image, (10, 10), (shape[1] // 2, shape[0] // 2), (255, 255, 255), -1)
    cv2.imwrite(str(path), image)
    return path


def test_thumbnail_is_small_jpeg_in_thumbs_and_cached(tmp_path):
    source = _write(tmp_path / "frame 0001 ü.png")
    before = source.stat().st_mtime_ns, source.read_bytes()
    cache = ThumbnailCache.for_dataset(tmp_path / "dataset")
    assert cache.cached(source) is None
    thumb = cache.get(source)
    assert thumb.parent == tmp_path / "dataset" / "thumbs" and thumb.suffix == ".jpg"
    image = cv2.imread(str(thumb))
    assert max(image.shape[:2]) == THUMB_SIZE and image.shape[1] > image.shape[0]  # landscape kept
    assert abs(image.shape[1] / image.shape[0] - 1280 / 720) < 0.05
    # the colour survives (BGR order kept)
    assert np.allclose(image[-5, -5].astype(float), (40, 120, 200), atol=12)
    assert cache.cached(source) == thumb
    mtime = thumb.stat().st_mtime_ns
    assert cache.get(source) == thumb and thumb.stat().st_mtime_ns == mtime  # not made again
    assert (source.stat().st_mtime_ns, source.read_bytes()) == before  # the source is only read


def test_a_changed_file_gets_a_new_thumbnail(tmp_path):
    source = _write(tmp_path / "a.png")
    cache = ThumbnailCache(tmp_path / "thumbs")
    first = cache.get(source)
    _write(source, shape=(300, 200), colour=(0, 255, 0))
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = cache.get(source)
    assert second != first
    image = cv2.imread(str(second))
    assert image.shape[0] > image.shape[1]  # the new, portrait picture


def test_bad_files_raise_one_clear_error_and_pregenerate_lists_them(tmp_path):
    good = _write(tmp_path / "good.jpg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image", encoding="utf-8")
    missing = tmp_path / "gone.png"
    with pytest.raises(BadFileError, match="empty"):
        make_thumbnail(empty)
    with pytest.raises(BadFileError):
        make_thumbnail(fake)
    with pytest.raises(BadFileError, match="missing|cannot read"):
        make_thumbnail(missing)
    cache = ThumbnailCache(tmp_path / "thumbs")
    bad = pregenerate(cache, [good, empty, fake])
    assert set(bad) == {str(empty), str(fake)} and all(bad.values())
    assert cache.cached(good) is not None
    assert cache.clear() == 1


def _pairs(n: int) -> list[Pair]:
    item = MediaItem("x.png", "image")
    return [Pair(f"p{i}", item, item, caption="red car" if i == 3 else "", include=i != 2) for i in range(n)]


class _Flag:
    def __init__(self, code):
        self.code, self.text = code, code


class _Scores:
    def __init__(self, ssim, mad, shift, flags):
        self.ssim, self.mad, self.shift, self.flags, self.resize_method = ssim, mad, shift, flags, "x"


def test_arrange_sorts_by_scores_and_filters_by_flag_include_and_text():
    pairs = _pairs(5)
    scores = {
        "p0": _Scores(0.9, 1.0, (0.0, 0.0), []),
        "p1": _Scores(0.4, 9.0, (3.0, 4.0), [_Flag("shift"), _Flag("drift")]),
        "p2": _Scores(0.7, 3.0, (1.0, 0.0), [_Flag("drift")]),
        "p3": _Scores(float("nan"), 2.0, (0.0, 0.0), []),
    }  # p4 not checked
    ids = lambda order: [pairs[i].id for i in order]  # noqa: E731
    assert set(score_keys(scores)) == {"ssim", "mad", "shift"}
    assert flag_codes(scores) == {"drift": 2, "shift": 1}
    assert worst_flag(scores["p1"]).code == "shift"
    assert ids(arrange(pairs, scores, GridQuery())) == ["p0", "p1", "p2", "p3", "p4"]
    # SSIM lowest first; NaN and unchecked last
    assert ids(arrange(pairs, scores, GridQuery(sort="ssim"))) == ["p1", "p2", "p0", "p3", "p4"]
    # a shift sorts by its length, descending = worst first
    assert ids(arrange(pairs, scores, GridQuery(sort="shift", descending=True)))[:1] == ["p1"]
    assert ids(arrange(pairs, scores, GridQuery(flag=FLAGGED))) == ["p1", "p2"]
    assert ids(arrange(pairs, scores, GridQuery(flag="drift", sort="mad", descending=True))) == ["p1", "p2"]
    assert ids(arrange(pairs, scores, GridQuery(flag=UNFLAGGED))) == ["p0", "p3"]
    assert ids(arrange(pairs, scores, GridQuery(include="excluded"))) == ["p2"]
    assert ids(arrange(pairs, scores, GridQuery(text="RED"))) == ["p3"]
    assert ids(arrange(pairs, scores, GridQuery(sort="include")))[-1] == "p2"


def test_arrange_is_quick_enough_for_thousands_of_pairs():
    pairs = _pairs(3000)
    scores = {
        p.id: _Scores(i / 3000, float(i % 7), (i % 5, 0.0), [_Flag("x")] if i % 3 else [])
        for i, p in enumerate(pairs)
    }
    order = arrange(pairs, scores, GridQuery(sort="ssim", flag=FLAGGED, text="p1"))
    assert order and all(pairs[i].id.startswith("p1") for i in order)


def test_a_clip_gets_the_thumbnail_of_its_middle_frame(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=16)
        stream.width, stream.height, stream.pix_fmt = 320, 176, "yuv420p"
        for i in range(17):
            image = np.full((176, 320, 3), 20 if i != 8 else 230, np.uint8)  # the middle frame is bright
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    thumb = ThumbnailCache(tmp_path / "thumbs").get(path)
    image = cv2.imread(str(thumb))
    assert max(image.shape[:2]) == THUMB_SIZE and image.shape[1] > image.shape[0]
    assert image.mean() > 120  # the middle frame, not the first
