"""Jobs: plain functions ``run(params, ctx)`` and the Qt-free parts of running them."""

from difflora_gui.errors import JobCancelled
from difflora_gui.jobs.context import JobContext, NullContext, Progress, format_duration
from difflora_gui.jobs.job import JobRequest
from difflora_gui.jobs.recording import JobOutcome, RecordingContext, run_sync

__all__ = [
    "ChildProcess",
    "ChildProcessFailed",
    "JobCancelled",
    "JobContext",
    "JobOutcome",
    "JobRequest",
    "NullContext",
    "OutputLine",
    "Progress",
    "RecordingContext",
    "format_duration",
    "run_child",
    "run_sync",
]

# child processes need psutil and subprocess: imported when first used, not with every job
_PROCESS_NAMES = ("ChildProcess", "ChildProcessFailed", "OutputLine", "run_child")


def __getattr__(name):
    if name in _PROCESS_NAMES:
        from difflora_gui.jobs import process

        return getattr(process, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
