"""During a real merge the UI thread keeps answering: a timer-based latency probe."""

from __future__ import annotations

import time

from merge_panel_helpers import PanelWindow
from PySide6.QtCore import QTimer

from difflora_gui.lora.synthetic import make_wan_lora

PROBE_INTERVAL_MS = 5
MAX_STALL_S = 0.100


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


def test_the_ui_thread_never_stalls_for_more_than_100_ms_during_a_merge(qtbot, monkeypatch, tmp_path):
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
