"""The workbench's analysis side on its own: no data, stale data, two experts, hover, clicks, exports.

Real analyses: the engine's ``run_analysis``/``run_merge`` on synthetic demo pairs (the concept in
block 1's cross-attention, or block 0's for the second expert). A Wan2.2 two-expert result is
built here as the engine builds it: one complete analysis per expert in the parent's ``by_expert``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QLabel

from difflora_gui.lora.reader import open_lora
from difflora_gui.merge import plot_data
from difflora_gui.merge.analysis import AnalysisResult
from difflora_gui.merge.demo_pair import make_demo_pair
from difflora_gui.merge.engine import run_analysis, run_merge
from difflora_gui.merge.params import MergeParams
from difflora_gui.merge.result import analysis_paths
from difflora_gui.qt.merge.analysis_overlay import EMPTY, STALE
from difflora_gui.qt.merge.analysis_side import AnalysisSide
from difflora_gui.qt.merge.analysis_table import COLUMNS, DIFF_COLUMN
from difflora_gui.qt.theme import COLORS

NO_MOD = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


def demo_params(tmp_path: Path, tag: str, *, blocks=(1,), seed=5, **kwargs) -> MergeParams:
    a, b = tmp_path / f"{tag}_a.safetensors", tmp_path / f"{tag}_b.safetensors"
    if not a.exists():
        make_demo_pair(a, b, concept_blocks=blocks, rank=8, seed=seed)
    values = dict(
        lora_a=str(a), lora_b=str(b), output=str(tmp_path / f"{tag}.safetensors"), targets="attn", rank=3
    )
    values.update(kwargs)
    return MergeParams(**values)


def two_expert_analysis(tmp_path: Path) -> AnalysisResult:
    # (names without expert tokens: the engine would read "high_noise" in a name as the expert)
    high = run_analysis(demo_params(tmp_path, "first", blocks=(1,), seed=5))
    low = run_analysis(demo_params(tmp_path, "second", blocks=(0,), seed=7))
    high.expert, low.expert = "high", "low"
    return AnalysisResult(high.lora_a, high.lora_b, high.model, 1.0, [], by_expert={"high": high, "low": low})


@pytest.fixture
def side(qtbot, tmp_path):
    """A shown analysis side, its plots built (as after the panel's prepare)."""
    widget = AnalysisSide(lambda: tmp_path / "exports" / "merged")
    (tmp_path / "exports").mkdir()
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    widget.prepare()
    qtbot.waitUntil(lambda: widget.view is not None and widget.view.is_built, timeout=30_000)
    return widget


def show(qtbot, side: AnalysisSide, result, heading: str = "Analysis") -> None:
    side.set_analysis(result, heading)
    qtbot.waitUntil(lambda: side.is_filled, timeout=30_000)


@pytest.fixture(scope="module")
def one_model(tmp_path_factory) -> AnalysisResult:
    tmp_path = tmp_path_factory.mktemp("one")
    return run_analysis(demo_params(tmp_path, "one"))


def hover(qtbot, widget, pos) -> None:
    """Move the pointer there (every move counts: no wait between moves)."""
    QTest.mouseMove(widget, pos)


def exports_enabled(side: AnalysisSide) -> bool:
    return side.export_png_button.isEnabled() and side.export_csv_button.isEnabled()


def test_without_data_there_are_no_empty_axes_and_nothing_to_export(qtbot, side, one_model):
    view = side.view
    # built, laid out under an opaque placeholder: no empty axes are seen
    assert side.stack.currentWidget() is side.tabs
    assert view.overlay.isVisible() and view.overlay.mode == EMPTY
    assert "Analyze or Merge to see how A and B differ" in view.overlay.text
    assert view.overlay.geometry() == view.body.rect()
    assert not exports_enabled(side)
    show(qtbot, side, one_model)
    assert not view.overlay.isVisible() and exports_enabled(side)
    side.clear()
    assert side.result is None and view.result is None
    assert side.stack.currentWidget() is side.intro  # the introduction, not empty plots
    assert any("how A and B differ" in label.text() for label in side.intro.findChildren(QLabel))
    assert list(view.bar_items["norm_a"].opts["height"]) == [] and view.table_model.rowCount() == 0
    assert not exports_enabled(side)
    side.export_csv_dialog()  # nothing happens (no dialog, no file)
    show(qtbot, side, one_model)
    assert side.stack.currentWidget() is side.tabs and exports_enabled(side)


def test_a_stale_analysis_is_greyed_and_cannot_be_exported_until_the_next_one(
    qtbot, side, one_model, monkeypatch
):
    show(qtbot, side, one_model)
    view = side.view
    side.mark_stale("inputs changed")
    assert side.is_stale and view.is_stale
    assert view.overlay.isVisible() and view.overlay.mode == STALE
    assert view.overlay.text == "Stale: inputs changed — Analyze again"
    assert not exports_enabled(side)
    assert "stale" in side.export_csv_button.toolTip()
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: asked.append(args) or ("", ""))
    side.export_csv_dialog()
    side.export_png_dialog("blocks")
    assert asked == []
    # the old numbers are still drawn, greyed: the cover is translucent
    image = side.grab().toImage()
    centre = view.overlay.mapTo(side, view.overlay.rect().center())
    assert image.pixelColor(centre).alpha() == 255
    # a click on a stale bar does not reach the target grid
    clicked = []
    side.block_clicked.connect(clicked.append)
    QTest.mouseClick(view.overlay, LEFT, NO_MOD, view.overlay.rect().center())
    assert clicked == []
    show(qtbot, side, one_model)
    assert not side.is_stale and not view.overlay.isVisible() and exports_enabled(side)


