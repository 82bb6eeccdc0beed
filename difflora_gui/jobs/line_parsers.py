"""Turning a child process's console output into lines, and lines into job events.

A child's output arrives in chunks; :class:`LineSplitter` cuts it into lines on ``\\r`` *and*
``\\n``, because tqdm redraws its bar with ``\\r`` and a log line may follow a bar on the same
line (``...avr_loss=1.78]INFO:musubi_tuner.utils.train_utils:saving state``). A parser is any
callable ``parser(line, stream) -> list[Event]`` (``stream`` is ``"stdout"`` or ``"stderr"``);
:func:`difflora_gui.jobs.process.run_child` hands ``ProgressEvent`` to ``ctx.progress``,
``LogLine`` to ``ctx.log`` and every other event to ``ctx.emit``.

:class:`TqdmParser` reads tqdm bars (progress and the ``key=value`` numbers of the postfix as
metrics); :class:`DefaultParser` also logs every other line. :class:`FailureWatch` spots what makes
a run fail (a Python traceback, CUDA out of memory) so the error can name the cause.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from difflora_gui.jobs.events import Event, LogLine, Metric, ProgressEvent

#: ``parser(line, stream)``: the events one line of output means
LineParser = Callable[[str, str], Iterable[Event]]

# CSI sequences (colours, tqdm's cursor-up for nested bars) and other two-byte escapes
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


class LineSplitter:
    """Incremental splitting on ``\\r``, ``\\n`` and ``\\r\\n``; blank lines and ANSI escapes dropped."""

    def __init__(self):
        self._partial = ""
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        lines = []
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\n" and self._after_cr:  # the second half of a \r\n
                self._after_cr = False
                continue
            self._after_cr = piece == "\r"
            if piece in ("\r", "\n"):
                lines.append(self._partial)
                self._partial = ""
            else:
                self._partial += piece
        return [clean for clean in map(_clean, lines) if clean]

    def flush(self) -> list[str]:
        """The last line when the stream ends without a line break."""
        rest, self._partial, self._after_cr = self._partial, "", False
        rest = _clean(rest)
        return [rest] if rest else []


def _clean(line: str) -> str:
    return _ANSI.sub("", line).rstrip()


def split_lines(text: str) -> list[str]:
    """All lines of ``text`` as :class:`LineSplitter` cuts them."""
    splitter = LineSplitter()
    return splitter.feed(text) + splitter.flush()


# --- tqdm ------------------------------------------------------------------------------------

_NUMBER = r"\d+(?:\.\d+)?[kMGTPEZY]?"
# tqdm's default format: "desc: 42%|████▍     | 42/100 [00:03<00:04, 12.1it/s, loss=0.123]";
# searched for, not anchored (text may precede or follow the bar)
_BAR = re.compile(
    r"(?:(?P<desc>[^|\r\n]{0,200}?):\s*)?"
    r"(?P<percent>\d{1,3})%\|(?P<bar>[^|]*)\|\s*"
    rf"(?P<n>{_NUMBER})/(?P<total>{_NUMBER})\s*"
    r"\[(?P<elapsed>[^<\],]*)<(?P<remaining>[^,\]]*)"
    r"(?:,\s*(?P<rate>[^,\]]*))?(?:,\s*(?P<postfix>[^\]]*))?\]"
)
# a bar without a total: "4it [00:08,  2.17s/it]"
_COUNTER = re.compile(
    r"(?:(?P<desc>[^|\r\n]{0,200}?):\s*)?"
    rf"(?P<n>{_NUMBER})(?P<unit>[A-Za-z]+) \[(?P<elapsed>\d+:\d\d(?::\d\d)?)"
    r"(?:,\s*(?P<rate>[^,\]]*))?(?:,\s*(?P<postfix>[^\]]*))?\]"
)
_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}


@dataclass(frozen=True)
class TqdmBar:
    """One drawn tqdm bar; ``start``/``end`` are its place in the line it was found in."""

    desc: str
    n: float
    total: float | None
    elapsed: str
    remaining: str
    rate: str
    postfix: dict[str, str] = field(default_factory=dict)
    start: int = 0
    end: int = 0

    def numbers(self) -> dict[str, float]:
        """The postfix values that are numbers (``loss=0.123``, ``avr_loss=nan``)."""
        values = {}
        for key, text in self.postfix.items():
            try:
                values[key] = float(text)
            except ValueError:
                continue
        return values


def _count(text: str) -> float:
    if text and text[-1] in _SCALE:
        return float(text[:-1]) * _SCALE[text[-1]]
    return float(text)


def _postfix(text: str | None) -> dict[str, str]:
    pairs = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            pairs[key.strip()] = value.strip()
    return pairs


def find_tqdm_bar(line: str) -> TqdmBar | None:
    """The tqdm bar drawn in ``line``, or None."""
    match = _BAR.search(line) if "%|" in line else None
    if match is not None:
        total = _count(match["total"])
        rate = match["rate"] or ""
        postfix = match["postfix"]
        if postfix is None and "=" in rate:  # "[00:01<00:02, loss=1]": no rate, only a postfix
            rate, postfix = "", rate
        return TqdmBar(
            desc=(match["desc"] or "").strip(),
            n=_count(match["n"]),
            total=total or None,
            elapsed=match["elapsed"].strip(),
            remaining=match["remaining"].strip(),
            rate=rate.strip(),
            postfix=_postfix(postfix),
            start=match.start(),
            end=match.end(),
        )
    match = _COUNTER.search(line) if " [" in line else None
    if match is not None:
        return TqdmBar(
            desc=(match["desc"] or "").strip(),
            n=_count(match["n"]),
            total=None,
            elapsed=match["elapsed"],
            remaining="",
            rate=(match["rate"] or "").strip(),
            postfix=_postfix(match["postfix"]),
            start=match.start(),
            end=match.end(),
        )
    return None


class TqdmParser:
    """Progress and postfix metrics from tqdm bars; lines without a bar give no events.

    A metric is emitted when its step or value changes (tqdm redraws the same bar many times);
    a later ``Metric`` of the same step supersedes the earlier one (Musubi draws each step twice,
    first with the previous loss). The step is the bar's count.
    """

    def __init__(self, *, metrics: bool = True):
        self._metrics = metrics
        self._last: dict[str, tuple[int | None, float]] = {}

    def __call__(self, line: str, stream: str = "stdout") -> list[Event]:
        bar = find_tqdm_bar(line)
        return [] if bar is None else self.bar_events(bar)

    def bar_events(self, bar: TqdmBar) -> list[Event]:
        events: list[Event] = [ProgressEvent(bar.n, bar.total, bar.desc)]
        if self._metrics:
            step = int(bar.n) if float(bar.n).is_integer() else None
            for name, value in bar.numbers().items():
                seen = (step, value)
                last = self._last.get(name)
                if last is not None and last[0] == step and _same(last[1], value):
                    continue
                self._last[name] = seen
                events.append(Metric(name, value, step))
        return events


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


class DefaultParser(TqdmParser):
    """Logs every line; a tqdm bar becomes progress (and metrics) instead, and text that follows
    a bar on the same line is logged."""

    def __call__(self, line: str, stream: str = "stdout") -> list[Event]:
        bar = find_tqdm_bar(line)
        if bar is None:
            return [LogLine(line)]
        events = self.bar_events(bar)
        rest = line[bar.end :].strip()
        if rest:
            events.append(LogLine(rest))
        return events


# --- failures --------------------------------------------------------------------------------

_TRACEBACK = "Traceback (most recent call last):"
_OOM = re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError", re.IGNORECASE)
# the launcher's own report that its child failed says less than the child's traceback
_SECONDARY = ("subprocess.CalledProcessError", "KeyboardInterrupt")
MAX_CAUSE_CHARS = 200


class FailureWatch:
    """Reads every output line and remembers what says the run failed."""

    def __init__(self):
        self._in_traceback: dict[str, bool] = {}
        self.traceback_seen = False
        self.exceptions: list[str] = []  # the exception lines that end the tracebacks, in order
        self.out_of_memory: str | None = None

    def feed(self, line: str, stream: str = "stdout") -> None:
        start = line.find(_TRACEBACK)
        if start > 0:  # a traceback drawn right after a tqdm bar on the same line
            line = line[start:]
        in_frames = self._in_traceback.get(stream) and line[:1] in (" ", "\t")
        if self.out_of_memory is None and not in_frames and _OOM.search(line):
            self.out_of_memory = line.strip()  # not a source line of the traceback that raised it
        if line.startswith(_TRACEBACK):
            self._in_traceback[stream] = True
            self.traceback_seen = True
        elif self._in_traceback.get(stream) and line[:1] not in (" ", "\t"):
            self._in_traceback[stream] = False  # the line after the indented frames names the error
            self.exceptions.append(line.strip())

    @property
    def failed(self) -> bool:
        return self.traceback_seen or self.out_of_memory is not None

    def cause(self) -> str | None:
        """The error in one line: CUDA out of memory first, else the exception that ended a
        traceback (the child's, not the launcher's ``CalledProcessError``)."""
        if self.out_of_memory is not None:
            raised = [line for line in self.exceptions if _OOM.search(line)]
            return _shorten(raised[-1] if raised else self.out_of_memory)
        primary = [line for line in self.exceptions if not line.startswith(_SECONDARY)]
        if primary or self.exceptions:
            return _shorten((primary or self.exceptions)[-1])
        if self.traceback_seen:
            return "a Python traceback"
        return None


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 1] + "…"
