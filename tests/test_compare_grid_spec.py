"""Grid axes and cells: lists and ranges, bad input in one line, the render order (the expensive
axis outermost), positions and labels, block presets as selectors, the strength-0 reference cell."""

from __future__ import annotations

import pytest

from difflora_gui.compare.grid_canvas import grid_geometry, layout_position, spec_position
from difflora_gui.compare.grid_spec import Axis, GridSpec, number_label, parse_numbers, short_label
from difflora_gui.compare.grid_types import ExportOptions, GridJob
from difflora_gui.errors import UserError
from difflora_gui.preview.request import LoraEntry, PreviewRequest

BASE = PreviewRequest(
    "a cat",
    width=32,
    height=32,
    frames=5,
    steps=2,
    loras=(LoraEntry("/x/slider.safetensors", selector="attn"),),
)


def test_numbers_from_lists_and_inclusive_ranges():
    assert parse_numbers("-3:3:1") == (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
    assert parse_numbers("-1:1:0.5") == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert parse_numbers("0.3:0.9:0.3") == (0.3, 0.6, 0.9)  # no float drift past the stop
    assert parse_numbers("1, 2,5") == (1.0, 2.0, 5.0)
    assert parse_numbers("1:3:1", integers=True) == (1, 2, 3)
    assert [number_label(v) for v in (1.0, -0.5, 0.25, -0.0)] == ["1", "-0.5", "0.25", "0"]


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("strength", "", "no strengths given"),
        ("strength", "1:x:1", "not a number"),
        ("strength", "3:-3:1", "the step must go from the start to the stop"),
        ("strength", "0:1000:0.001", "at most"),
        ("seed", "1.5", "whole numbers"),
        ("strength", "1,1", "repeats a value"),
        ("strength", "nan", "finite"),
    ],
)
def test_bad_axis_values_are_one_clear_line(kind, text, problem):
    with pytest.raises(UserError, match=problem):
        Axis.parse(kind, text)


def test_cells_render_with_the_lora_file_outermost_and_sit_where_the_axes_say():
    variants = Axis("variant", ("/x/merge a.safetensors", "/x/merge b.safetensors"))
    spec = GridSpec(BASE, (Axis.parse("strength", "-1:1:1"), Axis.parse("seed", "1,2"), variants))
    assert (spec.shape, spec.count, spec.columns, spec.rows) == ((3, 2, 2), 12, 3, 4)
    cells = spec.cells()
    files = [c.request.loras[0].file for c in cells]
    assert files == ["/x/merge a.safetensors"] * 6 + ["/x/merge b.safetensors"] * 6
    assert spec.column_labels() == ["strength -1", "strength 0", "strength 1"]
    assert spec.row_labels() == [
        "merge a · seed 1",
        "merge a · seed 2",
        "merge b · seed 1",
        "merge b · seed 2",
    ]
    cell = next(c for c in cells if c.index == (2, 1, 1))
    assert (cell.row, cell.col, cell.name) == (3, 2, "r3c2")
    assert cell.request.seed == 2 and cell.request.loras[0].strength == 1.0
    assert cell.labels == ("strength 1", "seed 2", "merge b")
    assert sorted((c.row, c.col) for c in cells) == [(r, c) for r in range(4) for c in range(3)]
    zero = spec.zero_strength_cell(cell)
    assert zero.index == (1, 1, 1) and zero.request.loras[0].strength == 0.0
    assert GridSpec.from_json(spec.to_json()) == spec


def test_a_block_preset_keeps_the_entrys_layer_groups_and_needs_the_block_count():
    blocks = Axis("blocks", ("first third", "attn blocks=1@0.5"))
    with pytest.raises(UserError, match="block count"):
        GridSpec(BASE, (blocks,))
    spec = GridSpec(BASE, (blocks,), num_blocks=6)
    assert [c.request.loras[0].selector for c in spec.cells()] == ["attn blocks=0-1", "attn blocks=1@0.5"]
    with pytest.raises(UserError):
        GridSpec(BASE, (Axis("blocks", ("blocks=9-2",)),), num_blocks=6)


def test_lora_axes_need_a_lora_and_axes_must_differ():
    no_lora = BASE.replace(loras=())
    with pytest.raises(UserError, match="needs a LoRA"):
        GridSpec(no_lora, (Axis.parse("strength", "0,1"),))
    GridSpec(no_lora, (Axis.parse("seed", "1,2"),))  # a seed grid of the bare model is fine
    with pytest.raises(UserError, match="same thing"):
        GridSpec(BASE, (Axis.parse("seed", "1"), Axis.parse("seed", "2")))
    with pytest.raises(UserError, match="cannot be combined"):
        GridSpec(BASE, (Axis.parse("strength", "1"), Axis.parse("strength_high", "1")))
    with pytest.raises(UserError, match="one to 3 axes"):
        GridSpec(BASE, ())


def test_per_expert_strength_axes_and_prompt_axes():
    spec = GridSpec(BASE, (Axis.parse("strength_high", "0,1"), Axis.parse("prompt", "a cat|a dog")))
    cells = spec.cells()
    assert [c.request.prompt for c in cells] == ["a cat", "a cat", "a dog", "a dog"]
    entry = cells[1].request.loras[0]
    assert (entry.strength_high, entry.strength_for("high"), entry.strength_for("low")) == (1.0, 1.0, 1.0)
    assert spec.column_labels() == ["high-noise strength 0", "high-noise strength 1"]


def test_short_labels_drop_the_axis_names():
    assert short_label("strength -1") == "-1"
    assert short_label("first third · seed 2") == "first third · 2"
    assert short_label("high-noise strength 0.5") == "0.5"
    assert short_label("slider a") == "slider a"


def test_geometry_is_even_and_the_vertical_layout_swaps_rows_and_columns():
    spec = GridSpec(BASE, (Axis.parse("strength", "-3:3:1"), Axis.parse("seed", "1,2")))
    wide = grid_geometry(spec, 480, 832)
    tall = grid_geometry(spec, 480, 832, layout="vertical")
    assert (wide.rows, wide.cols, tall.rows, tall.cols) == (2, 7, 7, 2)
    assert all(v % 2 == 0 for g in (wide, tall) for v in (g.width, g.height, *g.cell_rect(1, 1)))
    assert wide.at(*wide.cell_rect(1, 5)[:2]) == (1, 5) and wide.at(0, 0) is None
    assert spec_position(*layout_position(1, 5, "vertical"), "vertical") == (1, 5)
    with pytest.raises(UserError, match="even"):
        grid_geometry(spec, 31, 32)


def test_a_grid_job_needs_a_cache_and_a_known_export():
    spec = GridSpec(BASE, (Axis.parse("strength", "0,1"),))
    with pytest.raises(UserError, match="cache folder"):
        GridJob(spec)
    with pytest.raises(UserError, match="exports to"):
        GridJob(spec, cache_dir="/c", out="/x/grid.avi")
    with pytest.raises(UserError, match="preset"):
        ExportOptions(preset="warp")
    job = GridJob(
        spec, cache_dir="/c", out="/x/grid.mp4", export=ExportOptions(layout="vertical", sheet_frame=3)
    )
    assert GridJob.from_json(job.to_json()) == job
