"""The synchronous test adapter: runs a job in the calling thread and records everything."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.context import JobContext, Progress
from difflora_gui.jobs.events import Event
from difflora_gui.specs import resolve_callable


class RecordingContext(JobContext):
    """Keeps every progress report, log line, metric and partial result in lists."""

    def __init__(self, *, cancel_after_progress: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.progress_reports: list[Progress] = []
        self.logs: list[str] = []
        self.metrics: list[tuple[str, float, int | None]] = []
        self.partials: list[Any] = []
        self.events: list[Event] = []
        self._cancel_after = cancel_after_progress

    def _emit_progress(self, progress: Progress) -> None:
        self.progress_reports.append(progress)
        if self._cancel_after is not None and len(self.progress_reports) >= self._cancel_after:
            self.cancel()

    def _emit_log(self, text: str) -> None:
        self.logs.append(text)

    def _emit_event(self, event: Event) -> None:
        self.events.append(event)
        super()._emit_event(event)

    def _emit_metric(self, name: str, value: float, step: int | None) -> None:
        self.metrics.append((name, value, step))

    def _emit_partial(self, result: Any) -> None:
        self.partials.append(result)


@dataclass
class JobOutcome:
    status: str  # "done", "failed" or "cancelled"
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    context: JobContext | None = field(default=None, repr=False)


def run_sync(run, params: Any = None, ctx: JobContext | None = None) -> JobOutcome:
    """Run ``run(params, ctx)`` now, in this thread; never raises for a job's own error."""
    ctx = ctx if ctx is not None else RecordingContext()
    function = resolve_callable(run)
    try:
        result = function(params, ctx)
    except JobCancelled:
        return JobOutcome("cancelled", context=ctx)
    except Exception as exc:  # a job's failure is data for the caller, not a crash
        return JobOutcome("failed", error=exc, traceback=traceback.format_exc(), context=ctx)
    return JobOutcome("done", result=result, context=ctx)
