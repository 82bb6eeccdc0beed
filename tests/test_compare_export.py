"""Grid export: one H.264 video (or WebP/GIF) of the cells with their axis labels, and a PNG sheet.

Cells are real H.264 clips (write_video) in a folder with spaces and non-ASCII characters; every
output is decoded back with PyAV or Pillow and checked by its pixels.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from difflora_gui.compare import export as export_module
from difflora_gui.compare.compose import Prefetch
from difflora_gui.compare.export import contact_sheet, export_grid, sheet_path
from difflora_gui.compare.grid_canvas import BACKGROUND_RGB, grid_geometry
from difflora_gui.compare.grid_spec import Axis, GridSpec
from difflora_gui.compare.grid_types import CellResult, ExportOptions, GridResult
from difflora_gui.compare.labels import ascii_label, fit_label
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.recording import RecordingContext
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.video_io import write_video

W, H, FRAMES = 64, 48, 5
#: H.264 (crf 18 cells, crf 20 grid) and two yuv420p round trips of a flat colour stay within this
TOLERANCE = 10


def colour(row: int, col: int) -> np.ndarray:
    return np.array([40 + 70 * col, 60 + 100 * row, 200 - 60 * col], np.float64)


def clip(row: int, col: int, frames: int = FRAMES, width: int = W, height: int = H) -> np.ndarray:
    """A flat colour with a white square moving along the bottom edge (so no two frames are equal)."""
    out = np.empty((frames, height, width, 3), np.uint8)
    out[:] = colour(row, col).astype(np.uint8)
    for f in range(frames):
        out[f, height - 8 :, 8 * f : 8 * f + 8] = 255
    return out


@pytest.fixture(scope="module")
def spec() -> GridSpec:
    base = PreviewRequest("a cat", loras=(LoraEntry("slider.safetensors"),))
    return GridSpec(base, (Axis("strength", (-1.0, 0.0, 1.0)), Axis("seed", (1, 2))))


def _cell_result(cell, path: Path, frames=FRAMES, width=W, height=H) -> CellResult:
    return CellResult(cell.index, cell.row, cell.col, cell.labels, str(path), "", cell.name, True,
                      frames, width, height, 16, {})  # fmt: skip


@pytest.fixture(scope="module")
def result(spec, tmp_path_factory) -> GridResult:
    folder = tmp_path_factory.mktemp("grid") / "cells é ü"
    folder.mkdir()
    cells = []
    for cell in spec.cells():
        path = folder / f"cell {cell.name} ü.mp4"
        write_video(path, clip(cell.row, cell.col), 16)
        cells.append(_cell_result(cell, path))
    return GridResult(tuple(cells), len(cells), 0)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "grid out ß"
    folder.mkdir()
    return folder


def decode(path: Path) -> tuple[np.ndarray, dict]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt}
    return frames, info


def region(image: np.ndarray, rect) -> np.ndarray:
    x, y, w, h = rect
    return image[y : y + h, x : x + w].astype(np.float64)


def cell_colour(image: np.ndarray, rect) -> np.ndarray:
    """The mean colour of a cell's flat part (away from the moving square and the edges)."""
    x, y, w, h = rect
    return region(image, (x + 6, y + 6, w - 12, h - 20)).reshape(-1, 3).mean(axis=0)


def assert_squares_follow_the_frames(frames: np.ndarray, rect) -> None:
    """Each grid frame shows its own frame of the cell: the white square is at 8 × frame pixels
    (the encoder's frame buffers are reused, so a frame composed into a busy buffer would show)."""
    x, y, _w, h = rect
    for f in range(len(frames)):
        assert region(frames[f], (x + 8 * f + 2, y + h - 6, 4, 4)).mean() > 200, f
        if f + 1 < FRAMES:
            assert region(frames[f], (x + 8 * (f + 1) + 2, y + h - 6, 4, 4)).mean() < 200, f


def text_pixels(image: np.ndarray, rect) -> int:
    return int((region(image, rect).mean(axis=2) > 120).sum())


