"""Output file names of a merge: the default name, the files a merge writes, a free numbered name.

A Wan2.2 A14B two-expert merge writes ``<stem>_high_noise.safetensors`` and
``<stem>_low_noise.safetensors`` (ai-toolkit's naming, which loaders pair by name); a one-model
merge writes the output itself. :func:`numbered_free` finds a name none of whose files exist,
numbered as ComfyUI numbers its outputs (``<stem>_00002.safetensors``), so a new merge never
replaces an earlier one. Qt-free and import-light.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from difflora_gui.lora.experts import expert_output_path
from difflora_gui.merge.input_checks import default_output_name
from difflora_gui.merge.result import analysis_paths

__all__ = ["default_output_name", "expert_output", "numbered_free", "outputs_for"]

_NUMBERED = re.compile(r"^(?P<base>.*)_(?P<number>\d{5})$")


def expert_output(output: str | Path, expert: str | None) -> Path:
    """The file one expert's part of a merge goes to (``output`` itself for a one-model merge)."""
    output = Path(output)
    return output if expert is None else expert_output_path(output, expert)


def outputs_for(output: str | Path, experts: Iterable[str | None]) -> list[Path]:
    """The LoRA files a merge to ``output`` writes for ``experts`` (None: the one-model file)."""
    return [expert_output(output, expert) for expert in experts]


def _taken(output: Path, experts: tuple[str | None, ...]) -> bool:
    for path in outputs_for(output, experts):
        if path.exists() or any(extra.exists() for extra in analysis_paths(path)):
            return True
    return False


def numbered_free(output: str | Path, experts: Iterable[str | None] = (None,)) -> Path:
    """``output`` if none of its files exist, else the first free ``<stem>_NNNNN<suffix>`` from 00002.

    A file of the name is any LoRA of :func:`outputs_for` or its ``.analysis.json/.csv``. A name
    already numbered (``x_00004.safetensors``) counts on from its number.
    """
    output = Path(output)
    experts = tuple(experts) or (None,)
    if not _taken(output, experts):
        return output
    suffix = output.suffix
    stem = output.name[: -len(suffix)] if suffix else output.name
    base, number = stem, 1
    match = _NUMBERED.match(stem)
    if match:
        base, number = match.group("base"), int(match.group("number"))
    while True:
        number += 1
        candidate = output.with_name(f"{base}_{number:05d}{suffix}")
        if not _taken(candidate, experts):
            return candidate
