"""The binding work-around: many emits and event-loop turns must not free None/True/False."""

from __future__ import annotations

import sys

from difflora_gui.qt import compat


def test_signals_and_event_loops_can_run_for_a_long_time(qapp):
    probe = compat._Probe()
    seen = []
    probe.ping.connect(lambda: seen.append(True))
    for _ in range(3000):  # PySide6 6.12.0 on Python 3.11 would abort here without compat
        probe.ping.emit()
        qapp.processEvents()
    assert len(seen) == 3000
    assert sys.getrefcount(True) > 0 and sys.getrefcount(None) > 0
