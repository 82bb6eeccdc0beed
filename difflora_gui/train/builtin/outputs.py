"""The files a built-in run writes, by Musubi's names, and the schedule record.

* checkpoints ``<name>-step%08d.safetensors`` (real step numbers, also after a resume), states
  ``<name>-step%08d-state/``, the final ``<name>.safetensors``;
* ``<name>.schedule.jsonl``: one line per step (the step, the items' keys, the noise seeds and
  hashes, the timesteps), so two runs of a synchronised pair can be shown to have drawn the same
  noise and timesteps. It is buffered in memory and rewritten atomically at every checkpoint and at
  the end (no per-step file I/O); a resumed run keeps the lines before its state's step.

Nothing is overwritten: :func:`check_free` refuses, before any work, a run whose checkpoints or
states already exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_write_text
from difflora_gui.train.builtin.state import state_folder_name


class RunFiles:
    def __init__(self, output_dir: str | Path, name: str):
        self.output_dir = Path(output_dir)
        self.name = name

    def checkpoint(self, step: int) -> Path:
        return self.output_dir / f"{self.name}-step{int(step):08d}.safetensors"

    def state(self, step: int) -> Path:
        return self.output_dir / state_folder_name(self.name, step)

    @property
    def final(self) -> Path:
        return self.output_dir / f"{self.name}.safetensors"

    @property
    def schedule(self) -> Path:
        return self.output_dir / f"{self.name}.schedule.jsonl"

    def save_steps(self, start: int, total: int, every: int) -> list[int]:
        """The steps after ``start`` at which a checkpoint is written (the final file not included)."""
        if every <= 0:
            return []
        return [s for s in range(start + 1, total) if s % every == 0]

    def check_free(self, start: int, total: int, every: int, *, resuming: bool) -> None:
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise UserError(f"the output folder is a file: {self.output_dir}")
        self.output_dir.mkdir(parents=True, exist_ok=True)  # a new run's folder, as Musubi makes it
        if self.final.exists():
            raise UserError(
                f"{self.final} already exists; choose another name or output folder (nothing is overwritten)"
            )
        for step in self.save_steps(start, total, every):
            for path in (self.checkpoint(step), self.state(step)):
                if path.exists():
                    raise UserError(
                        f"{path} already exists (an earlier run of {self.name}?); choose another name, "
                        "move it away, or resume from its state"
                    )


class ScheduleLog:
    """The buffered schedule record of a run (see the module docstring)."""

    def __init__(self, path: Path, *, keep_until: int = 0):
        self.path = path
        self.lines: list[str] = []
        if keep_until > 0 and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if int(json.loads(line)["step"]) <= keep_until:
                        self.lines.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
        self._dirty = False

    def add(self, record: dict) -> None:
        self.lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        self._dirty = True

    def flush(self) -> None:
        if self._dirty or not self.path.exists():
            atomic_write_text(self.path, "".join(line + "\n" for line in self.lines))
            self._dirty = False


def read_schedule(path: str | Path) -> list[dict]:
    """The records of a ``<name>.schedule.jsonl`` file, in step order."""
    records = [
        json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return sorted(records, key=lambda r: r["step"])
