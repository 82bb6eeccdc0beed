"""The command-line adapter: a tqdm progress bar with ETA on stderr, log lines above it."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from difflora_gui.jobs.context import JobContext, Progress


class CliContext(JobContext):
    def __init__(self, *, description: str = "", quiet: bool = False, stream=None, **kwargs):
        super().__init__(**kwargs)
        self._description = description
        self._quiet = quiet
        self._stream = stream if stream is not None else sys.stderr
        self._bar = None
        self.partials: list[Any] = []

    def _ensure_bar(self, total):
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=total,
                desc=self._description,
                file=self._stream,
                dynamic_ncols=True,
                leave=True,
                disable=self._quiet,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
            )
        elif total is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()
        return self._bar

    def _emit_progress(self, progress: Progress) -> None:
        total = progress.total
        bar = self._ensure_bar(int(total) if total is not None and float(total).is_integer() else total)
        bar.n = int(progress.done) if float(progress.done).is_integer() else progress.done
        if progress.text:
            bar.set_postfix_str(progress.text, refresh=False)
        bar.refresh()

    def _emit_log(self, text: str) -> None:
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.clear()
            print(text, file=self._stream, flush=True)
            self._bar.refresh()
        else:
            print(text, file=self._stream, flush=True)

    def _emit_partial(self, result: Any) -> None:
        self.partials.append(result)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def run_in_terminal(run, params: Any, *, description: str = "", quiet: bool = False):
    """Run a job in the foreground with a progress bar; Ctrl+C cancels it cleanly.

    The job's exceptions propagate (``JobCancelled`` included) so the CLI maps them to exit codes.
    """
    from difflora_gui.specs import resolve_callable

    ctx = CliContext(description=description, quiet=quiet)
    function = resolve_callable(run)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # First Ctrl+C asks the job to stop at its next check; a second one interrupts hard.
        def _on_sigint(signum, frame):
            if ctx.cancelled:
                raise KeyboardInterrupt
            ctx.cancel()
            ctx.log("cancelling... (press Ctrl+C again to abort immediately)")

        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        return function(params, ctx)
    finally:
        ctx.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
