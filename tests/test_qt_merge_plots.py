"""The analysis plots hold the analysis' numbers; clicks on blocks reach the target grid; exports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from merge_panel_helpers import PanelWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from difflora_gui.merge import plot_data as analysis_data
from difflora_gui.merge.analysis import MERGED, AnalysisResult
from difflora_gui.merge.demo_pair import make_demo_pair


@pytest.fixture
def merged(qtbot, monkeypatch, tmp_path):
    """A window after a merge of a demo pair whose concept lives in block 1's cross-attention."""
    a, b = make_demo_pair(
        tmp_path / "a.safetensors", tmp_path / "b.safetensors", concept_blocks=(1,), rank=8, seed=5
    )
    window = PanelWindow(qtbot, monkeypatch, tmp_path)
    window.load(a, b)
    window.panel.rank_form.editors["rank"].editor.setValue(3)
    window.panel.targets.set_text("attn")
    window.run("merge")
    yield window
    window.close()


def block_norms(result: AnalysisResult, field: str) -> dict[int, float]:
    """Independent of analysis_data: root of the sum of squares of the block's module norms."""
    sums: dict[int, float] = {}
    for row in result.rows:
        sums[row.block] = sums.get(row.block, 0.0) + getattr(row, field) ** 2
    return {block: math.sqrt(value) for block, value in sums.items()}


def test_block_bars_and_cancellation_line_hold_the_analysis_numbers(merged):
    view = merged.panel.analysis_view
    result = merged.panel.last_result.analysis
    assert view.result is result
    for key in ("norm_a", "norm_b", "norm_out"):
        bars = view.bar_items[key].opts
        expected = block_norms(result, key)
        assert [round(x) for x in bars["x"]] == sorted(expected)
        np.testing.assert_allclose(bars["height"], [expected[b] for b in sorted(expected)], rtol=1e-12)
    # the cancellation ratio of a block: ‖A − B‖ over ‖A‖ + ‖B‖ (weights 1), from the module rows
    x, y = view.cancel_curve.getData()
    for block, value in zip(x, y, strict=True):
        rows = [r for r in result.rows if r.block == block]
        diff = math.sqrt(sum(r.norm_a**2 + r.norm_b**2 - 2 * r.inner for r in rows))
        norm_a = math.sqrt(sum(r.norm_a**2 for r in rows))
        norm_b = math.sqrt(sum(r.norm_b**2 for r in rows))
        assert value == pytest.approx(diff / (norm_a + norm_b), rel=1e-9)
    # the concept lives in block 1: it cancels least there
    assert y[1] > 3 * y[0]


def test_heatmap_holds_each_modules_output_norm(merged):
    view = merged.panel.analysis_view
    result = merged.panel.last_result.analysis
    layers = view.heat.layers
    assert layers == [
        "self_attn.q",
        "self_attn.k",
        "self_attn.v",
        "self_attn.o",
        "cross_attn.q",
        "cross_attn.k",
        "cross_attn.v",
        "cross_attn.o",
    ]
    image = view.heat_array
    assert image.shape == (2, 8)
    for row in result.rows:
        column = layers.index(f"{row.group}.{row.layer}")
        assert image[row.block, column] == pytest.approx(row.norm_out, rel=1e-12)
    assert np.allclose(view.heat_image.image, image, equal_nan=True)
    hottest = np.unravel_index(np.nanargmax(image), image.shape)
    assert hottest[0] == 1 and layers[hottest[1]].startswith("cross_attn")


def test_spectrum_shows_the_selected_modules_singular_values_rank_cut_and_energy(merged):
    view = merged.panel.analysis_view
    result = merged.panel.last_result.analysis
    # the most distinct module is shown first
    assert view.current_module == result.most_distinct(1)[0].name
    row = result.row("blocks.0.self_attn.v")
    view.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)  # by ‖A−B‖, as a header click does
    proxy = view.table.model()
    diffs = [float(proxy.index(i, 4).data()) for i in range(proxy.rowCount())]
    assert diffs == sorted(diffs, reverse=True)
    target = next(
        i for i in range(proxy.rowCount()) if proxy.index(i, 0).data(Qt.ItemDataRole.ToolTipRole) == row.name
    )
    view.table.selectRow(target)
    assert view.current_module == "blocks.0.self_attn.v"
    x, y = view.spectrum_curve.getData()
    np.testing.assert_allclose(y, row.singular_values, rtol=1e-12)
    assert list(x) == list(range(1, len(row.singular_values) + 1))
    assert row.status == MERGED and row.rank == 3
    np.testing.assert_allclose(view.spectrum_kept.opts["height"], row.singular_values[:3], rtol=1e-12)
    assert view.rank_line.value() == 3.5 and view.rank_line.isVisible()
    energy = sum(s * s for s in row.singular_values[:3]) / sum(s * s for s in row.singular_values)
    assert row.retained_energy == pytest.approx(energy, rel=1e-9)
    assert f"{100 * row.retained_energy:.2f} %" in view.spectrum_label.text()


