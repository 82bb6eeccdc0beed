"""Real media files for the dataset tests: textured images (cv2), tiny clips (PyAV), a bad-input corpus."""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A uint8 BGR image with gradients and blurred noise (compresses like a real frame)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3), dtype=np.float32) * 255
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    ramp = np.linspace(0, 80, width, dtype=np.float32)[None, :, None]
    return np.clip(noise * 0.7 + ramp, 0, 255).astype(np.uint8)


def write_image(path: str | Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """Encode a textured image by its suffix (png, jpg, webp); works for any file name."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix.lower(), textured(width, height, seed))
    assert ok, path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
    return path


def write_video(
    path: str | Path,
    frames: int = 24,
    width: int = 64,
    height: int = 48,
    fps: int = 24,
    codec: str | None = None,
    *,
    noise: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode a clip whose frame i is uniformly grey level 8·i (so the frame read back is known).

    ``noise``: random pixels instead (a clip whose bytes spread evenly over its length);
    ``options``: container options (``{"movflags": "faststart"}``: the index first).
    """
    rng = np.random.default_rng(0)
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or {".webm": "libvpx-vp9", ".mkv": "libx264", ".mov": "libx264"}.get(
        path.suffix.lower(), "libx264"
    )
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec.startswith("libvpx"):
            stream.options = {"deadline": "realtime", "cpu-used": "8"}  # tests need speed, not quality
        for i in range(frames):
            image = (
                rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                if noise
                else np.full((height, width, 3), min(255, 8 * i), np.uint8)
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_huge_png(path: str | Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A valid 1-bit greyscale PNG of ``width`` × ``height`` (all black), ~100 KB on disk."""
    path = Path(path)
    path.write_bytes(_huge_png_bytes(width, height))
    return path


@functools.lru_cache(maxsize=4)
def _huge_png_bytes(width: int, height: int) -> bytes:

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows = 1000
    parts = [compressor.compress(row * rows) for _ in range(height // rows)]
    parts.append(compressor.compress(row * (height % rows)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def truncate(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def bad_corpus(folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input into ``folder``; name → a word its reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    good_jpg = write_image(folder.parent / "_good.jpg", 96, 64)
    good_png = write_image(folder.parent / "_good.png", 96, 64)
    good_mp4 = write_video(folder.parent / "_good.mp4", frames=24)
    (folder / "zero bytes.png").write_bytes(b"")
    (folder / "zero.mp4").write_bytes(b"")
    truncate(good_jpg, folder / "half.jpg")
    truncate(good_png, folder / "half.png")
    (folder / "text renamed.png").write_text("this is not an image\n", encoding="utf-8")
    (folder / "garbage.jpg").write_bytes(bytes(range(256)) * 8)
    write_huge_png(folder / "huge.png")
    (folder / "random.mp4").write_bytes(
        np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    )
    truncate(good_mp4, folder / "cut.mp4", 0.3)
    (folder / "notes.md").write_text("# not media\n", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return {
        "zero bytes.png": "empty",
        "zero.mp4": "empty",
        "half.jpg": "truncated",
        "half.png": "truncated",
        "text renamed.png": "not an image",
        "garbage.jpg": "not an image",
        "huge.png": "too large",
        "random.mp4": "unreadable video",
        "cut.mp4": "unreadable video",
        "notes.md": "not an image or video",
        "model.safetensors": "not an image or video",
    }


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name → sha256 and mtime): a folder that was not touched."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = (
                f"{hashlib.sha256(path.read_bytes()).hexdigest()} {stat.st_mtime_ns}"
            )
        else:
            found[path.relative_to(folder).as_posix() + "/"] = "dir"
    return found
