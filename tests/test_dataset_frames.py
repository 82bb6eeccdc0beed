"""Frame extraction: real H.264 videos with known cuts (PyAV-encoded), real PNG files out."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from difflora_gui.dataset import frame_filters
from difflora_gui.dataset.frames import (
    ExtractionOptions,
    expected_interval_count,
    extract_frames,
    frame_name,
    run,
)
from difflora_gui.errors import BadFileError, JobCancelled, UserError
from difflora_gui.jobs.context import JobContext
from tests.app_process import run_main
from tests.frames_video_helpers import abc_video, scene_texture, write_video

CUTS = [72, 144, 216, 240]


@pytest.fixture(scope="module")
def abc(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("videos") / "abc.mp4"
    assert abc_video(path) == CUTS
    return path


def read_png(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)


def test_scene_mode_finds_the_cuts_and_keeps_one_frame_per_shot(abc, tmp_path):
    result = extract_frames([abc], tmp_path / "out")
    stats = result.per_video[str(abc)]
    assert len(stats.cuts) == len(CUTS)
    assert all(abs(found - cut) <= 1 for found, cut in zip(stats.cuts, CUTS, strict=True))
    assert stats.frames_decoded == 312
    # one frame per shot, min_scene_len // 2 = 7 frames after its cut (0.6 s at 24 fps = 14 frames)
    assert [p.name for p in result.frames] == [
        "abc_00-00-00-292_f000007.png",
        "abc_00-00-03-292_f000079.png",
        "abc_00-00-06-292_f000151.png",
    ]
    reasons = [reason for reason, _ in result.skipped]
    assert reasons[0].startswith("dark") and "frame 223" in result.skipped[0][1]  # the black second
    assert reasons[1] == "near-duplicate of abc_00-00-00-292_f000007.png"  # scene A again after C
    assert "frame 247" in result.skipped[1][1]
    # the kept frames are the scenes' content, at full size
    for path, seed in zip(result.frames, (1, 2, 3), strict=True):
        image = read_png(path)
        assert image.shape == (90, 160, 3)
        assert cv2.absdiff(image, scene_texture(seed, 160, 90)).mean() < 8
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix != ".png"]  # no temp files


def test_adaptive_detector_finds_the_same_cuts(abc, tmp_path):
    result = extract_frames(
        [abc], tmp_path, detector="adaptive", dedupe=False, skip_dark=False, skip_blank=False
    )
    cuts = result.per_video[str(abc)].cuts
    assert len(cuts) == len(CUTS) and all(abs(f - c) <= 1 for f, c in zip(cuts, CUTS, strict=True))
    assert len(result.frames) == 5  # every shot, the black one and the repeat included


def test_interval_mode_takes_one_frame_every_n_seconds(abc, tmp_path):
    result = extract_frames(
        [abc], tmp_path / "a", mode="interval", every_s=2.0, dedupe=False, skip_dark=False, skip_blank=False
    )
    assert len(result.frames) == expected_interval_count(13.0, 2.0) == 7
    assert [int(p.stem.rsplit("_f", 1)[1]) for p in result.frames] == [0, 48, 96, 144, 192, 240, 288]
    # long gaps seek to the keyframe before the target instead of decoding everything
    result = extract_frames([abc], tmp_path / "b", mode="interval", every_s=5.0, dedupe=False)
    assert [int(p.stem.rsplit("_f", 1)[1]) for p in result.frames] == [0, 120, 240]
    # the dark second is skipped in interval mode too; the repeat of A is a duplicate of frame 0
    result = extract_frames([abc], tmp_path / "c", mode="interval", every_s=1.0)
    reasons = " ".join(r for r, _ in result.skipped)
    assert "dark" in reasons and "near-duplicate" in reasons
    assert len(result.frames) == 3  # A, B, C once each


def test_blank_frames_are_skipped(tmp_path):
    grey = np.full((90, 160, 3), 128, np.uint8)
    video = tmp_path / "card.mp4"
    write_video(video, [(scene_texture(5, 160, 90), 48), ("black", 0), (grey, 48)], noise=0.0)
    result = extract_frames([video], tmp_path / "out")
    assert len(result.frames) == 1
    assert any(reason.startswith("blank") for reason, _ in result.skipped)
    result = extract_frames([video], tmp_path / "all", skip_blank=False)
    assert len(result.frames) == 2


def test_unicode_and_spaces_in_paths(abc, tmp_path):
    folder = tmp_path / "Filme ü ✓"
    folder.mkdir()
    video = folder / "mein Film – 東京.mp4"
    video.write_bytes(abc.read_bytes())
    out = tmp_path / "Ausgabe ä ✓"
    result = extract_frames([video], out)
    assert len(result.frames) == 3
    assert all(p.name.startswith("mein Film – 東京_") and p.parent == out for p in result.frames)
    assert read_png(result.frames[0]).shape == (90, 160, 3)
    assert sorted(os.listdir(folder)) == ["mein Film – 東京.mp4"]  # the source folder is untouched


def test_bad_videos_are_listed_and_skipped(abc, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    data = abc.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video", encoding="utf-8")
    missing = tmp_path / "missing.mp4"
    result = extract_frames([truncated, abc, empty, text, missing], tmp_path / "out")
    assert len(result.frames) == 3  # the good video was extracted
    errors = {Path(k).name: v.error for k, v in result.per_video.items()}
    assert errors["abc.mp4"] == ""
    assert "truncated or corrupt" in errors["truncated.mp4"] or "decoding stopped" in errors["truncated.mp4"]
    assert errors["empty.mp4"] == "empty file (0 bytes)"
    assert "not a readable video" in errors["notes.mp4"]
    assert errors["missing.mp4"] == "file not found"
    assert {where for _, where in result.skipped} >= {str(truncated), str(empty), str(text), str(missing)}
    with pytest.raises(BadFileError, match="missing.mp4: file not found"):
        extract_frames([missing], tmp_path / "out2")
    with pytest.raises(UserError, match="none of the 2 videos"):
        extract_frames([missing, empty], tmp_path / "out2")


def test_a_video_cut_short_mid_stream_keeps_its_frames_and_says_so(tmp_path):
    video = tmp_path / "long.mkv"  # Matroska: the header (and its duration) comes first
    write_video(video, [(scene_texture(s, 160, 90), 72) for s in (1, 2, 3)])
    data = video.read_bytes()
    truncated = tmp_path / "cut short.mkv"
    truncated.write_bytes(data[: len(data) // 2])
    for mode in ("scenes", "interval"):
        result = extract_frames([truncated], tmp_path / mode, mode=mode, dedupe=False)
        error = result.per_video[str(truncated)].error
        assert (
            error.startswith("ends early: frames up to 00:00:0") and "of 00:00:09.000 (truncated?)" in error
        )
        assert len(result.frames) == 2  # scenes A and B (or 0 s and 2 s) were before the cut
        assert (error, str(truncated)) in result.skipped


def test_existing_files_are_never_overwritten(abc, tmp_path):
    first = extract_frames([abc], tmp_path)
    before = {p: p.read_bytes() for p in first.frames}
    second = extract_frames([abc], tmp_path)
    assert [p.name for p in second.frames] == [p.name.replace(".png", "-2.png") for p in first.frames]
    assert second.renamed == 3
    assert all(p.read_bytes() == data for p, data in before.items())


def test_the_source_folder_is_refused_as_output(abc):
    with pytest.raises(UserError, match="holds the source videos"):
        extract_frames([abc], abc.parent)


class CancelAfterFirstFrame(JobContext):
    def __init__(self):
        super().__init__()
        self.logs: list[str] = []
        self.images: list[str] = []

    def _emit_event(self, event):
        if getattr(event, "kind", None) == "image":
            self.images.append(event.path)
            self.cancel()

    def _emit_log(self, text):
        self.logs.append(text)


def test_cancel_keeps_the_frames_already_written(abc, tmp_path):
    ctx = CancelAfterFirstFrame()
    with pytest.raises(JobCancelled) as caught:
        extract_frames([abc, abc], tmp_path, ctx=ctx)
    result = caught.value.result
    assert result.cancelled and 1 <= len(result.frames) < 3
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert on_disk == sorted(p.name for p in result.frames)  # complete PNGs only, no temp files
    assert all(read_png(p) is not None for p in result.frames)
    assert any("cancelled" in line and "kept" in line for line in ctx.logs)


def test_job_progress_and_summary(abc, tmp_path):
    class Recording(JobContext):
        reports: list = []

        def _emit_progress(self, progress):
            self.reports.append(progress)

    ctx = Recording(progress_interval_s=0)
    summary = run({"videos": [str(abc)], "out_dir": str(tmp_path), "mode": "scenes"}, ctx)
    assert summary["written"] == 3 and len(summary["skipped"]) == 2 and not summary["cancelled"]
    assert summary["videos"][0]["cuts"] == CUTS
    assert ctx.reports[-1].done == ctx.reports[-1].total == 13.0
    assert any(r.eta_s is not None for r in ctx.reports[:-1])
    with pytest.raises(UserError, match="output folder"):
        run({"videos": [str(abc)]}, ctx)
    with pytest.raises(UserError, match="unknown parameter"):
        run({"videos": [str(abc)], "out_dir": str(tmp_path), "bogus": 1}, ctx)


def test_filters():
    texture = scene_texture(9, 160, 90)
    assert frame_filters.frame_problem(np.zeros((9, 16, 3), np.uint8), ExtractionOptions()).startswith("dark")
    flat = np.full((9, 16, 3), 200, np.uint8)
    assert frame_filters.frame_problem(flat, ExtractionOptions()).startswith("blank")
    assert frame_filters.frame_problem(texture, ExtractionOptions()) is None
    noisy = np.clip(texture + np.random.default_rng(0).normal(0, 4, texture.shape), 0, 255).astype(np.uint8)
    assert frame_filters.hamming(frame_filters.dhash(texture), frame_filters.dhash(noisy)) <= 3
    other = frame_filters.dhash(scene_texture(10, 160, 90))
    assert frame_filters.hamming(frame_filters.dhash(texture), other) > 12
    assert frame_filters.downscale_factor(1920) == 6 and frame_filters.downscale_factor(1280) == 4
    assert frame_filters.downscale_factor(320) == 1
    assert frame_name("a b", 3723.5, 89364) == "a b_01-02-03-500_f089364.png"


def test_plugin_is_registered():
    from difflora_gui.plugin_host import get_plugin_host

    spec = get_plugin_host().dataset_tools()["frame_extraction"]
    assert spec.run == "difflora_gui.dataset.frames:run" and spec.lane == "light"
    names = [p.name for p in spec.params]
    for name in ("videos", "out_dir", "mode", "every_s", "threshold", "min_scene_len_s", "skip_dark"):
        assert name in names
    assert {"skip_blank", "dedupe_distance"} <= set(names)


def test_cli(abc, tmp_path):
    out = tmp_path / "frames"
    done = run_main("dataset", "extract-frames", abc, tmp_path / "nope.mp4", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "3 frames written" in done.stdout
    assert "nope.mp4: file not found" in done.stderr
    assert len(list(out.glob("abc_*.png"))) == 3
    done = run_main(
        "dataset",
        "extract-frames",
        abc,
        "--out",
        tmp_path / "iv",
        "--mode",
        "interval",
        "--every",
        "3",
        "--no-dedupe",
        "--no-skip-dark",
        "--no-skip-blank",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "iv").glob("*.png"))) == expected_interval_count(13.0, 3.0) == 5
    bad = run_main("dataset", "extract-frames", tmp_path / "nope.mp4", "--out", out)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.mp4'}: file not found"]
