"""Typed job events: what a job reports besides progress and log lines.

Every event is a small frozen dataclass that survives a JSON round trip (``to_json`` /
``event_from_json``), so a job's events can be written to an event log (:mod:`.eventlog`) and a
finished run reopens with its loss curve, samples and checkpoints. ``Frame`` is the exception
that proves the rule: its pixels stay in memory (a preview frame is shown, not kept); only its
index, size and metadata go to the log.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

#: the kinds of file an :class:`Artifact` names; other kinds are allowed (plugins), these are known
ARTIFACT_KINDS = ("checkpoint", "state", "sample", "video", "image", "lora", "file")


@dataclass(frozen=True)
class Event:
    EVENT: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        data = {"event": self.EVENT}
        data.update(self._fields_json())
        return data

    def _fields_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Metric(Event):
    """A named number over steps (loss, learning rate, norm ...), for plots."""

    EVENT: ClassVar[str] = "metric"
    name: str
    value: float
    step: int | None = None

    def __post_init__(self):
        # a diverging run reports nan; JSON has no nan, so the log stores "nan" and it comes back here
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "step", None if self.step is None else int(self.step))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return NotImplemented
        same_value = self.value == other.value or (math.isnan(self.value) and math.isnan(other.value))
        return self.name == other.name and same_value and self.step == other.step

    def __hash__(self) -> int:
        return hash((self.name, "nan" if math.isnan(self.value) else self.value, self.step))

    def _fields_json(self) -> dict[str, Any]:
        value = self.value if math.isfinite(self.value) else str(self.value)
        return {"name": self.name, "value": value, "step": self.step}


@dataclass(frozen=True)
class Artifact(Event):
    """A file the job produced: a checkpoint, a sample video, the merged LoRA ..."""

    EVENT: ClassVar[str] = "artifact"
    kind: str
    path: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "meta", dict(self.meta or {}))


@dataclass(frozen=True)
class Status(Event):
    """A one-line description of what the job is doing now ("caching latents", "epoch 3/10")."""

    EVENT: ClassVar[str] = "status"
    text: str


@dataclass(frozen=True)
class LogLine(Event):
    EVENT: ClassVar[str] = "log"
    text: str


@dataclass(frozen=True)
class ProgressEvent(Event):
    EVENT: ClassVar[str] = "progress"
    done: float
    total: float | None = None
    text: str = ""


@dataclass(frozen=True)
class Frame(Event):
    """A preview frame. ``image`` is an ``H×W×3`` uint8 array (or anything a viewer takes); it is
    not written to the event log. Consumers that are slower than the producer see only the newest
    frame (:class:`LatestOnly`)."""

    EVENT: ClassVar[str] = "frame"
    index: int
    image: Any = field(default=None, compare=False, repr=False)
    meta: dict[str, Any] = field(default_factory=dict)

    def _fields_json(self) -> dict[str, Any]:
        shape = getattr(self.image, "shape", None)
        data: dict[str, Any] = {"index": self.index, "meta": dict(self.meta or {})}
        if shape is not None:
            data["shape"] = [int(n) for n in shape]
        return data


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT: cls for cls in (Metric, Artifact, Status, LogLine, ProgressEvent, Frame)
}


def event_from_json(data: dict[str, Any]) -> Event:
    """The event a :meth:`Event.to_json` dict describes; ``ValueError`` for anything else."""
    if not isinstance(data, dict):
        raise ValueError(f"an event must be a JSON object, got {type(data).__name__}")
    name = data.get("event")
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise ValueError(f"unknown event type {name!r}")
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad {name} event: {exc}") from None


class LatestOnly:
    """A one-slot mailbox: ``put`` replaces what was not taken yet, ``take`` empties it.

    Frames go through one of these between a job thread and a viewer, so a viewer that shows
    10 frames a second while a job makes 30 sees the newest frame each time, never a backlog.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._item: Any = None
        self._full = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; True when the slot was empty (the consumer needs waking)."""
        with self._lock:
            was_empty = not self._full
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            return was_empty

    def take(self) -> Any:
        """The newest item, or None when there is none."""
        with self._lock:
            item, self._item, self._full = self._item, None, False
            return item
