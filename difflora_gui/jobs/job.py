"""A job request: what to run, with which parameters, on which lane.

Lanes (:mod:`difflora_gui.jobs.scheduler`) are named ``device:cpu``, ``device:cuda:N``,
``comfy:<server name>`` and ``light``. A request names one of them, or any lane of a kind:

- ``"device"`` with ``device="cpu"`` / ``"cuda:1"`` / ``"auto"``: that device's lane
  (``device="cuda"`` means ``cuda:0``, the card torch picks for it);
- ``"cuda"`` or ``"device:cuda:*"``: any free GPU; ``"device:*"``: any free device, CPU included;
- ``"comfy"`` or ``"comfy:*"``: any healthy ComfyUI server; ``"comfy:NAME"``: that server;
- ``"light"``: small CPU work that runs beside the device lanes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.specs import LANES, resolve_callable

_ids = itertools.count(1)

#: lane kinds a request may name instead of a lane, and the pattern each stands for
KIND_PATTERNS = {"cuda": "device:cuda:*", "comfy": "comfy:*"}
_LANE_RE = re.compile(r"^(light|device:(cpu|cuda:\d+|cuda:\*|\*)|comfy:(\*|[^\s:*][^*]*))$")
_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def normalize_lane(lane: str, device: str = "cpu") -> str:
    """The lane key or kind pattern a ``lane`` / ``device`` pair names; ``ValueError`` if neither."""
    lane = str(lane).strip()
    if lane == "device":
        device = str(device).strip().lower()
        if not _DEVICE_RE.match(device):
            raise ValueError(f"device must be cpu, auto, cuda or cuda:N, got {device!r}")
        return f"device:{'cuda:0' if device == 'cuda' else device}"
    if lane in KIND_PATTERNS:
        return KIND_PATTERNS[lane]
    if lane == "device:cuda":
        return "device:cuda:0"
    if not _LANE_RE.match(lane):
        raise ValueError(
            f"lane must be one of {LANES}, a lane such as device:cuda:1 or comfy:NAME, "
            f"or a pattern device:cuda:* / comfy:*, got {lane!r}"
        )
    return lane


def is_pattern(lane_key: str) -> bool:
    return lane_key.endswith("*")


@dataclass
class JobRequest:
    """``run(params, ctx)`` to be run on ``lane`` (see the module docstring for lane names).

    ``resumable``: the job honours ``ctx.keep_requested`` (the GUI offers "Stop and keep").
    ``event_log``: a JSON-lines file that gets every event, progress report and log line.
    """

    title: str
    run: Callable | str
    params: Any = None
    lane: str = "device"
    device: str = "cpu"
    resumable: bool = False
    event_log: Path | None = None
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self):
        normalize_lane(self.lane, self.device)  # raises for a bad lane or device
        if self.event_log is not None:
            self.event_log = Path(self.event_log)

    @property
    def lane_key(self) -> str:
        """The lane this job waits in (``device:<device>``, ``light`` ...) or the kind pattern."""
        return normalize_lane(self.lane, self.device)

    @property
    def wants_auto_device(self) -> bool:
        """``device="auto"``: the lane is known only once devices are detected."""
        return self.lane_key == "device:auto"

    def function(self) -> Callable:
        return resolve_callable(self.run)
