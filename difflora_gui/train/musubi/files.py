"""The files Musubi Tuner writes during a run: when each is complete, and where it ends up.

Musubi announces a checkpoint *before* writing it (``saving checkpoint: …`` on stdout) and a state
folder before filling it (``Saving current state to …`` on stderr, ending with accelerate's
``Random states saved in …``). The two streams are read by different threads, so their order is
not reliable: a checkpoint counts as complete when its safetensors file is whole (the header
reads and the data is all there), a state when its last line came or training moved past its
step, and every announced file when Musubi exited normally.

A resumed run writes into a folder of its own, because Musubi numbers its steps from 1 again;
each complete file is moved into the output folder under its real step
(``<name>-step%08d.safetensors``, ``<name>-step%08d-state``), never over an existing file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from difflora_gui.jobs.events import Artifact, Event, LogLine

_STEP = re.compile(r"-step(\d{8})(-state)?$")
_EPOCH = re.compile(r"-(\d{6})(-state)?$")
#: Musubi's sample names: <name>_<num>_<prompt:02d>_<YYYYmmddHHMMSS>[_<seed>], num = %06d or e%06d
SAMPLE_SUFFIXES = (".png", ".mp4", ".jpg", ".webp")


@dataclass
class Announced:
    kind: str  # "checkpoint", "lora" (the final file) or "state"
    path: Path
    step: int  # Musubi's own step (counted from the start of this process)
    epoch: int | None = None


@dataclass
class Settled:
    kind: str
    path: Path
    step: int  # the real step (counted from the start of the whole run)


def _is_whole_safetensors(path: Path) -> bool:
    from difflora_gui.errors import BadFileError
    from difflora_gui.lora.safetensors_header import read_header

    try:
        header = read_header(path)
    except BadFileError:
        return False
    used = max((t.begin + t.numel * _itemsize(t.dtype_code) for t in header.tensors.values()), default=0)
    return header.size >= header.data_start + used


def _itemsize(code: str) -> int:
    from difflora_gui.lora.safetensors_header import DTYPES

    return DTYPES.get(code, (None, 1))[1]


def move_no_overwrite(source: Path, target: Path) -> bool:
    """Move a file or folder to ``target`` unless something is there (then leave it, False)."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        os.rename(source, target)  # on POSIX this would replace an empty folder: checked above
        return True
    try:
        os.link(source, target)  # fails if the target appeared meanwhile: never replaces it
    except FileExistsError:
        return False
    except OSError:
        if target.exists():
            return False
        os.replace(source, target)
        return True
    source.unlink()
    return True