def test_a_two_expert_result_shows_each_expert_side_by_side_in_tabs(qtbot, side, tmp_path, monkeypatch):
    both = two_expert_analysis(tmp_path)
    show(qtbot, side, both, "Analysis (nothing written)")
    assert side.tabs.count() == 2 and side.tabs.tabBar().isVisible()
    assert [side.tabs.tabText(i) for i in range(2)] == ["High-noise expert", "Low-noise expert"]
    views = side.views
    assert set(views) == {"high", "low"} and views["high"] is side.view
    for expert, view in views.items():
        result = both.by_expert[expert]
        assert view.result is result and view.is_filled
        assert "noise expert" in view.title.text()
        heights = list(view.bar_items["norm_out"].opts["height"])
        assert heights == pytest.approx([b.norm_out for b in plot_data.block_rows(result)], rel=1e-12)
    # each expert's concept block is where its own difference is largest
    assert np.argmax(views["high"].bar_items["norm_out"].opts["height"]) == 1
    assert np.argmax(views["low"].bar_items["norm_out"].opts["height"]) == 0
    # a module picked in one expert's heatmap is shown in the other's too (switching tabs compares it)
    name = "blocks.0.cross_attn.v"
    high_view = views["high"]
    QTest.mouseClick(high_view.heat_plot.viewport(), LEFT, NO_MOD, high_view.cell_scene_pos(name))
    assert high_view.current_module == name and views["low"].current_module == name
    _x, y = views["low"].spectrum_curve.getData()
    np.testing.assert_allclose(y, both.by_expert["low"].row(name).singular_values, rtol=1e-12)
    # exports are of the expert on show, named for it
    base = tmp_path / "exports" / "merged"
    assert side.default_export_path("csv") == base.with_name("merged_high_noise.workbench.csv")
    side.tabs.setCurrentIndex(1)
    assert side.current_expert == "low" and side.current_view is views["low"]
    assert side.default_export_path("blocks") == base.with_name("merged_low_noise-blocks.png")
    assert "low-noise expert" in side.export_actions["blocks"].text()
    offered = {}

    def save_as(_parent, _caption, start, _filter):
        offered["start"] = start
        return start, ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_as)
    side.export_csv_button.click()
    written = Path(offered["start"])
    assert written.name == "merged_low_noise.workbench.csv"
    assert written.read_text(encoding="utf-8") == both.by_expert["low"].to_csv()
    side.export_actions["spectrum"].trigger()
    assert Path(offered["start"]).name == "merged_low_noise-spectrum.png"
    assert "low-noise expert" in views["low"].last_export_title
    # stale marks both experts; a one-model result afterwards has one view and no tab bar
    side.mark_stale("inputs changed")
    assert all(v.is_stale for v in views.values()) and not exports_enabled(side)
    one = run_analysis(demo_params(tmp_path, "one"))
    show(qtbot, side, one)
    assert side.tabs.count() == 1 and not side.tabs.tabBar().isVisible()
    assert side.views == {None: side.view} and side.view.result is one and exports_enabled(side)
    assert side.default_export_path("csv").name == "merged.workbench.csv"


