"""Image sizes from file headers (Qt-free, no decoding): PNG, JPEG and WebP, and whether the file is whole.

:func:`image_header` reads the size from the first bytes and checks the end marker (PNG ``IEND``,
JPEG end-of-image, WebP's RIFF length), so a truncated image is caught without decoding it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from difflora_gui.errors import BadFileError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# start-of-frame markers hold the JPEG size (C4 DHT, C8 JPG, CC DAC are not frames)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_header(
    path: Path, head: bytes, tail: bytes, size: int, whole: Callable[[], bytes] | None = None
) -> tuple[str, int, int]:
    """``(format, width, height)`` from an image's first bytes; checks the end marker too.

    ``whole()`` returns the whole file; it is called only when the end is not where it should
    be (data appended after the image, as some cameras do), to look for the end marker.
    """
    whole = whole or (lambda: _read_all(path))
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise BadFileError(path, "truncated or damaged PNG (no IHDR header)")
        width, height = struct.unpack(">II", head[16:24])
        if not tail.endswith(_PNG_IEND) and _PNG_IEND[4:] not in whole():
            raise BadFileError(path, "truncated PNG (the file ends before its IEND chunk)")
        return "png", width, height
    if head.startswith(b"\xff\xd8\xff"):
        try:
            width, height, scan = _jpeg_size(path, head)
        except BadFileError:
            if len(head) >= size:
                raise
            head = whole()  # metadata (EXIF, ICC) longer than the first bytes read
            width, height, scan = _jpeg_size(path, head)
        if not tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            data = whole()
            start = scan if scan is not None else len(head)
            if data.find(b"\xff\xd9", start) < 0:
                raise BadFileError(path, "truncated JPEG (the file ends before its end-of-image marker)")
        return "jpeg", width, height
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        width, height = _webp_size(path, head)
        declared = struct.unpack("<I", head[4:8])[0] + 8
        if size < declared:
            raise BadFileError(path, f"truncated WebP ({size} of {declared} bytes)")
        return "webp", width, height
    text = head[:64].lstrip()
    hint = " (it looks like text)" if text and all(32 <= b < 127 or b in b"\t\r\n" for b in text) else ""
    raise BadFileError(path, f"not an image: the content is not PNG, JPEG or WebP{hint}")


def _jpeg_size(path: Path, head: bytes) -> tuple[int, int, int | None]:
    """Width, height and where the first scan starts (None if beyond ``head``)."""
    i, found = 2, None
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            raise BadFileError(path, "damaged JPEG (bad marker before the image size)")
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2 : i + 4])[0]
        if marker in _JPEG_SOF:
            if i + 9 > len(head):
                break
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            if width == 0 or height == 0:
                raise BadFileError(path, "damaged JPEG (zero image size)")
            found = (width, height)
        if marker == 0xDA:  # the scan: entropy-coded data follows
            if found is None:
                raise BadFileError(path, "damaged JPEG (no frame header)")
            return found[0], found[1], i
        if marker == 0xD9:
            raise BadFileError(path, "damaged JPEG (it ends before its image data)")
        i += 2 + length
    if found is not None:
        return found[0], found[1], None
    raise BadFileError(path, "truncated or damaged JPEG (no frame header in its first bytes)")


def _webp_size(path: Path, head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    raise BadFileError(path, "truncated or damaged WebP (no image header)")


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
