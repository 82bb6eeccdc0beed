"""The demo walk through the window, step by step, with each section's own controls (issue 16).

First start → the banner's Build the demo → Dataset: Check pairs → Train on these pairs… → Train:
the built-in trainer's pair run → Merge these (exact SVD, attention targets) → Preview it: several
strengths with block weights → Strength grid…: a strength × seed grid exported as H.264. Each
section is reached with the previous section's hand-off button, as a user moves on. Used by ``tests/test_qt_demo_walk.py``
(the smallest settings the panels take) and ``bench/demo_walk.py`` (the defaults a user would click,
timed). Each step returns what it made and keeps its wall time in ``times``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from difflora_gui.qt.testing import close_window, make_main_window

TIMEOUT_MS = 600_000
#: the merge's attention targets: the FFN and "other" boxes unchecked
ATTENTION_TARGETS = ("ffn", "other")
#: the grid the walk renders: three strengths by two seeds
GRID_STRENGTHS, GRID_SEEDS = "-1:1:1", "1,2"


def panel(window, name: str):
    entry = window.panels[name]
    assert entry.ok, entry.error + entry.traceback
    return entry.widget


class EventLoopBot:
    """The parts of pytest-qt's ``qtbot`` the walk uses, on a plain event loop (the bench and
    docs/make_screenshots.py walk without pytest)."""

    def __init__(self, app):
        self.app = app
        self.widgets: list = []

    def addWidget(self, widget, before_close_func=None):  # noqa: N802 - qtbot's name
        self.widgets.append(widget)

    def waitExposed(self, widget, timeout: int = 5000):  # noqa: N802 - qtbot's name
        self.waitUntil(widget.isVisible, timeout=timeout)

    def waitUntil(self, predicate, timeout: int = 5000):  # noqa: N802 - qtbot's name
        deadline = time.monotonic() + timeout / 1000
        while True:
            self.app.processEvents()
            if predicate():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} ms for {predicate}")
            time.sleep(0.01)


class DemoWalk:
    """One window walked through the demo; ``qtbot`` may be pytest-qt's or the bench's stand-in."""

    def __init__(self, qtbot, monkeypatch, folder: Path):
        self.qtbot, self.monkeypatch, self.folder = qtbot, monkeypatch, folder
        self.times: dict[str, float] = {}
        self.window = self.dialogs = None
        self.merge_status = ""  # the Merge status line once the merge is over
        self.steps_before_preset = None  # the training form's steps as the demo opened it

    @contextmanager
    def timed(self, step: str):
        start = time.perf_counter()
        yield
        self.times[step] = time.perf_counter() - start

    def wait(self, predicate, timeout_ms: int = TIMEOUT_MS) -> None:
        self.qtbot.waitUntil(predicate, timeout=timeout_ms)

    def report(self) -> str:
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.times.items())
        return f"demo walk: {steps}; total {sum(self.times.values()):.1f} s"

    # --- the steps ---------------------------------------------------------------------------------

    def start_and_build_demo(self) -> Path:
        """The window's first start, its banner's Build the demo; returns the project file."""
        with self.timed("start + build demo"):
            self.window, self.dialogs = make_main_window(self.qtbot, self.monkeypatch)
            self.window.resize(1400, 900)
            self.window.devices.set_devices([])  # detection done: the CPU only (jobs wait for this)
            self.window.demo.folder = self.folder
            self.window.start_session(detect_devices=False, offer_recovery=False)
            banner = self.window.demo.banner
            assert banner is not None and "Build the demo project?" in banner.label.text()
            banner.build_button.click()
            handle = self.window.demo.handle
            assert handle is not None
            self.wait(lambda: handle.is_finished)
            assert handle.state == "done", handle.error_text
            self.wait(lambda: self.window.project.name == "DiffLoRA demo", 10_000)
        assert self.window.current_section() == "dataset"
        return Path(self.window.project.path)

    def check_pairs(self) -> dict[str, Any]:
        """Dataset: Check pairs; returns the scores by pair id."""
        dataset = panel(self.window, "dataset-pairs")
        with self.timed("dataset check"):
            self.wait(lambda: dataset.pair_set is not None, 30_000)
            dataset.checks.check_button.click()
            self.wait(lambda: dataset.check_job is None)
        return dict(dataset.scores)

    def train_pair(self, config: Mapping[str, Any] | None = None) -> list:
        """Dataset's Train on these pairs… → Train: the demo's form (built-in trainer), the quick-test
        preset's Apply, ``config`` over it, Train; the runs."""
        from difflora_gui.project.records import RunRecord

        dataset = panel(self.window, "dataset-pairs")
        train = panel(self.window, "train-runs")
        with self.timed("pair run"):
            assert dataset.train_button.isEnabled(), dataset.train_button.toolTip()
            dataset.train_button.click()
            assert self.window.current_section() == "train"
            self.wait(lambda: train.export_job is None, 60_000)
            folders = [Path(folder) for folder in train.datasets.folders()]
            assert [f.name for f in folders] == ["A", "B"], folders  # the dataset as exported just now
            assert all(len(list(f.iterdir())) >= len(dataset.pair_set.pairs) for f in folders)
            self.wait(lambda: not train.checks.pending, 10_000)
            # the demo's form names the quick-test preset; its Apply fills the config with it
            self.steps_before_preset = train.config_box.form.values()["max_train_steps"]
            assert train.config_box.preset_combo.currentData() == "quick-test"
            train.config_box.apply_preset_button.click()
            self.wait(lambda: not train.checks.pending, 10_000)
            if config:
                train.config_box.form.set_values(dict(config))
                self.wait(lambda: not train.checks.pending, 10_000)
            assert train.train_button.isEnabled(), train.reason_label.text()
            train.train_button.click()
            self.wait(lambda: not train.handles)
            train.refresh_runs()
        return self.window.project.records(RunRecord)

    def merge_pair(self) -> Path:
        """Train's Merge these → Merge with attention targets and the exact SVD → Merge; the output
        (the merge's plots shown)."""
        train = panel(self.window, "train-runs")
        merge = panel(self.window, "merge-workbench")
        with self.timed("merge"):
            assert train.runs_list.merge_button.isEnabled()
            train.runs_list.merge_button.click()
            assert self.window.current_section() == "merge"
            self.wait(lambda: all(merge.summaries[r] is not None or merge.errors[r] for r in ("a", "b")))
            assert not any(merge.errors.values()), merge.errors
            for group in ATTENTION_TARGETS:
                if merge.targets.group_boxes[group].isChecked():
                    merge.targets.group_boxes[group].click()
            assert merge.strategy.strategy_name() == "full_svd"  # the exact SVD, the default
            output = Path(merge.output_edit.text())
            assert merge.merge_button.isEnabled(), merge.reason_label.text()
            merge.merge_button.click()
            self.wait(lambda: merge.job is None)
            self.merge_status = merge.status_label.text()
            # the merge shows the plots of what it merged (built a plot per event-loop pass)
            self.wait(lambda: merge.analysis_view is not None and merge.analysis_view.is_filled, 60_000)
        return output

    def preview(self, lora: Path, strengths, weights, form: Mapping[str, Any] | None = None) -> list:
        """Merge's Preview it → Preview: the merged LoRA in the stack, block ``weights`` set, Render at
        each strength; the results."""
        merge = panel(self.window, "merge-workbench")
        view = panel(self.window, "preview-player")
        with self.timed("preview"):
            assert merge.preview_button.isEnabled(), merge.preview_button.toolTip()
            merge.preview_button.click()
            assert self.window.current_section() == "preview"
            assert [Path(item.entry.file) for item in view.stack.items()] == [lora]
            if form:
                view.render_form.set_values(dict(form), quiet=False)
            view.blocks.set_weights(weights)
            for strength in strengths:
                view.strength.set_value(strength)
                assert view.render_button.isEnabled(), view.render_button.toolTip()
                view.render_button.click()
                self.wait(lambda: not any(queue.running() for queue in view.views.values()))
                self.wait(lambda: not view.player.is_loading() and not view.ab_view.is_decoding(), 60_000)
                shown = [r for r in view.history if r.request.loras[0].strength == strength]
                assert shown, view.status_line.text()
        return list(view.history)

    def grid(self, lora: Path, out: Path, form: Mapping[str, Any] | None = None, *, keep_axes: bool = False):
        """Preview's Strength grid… → Compare: the Preview's stack and settings, strengths × seeds
        (:data:`GRID_STRENGTHS` × :data:`GRID_SEEDS`, or ``keep_axes``: the axes the project has),
        Render grid, Export to ``out``; the shown grid."""
        from PySide6.QtWidgets import QFileDialog

        from difflora_gui.qt.compare.export_dialog import ExportDialog

        view = panel(self.window, "preview-player")
        compare = panel(self.window, "compare-grid")
        with self.timed("grid + export"):
            view.grid_button.click()
            assert self.window.current_section() == "compare"
            assert [Path(e.file) for e in compare.stack.entries()] == [lora]  # handed over, not added
            if form:
                compare.render_form.set_values(dict(form), quiet=False)
            axes = () if keep_axes else (("strength", GRID_STRENGTHS), ("seed", GRID_SEEDS))
            for number, (kind, text) in enumerate(axes):
                row = compare.axes_form.rows[number]
                row.kind_combo.setCurrentIndex(row.kind_combo.findData(kind))
                row.values_edit.setText(text)
            assert compare.render_button.isEnabled(), compare.render_button.toolTip()
            compare.render_button.click()
            self.wait(lambda: compare.grid_handle is None)
            self.wait(lambda: not compare.player.is_loading(), 60_000)
            # the Export dialog answered as a user would: Browse… to ``out``, then Export
            self.monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))

            def answer(dialog) -> int:
                dialog.browse()
                dialog.accept()
                return dialog.result()

            self.monkeypatch.setattr(ExportDialog, "exec", answer)
            assert compare.export_button.isEnabled(), compare.export_button.toolTip()
            compare.export_button.click()
            self.wait(lambda: compare.export_handle is None)
        return compare.shown_result

    def close(self) -> None:
        if self.window is not None:
            panel(self.window, "dataset-pairs").loader.shutdown()
            close_window(self.window, self.dialogs)
