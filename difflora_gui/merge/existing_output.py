"""What an existing output file is, said before a merge would replace it, and file hashes (Qt-free).

The workbench asks before it replaces a file; the question names what would be lost: the model the
LoRA is for (from its header, read without loading a tensor), the merge or trainer that wrote it
(from its metadata), when it was last modified and its size. Every file a merge writes is kept in
the project's merge history with its sha256 (:func:`sha256_of`).
"""

from __future__ import annotations

import time
from pathlib import Path

#: metadata keys that say what wrote a LoRA file, first match wins
_WRITER_KEYS = (
    ("modelspec.merged_from", "merged from"),
    ("modelspec.title", "title"),
    ("ss_output_name", "trained as"),
)


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def describe_file(path: str | Path) -> str:
    """One line on what ``path`` is: model, what wrote it, modified date, size (never raises)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return f"{path.name}: cannot be read ({exc.strerror or exc})"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stat.st_mtime))
    facts = [f"modified {when}", _size_text(stat.st_size)]
    if path.suffix.lower() == ".safetensors":
        facts.insert(0, _lora_facts(path))
    return f"{path.name}: " + ", ".join(fact for fact in facts if fact)


def _lora_facts(path: Path) -> str:
    from difflora_gui.errors import UserError
    from difflora_gui.lora.inspect import summarize

    try:
        summary = summarize(path, check_values=False)  # the header only: no tensor is read
    except (UserError, OSError, ValueError) as exc:
        return f"not a readable LoRA ({exc})"
    text = f"a {summary.model.label} LoRA with {len(summary.modules)} modules"
    metadata = summary.metadata
    if any(key.startswith("difflora.") for key in metadata):
        text += " written by a DiffLoRA merge"
    for key, what in _WRITER_KEYS:
        if metadata.get(key):
            text += f" ({what} {metadata[key][:80]})"
            break
    return text


def sha256_of(path: str | Path) -> str:
    """The file's sha256 as hex (read in chunks: memory stays small for a 14B LoRA)."""
    from difflora_gui.fileio import sha256_file

    return sha256_file(path)