@dataclass
class OutputFiles:
    """Follows Musubi's announced files; turns each complete one into an artifact event."""

    musubi_dir: Path  # where Musubi writes (the output folder, or the resume folder)
    output_dir: Path
    name: str
    offset: int = 0  # the real step of Musubi's step 0 (a resumed state's step)
    total_steps: int = 0
    pending: list[Announced] = field(default_factory=list)
    checkpoints: list[Settled] = field(default_factory=list)
    states: list[Settled] = field(default_factory=list)
    lora: Settled | None = None
    samples: list[Settled] = field(default_factory=list)
    _seen_samples: set[str] = field(default_factory=set)

    @property
    def moves(self) -> bool:
        return self.offset != 0 or Path(self.musubi_dir) != Path(self.output_dir)

    def real_step(self, step: int) -> int:
        return self.offset + step

    def _parse(self, kind: str, text: str, current_step: int) -> Announced:
        path = Path(text.strip())
        if not path.is_absolute():
            path = Path(self.musubi_dir) / path.name if path.parent == Path(".") else path
        stem = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
        match = _STEP.search(stem)
        if match:
            return Announced(kind, path, int(match.group(1)))
        epoch = _EPOCH.search(stem)
        if epoch and stem[: epoch.start()] == self.name:
            return Announced(kind, path, current_step, int(epoch.group(1)))
        final = stem in (self.name, f"{self.name}-state")
        return Announced("lora" if final and kind == "checkpoint" else kind, path, current_step)

    def announce_checkpoint(self, text: str, current_step: int) -> None:
        self.pending.append(self._parse("checkpoint", text, current_step))

    def announce_state(self, text: str, current_step: int) -> None:
        self.pending.append(self._parse("state", text, current_step))

    def settle(
        self, *, step: int | None = None, state_done: bool = False, exited: bool = False
    ) -> list[Event]:
        """The artifacts of the pending files that are complete now: ``step`` is the training
        bar's step (Musubi's count) when a bar came, ``state_done`` when the line that ends a
        state save came, ``exited`` once Musubi exited normally."""
        events: list[Event] = []
        still = []
        for item in self.pending:
            if item.kind == "state":
                done = exited or state_done or (step is not None and step > item.step)
            else:
                done = exited or _is_whole_safetensors(item.path)
            if done and item.path.exists():
                events += self._settled(item)
            elif not done:
                still.append(item)
        self.pending = still
        return events

    def _settled(self, item: Announced) -> list[Event]:
        real = self.real_step(item.step)
        path = item.path
        events: list[Event] = []
        if self.moves:
            target = Path(self.output_dir) / self._real_name(item, real)
            if move_no_overwrite(path, target):
                path = target
            else:
                events.append(LogLine(f"{target} already exists: Musubi's file stays at {path}"))
        settled = Settled(item.kind, path, real)
        meta = {"step": real}
        if item.epoch is not None:
            meta["epoch"] = item.epoch
        if item.kind == "state":
            self.states.append(settled)
        elif item.kind == "lora":
            self.lora = settled
        else:
            self.checkpoints.append(settled)
        events.append(Artifact(item.kind, str(path), meta))
        return events

    def _real_name(self, item: Announced, real: int) -> str:
        name = item.path.name
        if _STEP.search(name.removesuffix(".safetensors")):
            suffix = "-state" if item.kind == "state" else ".safetensors"
            return f"{self.name}-step{real:08d}{suffix}"
        return name

    def incomplete(self) -> list[Announced]:
        return list(self.pending)

    def newest_kept(self) -> Settled | None:
        """The newest complete checkpoint (or, failing one, the newest state)."""
        if self.checkpoints:
            return max(self.checkpoints, key=lambda s: s.step)
        if self.states:
            return max(self.states, key=lambda s: s.step)
        return None

    def state_at(self, step: int) -> Settled | None:
        for state in self.states:
            if state.step == step:
                return state
        return None

    # --- samples -----------------------------------------------------------------------------

    def scan_samples(self, *, final: bool = False) -> list[Event]:
        """New sample files in ``<musubi_dir>/sample/`` (moved beside the output's, real steps);
        ``final``: Musubi has exited, every file is complete."""
        folder = Path(self.musubi_dir) / "sample"
        try:
            names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)
        except OSError:
            return []
        events: list[Event] = []
        pattern = re.compile(rf"^{re.escape(self.name)}_(e?)(\d{{6}})_(\d{{2}})_\d{{14}}")
        for name in names:
            if name in self._seen_samples:
                continue
            match = pattern.match(name)
            if match is None:
                continue
            path = folder / name
            if not final and not _stable(path):
                continue  # still being written: next scan
            self._seen_samples.add(name)
            meta: dict = {"prompt": int(match.group(3))}
            if match.group(1):
                meta["epoch"] = int(match.group(2))
                step = None
            else:
                step = self.real_step(int(match.group(2)))
                meta["step"] = step
            if self.moves:
                if step is not None:
                    new_name = f"{self.name}_{step:06d}" + name[match.end(2) :]
                else:
                    new_name = name
                target = Path(self.output_dir) / "sample" / new_name
                if move_no_overwrite(path, target):
                    path = target
            self.samples.append(Settled("sample", path, meta.get("step") or 0))
            events.append(Artifact("sample", str(path), meta))
        return events


def _stable(path: Path) -> bool:
    """A sample that has not grown for a moment (Musubi writes it in one go)."""
    import time

    try:
        first = path.stat()
        return time.time() - first.st_mtime > 0.5 and first.st_size > 0
    except OSError:
        return False