def test_clicking_a_block_in_the_bars_toggles_it_in_the_target_grid_a_heatmap_cell_picks_a_module(merged):
    panel = merged.panel
    view = panel.analysis_view
    assert panel.targets.checked_blocks() == [0, 1]
    position = view.block_scene_pos("blocks", 1)
    QTest.mouseClick(
        view.bars_plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position
    )
    assert panel.targets.checked_blocks() == [0]
    assert panel.targets.text() == "attn blocks=0"
    # the deselected block's bars are dimmed
    assert view.bar_items["norm_a"].opts["brushes"][1].color().alpha() < 255
    QTest.mouseClick(
        view.bars_plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position
    )
    assert panel.targets.checked_blocks() == [0, 1] and panel.targets.text() == "attn"
    # a heatmap cell shows its module (spectrum, table row) and leaves the target grid alone
    QTest.mouseClick(
        view.heat_plot.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        view.cell_scene_pos("blocks.1.self_attn.q"),
    )
    assert view.current_module == "blocks.1.self_attn.q"
    assert panel.targets.checked_blocks() == [0, 1]


def test_plots_export_as_png_and_the_table_as_csv(merged, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    panel = merged.panel
    assert panel.export_png_button.isEnabled() and panel.export_csv_button.isEnabled()
    for name in ("blocks", "heatmap", "spectrum"):
        target = tmp_path / f"plot {name}.png"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, target=target: (str(target), ""))
        panel.export_actions[name].trigger()
        image = QImage(str(target))
        widget = panel.analysis_view.export_widget(name)
        assert not image.isNull() and image.width() == 2 * widget.width(), name
        assert image.height() > 2 * widget.height(), name  # with a title band
        assert Path(panel.analysis.lora_a).name in panel.analysis_view.last_export_title
        assert image.pixelColor(5, image.height() // 2) != image.pixelColor(image.width() // 2, 5) or name
    csv_path = tmp_path / "table.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(csv_path), ""))
    panel.export_csv_button.click()
    assert csv_path.read_text(encoding="utf-8") == panel.last_result.analysis.to_csv()
    assert "exported" in merged.window.log_dock.text()


def test_block_rows_match_the_engines_group_aggregates():
    """Per-block numbers agree with the engine's per (block, group) aggregates when a block has one group."""
    from difflora_gui.merge.analysis import ModuleRow

    rows = [
        ModuleRow(
            "blocks.0.ffn.0",
            0,
            "ffn",
            "0",
            (8, 4),
            2,
            2,
            MERGED,
            norm_a=3.0,
            norm_b=4.0,
            inner=2.0,
            norm_diff=4.6,
            norm_out=4.5,
            weight_a=1.0,
            weight_b=0.5,
            rank=2,
        ),
        ModuleRow(
            "blocks.0.ffn.2",
            0,
            "ffn",
            "2",
            (4, 8),
            2,
            2,
            MERGED,
            norm_a=1.0,
            norm_b=2.0,
            inner=-1.0,
            norm_diff=2.4,
            norm_out=2.0,
            weight_a=1.0,
            weight_b=0.5,
            rank=2,
        ),
    ]
    result = AnalysisResult("a", "b", "tiny", 1.0, rows)
    (block,) = analysis_data.block_rows(result)
    (group,) = result.groups
    assert block.norm_a == pytest.approx(group.norm_a)
    assert block.norm_b == pytest.approx(group.norm_b)
    assert block.norm_out == pytest.approx(group.norm_out)
    assert block.cancellation == pytest.approx(group.cancellation)


def test_a_wan22_pair_shows_both_experts_and_other_inputs_make_it_stale(qtbot, monkeypatch, tmp_path):
    """Through the panel: a 4-file analysis fills both expert tabs; loading other inputs marks it stale."""
    files = {}
    for expert, blocks, seed in (("high", (1,), 5), ("low", (0,), 7)):
        files[expert] = make_demo_pair(
            tmp_path / f"concept_{expert}_noise.safetensors",
            tmp_path / f"base_{expert}_noise.safetensors",
            concept_blocks=blocks,
            rank=8,
            seed=seed,
        )
    window = PanelWindow(qtbot, monkeypatch, tmp_path)
    try:
        panel, side = window.panel, window.panel.analysis_side
        window.window.route_files(list(files["high"]))  # the low-noise partners are found beside them
        qtbot.waitUntil(lambda: panel.analyze_button.isEnabled(), timeout=60_000)
        window.run("analyze")
        qtbot.waitUntil(lambda: side.is_filled, timeout=60_000)
        result = panel.analysis
        assert result.experts == ["high", "low"]
        assert [side.tabs.tabText(i) for i in range(side.tabs.count())] == [
            "High-noise expert",
            "Low-noise expert",
        ]
        for expert, view in side.views.items():
            assert view.result is result.by_expert[expert]
            assert Path(view.result.lora_a).name == f"concept_{expert}_noise.safetensors"
        assert panel.export_csv_button.isEnabled()
        # other inputs: the old analysis is marked stale and cannot be exported
        a, b = make_demo_pair(tmp_path / "other_a.safetensors", tmp_path / "other_b.safetensors", seed=9)
        window.window.route_files([a, b])
        qtbot.waitUntil(lambda: side.is_stale, timeout=60_000)
        assert all(view.is_stale for view in side.views.values())
        assert not panel.export_csv_button.isEnabled() and not panel.export_png_button.isEnabled()
    finally:
        window.close()