def background_share(image: np.ndarray, rect) -> float:
    pixels = region(image, rect)
    return float((np.abs(pixels - BACKGROUND_RGB).max(axis=2) <= TOLERANCE).mean())


def test_mp4_is_h264_with_the_layout_size_frames_cells_and_labels(spec, result, out_dir):
    out = out_dir / "grid ü.mp4"
    ctx = RecordingContext()
    exported = export_grid(result, spec, out, ExportOptions(), ctx=ctx)
    geometry = grid_geometry(spec, W, H)
    frames, info = decode(out)
    assert info == {"codec": "h264", "pix_fmt": "yuv420p"}
    assert frames.shape == (FRAMES, geometry.height, geometry.width, 3)
    assert (exported.out, exported.frames, exported.width, exported.height, exported.sheet) == (
        str(out), FRAMES, geometry.width, geometry.height, "",
    )  # fmt: skip
    for cell in result.cells:
        rect = geometry.cell_rect(cell.row, cell.col)
        for f in (0, FRAMES - 1):
            assert np.abs(cell_colour(frames[f], rect) - colour(cell.row, cell.col)).max() <= TOLERANCE
        assert_squares_follow_the_frames(frames, rect)
    for col in range(geometry.cols):
        band = geometry.column_label_rect(col)
        assert background_share(frames[2], band) > 0.5 and text_pixels(frames[2], band) >= 10
    for row in range(geometry.rows):
        band = geometry.row_label_rect(row)
        assert background_share(frames[2], band) > 0.5 and text_pixels(frames[2], band) >= 10
    texts = [p.text for p in ctx.progress_reports]
    assert texts[0] == "encoding frame 1 of 5" and texts[-1] == "encoding frame 5 of 5"
    assert [p.done for p in ctx.progress_reports][-1] == FRAMES
    assert sorted(p.name for p in out_dir.iterdir()) == ["grid ü.mp4"]


def test_vertical_layout_swaps_rows_and_columns(spec, result, out_dir):
    out = out_dir / "vertical.mp4"
    exported = export_grid(result, spec, out, ExportOptions(layout="vertical"))
    geometry = grid_geometry(spec, W, H, layout="vertical")
    assert (geometry.rows, geometry.cols) == (3, 2)
    frames, _info = decode(out)
    assert frames.shape[1:3] == (geometry.height, geometry.width) == (exported.height, exported.width)
    for cell in result.cells:
        rect = geometry.cell_rect(cell.col, cell.row)
        assert np.abs(cell_colour(frames[1], rect) - colour(cell.row, cell.col)).max() <= TOLERANCE
    assert all(text_pixels(frames[1], geometry.row_label_rect(r)) >= 10 for r in range(3))


