"""Printing a command's result to a console or a pipe that may close early (``inspect FILE | head -1``).

A reader that stops early is not an error: the command ends quietly with exit 0. The write is
flushed where it happens so that a closed pipe shows now, not as "Exception ignored" at exit; stdout
then points at the null device so that the interpreter's own last flush stays silent.
"""

from __future__ import annotations

import os
import sys


def silence_stdout() -> None:
    """Point stdout at the null device (after its reader went away)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a captured stream): nothing to silence
        pass


def print_to_pipe(text: str) -> int:
    """Print ``text`` (and a newline); exit code 0 also when the reader stopped early."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    return 0
