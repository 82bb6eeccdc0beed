"""Helpers for the Merge workbench tests: a window with the real panel, waiting for its jobs."""

from __future__ import annotations

from pathlib import Path

from difflora_gui.qt.testing import close_window, make_main_window

PANEL = "merge-workbench"
JOB_TIMEOUT_MS = 60_000


class PanelWindow:
    """A main window built like ``python main.py`` builds it, with the Merge workbench shown."""

    def __init__(self, qtbot, monkeypatch, tmp_path: Path, plugins=()):
        self.qtbot = qtbot
        self.window, self.dialogs = make_main_window(qtbot, monkeypatch, plugins=plugins)
        self.window.resize(1500, 950)
        self.window.show_section("merge")
        self.out = tmp_path / "out folder"
        self.out.mkdir(exist_ok=True)
        self.window.project.output_dir = str(self.out)
        entry = self.window.panels[PANEL]
        assert entry.ok, entry.error
        self.panel = entry.widget

    def load(self, a: Path, b: Path) -> None:
        """Drop A and B on the window and wait until both cards are read."""
        routed = self.window.route_files([a, b])
        assert routed == {PANEL: [a, b]}
        self.wait_inputs()

    def wait_inputs(self) -> None:
        panel = self.panel
        self.qtbot.waitUntil(
            lambda: all(
                panel.paths[r] is None or panel.summaries[r] is not None or panel.errors[r]
                for r in ("a", "b")
            ),
            timeout=JOB_TIMEOUT_MS,
        )

    def run(self, action: str = "merge") -> None:
        """Click Merge (or Analyze) and wait until the job is over."""
        button = self.panel.merge_button if action == "merge" else self.panel.analyze_button
        assert button.isEnabled(), self.panel.reason_label.text() or button.toolTip()
        button.click()
        self.wait_job()

    def wait_job(self) -> None:
        """Until the job is over and its analysis fills every plot."""
        view = lambda: self.panel.analysis_view  # noqa: E731
        self.qtbot.waitUntil(
            lambda: self.panel.job is None and (view() is None or view().is_filled), timeout=JOB_TIMEOUT_MS
        )

    def close(self) -> None:
        close_window(self.window, self.dialogs)