def test_hover_shows_the_values_under_the_pointer(qtbot, side, one_model):
    show(qtbot, side, one_model)
    view = side.view
    # bars: the block, the bar's series and value, ‖A−B‖ before alpha and each layer group
    hover(qtbot, view.bars_plot.viewport(), view.bars.viewport_pos(1, "norm_out"))
    block = next(b for b in view.blocks if b.block == 1)
    rows = [r for r in one_model.rows if r.block == 1]
    diff = math.sqrt(sum(r.diff_before_alpha(one_model.alpha) ** 2 for r in rows))
    text = view.hover_text
    assert text.startswith("block 1:")
    assert f"▶ ‖ΔW_out‖ = {block.norm_out:.4g}" in text
    assert f"‖A−B‖ (before alpha) = {diff:.4g}" in text
    assert "cross_attn:" in text and "self_attn:" in text
    # heatmap cell: the module and its value
    name = "blocks.1.cross_attn.v"
    hover(qtbot, view.heat_plot.viewport(), view.cell_scene_pos(name))
    row = one_model.row(name)
    assert view.hover_text.splitlines()[:2] == [name, f"‖ΔW_out‖ = {row.norm_out:.4g}"]
    # spectrum: the index and the singular value
    spectrum = view.spectrum
    hover(qtbot, view.spectrum_plot.viewport(), view.spectrum_view.viewport_pos(2))
    assert f"σ2 = {spectrum.values[1]:.6g}" in view.hover_text
    assert view.hover_text.startswith(spectrum.name)
    # off the data: nothing
    hover(qtbot, view.heat_plot.viewport(), QPoint(3, 3))
    assert view.hover_text == ""


def test_clicking_a_heatmap_cell_shows_that_modules_spectrum_and_selects_its_row(qtbot, side, one_model):
    show(qtbot, side, one_model)
    view = side.view
    name = "blocks.0.self_attn.k"
    assert view.current_module != name
    clicked = []
    side.block_clicked.connect(clicked.append)
    QTest.mouseClick(view.heat_plot.viewport(), LEFT, NO_MOD, view.cell_scene_pos(name))
    assert view.current_module == name
    _x, y = view.spectrum_curve.getData()
    np.testing.assert_allclose(y, one_model.row(name).singular_values, rtol=1e-12)
    assert name in view.spectrum_label.text()
    selected = view.table.selectionModel().selectedRows()
    assert [view.table_proxy.data(i, Qt.ItemDataRole.ToolTipRole) for i in selected] == [name]
    assert view.heatmap.outline.isVisible()
    assert view.heatmap.outline.rect().center().x() == 0 and view.heatmap.outline.rect().center().y() == 1
    assert clicked == []  # a heatmap click picks a module; only the bars toggle blocks


def test_the_legend_is_a_row_of_its_own_above_the_bars(qtbot, side, one_model):
    show(qtbot, side, one_model)
    bars = side.view.bars
    legend, plot = bars.legend, bars.widget
    assert legend.isVisible() and legend.parent() is plot.parent()
    assert legend.geometry().bottom() < plot.geometry().top()
    for label in ("‖ΔW_a‖", "‖ΔW_b‖", "‖ΔW_out‖", "cancellation"):
        assert label in legend.text()
    # nothing of the plot area is kept free for a legend: the tallest bar nearly reaches the top
    top = max(max(bars.items[k].opts["height"]) for k in ("norm_a", "norm_b", "norm_out"))
    assert bars.item.vb.viewRange()[1][1] == pytest.approx(top * 1.06)


def test_an_exported_png_carries_a_title_naming_the_plot_and_the_inputs(qtbot, side, one_model, tmp_path):
    show(qtbot, side, one_model)
    view = side.view
    for name in ("blocks", "heatmap", "spectrum"):
        path = view.export_png(name, tmp_path / f"{name}.png")
        image = QImage(str(path))
        holder = view.export_widget(name)
        assert image.width() == 2 * holder.width()
        assert image.height() > 2 * holder.height() + 20, name  # a title band above the plot
        title = view.last_export_title
        assert title.startswith(plot_data.PLOT_TITLES[name]) and "A = one_a.safetensors" in title
        assert "B = one_b.safetensors" in title
        band = image.height() - 2 * holder.height()
        base = QColor(COLORS["base"]).rgb()
        text_pixels = sum(
            1 for y in range(band) for x in range(0, image.width(), 2) if image.pixelColor(x, y).rgb() != base
        )
        assert text_pixels > 100, name  # the title is drawn, the band is not blank
    assert view.current_module in view.export_title("spectrum")