def test_without_labels_there_are_no_bands_and_no_text(spec, result, out_dir):
    out = out_dir / "plain.mp4"
    export_grid(result, spec, out, ExportOptions(labels=False))
    geometry = grid_geometry(spec, W, H, labels=False)
    assert geometry.top == geometry.left == 0
    frames, _info = decode(out)
    assert frames.shape[1:3] == (geometry.height, geometry.width)
    outside = np.ones(frames.shape[1:3], bool)
    for row in range(geometry.rows):
        for col in range(geometry.cols):
            x, y, w, h = geometry.cell_rect(row, col)
            outside[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = False
    assert outside.any()
    assert (frames[2][outside].astype(float).mean(axis=1) > 120).sum() == 0


@pytest.mark.parametrize("suffix", [".webp", ".gif"])
def test_animated_webp_and_gif_have_every_frame(spec, result, out_dir, suffix):
    out = out_dir / f"clip é{suffix}"
    exported = export_grid(result, spec, out, ExportOptions())
    geometry = grid_geometry(spec, W, H)
    with Image.open(out) as image:
        assert image.n_frames == FRAMES == exported.frames
        assert image.size == (geometry.width, geometry.height)
        image.seek(2)
        rgb = np.asarray(image.convert("RGB"))
    cell = result.cells[0]
    rect = geometry.cell_rect(cell.row, cell.col)
    assert np.abs(cell_colour(rgb, rect) - colour(cell.row, cell.col)).max() <= 2 * TOLERANCE
    assert text_pixels(rgb, geometry.column_label_rect(0)) >= 10


def test_webm_is_vp9(spec, result, out_dir):
    out = out_dir / "grid.webm"
    export_grid(result, spec, out, ExportOptions())
    frames, info = decode(out)
    assert info["codec"] == "vp9" and info["pix_fmt"] == "yuv420p" and len(frames) == FRAMES
    geometry = grid_geometry(spec, W, H)
    for cell in result.cells:
        rect = geometry.cell_rect(cell.row, cell.col)
        assert np.abs(cell_colour(frames[2], rect) - colour(cell.row, cell.col)).max() <= 2 * TOLERANCE
        assert_squares_follow_the_frames(frames, rect)


def test_contact_sheet_png_is_the_composed_frame(spec, result, out_dir):
    out = out_dir / "sheet grid.mp4"
    options = ExportOptions(sheet_frame=3)
    exported = export_grid(result, spec, out, options)
    assert exported.sheet == str(sheet_path(out)) == str(out_dir / "sheet grid.sheet.png")
    with Image.open(exported.sheet) as image:
        written = np.asarray(image.convert("RGB"))
    sheet = contact_sheet(result, spec, 3, options)
    assert sheet.dtype == np.uint8 and np.array_equal(written, sheet)
    geometry = grid_geometry(spec, W, H)
    assert sheet.shape == (geometry.height, geometry.width, 3)
    for cell in result.cells:
        rect = geometry.cell_rect(cell.row, cell.col)
        assert np.abs(cell_colour(sheet, rect) - colour(cell.row, cell.col)).max() <= TOLERANCE
        x, y, _w, h = rect
        assert region(sheet, (x + 25, y + h - 6, 6, 4)).mean() > 200  # frame 3's square
    # a frame past the end is the last one
    assert np.array_equal(contact_sheet(result, spec, 99, options), contact_sheet(result, spec, 4, options))


def test_an_existing_output_is_refused_and_untouched_without_overwrite(spec, result, out_dir):
    out = out_dir / "taken.mp4"
    out.write_bytes(b"old")
    with pytest.raises(UserError, match="overwrite"):
        export_grid(result, spec, out, ExportOptions())
    assert out.read_bytes() == b"old"
    sheet = sheet_path(out_dir / "other.mp4")
    sheet.write_bytes(b"old sheet")
    with pytest.raises(UserError, match="overwrite"):
        export_grid(result, spec, out_dir / "other.mp4", ExportOptions(sheet_frame=0))
    assert sheet.read_bytes() == b"old sheet" and not (out_dir / "other.mp4").exists()
    export_grid(result, spec, out, ExportOptions(), overwrite=True)
    assert decode(out)[1]["codec"] == "h264"


def test_a_cancelled_export_leaves_no_file(spec, result, out_dir):
    ctx = RecordingContext(cancel_after_progress=2)
    with pytest.raises(JobCancelled):
        export_grid(result, spec, out_dir / "cancelled.mp4", ExportOptions(sheet_frame=1), ctx=ctx)
    assert len(ctx.progress_reports) == 2
    assert list(out_dir.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "grid compose"]  # the worker was joined


def test_prefetch_hands_frames_in_order_and_raises_the_workers_error():
    assert list(Prefetch(iter(range(7)))) == list(range(7))

    def failing():
        yield 1
        raise UserError("cell seed 2: could not decode")

    frames = Prefetch(failing())
    assert next(frames) == 1
    with pytest.raises(UserError, match="could not decode"):
        next(frames)
    frames.close()


def test_cells_of_different_sizes_are_refused_naming_the_cell(spec, result, out_dir):
    odd = result.cells[-1]
    path = out_dir / "small ü.mp4"
    write_video(path, clip(0, 0, width=32, height=32), 16)
    cells = (*result.cells[:-1], _cell_result(spec.cell_at(odd.row, odd.col), path, width=32, height=32))
    with pytest.raises(UserError) as error:
        export_grid(GridResult(cells, 6, 0), spec, out_dir / "bad.mp4", ExportOptions())
    message = str(error.value)
    assert " · ".join(odd.labels) in message and "32×32" in message and str(path) in message
    assert not (out_dir / "bad.mp4").exists()


def test_a_cell_at_another_frame_rate_is_refused(spec, result, out_dir):
    path = out_dir / "fast cell.mp4"
    write_video(path, clip(0, 1), 24)
    odd = spec.cell_at(0, 1)
    cells = tuple(
        dataclasses.replace(_cell_result(odd, path), fps=24) if (c.row, c.col) == (0, 1) else c
        for c in result.cells
    )
    with pytest.raises(UserError, match=r"at 24 fps .* at 16 fps") as error:
        export_grid(GridResult(cells, 6, 0), spec, out_dir / "bad.mp4", ExportOptions())
    assert " · ".join(odd.labels) in str(error.value) and str(path) in str(error.value)


def test_a_shorter_cell_holds_its_last_frame(spec, result, out_dir):
    longer = out_dir / "long cell.mp4"
    frames = clip(1, 1, frames=9)
    frames[:, : H - 8] = np.linspace(30, 230, 9).astype(np.uint8)[:, None, None, None]  # brightening
    write_video(longer, frames, 16)
    first = result.cells[0]
    cells = (_cell_result(spec.cell_at(first.row, first.col), longer, frames=9), *result.cells[1:])
    out = out_dir / "mixed.mp4"
    exported = export_grid(GridResult(cells, 6, 0), spec, out, ExportOptions())
    decoded, _info = decode(out)
    assert exported.frames == len(decoded) == 9
    geometry = grid_geometry(spec, W, H)
    long_rect = geometry.cell_rect(first.row, first.col)
    assert cell_colour(decoded[8], long_rect).mean() == pytest.approx(230, abs=TOLERANCE)
    short = result.cells[1]
    short_rect = geometry.cell_rect(short.row, short.col)
    # frames 4…8 all show the short cell's last frame: its square stays at the last position
    x, y, _w, h = short_rect
    for f in (4, 8):
        assert region(decoded[f], (x + 33, y + h - 6, 6, 4)).mean() > 200
        assert np.abs(cell_colour(decoded[f], short_rect) - colour(short.row, short.col)).max() <= TOLERANCE


def test_without_libx264_the_export_falls_back_to_mp4v_and_says_so(spec, result, out_dir, monkeypatch):
    from difflora_gui.preview import video_io

    real = video_io._pyav_encoder
    monkeypatch.setattr(video_io, "_pyav_encoder", lambda codec: None if codec == "h264" else real(codec))
    ctx = RecordingContext()
    out = out_dir / "fallback.mp4"
    export_grid(result, spec, out, ExportOptions(), ctx=ctx)
    frames, info = decode(out)
    assert info["codec"] == "mpeg4" and len(frames) == FRAMES
    assert any("mp4v" in line for line in ctx.logs)
    assert sorted(p.name for p in out_dir.iterdir()) == ["fallback.mp4"]


def test_long_animations_are_refused_with_a_pointer_to_mp4(spec, result, out_dir, monkeypatch):
    monkeypatch.setattr(export_module, "MAX_ANIMATED_FRAMES", 3)
    with pytest.raises(UserError, match=r"export \.mp4"):
        export_grid(result, spec, out_dir / "long.gif", ExportOptions())
    assert list(out_dir.iterdir()) == []


def test_labels_are_transliterated_and_elided_to_fit():
    assert ascii_label("seed 1 · lóra_ü × 2") == "seed 1 - lora_u x 2"
    shown, scale, _thickness = fit_label("a rather long variant name for a small cell", 60, 20)
    assert shown.endswith("...") and len(shown) < 20 and scale > 0
    assert fit_label("seed 1", 200, 20)[0] == "seed 1"
