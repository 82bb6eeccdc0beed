"""LoRA file names that are unique to their bytes, for the files the app puts on a server.

ComfyUI caches identical work by node content, and ``LoraLoader`` keeps the last file it loaded
by path (reference §0.6): a LoRA overwritten under the same name is not reloaded, and the render
silently shows the old one. So the name carries the content hash, a name is never reused for new
bytes, and a file already in the server's folder is never rewritten.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_output, sha256_file

HASH_LENGTH = 12
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def unique_lora_name(path: str | Path, sha256: str | None = None) -> str:
    """``<stem>-<sha256[:12]>.safetensors`` for the LoRA file at ``path``."""
    path = Path(path)
    digest = (sha256 or sha256_file(path)).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise UserError(f"not a SHA-256 hex digest: {digest!r}", path=path)
    tag = digest[:HASH_LENGTH]
    # a name the server cannot mangle: no spaces, no separators, no leading dot (hidden files)
    stem = _UNSAFE.sub("_", path.stem).strip("._") or "lora"
    stem = stem.removesuffix(f"-{tag}")  # a file already named by us keeps its one tag
    return f"{stem}-{tag}.safetensors"


@dataclass(frozen=True)
class PlacedLora:
    name: str  # the file name in the server's LoRA folder
    path: Path  # where it lies on this machine
    copied: bool  # False: the same bytes were already there


def place_lora(source: str | Path, lora_dir: str | Path, *, sha256: str | None = None) -> PlacedLora:
    """Copy ``source`` into ``lora_dir`` under its unique name, unless it is there already.

    The copy goes to a hidden ``.tmp`` file first (ComfyUI lists only model extensions, so a
    half-copied file is never offered) and is renamed into place when complete."""
    source = Path(source)
    lora_dir = Path(lora_dir)
    if not source.is_file():
        raise UserError("LoRA file not found", path=source)
    if not lora_dir.is_dir():
        raise UserError(
            "the server's LoRA folder does not exist or is not reachable (Settings ▸ ComfyUI servers)",
            path=lora_dir,
        )
    digest = sha256 or sha256_file(source)
    name = unique_lora_name(source, digest)
    target = lora_dir / name
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        # the name is the content hash and files land by rename only: same name and size, same bytes
        return PlacedLora(name, target, False)
    # absent, or a damaged foreign file under our name: replace it whole
    try:
        with atomic_output(target, overwrite=True) as tmp:
            shutil.copyfile(source, tmp)
    except OSError as error:
        raise UserError(
            f"cannot copy the LoRA into the server's folder: {error.strerror}", path=target
        ) from error
    return PlacedLora(name, target, True)


def listed_name(name: str, listing: Iterable[str]) -> str | None:
    """The server's own spelling of ``name`` in its LoRA list (``GET /models/loras`` or the
    loader's choices): the folder the app writes to may be a subfolder of ``models/loras``, and
    the server then lists ``sub/name`` (``sub\\name`` on Windows). ``None``: it does not list it."""
    for entry in listing:
        text = str(entry)
        if text == name or text.replace("\\", "/").rsplit("/", 1)[-1] == name:
            return text
    return None
