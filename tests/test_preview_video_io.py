"""Preview video files: real encodes with PyAV / OpenCV, decoded back and compared."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from difflora_gui.errors import UserError
from difflora_gui.preview import video_io
from difflora_gui.preview.video_io import VideoReader, read_video, to_uint8, write_frames_png, write_video


def smooth_clip(frames=9, height=64, width=96, seed=0) -> np.ndarray:
    """Moving smooth gradients (what a decoded Wan clip looks like to an encoder), uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    out = []
    for i in range(frames):
        channels = [
            0.5 + 0.4 * np.sin(x / width * 3.1 + phase[0] + 0.2 * i),
            0.5 + 0.4 * np.cos(y / height * 2.3 + phase[1] + 0.15 * i),
            0.5 + 0.4 * np.sin((x + y) / (width + height) * 4.0 + phase[2] - 0.1 * i),
        ]
        out.append(np.stack(channels, -1))
    return to_uint8(np.stack(out))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def stream_facts(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, stream.codec_context.pix_fmt


def test_h264_round_trip_keeps_count_size_and_quality(tmp_path):
    clip = smooth_clip(frames=17)
    out = write_video(tmp_path / "clip.mp4", clip, 16)
    assert out == tmp_path / "clip.mp4"
    assert stream_facts(out) == ("h264", "yuv420p")
    reader = VideoReader(out)
    assert (reader.frame_count, reader.height, reader.width, reader.codec) == (17, 64, 96, "h264")
    assert reader.fps == pytest.approx(16.0)
    decoded = reader.frames()
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert psnr(decoded, clip) > 35
    assert np.array_equal(reader.frame(3), decoded[3])
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left behind


def test_odd_sizes_are_padded_to_even_by_edge_replication(tmp_path):
    clip = smooth_clip(frames=5, height=33, width=47)
    frames, fps = read_video(write_video(tmp_path / "odd.mp4", clip, 8))
    assert frames.shape == (5, 34, 48, 3) and fps == pytest.approx(8.0)
    assert psnr(frames[:, :33, :47], clip) > 35
    # the padded row / column repeat the edge (within codec error)
    assert np.abs(frames[:, 33].astype(int) - frames[:, 32].astype(int)).mean() < 4


def test_mp4v_fallback_and_webm_are_readable(tmp_path):
    clip = smooth_clip(frames=9)
    mp4v = write_video(tmp_path / "fallback.mp4", clip, 12, codec="mp4v")
    assert stream_facts(mp4v)[0] == "mpeg4"
    webm = write_video(tmp_path / "clip.webm", clip, 12)
    assert stream_facts(webm)[0] in {"vp9", "libvpx-vp9"}
    for path in (mp4v, webm):
        reader = VideoReader(path)
        assert reader.frame_count == 9 and (reader.width, reader.height) == (96, 64)
        assert psnr(reader.frames(), clip) > 30


def test_auto_falls_back_to_mp4v_without_libx264(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "_pyav_encoder", lambda codec: None)
    assert video_io.resolve_codec(tmp_path / "x.mp4") == "mp4v"
    frames, _ = read_video(write_video(tmp_path / "x.mp4", smooth_clip(frames=3), 8))
    assert frames.shape[0] == 3


def test_fractional_frame_rate(tmp_path):
    reader = VideoReader(write_video(tmp_path / "ntsc.mp4", smooth_clip(frames=4), 30000 / 1001))
    assert reader.fps == pytest.approx(29.97, abs=0.01)


def test_existing_file_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_clip(frames=2), 8)
    with pytest.raises(UserError, match="already exists"):
        write_video(path, smooth_clip(frames=3), 8)
    assert VideoReader(path).frame_count == 2
    write_video(path, smooth_clip(frames=3), 8, overwrite=True)
    assert VideoReader(path).frame_count == 3


@pytest.mark.parametrize("codec", ["auto", "mp4v"])
def test_a_failure_midway_leaves_no_partial_file(tmp_path, codec):
    good = smooth_clip(frames=4)
    frames = [good[0], good[1], good[2][:32]]  # the third frame has the wrong size
    with pytest.raises(UserError, match="frame 2 is 96x32"):
        write_video(tmp_path / "bad.mp4", frames, 8, codec=codec)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="float32, not uint8"):
        write_video(tmp_path / "bad.mp4", good.astype(np.float32) / 255, 8, codec=codec)
    assert list(tmp_path.iterdir()) == []


def test_bad_codec_and_suffix_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unsupported video file type .gif"):
        write_video(tmp_path / "x.gif", smooth_clip(frames=1), 8)
    with pytest.raises(UserError, match="codec vp9 cannot go in a .mp4"):
        write_video(tmp_path / "x.mp4", smooth_clip(frames=1), 8, codec="vp9")


def test_png_frames_are_exact_and_atomic(tmp_path):
    clip = smooth_clip(frames=3, height=21, width=31)
    folder = tmp_path / "frames"
    paths = write_frames_png(folder, clip)
    assert [p.name for p in paths] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    import cv2

    for path, frame in zip(paths, clip, strict=True):
        assert np.array_equal(
            cv2.imread(str(path))[:, :, ::-1], frame
        )  # odd sizes kept: PNG needs no padding
    with pytest.raises(UserError, match="not empty"):
        write_frames_png(folder, clip[:1])
    assert len(write_frames_png(folder, clip[:1], overwrite=True)) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["frame_00000.png"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files"):
        write_frames_png(folder, clip, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="frame 1"):
        write_frames_png(tmp_path / "bad", [clip[0], clip[1][:5]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_to_uint8_rounds_and_clips():
    values = np.array([-0.5, 0.0, 0.6 / 255, 0.4 / 255, 1.0, 1.7, np.nan])
    assert to_uint8(values).tolist() == [0, 0, 1, 0, 255, 255, 0]
    same = np.zeros((2, 2, 3), np.uint8)
    assert to_uint8(same) is same


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "video file not found"),
        (b"", "the video file is empty"),
        (b"hello, not a video\n" * 20, "not a readable video"),
    ],
)
def test_bad_files_raise_one_line_user_errors(tmp_path, content, expected):
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as info:
        VideoReader(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert "Errno" not in message and message.count(str(path)) == 1


def test_truncated_video_is_a_user_error(tmp_path):
    good = write_video(tmp_path / "good.mp4", smooth_clip(frames=9), 8)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(UserError) as info:
        VideoReader(cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


def test_opencv_reads_when_pyav_is_missing(tmp_path, monkeypatch):
    clip = smooth_clip(frames=6)
    path = write_video(tmp_path / "clip.mp4", clip, 12)
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails, as without PyAV
    reader = VideoReader(path)
    assert reader.codec == "h264" and reader.frame_count == 6 and reader.fps == pytest.approx(12.0)
    assert psnr(reader.frames(), clip) > 35
    monkeypatch.setattr(video_io, "_pyav_encoder", lambda codec: None)
    assert VideoReader(write_video(tmp_path / "cv.mp4", clip, 12)).frame_count == 6


def test_a_clip_too_large_to_hold_is_refused(tmp_path):
    path = write_video(tmp_path / "clip.mp4", smooth_clip(frames=6), 12)
    frame_bytes = 64 * 96 * 3
    assert VideoReader(path, max_bytes=6 * frame_bytes).frame_count == 6
    with pytest.raises(
        UserError, match=r"too long to preview: .*\(4 frames of 96x64 so far\); trim the clip"
    ):
        VideoReader(path, max_bytes=3 * frame_bytes + 1)
