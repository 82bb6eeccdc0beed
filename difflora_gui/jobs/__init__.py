"""Jobs: plain functions ``run(params, ctx)`` and the Qt-free parts of running them."""

from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.context import JobContext, NullContext, Progress, format_duration
from difflora_gui.jobs.job import JobRequest
from difflora_gui.jobs.recording import JobOutcome, RecordingContext, run_sync

__all__ = [
    "JobCancelled",
    "JobContext",
    "JobOutcome",
    "JobRequest",
    "NullContext",
    "Progress",
    "RecordingContext",
    "format_duration",
    "run_sync",
]
