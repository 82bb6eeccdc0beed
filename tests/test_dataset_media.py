"""Dataset media: probing images and clips, the fast reduced decode and its method, video frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from difflora_gui.dataset import media
from difflora_gui.dataset.media import (
    MediaInfo,
    load_frame,
    load_image,
    probe,
    read_frame,
    read_image,
    reduction_for,
    target_dims,
)
from difflora_gui.errors import BadFileError
from tests.dataset_media_helpers import textured, write_image, write_video


@pytest.mark.parametrize(
    "suffix, fmt", [(".png", "png"), (".jpg", "jpeg"), (".jpeg", "jpeg"), (".webp", "webp")]
)
def test_probe_reads_the_image_size_from_the_header(tmp_path, suffix, fmt):
    path = write_image(tmp_path / f"frame{suffix}", 321, 123)
    info = probe(path)
    assert info == MediaInfo("image", 321, 123, 1, 0.0, 0.0, format=fmt)
    assert info.pixels == 321 * 123 and info.aspect == pytest.approx(321 / 123)


def test_probe_reads_lossless_webp_and_progressive_jpeg(tmp_path):
    lossless = tmp_path / "lossless.webp"
    ok, data = cv2.imencode(".webp", textured(77, 55), [cv2.IMWRITE_WEBP_QUALITY, 101])
    lossless.write_bytes(data.tobytes())
    assert (probe(lossless).width, probe(lossless).height) == (77, 55)
    progressive = tmp_path / "progressive.jpg"
    ok, data = cv2.imencode(".jpg", textured(90, 60), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    progressive.write_bytes(data.tobytes())
    assert (probe(progressive).width, probe(progressive).height) == (90, 60)
    assert read_image(progressive).shape == (60, 90, 3)


def test_an_image_with_data_after_its_end_is_not_called_truncated(tmp_path):
    """Some cameras append data (a motion-photo clip) after the JPEG's end marker."""
    path = write_image(tmp_path / "motion.jpg", 80, 60)
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    assert probe(path).width == 80
    png = write_image(tmp_path / "trailer.png", 40, 30)
    png.write_bytes(png.read_bytes() + b"trailing bytes" * 20)
    assert probe(png).height == 30


def test_unicode_and_spaces_in_names(tmp_path):
    folder = tmp_path / "Ordner mit Leerzeichen ü"
    image = write_image(folder / "bild 日本 ü.jpg", 64, 40)
    clip = write_video(folder / "clip é 1.mp4", frames=6)
    assert probe(image).width == 64
    assert read_image(image).shape == (40, 64, 3)
    assert probe(clip).frames == 6
    assert read_frame(clip).shape == (48, 64, 3)


@pytest.mark.parametrize(
    "size, factor, method",
    [
        (256, 4, "reduced4+linear"),
        (512, 2, "reduced2+linear"),
        (120, 8, "reduced8+linear"),
        (135, 8, "reduced8"),
        (270, 4, "reduced4"),
    ],
)
def test_jpeg_is_decoded_reduced_then_resized_once(tmp_path, size, factor, method):
    path = write_image(tmp_path / "hd.jpg", 1920, 1080)
    assert reduction_for(1920, 1080, target_dims(1920, 1080, size)) == factor
    decoded = load_image(path, size)
    assert decoded.image.dtype == np.uint8 and decoded.image.shape[2] == 3
    assert decoded.image.shape[:2] == (size, round(1920 * size / 1080))
    assert decoded.method == method
    assert decoded.source_size == (1920, 1080)
    # close to the careful path (full decode + INTER_AREA): the images are the same picture
    full = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    careful = cv2.resize(full, decoded.image.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert float(cv2.absdiff(careful, decoded.image).mean()) < 3.0


def test_png_is_decoded_in_full_then_halved_exactly_then_linear(tmp_path):
    path = write_image(tmp_path / "hd.png", 1920, 1080)
    assert load_image(path, 512).method == "full+area2+linear"
    assert load_image(path, 256).method == "full+area4+linear"
    assert load_image(path, 540).method == "full+area2"
    assert load_image(path, 1080).method == "full"
    assert load_image(path).image.shape == (1080, 1920, 3)


def test_portrait_short_side_and_exact_target(tmp_path):
    path = write_image(tmp_path / "portrait.jpg", 600, 1000)
    assert read_image(path, 300).shape == (500, 300, 3)
    assert target_dims(600, 1000, 300) == (300, 500)
    decoded = load_image(path, target=(208, 352))
    assert decoded.image.shape == (352, 208, 3)
    assert decoded.method == "reduced2+linear"


def test_16_bit_grey_and_alpha_pngs_read_as_8_bit_bgr(tmp_path):
    grey16 = tmp_path / "grey16.png"
    ok, data = cv2.imencode(".png", (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50))
    grey16.write_bytes(data.tobytes())
    rgba = tmp_path / "rgba.png"
    ok, data = cv2.imencode(".png", np.dstack([textured(40, 30), np.full((30, 40), 128, np.uint8)]))
    rgba.write_bytes(data.tobytes())
    for path in (grey16, rgba):
        image = read_image(path)
        assert image.dtype == np.uint8 and image.shape == (30, 40, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".mov"])
