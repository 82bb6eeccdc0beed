"""What a ComfyUI server sends back, read into our terms: errors, preview frames, output listings.

Pure functions over the message shapes of ``shared/reference/comfyui-api.md`` (observed on a real
server), so the client stays about the conversation and these stay testable without a server.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_write_bytes

#: binary WebSocket frame types (ComfyUI ``protocol.py``)
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
_IMAGE_FORMATS = {1: "JPEG", 2: "PNG"}


class ComfyError(UserError):
    """A ComfyUI server refused, failed or could not be reached; one line naming the server.

    ``retryable`` is true when another server could run the same job (this one is down, or
    dropped the connection); a refused workflow or a node's error would fail anywhere."""

    def __init__(
        self,
        message: str,
        *,
        server: str = "",
        retryable: bool = False,
        problems: list[str] | None = None,
        node_id: str | None = None,
    ):
        super().__init__(message)
        self.server = server
        self.retryable = retryable
        self.problems = list(problems or [])
        self.node_id = node_id


class ComfyInterrupted(ComfyError):
    """The prompt was interrupted by someone else (another client, the server's own UI)."""


def node_label(node_id: Any, class_type: str | None) -> str:
    return f"node {node_id} ({class_type})" if class_type else f"node {node_id}"


def node_error_lines(node_errors: Mapping[str, Any]) -> list[str]:
    """``node_errors`` of a ``POST /prompt`` answer as one line per problem."""
    lines = []
    for node_id, entry in (node_errors or {}).items():
        entry = entry if isinstance(entry, Mapping) else {}
        label = node_label(node_id, entry.get("class_type"))
        errors = entry.get("errors") or [{}]
        for error in errors:
            error = error if isinstance(error, Mapping) else {"message": str(error)}
            message = str(error.get("message") or error.get("type") or "invalid")
            details = str(error.get("details") or "")
            extra = error.get("extra_info") if isinstance(error.get("extra_info"), Mapping) else {}
            name = extra.get("input_name")
            if name and details in ("", name):
                lines.append(f"{label}: {name}: {message}")
            elif details:
                lines.append(f"{label}: {message}: {details}")
            else:
                lines.append(f"{label}: {message}")
    return lines


def prompt_refusal(body: Any, server: str) -> ComfyError:
    """The error for a ``POST /prompt`` answer that refused (HTTP 400) or partly refused (200)."""
    body = body if isinstance(body, Mapping) else {}
    lines = node_error_lines(body.get("node_errors") or {})
    error = body.get("error")
    if not lines and isinstance(error, Mapping):
        text = str(error.get("message") or error.get("type") or "refused")
        if error.get("details"):
            text += f" ({error['details']})"
        lines = [text]
    elif not lines and error:
        lines = [str(error)]
    lines = lines or ["refused the workflow without saying why"]
    summary = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    return ComfyError(f"ComfyUI at {server} refused the workflow: {summary}", server=server, problems=lines)


def execution_failure(data: Mapping[str, Any], server: str) -> ComfyError:
    """The error for an ``execution_error`` message (or its copy in ``/history``)."""
    node_id = data.get("node_id")
    label = node_label(node_id, data.get("node_type"))
    kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]
    message = " ".join(str(data.get("exception_message") or "").split()) or "failed"
    return ComfyError(
        f"ComfyUI at {server}: {label} failed: {kind}: {message}",
        server=server,
        problems=[f"{label}: {kind}: {message}"],
        node_id=None if node_id is None else str(node_id),
    )


@dataclass(frozen=True)
class PreviewFrame:
    """A decoded binary preview: RGB ``uint8`` pixels and, for type-4 frames, whose they are."""

    image: Any
    image_format: str
    prompt_id: str | None = None
    node_id: str | None = None


def decode_binary(data: bytes) -> PreviewFrame | None:
    """A binary WebSocket frame as a preview image, or ``None`` for frames that carry none
    (progress text, unknown types, undecodable bytes)."""
    if len(data) < 8:
        return None
    (event,) = struct.unpack(">I", data[:4])
    meta: dict[str, Any] = {}
    if event == PREVIEW_IMAGE:
        (fmt,) = struct.unpack(">I", data[4:8])
        image_format, payload = _IMAGE_FORMATS.get(fmt, "?"), data[8:]
    elif event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", data[4:8])
        try:
            meta = json.loads(data[8 : 8 + length].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        meta = meta if isinstance(meta, dict) else {}
        image_format = str(meta.get("image_type", "")).removeprefix("image/").upper()
        payload = data[8 + length :]
    else:
        return None
    image = decode_image(payload)
    if image is None:
        return None
    return PreviewFrame(
        image,
        image_format,
        None if meta.get("prompt_id") is None else str(meta["prompt_id"]),
        None if meta.get("node_id") is None else str(meta["node_id"]),
    )


def decode_image(payload: bytes):
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        return None
    return np.ascontiguousarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))


@dataclass(frozen=True)
class OutputFile:
    """One file an output node listed; ``data`` is filled once it is downloaded."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    #: ``images`` (core save nodes) or ``gifs`` (VideoHelperSuite)
    key: str
    animated: bool = False
    format: str = ""
    data: bytes | None = None

    @property
    def relative_path(self) -> PurePosixPath:
        return safe_relative_path(self.subfolder, self.filename)


def list_outputs(outputs: Mapping[str, Any]) -> list[OutputFile]:
    """The files of ``executed.output`` / ``/history`` ``outputs`` (node id → listing)."""
    files = []
    for node_id, listing in (outputs or {}).items():
        if not isinstance(listing, Mapping):
            continue
        animated = any(bool(flag) for flag in listing.get("animated") or [])
        for key in ("images", "gifs"):
            for item in listing.get(key) or []:
                if not isinstance(item, Mapping) or not item.get("filename"):
                    continue
                files.append(
                    OutputFile(
                        str(node_id),
                        str(item["filename"]),
                        str(item.get("subfolder") or ""),
                        str(item.get("type") or "output"),
                        key,
                        animated or key == "gifs",
                        str(item.get("format") or ""),
                    )
                )
    return files


@dataclass
class ComfyOutputs:
    """The files a finished prompt saved, downloaded (``data`` of each :class:`OutputFile`)."""

    prompt_id: str
    files: list[OutputFile] = field(default_factory=list)
    #: node ids the server served from its cache (an identical earlier prompt): their files are old ones
    cached_nodes: list[str] = field(default_factory=list)

    def save(self, folder: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write every file under ``folder`` (``subfolder/filename``, names checked to stay inside)."""
        folder = Path(folder)
        written = []
        for item in self.files:
            target = folder / item.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(atomic_write_bytes(target, item.data or b"", overwrite=overwrite))
        return written


_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relative_path(subfolder: str, filename: str) -> PurePosixPath:
    """``subfolder/filename`` as a path that stays inside the folder it is saved to; a name from
    the server that could climb out of it (``..``, absolute, a drive letter) is refused."""
    parts: list[str] = []
    for piece in (subfolder, filename):
        text = str(piece).replace("\\", "/")
        if "\0" in text or text.startswith("/") or _DRIVE.match(text):
            raise ComfyError(f"refusing the output file name {filename!r} (subfolder {subfolder!r})")
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == ".." or _DRIVE.match(part):
                raise ComfyError(f"refusing the output file name {filename!r} (subfolder {subfolder!r})")
            parts.append(part)
    if not parts or not str(filename).strip().replace("\\", "/").split("/")[-1].strip("."):
        raise ComfyError(f"refusing the output file name {filename!r}: no file name")
    return PurePosixPath(*parts)
