"""The safetensors header of a LoRA file, read and checked without reading a tensor.

Every problem is a one-line :class:`~difflora_gui.errors.BadFileError` naming the file; pickles
(``.ckpt``/``.pt``) are recognised by their bytes or suffix and never unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from difflora_gui.errors import BadFileError

#: Suffixes of PyTorch pickle checkpoints; refused unless the bytes are a valid safetensors file.
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"})
#: A safetensors header larger than this is treated as corrupt (real LoRA headers are < 1 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

# safetensors dtype code → (torch dtype name, bytes per element)
DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it (nothing read yet)."""

    dtype_code: str
    shape: tuple[int, ...]
    #: where the bytes are, counted from the start of the data section
    begin: int = 0

    @property
    def dtype(self) -> str:
        return DTYPES.get(self.dtype_code, (self.dtype_code.lower(), 0))[0]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class SafetensorsHeader:
    path: Path
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    #: file offset of the data section (8 + the header's length)
    data_start: int = 0


# --- the header ----------------------------------------------------------------------------------


def _pickle_problem(path: Path) -> str:
    return (
        f"is a PyTorch pickle checkpoint ({path.suffix or 'no suffix'}): pickles can run code when loaded, "
        "so they are never opened; use a .safetensors LoRA (convert it with a tool you trust)"
    )


def _looks_like_pickle(head: bytes) -> bool:
    # torch.save writes a zip archive (PK..) since 1.6 and a bare pickle (0x80 + protocol) before.
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_header(path: str | Path) -> SafetensorsHeader:
    """Read and check a safetensors header; any problem is a one-line :class:`BadFileError`."""
    path = Path(path)
    if not path.exists():
        raise BadFileError(path, "file not found")
    if path.is_dir():
        raise BadFileError(path, "is a folder, not a LoRA file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(16)
            if size == 0:
                raise BadFileError(path, "empty file (0 bytes)")
            if _looks_like_pickle(head):
                raise BadFileError(path, _pickle_problem(path))
            if head.startswith(b"GGUF"):
                raise BadFileError(path, "is a GGUF file; LoRAs are read from .safetensors files only")
            pickle_suffix = path.suffix.lower() in PICKLE_SUFFIXES
            if size < 8:
                raise BadFileError(path, f"truncated: {size} bytes is too short for a safetensors header")
            header_len = int.from_bytes(head[:8], "little")
            starts_like_json = head[8:9] == b"{"
            if header_len < 2 or header_len > MAX_HEADER_BYTES or not starts_like_json:
                if pickle_suffix:
                    raise BadFileError(path, _pickle_problem(path))
                raise BadFileError(path, "not a safetensors file (no valid header at the start)")
            if 8 + header_len > size:
                raise BadFileError(
                    path, f"truncated: the header needs {header_len} bytes but only {size - 8} follow"
                )
            handle.seek(8)
            raw = handle.read(header_len)
    except OSError as exc:
        raise BadFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFileError(path, f"corrupt safetensors header (not valid JSON: {exc})") from None
    if not isinstance(header, dict):
        raise BadFileError(path, "corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadFileError(path, "corrupt safetensors header (metadata must map strings to strings)")
    data_size = size - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for key, entry in header.items():
        try:
            code = entry["dtype"]
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise BadFileError(path, f"corrupt safetensors header (bad entry for {key!r})") from None
        item = DTYPES.get(code, (None, None))[1]
        if item is None or any(s < 0 for s in shape) or not 0 <= begin <= end:
            raise BadFileError(path, f"corrupt safetensors header (bad entry for {key!r})")
        if end - begin != math.prod(shape) * item:
            raise BadFileError(path, f"corrupt safetensors header ({key!r}: size does not match its shape)")
        data_end = max(data_end, end)
        tensors[key] = TensorInfo(code, shape, begin)
    if data_end > data_size:
        raise BadFileError(
            path, f"truncated: the tensors need {data_end} bytes of data but only {data_size} are in the file"
        )
    return SafetensorsHeader(path, size, tensors, dict(metadata), 8 + header_len)
