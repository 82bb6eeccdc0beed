"""Errors a user can act on.

A ``UserError`` is bad input or a bad request: it is shown as one line (CLI exit code 2, a
message box in the GUI), never as a traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input; ``str(error)`` is the one-line message."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class BadFileError(UserError):
    """An input file that cannot be used: names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(problem, path=path)


class JobCancelled(Exception):
    """Raised inside a job when the user cancelled it; not an error."""
