"""The inputs box's reads: one ``light`` job per file (however many slots it fills), and a watch on
each chosen file so a moved, deleted or rewritten file shows at once.

A mixin of :class:`~difflora_gui.qt.merge.inputs.InputsBox`: it works on the box's ``slots``,
``_reads``, ``missing`` and ``watcher``, and calls its ``_refresh``.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.jobs.job import JobRequest
from difflora_gui.lora.inspect import LoraSummary
from difflora_gui.merge.input_slots import EXPERT_SLOTS, SIDES

INSPECT_JOB = "difflora_gui.merge.workbench_jobs:inspect_lora"


def short_name(path: str | Path, limit: int = 22) -> str:
    """A file's stem, shortened for job titles (the Jobs dock shows a title on one line)."""
    stem = Path(path).stem
    return stem if len(stem) <= limit else stem[: limit - 1] + "…"


class Read:
    """One file's read: its job while it runs, then its summary or the error."""

    def __init__(self) -> None:
        self.handle = None
        self.summary: LoraSummary | None = None
        self.error = ""


class InputReads:
    """The reading half of the inputs box."""

    def reading(self) -> bool:
        """True while a file's read job runs."""
        return any(read.handle is not None for read in self._reads.values())

    def _used_paths(self) -> set[Path]:
        slots = EXPERT_SLOTS if self._two_expert else SIDES
        return {self.slots[s] for s in slots if self.slots[s] is not None}

    def _forget_read(self, path: Path) -> None:
        read = self._reads.pop(path, None)
        if read is not None and read.handle is not None and not read.handle.is_finished:
            read.handle.cancel()

    def _start_reads(self) -> None:
        used = self._used_paths()
        for path in list(self._reads):
            if path not in used:
                self._forget_read(path)
        for path in used:
            if path in self._reads or path in self.missing:
                continue
            read = self._reads[path] = Read()
            if not path.is_file():
                read.error = f"{path}: file not found"
                continue
            self.reading_started.emit()
            handle = self.services.jobs.submit(
                JobRequest(f"Inspect {short_name(path)}", INSPECT_JOB, {"path": str(path)}, lane="light")
            )
            read.handle = handle
            handle.progressed.connect(lambda progress, h=handle: self._on_progress(h, progress))
            handle.succeeded.connect(lambda summary, h=handle: self._on_read(h, summary))
            handle.failed.connect(lambda message, _trace, h=handle: self._on_failed(h, message))
        watched = set(self.watcher.files())
        wanted = {str(p) for p in used if p.is_file()}
        if watched - wanted:
            self.watcher.removePaths(sorted(watched - wanted))
        if wanted - watched:
            self.watcher.addPaths(sorted(wanted - watched))

    def _path_of(self, handle) -> Path | None:
        for path, read in self._reads.items():
            if read.handle is handle:
                return path
        return None

    def _on_progress(self, handle, progress) -> None:
        path = self._path_of(handle)
        for slot, card in self.cards.items():
            if path is not None and self.slots[slot] == path:
                card.show_progress(progress.fraction)

    def _on_read(self, handle, summary: LoraSummary) -> None:
        path = self._path_of(handle)
        if path is None:
            return
        read = self._reads[path]
        read.handle, read.summary = None, summary
        placed = self._place_after_read(path)
        self.summary_read.emit()
        self._refresh(placed)

    def _on_failed(self, handle, message: str) -> None:
        path = self._path_of(handle)
        if path is not None:
            read = self._reads[path]
            read.handle, read.error = None, message
            self._refresh(False)

    def _on_file_changed(self, name: str) -> None:
        path = Path(name)
        if not path.exists():
            self.missing.add(path)
            self._refresh(False)
        elif path in self._used_paths():  # rewritten (or replaced): another input, read it again
            self._forget_read(path)
            self._refresh(True)
