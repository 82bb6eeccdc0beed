"""Musubi Tuner's console output as job events (``musubi-tuner.md`` §5, observed lines).

stdout (``accelerator.print``): ``epoch 1/2``, ``saving checkpoint: <file>``, the run summary.
stderr: ``INFO:<logger>:<message>`` lines and tqdm bars drawn with ``\\r``; a log line may follow
a bar on the same line, so bars are searched for, not anchored. The training bar::

    steps:  50%|█████     | 3/6 [01:15<01:15, 25.18s/it, avr_loss=1.78]

gives the progress (offset by the resumed state's step: a resumed run reports the real step of
the whole run) and the ``avr_loss`` metric; each step is drawn twice, first with the previous
loss, so a later value for the same step supersedes the earlier one. The caching scripts draw a
bare counter (``4it [00:08,  2.17s/it]``), shown as progress over the staged items.
"""

from __future__ import annotations

import math
import re
import time

from difflora_gui.jobs.events import Event, LogLine, Metric, ProgressEvent, Status
from difflora_gui.jobs.line_parsers import find_tqdm_bar
from difflora_gui.train.backend import METRIC_AVG_LOSS, METRIC_EPOCH
from difflora_gui.train.musubi.files import OutputFiles

#: the reference's regex, checked against observed stderr (pct, n, total, elapsed, remaining, rate, postfix)
TRAIN_BAR = re.compile(
    r"steps:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+) \[([^<]+)<([^,]+),\s*([^,\]]+?)(?:,\s*(.*?))?\]"
)
_AVR_LOSS = re.compile(r"avr_loss=([^,\]\s]+)")
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s*$")
_CHECKPOINT = re.compile(r"^saving checkpoint: (.+?)\s*$")
_STATE = re.compile(r"Saving current state to (.+?)\s*$")
_STATE_DONE = re.compile(r"Random states saved in ")
_ENCODING = re.compile(r"INFO:musubi_tuner\.cache_(latents|text_encoder_outputs):Encoding dataset \[(\d+)\]")
PHASE_STATUS = {
    "cache_latents": "caching latents",
    "cache_text": "caching text encoder outputs",
    "train": "training",
}
SAMPLE_SCAN_INTERVAL_S = 1.0


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class MusubiOutputParser:
    """``parser(line, stream)`` for :func:`difflora_gui.jobs.process.run_child`.

    ``phase`` is ``cache_latents``, ``cache_text`` or ``train``; ``items`` the staged item count
    (the caching bars' total); ``files`` follows the checkpoints of a training phase.
    """

    def __init__(
        self,
        phase: str,
        *,
        total_steps: int = 0,
        steps_done: int = 0,
        items: int | None = None,
        files: OutputFiles | None = None,
        clock=time.monotonic,
    ):
        self.phase = phase
        self.total_steps = total_steps
        self.steps_done = steps_done
        self.items = items
        self.files = files
        self.step = 0  # Musubi's own step (this process)
        self.epoch: int | None = None
        self._last_loss: tuple[int, float] | None = None
        self._clock = clock
        self._last_scan = -math.inf
        self._status_sent: set[str] = set()

    @property
    def real_step(self) -> int:
        return self.steps_done + self.step

    def __call__(self, line: str, stream: str = "stderr") -> list[Event]:
        if self.phase == "train":
            events = self._train_line(line, stream)
        else:
            events = self._cache_line(line)
        if self.files is not None:
            now = self._clock()
            if now - self._last_scan >= SAMPLE_SCAN_INTERVAL_S:
                self._last_scan = now
                events += self.files.scan_samples()
        return events

    # --- caching -----------------------------------------------------------------------------

    def _cache_line(self, line: str) -> list[Event]:
        bar = find_tqdm_bar(line)
        if bar is None:
            return [LogLine(line)]
        text = PHASE_STATUS[self.phase]
        total = bar.total if bar.total is not None else self.items
        events: list[Event] = [ProgressEvent(bar.n, total, text)]
        rest = line[bar.end :].strip()
        if rest:
            events.append(LogLine(rest))
        return events

    # --- training ----------------------------------------------------------------------------

    def _train_line(self, line: str, stream: str) -> list[Event]:
        events: list[Event] = []
        bar = TRAIN_BAR.search(line)
        if bar is not None:
            events += self._bar(bar)
            rest = (line[: bar.start()] + line[bar.end() :]).strip()
        else:
            other = find_tqdm_bar(line)
            if other is not None:  # the DiT's loading bar and the like: a status, once per bar
                desc = other.desc or "loading"
                if desc not in self._status_sent:
                    self._status_sent.add(desc)
                    events.append(Status(desc))
                rest = line[other.end :].strip()
            else:
                rest = line.strip()
        if not rest:
            return events + self._settle(bar_step=self.step if bar is not None else None)
        epoch = _EPOCH.match(rest)
        checkpoint = _CHECKPOINT.match(rest)
        state = _STATE.search(rest)
        if epoch:
            self.epoch = int(epoch.group(1))
            events.append(Metric(METRIC_EPOCH, float(self.epoch), self.real_step))
        elif checkpoint and self.files is not None:
            self.files.announce_checkpoint(checkpoint.group(1), self.step)
        elif state and self.files is not None:
            self.files.announce_state(state.group(1), self.step)
        events.append(LogLine(rest))
        return events + self._settle(
            bar_step=self.step if bar is not None else None, state_done=bool(_STATE_DONE.search(rest))
        )

    def _bar(self, match: re.Match) -> list[Event]:
        n, total = int(match.group(2)), int(match.group(3))
        self.step = n
        if total and not self.total_steps:
            self.total_steps = self.steps_done + total
        real_total = self.steps_done + total
        events: list[Event] = [
            ProgressEvent(self.real_step, real_total, f"step {self.real_step}/{real_total}")
        ]
        loss = _AVR_LOSS.search(match.group(7) or "")
        value = _number(loss.group(1)) if loss else None
        if value is not None and n > 0:
            seen = (self.real_step, value)
            last = self._last_loss
            same = (
                last is not None
                and last[0] == seen[0]
                and (last[1] == value or (math.isnan(last[1]) and math.isnan(value)))
            )
            if not same:
                self._last_loss = seen
                events.append(Metric(METRIC_AVG_LOSS, value, self.real_step))
        return events

    def _settle(self, *, bar_step: int | None = None, state_done: bool = False) -> list[Event]:
        if self.files is None or not self.files.pending:
            return []
        return self.files.settle(step=bar_step, state_done=state_done)
