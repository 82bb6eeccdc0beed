"""During a real merge the UI thread keeps answering: a timer-based latency probe.

The test fails when the window is blocked (a merge of ~1.5 s done on the UI thread, or waited for
there, stalls it for far longer than the budget). The 100 ms responsiveness target is measured by
``bench/ui_latency.py``, which runs this probe several times and reports the worst stalls against
it: a single timed run on a shared 2-core machine is noise (100-140 ms stalls come and go there,
with the code of before and after the platform step alike), so it is not a pass/fail unit test.
"""

from __future__ import annotations

import os
import time

from merge_panel_helpers import PanelWindow
from PySide6.QtCore import QTimer

from difflora_gui.lora.synthetic import make_wan_lora

PROBE_INTERVAL_MS = 5
#: the bench sets it to the 100 ms target; the default only catches a blocked window
MAX_STALL_S = float(os.environ.get("DIFFLORA_UI_STALL_BUDGET_S", "0.5"))


class LatencyProbe:
    """A timer that should fire every few ms; the largest gap between two ticks is the worst stall."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(PROBE_INTERVAL_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        self._tick()
        self.timer.stop()


def test_the_ui_thread_keeps_answering_during_a_merge(qtbot, monkeypatch, tmp_path):
    # Wan 1.3B-shaped attention at rank 16: 240 modules of 1536×1536, long enough to watch (~1 s)
    a = tmp_path / "a.safetensors"
    b = tmp_path / "b.safetensors"
    make_wan_lora("1.3B", rank=16, select="attn", seed=1, path=a)
    make_wan_lora("1.3B", rank=16, select="attn", seed=2, path=b)
    window = PanelWindow(qtbot, monkeypatch, tmp_path)
    try:
        window.load(a, b)
        panel = window.panel
        panel.rank_form.editors["rank"].editor.setValue(16)
        probe = LatencyProbe()
        progress_seen = []
        probe.start()
        started = time.perf_counter()
        panel.merge_button.click()
        panel.job.progressed.connect(lambda p: progress_seen.append(p.fraction))
        window.wait_job()  # the job ended and its result (plots included) is on screen
        elapsed = time.perf_counter() - started
        probe.stop()
        assert "Wrote" in panel.status_label.text(), panel.status_label.text()
        assert panel.analysis_view is not None and len(panel.analysis.rows) == 240
        worst = max(probe.gaps)
        print(
            f"\nmerge + result on screen: {elapsed:.2f} s; {len(probe.gaps)} probe ticks; "
            f"worst UI stall {1000 * worst:.1f} ms; progress reports seen: {len(progress_seen)}"
        )
        assert elapsed > 0.3, "the merge was too short to say anything about latency"
        assert len(progress_seen) > 5  # the progress bar moved while it ran
        assert worst < MAX_STALL_S, f"the UI thread stalled for {1000 * worst:.0f} ms"
    finally:
        window.close()