def test_every_column_is_explained_and_a_minus_b_is_before_alpha(qtbot, side, tmp_path):
    params = demo_params(tmp_path, "alpha2", alpha=2.0, rank=2)
    result = run_merge(params, keep_analysis=True).analysis
    show(qtbot, side, result)
    model = side.view.table_model
    for column in range(model.columnCount()):
        tip = model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
        assert tip and len(tip) > 30, COLUMNS[column].title
    assert "before alpha" in COLUMNS[DIFF_COLUMN].tooltip
    assert "alpha applied" in model.headerData(5, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    with open_lora(params.lora_a) as fa, open_lora(params.lora_b) as fb:
        for i, row in enumerate(model.rows):
            dense = fa.load(row.name).delta().double() - fb.load(row.name).delta().double()
            expected = float(dense.norm())
            assert model.value(i, DIFF_COLUMN) == pytest.approx(expected, rel=1e-6), row.name
            assert model.index(i, DIFF_COLUMN).data() == f"{expected:.4g}"
            # ‖A‖ and ‖B‖ on the same footing; ‖out‖ is the written (alpha 2) module
            assert model.value(i, 2) == pytest.approx(
                float(fa.load(row.name).delta().double().norm()), rel=1e-6
            )
            assert row.norm_out <= 2 * expected * (1 + 1e-9)
    # the CSV says both: norm_diff (alpha applied) and norm_diff_before_alpha
    first = next(csv.DictReader(io.StringIO(result.to_csv())))
    assert float(first["norm_diff"]) == pytest.approx(2 * float(first["norm_diff_before_alpha"]), rel=1e-8)


def test_the_csv_exports_default_name_is_not_a_file_a_later_merge_writes(qtbot, side, tmp_path, monkeypatch):
    params = demo_params(tmp_path, "named", analyze=True)
    output = Path(params.output)
    merged = run_merge(params)
    show(qtbot, side, merged.analysis)
    side._export_base = lambda: output.with_suffix("")
    start = side.default_export_path("csv")
    assert start == output.with_name("named.workbench.csv")
    assert start not in analysis_paths(output) and all(Path(f).exists() for f in merged.analysis_files)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda _p, _c, start, _f: (start, ""))
    before = {p: p.read_bytes() for p in map(Path, merged.analysis_files)}
    side.export_csv_button.click()
    assert start.read_text(encoding="utf-8") == merged.analysis.to_csv()
    assert {p: p.read_bytes() for p in before} == before  # the merge's own analysis files are untouched
    # a second export does not start on the first one: it gets the time in its name
    again = side.default_export_path("csv")
    assert again != start and again.name.startswith("named.workbench-") and again.suffix == ".csv"
    # a later merge with --analyze_blocks writes beside the output and replaces none of the exports
    run_merge(demo_params(tmp_path, "named", analyze=True, overwrite=True))
    assert start.read_text(encoding="utf-8") == merged.analysis.to_csv()


def test_the_engines_four_file_analysis_shows_both_experts(qtbot, side, tmp_path):
    """The engine's own two-expert analysis (``--lora_a_high`` …) fills the two tabs."""
    files = {}
    for expert, blocks, seed in (("high", (1,), 5), ("low", (0,), 7)):
        files[expert] = make_demo_pair(
            tmp_path / f"a_{expert}_noise.safetensors",
            tmp_path / f"b_{expert}_noise.safetensors",
            concept_blocks=blocks,
            rank=8,
            seed=seed,
        )
    result = run_analysis(
        MergeParams(
            lora_a_high=str(files["high"][0]),
            lora_b_high=str(files["high"][1]),
            lora_a_low=str(files["low"][0]),
            lora_b_low=str(files["low"][1]),
            output=str(tmp_path / "wan22.safetensors"),
            targets="attn",
            rank=3,
        )
    )
    assert result.experts == ["high", "low"]
    show(qtbot, side, result)
    assert [side.tabs.tabText(i) for i in range(side.tabs.count())] == [
        "High-noise expert",
        "Low-noise expert",
    ]
    for expert, view in side.views.items():
        assert view.result is result.by_expert[expert]
        assert Path(view.result.lora_a).name == f"a_{expert}_noise.safetensors"
        assert f"a_{expert}_noise.safetensors" in view.export_title("blocks")
    # one expert only (a file named for its expert): its tab, no tab bar, exports named for it
    one = run_analysis(
        MergeParams(
            lora_a=str(files["low"][0]),
            lora_b=str(files["low"][1]),
            output=str(tmp_path / "low.safetensors"),
            targets="attn",
            rank=3,
        )
    )
    show(qtbot, side, one)
    assert side.current_expert == "low" and not side.tabs.tabBar().isVisible()
    assert side.view.result is one.by_expert["low"]
    assert side.default_export_path("csv").name == "merged_low_noise.workbench.csv"


