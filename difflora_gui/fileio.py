"""Safe file output: never a partial file, never an input overwritten.

Every writer in the app goes through :func:`atomic_output`: data is written to a temporary file
in the destination folder and renamed over the destination only when complete, so a crash, a
cancelled job or a full disk leaves the old file (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(a.resolve())) == os.path.normcase(str(b.resolve()))


def check_output_path(
    path: str | Path, *, inputs: Iterable[str | Path] = (), overwrite: bool = False
) -> Path:
    """Validate a destination before any work starts; return it as a ``Path``."""
    path = Path(path)
    for source in inputs:
        if same_file(path, source):
            raise UserError("refusing to overwrite an input file; choose another output path", path=path)
    if path.exists() and path.is_dir():
        raise UserError("output path is a folder", path=path)
    if path.exists() and not overwrite:
        raise UserError("output file already exists (use --overwrite to replace it)", path=path)
    if not path.parent.exists():
        raise UserError(f"output folder does not exist: {path.parent}", path=path)
    return path


@contextlib.contextmanager
def atomic_output(
    path: str | Path, *, inputs: Iterable[str | Path] = (), overwrite: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = check_output_path(path, inputs=inputs, overwrite=overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a normal new file would get
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | Path, data: Any, *, overwrite: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", overwrite=overwrite)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_index(folder: str | Path) -> tuple[dict[str, Any] | None, str]:
    """A diffusers folder's ``model_index.json`` as ``(data, "")``, or ``(None, problem)`` naming
    what is wrong (no folder, a file, no index, an unreadable index)."""
    path = Path(folder)
    if path.is_file():
        return None, f"{path} is a file, not a diffusers model folder (the folder that holds model_index.json)"
    if not path.is_dir():
        return None, f"model folder not found: {path}"
    index = path / "model_index.json"
    if not index.is_file():
        return None, f"{path} is not a diffusers model folder: model_index.json is missing"
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return None, f"{index}: unreadable model_index.json ({exc})"
    return data, ""