def test_probe_video_frames_fps_duration(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", frames=30, width=64, height=48, fps=24)
    info = probe(path)
    assert info.kind == "video" and (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(24.0)
    assert info.frames == pytest.approx(
        30, abs=1
    )  # an estimate (duration × fps) where the container has no count
    assert info.duration_s == pytest.approx(30 / 24, abs=0.1)
    assert info.format in ("h264", "vp9")
    assert info.to_json()["frames"] == info.frames


def test_webm_has_no_frame_count_so_it_is_estimated(tmp_path):
    info = probe(write_video(tmp_path / "clip.webm", frames=30, fps=24))
    assert info.frames_estimated and info.frames == 30
    assert not probe(write_video(tmp_path / "clip.mp4", frames=30)).frames_estimated


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_read_frame_middle_first_last_and_any(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", frames=30)  # frame i is grey 8·i

    def grey(image):
        return float(image.mean())

    assert grey(read_frame(path)) == pytest.approx(8 * 15, abs=4)
    assert grey(read_frame(path, 0)) == pytest.approx(0, abs=4)
    assert grey(read_frame(path, 7)) == pytest.approx(56, abs=4)
    assert grey(read_frame(path, 29)) == pytest.approx(232, abs=4)
    with pytest.raises(BadFileError, match="no frame 30"):
        read_frame(path, 30)


def test_read_frame_size_and_read_image_of_a_clip(tmp_path):
    path = write_video(tmp_path / "big.mp4", frames=10, width=256, height=144)
    decoded = load_frame(path, 2, 72)
    assert decoded.image.shape == (72, 128, 3) and decoded.method == "full+area2"
    assert decoded.source_size == (256, 144)
    assert load_frame(path, size=48).method == "full+area2+linear"
    middle = read_image(path, 72)
    assert middle.shape == (72, 128, 3)
    assert float(middle.mean()) == pytest.approx(40, abs=4)  # frame 5 of 10


def test_read_image_refuses_what_probe_refuses(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(BadFileError, match="empty"):
        read_image(path)
    text = tmp_path / "text.jpg"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(BadFileError, match="not an image"):
        read_image(text, 64)
    with pytest.raises(BadFileError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_the_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    path = write_image(tmp_path / "ten_mp.png", 400, 300)
    monkeypatch.setattr(media, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(BadFileError, match=r"too large: 400×300"):
        probe(path)
    monkeypatch.setattr(media.cv2, "imdecode", lambda *a: pytest.fail("decoded a refused image"))
    with pytest.raises(BadFileError, match="too large"):
        read_image(path)


def test_jpeg_metadata_longer_than_the_first_bytes_read(tmp_path):
    import struct

    path = write_image(tmp_path / "exif heavy.jpg", 70, 50)
    data = path.read_bytes()
    segment = b"\xff\xe2" + struct.pack(">H", 60_002) + bytes(60_000)  # three ~60 KB ICC/APP2 blocks
    path.write_bytes(data[:2] + segment * 3 + data[2:])
    assert (probe(path).width, probe(path).height) == (70, 50)
    assert read_image(path, 25).shape == (25, 35, 3)


def test_an_image_renamed_as_a_video_is_not_a_video(tmp_path):
    source = write_image(tmp_path / "still.jpg", 64, 48)
    renamed = tmp_path / "still.mp4"
    renamed.write_bytes(source.read_bytes())
    with pytest.raises(BadFileError, match="not a video: the content is a still image"):
        probe(renamed)
    with pytest.raises(BadFileError, match="not a video"):
        read_frame(renamed)


def test_exif_orientation_is_ignored_so_pixels_match_the_header_size(tmp_path):
    import struct

    path = write_image(tmp_path / "rotated.jpg", 80, 40)
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    tiff += struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = path.read_bytes()
    path.write_bytes(data[:2] + app1 + data[2:])
    assert cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (80, 40)  # OpenCV rotates
    assert (probe(path).width, probe(path).height) == (80, 40)
    assert read_image(path).shape == (40, 80, 3)
    assert read_image(path, 20).shape == (20, 40, 3)