def test_marked_stale_before_the_second_expert_is_filled_both_experts_are_stale(qtbot, side, tmp_path):
    both = two_expert_analysis(tmp_path)
    side.set_analysis(both, "Merge")
    side.mark_stale("the inputs changed")  # the low-noise view is still waiting for its turn
    qtbot.waitUntil(lambda: side.is_filled, timeout=30_000)
    assert [v.result for v in side.views.values()] == [both.by_expert["high"], both.by_expert["low"]]
    assert all(v.is_stale for v in side.views.values()) and not exports_enabled(side)
    assert side.views["low"].overlay.text == "Stale: the inputs changed — Analyze again"


def test_export_names_carry_the_expert_once(tmp_path):
    base = tmp_path / "slider"
    assert plot_data.export_path(base, "csv") == tmp_path / "slider.workbench.csv"
    assert plot_data.export_path(base, "heatmap", "high") == tmp_path / "slider_high_noise-heatmap.png"
    # a base already named for an expert: kept for that one, renamed for the other
    named = tmp_path / "slider_high_noise"
    assert plot_data.export_path(named, "csv", "high") == tmp_path / "slider_high_noise.workbench.csv"
    assert plot_data.export_path(named, "csv", "low") == tmp_path / "slider_low_noise.workbench.csv"
    # an existing file is not offered again: the time goes into the name
    (tmp_path / "slider.workbench.csv").write_text("mine", encoding="utf-8")
    from datetime import datetime

    again = plot_data.export_path(base, "csv", now=datetime(2026, 12, 2, 5, 15, 0))
    assert again == tmp_path / "slider.workbench-20261202-051500.csv"


def test_a_view_given_a_two_expert_result_shows_its_first_expert(qtbot, side, tmp_path):
    both = two_expert_analysis(tmp_path)
    view = side.view
    view.set_analysis(both, "direct")
    assert view.result is both.by_expert["high"] and view.table_model.rowCount() == 16


def test_a_wide_side_shows_the_two_experts_as_columns(qtbot, side, tmp_path, monkeypatch):
    both = two_expert_analysis(tmp_path)
    show(qtbot, side, both, "Merge")
    assert not side.in_columns and side.tabs.count() == 2
    side.resize(1300, 600)
    qtbot.waitUntil(lambda: side.in_columns, timeout=5_000)
    high, low = side.views["high"], side.views["low"]
    assert high.isVisible() and low.isVisible() and high.parent() is low.parent() is side.columns
    assert high.geometry().right() < low.geometry().left()  # side by side
    assert side.tabs.count() == 0
    # the menus offer both experts' exports
    assert side._second_png_actions["blocks"].isVisible()
    assert "low-noise expert" in side._second_png_actions["blocks"].text()
    assert side.export_csv_button.menu() is not None
    offered = []
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda _p, _c, start, _f: offered.append(Path(start)) or (start, "")
    )
    side._csv_actions[1].trigger()
    side._second_png_actions["heatmap"].trigger()
    side.export_actions["heatmap"].trigger()
    assert [p.name for p in offered] == [
        "merged_low_noise.workbench.csv",
        "merged_low_noise-heatmap.png",
        "merged_high_noise-heatmap.png",
    ]
    assert offered[0].read_text(encoding="utf-8") == both.by_expert["low"].to_csv()
    # narrow again: tabs, the same views and numbers
    side.resize(700, 600)
    qtbot.waitUntil(lambda: not side.in_columns, timeout=5_000)
    assert [side.tabs.tabText(i) for i in range(side.tabs.count())] == [
        "High-noise expert",
        "Low-noise expert",
    ]
    assert side.tabs.widget(0) is high and side.tabs.widget(1) is low and low.result is both.by_expert["low"]
    assert side.export_csv_button.menu() is None and not side._second_png_actions["blocks"].isVisible()
