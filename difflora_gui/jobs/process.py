"""Child processes for jobs: a trainer, a caching script, a ComfyUI server.

:func:`run_child` runs an argument list (never a shell string) as part of a job: the output of
both streams is cut into lines (:mod:`.line_parsers`), a parser turns each line into events for
the job's context, cancelling the job stops the child, and a failure raises
:class:`ChildProcessFailed` with the last 50 lines. :class:`ChildProcess` is the same machinery for
code that drives a child itself.

The child gets its own process group (POSIX: a new session; Windows:
``CREATE_NEW_PROCESS_GROUP``) so a stop signal reaches its whole tree and never the app. Stopping
is a graceful signal (SIGINT to the group; ``CTRL_BREAK_EVENT`` on Windows), then terminate, then
kill, each after a timeout, for every process of the tree, found again while stopping because
processes keep starting children. A child is finished only when its whole tree has exited:
``accelerate launch`` exits at once on a signal while the trainer it started holds the GPU for
half a minute more.
"""

from __future__ import annotations

import codecs
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.events import Event, LogLine, ProgressEvent
from difflora_gui.jobs.line_parsers import DefaultParser, FailureWatch, LineParser, LineSplitter
from difflora_gui.jobs.process_tree import ProcessTree

#: how many of the last output lines a failure carries
TAIL_LINES = 50
#: seconds to wait after the graceful signal, after terminate and after kill
STOP_TIMEOUTS = (10.0, 5.0, 5.0)
POLL_S = 0.1
#: how often the process table is searched for new members of the tree while stopping it or
#: waiting for it after the child exited; while the child runs, seldom (a search reads every
#: process: about 0.1 ms each, measured with psutil on Linux)
SCAN_INTERVAL_S = 0.25
RUNNING_SCAN_INTERVAL_S = 2.0
#: once the whole tree has exited, how long to wait for the last output before giving up on it
#: (a process outside the tree may still hold the pipes)
OUTPUT_GRACE_S = 1.0
#: after the output ended, how long until the job says it waits for processes still running
WAITING_NOTICE_S = 0.5

_WINDOWS = sys.platform == "win32"
_EOF = object()


class ChildProcessFailed(UserError):
    """A child process failed: non-zero exit, a Python traceback or CUDA out of memory.

    ``str(error)`` is one line naming the program and the cause; ``tail`` holds the last
    output lines (both streams, in the order they came)."""

    def __init__(self, program: str, cause: str, tail: Sequence[str], returncode: int | None = None):
        self.program = program
        self.cause = cause
        self.tail = list(tail)
        self.returncode = returncode
        super().__init__(f"{program} failed: {cause}")


@dataclass(frozen=True)
class OutputLine:
    stream: str  # "stdout" or "stderr"
    text: str


