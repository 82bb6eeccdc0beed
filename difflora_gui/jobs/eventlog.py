"""A job's event log: one JSON object per line, appended as the job runs, read back later.

The log is append-only. Files, statuses and errors are flushed as they come; the frequent
lines (metrics, progress, log lines: several per training step) at most every
:data:`FLUSH_INTERVAL_S`, because a flush per line cost a tiny model's training step about 10 %.
A crash therefore loses at most that much of a loss curve, never a checkpoint's record, and a
reader skips a torn last line instead of failing. Each line carries ``t``, the seconds
since the log was opened, so a reopened run can be replayed in time order.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from difflora_gui.jobs.events import Event, LogLine, Metric, ProgressEvent, event_from_json

#: the longest a frequent line (metric, progress, log) waits in the buffer before it is flushed
FLUSH_INTERVAL_S = 0.5
_FREQUENT = (Metric, ProgressEvent, LogLine)
#: every open log, so code that copies or removes a workspace can put their buffers on disk first
_open_logs: weakref.WeakSet[EventLog] = weakref.WeakSet()
_open_logs_lock = threading.Lock()


def flush_open_logs() -> None:
    """Flush every open event log (before a workspace is copied, compared or removed)."""
    with _open_logs_lock:
        logs = list(_open_logs)
    for log in logs:
        log.flush()


class EventLog:
    """Appends events to ``path`` (the folder is made); thread-safe; use as a context manager."""

    def __init__(self, path: str | Path, *, clock=time.monotonic):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = self.path.exists() and not _ends_with_newline(self.path)
        self._file = self.path.open("a", encoding="utf-8", newline="\n")
        if torn:  # a crash left half a line: end it, or the first new event would be glued to it
            self._file.write("\n")
            self._file.flush()
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._flushed = self._started
        with _open_logs_lock:
            _open_logs.add(self)

    def append(self, event: Event) -> None:
        data = event.to_json()
        now = self._clock()
        data["t"] = round(now - self._started, 3)
        try:
            line = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
        except ValueError:  # nan or inf somewhere in the metadata: JSON has no such numbers
            line = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            if not isinstance(event, _FREQUENT) or now - self._flushed >= FLUSH_INTERVAL_S:
                self._file.flush()
                self._flushed = now

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return True
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _finite(value: Any) -> Any:
    """``value`` with every nan/inf float written as a string ("nan", "inf", "-inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def read_events(path: str | Path) -> list[Event]:
    """Every event in a log, in order. A torn or unknown line is skipped, not fatal."""
    return [event for _t, event in iter_timed_events(path)]


def iter_timed_events(path: str | Path) -> Iterator[tuple[float, Event]]:
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    continue
                t = float(data.pop("t", 0.0))
                yield t, event_from_json(data)
            except (ValueError, TypeError):
                continue
