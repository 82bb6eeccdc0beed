"""A job request: what to run, with which parameters, on which lane."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.specs import LANES, resolve_callable

_ids = itertools.count(1)


@dataclass
class JobRequest:
    """``run(params, ctx)`` to be run on ``lane``.

    ``lane="device"`` jobs run one at a time per ``device`` (``"cpu"``, ``"cuda:0"`` ...), so two
    GPU jobs never share a card; ``lane="light"`` jobs are small CPU work that may run beside them.
    """

    title: str
    run: Callable | str
    params: Any = None
    lane: str = "device"
    device: str = "cpu"
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self):
        if self.lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}, got {self.lane!r}")

    @property
    def lane_key(self) -> str:
        """The queue this job waits in: ``device:<device>`` or ``light``."""
        return f"device:{self.device}" if self.lane == "device" else "light"

    def function(self) -> Callable:
        return resolve_callable(self.run)