def child_env(extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """This process's environment plus ``extra`` (a None value removes a variable), with UTF-8,
    unbuffered Python output forced: the reader decodes UTF-8 and shows lines as they come."""
    env = dict(os.environ)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[str(key)] = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def program_name(argv: Sequence[str]) -> str:
    """What to call a command in messages: the script for ``python script.py``/``python -m mod``."""
    program = Path(argv[0])
    if program.stem.lower().startswith(("python", "py")) and len(argv) > 1:
        rest = list(argv[1:])
        while rest:
            arg = rest.pop(0)
            if arg == "-m" and rest:
                return rest[0]
            if arg in ("-X", "-W", "-c"):
                if arg == "-c":
                    break
                rest = rest[1:]
            elif not arg.startswith("-"):
                return Path(arg).name
    return program.name


def _checked_argv(argv) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise TypeError("run a child with a list of arguments, not a command string (no shell)")
    args = [os.fspath(arg) for arg in argv]
    if not args:
        raise ValueError("a child process needs at least the program to run")
    for arg in args:
        if not isinstance(arg, str):
            raise TypeError(f"child process arguments must be text or paths, got {arg!r}")
    return args


def _has_console() -> bool:
    import ctypes

    return bool(ctypes.windll.kernel32.GetConsoleWindow())


class ChildProcess:
    """One child process and its tree; use as a context manager (leaving it stops the tree).

    Output lines go to ``on_line(OutputLine)`` (called on the reader threads, one per stream)
    when given, else to :meth:`lines`. ``tail`` keeps the last lines either way.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike],
        *,
        cwd: str | os.PathLike | None = None,
        env: Mapping[str, object] | None = None,
        name: str | None = None,
        on_line: Callable[[OutputLine], None] | None = None,
        stop_timeouts: Sequence[float] = STOP_TIMEOUTS,
    ):
        self.argv = _checked_argv(argv)
        self.cwd = None if cwd is None else Path(cwd)
        self.name = name or program_name(self.argv)
        self.stop_timeouts = tuple(stop_timeouts)
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.failure_watch = FailureWatch()
        self.returncode: int | None = None
        self._extra_env = dict(env or {})
        self._on_line = on_line
        self._popen: subprocess.Popen | None = None
        self._tree: ProcessTree | None = None
        self._queue: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._output_lock = threading.Lock()
        self._eofs = 0  # streams whose end the consumer has taken from the queue
        self._last_poll = self._last_scan = -float("inf")
        self._all_gone_at: float | None = None
        self._stopped = False

    # --- starting ----------------------------------------------------------------------------

    def start(self) -> ChildProcess:
        if self._popen is not None:
            return self
        if self.cwd is not None and not self.cwd.is_dir():
            raise UserError(f"cannot start {self.name}: the working folder does not exist", path=self.cwd)
        kwargs: dict = {}
        if _WINDOWS:
            flags = subprocess.CREATE_NEW_PROCESS_GROUP
            if not _has_console():  # started from the GUI: no console window for the child either
                flags |= subprocess.CREATE_NO_WINDOW
            kwargs["creationflags"] = flags
        else:
            kwargs["start_new_session"] = True
        try:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=child_env(self._extra_env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                **kwargs,
            )
        except OSError as exc:
            raise UserError(f"cannot start {self.name}: {exc.strerror or exc}", path=self.argv[0]) from None
        self._tree = ProcessTree(self._popen.pid)
        for stream, pipe in (("stdout", self._popen.stdout), ("stderr", self._popen.stderr)):
            reader = threading.Thread(
                target=self._read, args=(stream, pipe), name=f"{self.name}-{stream}", daemon=True
            )
            self._readers.append(reader)
            reader.start()
        return self

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._popen is not None and not self._stopped and self.running():
            self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    # --- output ------------------------------------------------------------------------------

    def _read(self, stream: str, pipe) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        splitter = LineSplitter()
        try:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                for text in splitter.feed(decoder.decode(chunk)):
                    self._deliver(stream, text)
            for text in splitter.feed(decoder.decode(b"", final=True)) + splitter.flush():
                self._deliver(stream, text)
        except (OSError, ValueError):  # the pipe was closed under the reader
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass
            self._queue.put(_EOF)

    def _deliver(self, stream: str, text: str) -> None:
        with self._output_lock:
            self.tail.append(text)
            self.failure_watch.feed(text, stream)
        line = OutputLine(stream, text)
        if self._on_line is None:
            self._queue.put(line)
            return
        try:
            self._on_line(line)
        except Exception:  # a broken handler must not stop the reading: the child would block
            traceback.print_exc()

    def _take(self, timeout: float) -> object | None:
        """The next queued line (or end-of-stream mark); None when nothing came in ``timeout``."""
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _EOF:
            self._eofs += 1
        return item

    @property
    def _output_ended(self) -> bool:
        return self._popen is not None and self._eofs >= len(self._readers)

    def lines(self, timeout: float | None = None) -> Iterator[OutputLine | None]:
        """The output lines until both streams end; with ``timeout``, ``None`` after that many
        seconds without a line (so the caller can check whether to stop)."""
        idle_since = time.monotonic()
        while not self._output_ended:
            item = self._take(POLL_S)
            self._poll()
            if isinstance(item, OutputLine):
                idle_since = time.monotonic()
                yield item
            elif self._output_abandoned():
                return
            elif timeout is not None and time.monotonic() - idle_since >= timeout:
                idle_since = time.monotonic()
                yield None

    def _output_abandoned(self) -> bool:
        """The tree is gone but something outside it still holds the pipes open."""
        return self._all_gone_at is not None and time.monotonic() - self._all_gone_at > OUTPUT_GRACE_S

    def _drain(self, on_line: Callable[[OutputLine], None] | None, wait_s: float = 0.0) -> None:
        """Hand what is queued to ``on_line`` (waiting up to ``wait_s`` for the first line)."""
        if on_line is None:
            time.sleep(wait_s)  # the lines stay queued for lines()
            return
        deadline = time.monotonic() + wait_s
        while not self._output_ended:
            item = self._take(max(0.0, deadline - time.monotonic()))
            if item is None:
                return
            if isinstance(item, OutputLine):
                on_line(item)

    # --- the tree ----------------------------------------------------------------------------

    def _poll(self, *, scan: bool = False) -> None:
        """Reap the child if it exited; search for new members now and then (or now: ``scan``)."""
        now = time.monotonic()
        if self._popen is None or (not scan and now - self._last_poll < POLL_S / 2):
            return
        self._last_poll = now
        self._popen.poll()
        waiting = self._stopped or self._popen.returncode is not None
        if scan or now - self._last_scan >= (SCAN_INTERVAL_S if waiting else RUNNING_SCAN_INTERVAL_S):
            self._last_scan = now
            self._tree.refresh()
        if self._popen.returncode is not None and not self._tree.members():
            self._tree.refresh()  # a member may have started a child just before it exited
            self._last_scan = now
            if not self._tree.members():
                if self._all_gone_at is None:
                    self._all_gone_at = now
                return
        self._all_gone_at = None

    def running(self) -> bool:
        """True while the child or any process of its tree runs."""
        if self._popen is None:
            return False
        self._poll(scan=True)
        return self._all_gone_at is None

    def descendants(self) -> list[psutil.Process]:
        """The running processes the child started (children, grandchildren, orphans)."""
        if self._popen is None:
            return []
        self._poll(scan=True)
        return [proc for proc in self._tree.members() if proc.pid != self.pid]

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the whole tree has exited; the child's exit code, or None on timeout."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._poll()
            if self._all_gone_at is not None:
                for reader in self._readers:  # the last lines, for the tail
                    reader.join(max(0.0, OUTPUT_GRACE_S - (time.monotonic() - self._all_gone_at)))
                self.returncode = self._popen.returncode
                return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                return None
            left = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            time.sleep(left)

    # --- stopping ----------------------------------------------------------------------------

    def stop(
        self,
        timeouts: Sequence[float] | None = None,
        *,
        on_line: Callable[[OutputLine], None] | None = None,
    ) -> str:
        """Stop the whole tree: graceful signal, terminate, kill, each followed by up to its
        timeout. Returns the step that ended it (``"signal"``, ``"terminate"``, ``"kill"``),
        ``""`` if nothing was running, ``"survived"`` if a process outlived the kill timeout.
        Lines that come meanwhile go to ``on_line`` (else they stay for :meth:`lines`)."""
        if self._popen is None:
            return ""
        self._stopped = True
        graceful, term, kill = tuple(timeouts if timeouts is not None else self.stop_timeouts)
        self._poll(scan=True)
        if self._all_gone_at is not None:
            self.wait(0)
            return ""
        signalled: set[int] = set()
        steps = (
            ("signal", graceful, self._send_graceful),
            ("terminate", term, lambda: signalled.update(self._tree.send("terminate", signalled))),
            ("kill", kill, lambda: self._tree.send("kill")),
        )
        for step, timeout, send in steps:
            signalled.clear()
            if send() is False:  # no graceful signal could be sent: waiting for it is pointless
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._drain(on_line, wait_s=0.05)
                self._poll()
                if self._all_gone_at is not None:
                    self.wait(OUTPUT_GRACE_S)
                    self._drain(on_line)
                    return step
                if step != "signal":
                    send()  # members that started meanwhile get it too
        return "survived"

    def _send_graceful(self) -> bool:
        """SIGINT / CTRL_BREAK_EVENT to the tree; False when no process could be sent it."""
        if _WINDOWS:
            # CTRL_BREAK_EVENT goes to the child's process group; only while the child, the group's
            # leader, runs: for an id that is no group Windows signals every process on the console
            if self._popen.poll() is not None:
                return False
            try:
                os.kill(self._popen.pid, signal.CTRL_BREAK_EVENT)
            except OSError:  # no console to send it through (the app runs without one)
                return False
            return True
        sent = False
        try:
            os.killpg(self._popen.pid, signal.SIGINT)
            sent = True
        except OSError:  # the group is empty: its members moved to their own groups
            pass
        for proc in self._tree.members():  # members that left the group get the signal one by one
            try:
                if os.getpgid(proc.pid) != self._popen.pid:
                    proc.send_signal(signal.SIGINT)
                    sent = True
            except (OSError, psutil.Error):
                continue
        return sent

    # --- the outcome -------------------------------------------------------------------------

    def failure(self, *, check_output: bool = True) -> str | None:
        """Why the finished child failed, in one line, or None: CUDA out of memory or the
        exception of a traceback in the output (when ``check_output``), and a non-zero exit."""
        with self._output_lock:
            cause = self.failure_watch.cause() if check_output else None
        code = self.returncode
        if code not in (0, None):
            exit_text = _describe_exit(code)
            cause = f"{cause} ({exit_text})" if cause else exit_text
        return cause

    def raise_for_failure(self, *, check_output: bool = True) -> None:
        cause = self.failure(check_output=check_output)
        if cause is not None:
            with self._output_lock:
                tail = list(self.tail)
            raise ChildProcessFailed(self.name, cause, tail, self.returncode)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def dispatch(ctx, event: Event) -> None:
    """Hand a parsed event to a job context: progress, a log line, or a typed event."""
    if isinstance(event, ProgressEvent):
        ctx.progress(event.done, event.total, event.text)
    elif isinstance(event, LogLine):
        ctx.log(event.text)
    else:
        ctx.emit(event)


def run_child(
    argv: Sequence[str | os.PathLike],
    ctx,
    *,
    parser: LineParser | None = None,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, object] | None = None,
    name: str | None = None,
    stop_timeouts: Sequence[float] = STOP_TIMEOUTS,
    check_output: bool = True,
) -> int:
    """Run a child process as part of a job and return its exit code (0).

    Each output line goes through ``parser`` (default: :class:`DefaultParser`, which logs lines
    and turns tqdm bars into progress) to ``ctx``. When ``ctx.cancelled`` turns true the tree is
    stopped (``stop_timeouts``) and :class:`JobCancelled` raised. The call returns only when
    every process of the tree has exited. A non-zero exit, or (``check_output``) a traceback or
    CUDA out of memory in the output, raises :class:`ChildProcessFailed` with the last lines.
    """
    parse = parser if parser is not None else DefaultParser()

    def handle(line: OutputLine) -> None:
        for event in parse(line.text, line.stream):
            dispatch(ctx, event)

    ctx.raise_if_cancelled()
    child = ChildProcess(argv, cwd=cwd, env=env, name=name, stop_timeouts=stop_timeouts)
    with child:
        for line in child.lines(timeout=POLL_S):
            if ctx.cancelled:
                _stop_for_cancel(child, ctx, handle)
            if line is not None:
                handle(line)
        output_ended = time.monotonic()
        said_waiting = False
        while child.wait(POLL_S) is None:
            if ctx.cancelled:
                _stop_for_cancel(child, ctx, handle)
            if not said_waiting and time.monotonic() - output_ended > WAITING_NOTICE_S:
                said_waiting = True
                pids = ", ".join(str(proc.pid) for proc in child.descendants()) or "?"
                ctx.status(f"{child.name}: waiting for its processes to exit (pid {pids})")
    child.raise_for_failure(check_output=check_output)
    return child.returncode


def _stop_for_cancel(child: ChildProcess, ctx, handle) -> None:
    outcome = child.stop(on_line=handle)
    if outcome == "survived":
        pids = ", ".join(str(proc.pid) for proc in child.descendants())
        ctx.log(f"{child.name}: processes still running after kill: pid {pids}")
    raise JobCancelled()
