"""The Compare section's grid player (pytest-qt, offscreen): real H.264 cells, frames checked per cell."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from difflora_gui.compare.grid_canvas import BACKGROUND_RGB
from difflora_gui.compare.grid_spec import Axis, GridSpec
from difflora_gui.compare.grid_types import CellResult, GridResult
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.video_io import read_video, write_video
from difflora_gui.qt.compare.cell_dialog import CellPlayerDialog
from difflora_gui.qt.compare.cell_frames import display_cell_size
from difflora_gui.qt.compare.grid_player import NO_ZERO_TIP, GridPlayer

FRAMES = 9


def cell_clip(number: int, frames: int = FRAMES, size: int = 32) -> np.ndarray:
    """Flat frames: red = 25 × frame index + 10 (which frame), green and blue say which cell."""
    clip = np.empty((frames, size, size, 3), np.uint8)
    for f in range(frames):
        clip[f] = (25 * f + 10, 30 + 40 * number, 220 - 30 * number)
    return clip


def make_spec(strengths: str = "0, 0.5, 1", seeds: str = "1, 2") -> GridSpec:
    base = PreviewRequest(
        prompt="a cat", width=32, height=32, frames=FRAMES, loras=(LoraEntry("s.safetensors"),)
    )
    return GridSpec(base, (Axis.parse("strength", strengths), Axis.parse("seed", seeds)))


def make_result(spec: GridSpec, folder, *, missing=(), frames=None, size: int = 32) -> GridResult:
    """Every cell's video written under ``folder`` (a name with a space and non-ASCII letters)."""
    folder.mkdir(parents=True, exist_ok=True)
    cells = []
    for number, cell in enumerate(spec.cells()):
        count = (frames or {}).get((cell.row, cell.col), FRAMES)
        video = folder / f"cell r{cell.row}c{cell.col} é.mp4"
        if (cell.row, cell.col) not in missing:
            write_video(video, cell_clip(number, count, size), 8)
        cells.append(
            CellResult(
                cell.index,
                cell.row,
                cell.col,
                cell.labels,
                str(video),
                "",
                f"key{number}",
                True,
                count,
                size,
                size,
                8,
                cell.request.to_json(),
            )
        )
    return GridResult(tuple(cells), rendered=len(cells), cached=0)


def decoded(result: GridResult) -> dict:
    return {(c.row, c.col): read_video(c.video)[0] for c in result.cells}


@pytest.fixture
def grid(tmp_path):
    spec = make_spec()
    return spec, make_result(spec, tmp_path / "grid cells ü")


def loaded_player(qtbot, spec, result, layout="horizontal", **kwargs) -> GridPlayer:
    player = GridPlayer(**kwargs)
    qtbot.addWidget(player)
    with qtbot.waitSignal(player.loaded, timeout=20000):
        player.set_grid(spec, result, layout)
    assert not player.is_loading()
    return player


def test_after_a_seek_every_cell_shows_the_same_frame_index(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    frames = decoded(result)
    assert player.frame_count == FRAMES and player.frame_index == 0 and player.fps() == pytest.approx(8)
    assert player.geometry_of_grid().cols == 3 and player.geometry_of_grid().rows == 2
    for k in (4, 8, 0, 6):
        player.seek(k)
        for key, clip in frames.items():
            shown = player.cell_frame(*key)
            assert np.array_equal(shown, clip[k]), (key, k)
            # and it is frame k as written (red encodes the frame index), not merely the same frame
            assert abs(float(shown[..., 0].mean()) - (25 * k + 10)) < 4
        assert player.status.full_text() == f"3 × 2 cells · frame {k + 1} of {FRAMES}"
    assert player.composed() is player.view.composed()


def test_cells_are_downscaled_to_fit_the_memory_budget(qtbot, tmp_path):
    spec = make_spec()
    result = make_result(spec, tmp_path / "big", size=64)
    budget = 6 * FRAMES * 32 * 32 * 3  # half the width and height of 64 × 64 cells
    player = loaded_player(qtbot, spec, result, memory_budget=budget)
    frames = decoded(result)
    player.seek(5)
    for key, clip in frames.items():
        expected = cv2.resize(clip[5], (32, 32), interpolation=cv2.INTER_AREA)
        assert player.cell_frame(*key).shape == (32, 32, 3)
        assert np.abs(player.cell_frame(*key).astype(int) - expected).max() <= 1


def test_display_cell_size_keeps_the_grid_in_the_budget():
    width, height = display_cell_size(832, 480, 243, 81)
    assert width % 2 == 0 and height % 2 == 0 and width <= 832 and height <= 480
    assert 243 * 81 * width * height * 3 <= 512 << 20
    assert width / height == pytest.approx(832 / 480, rel=0.05)
    assert display_cell_size(832, 480, 14, 81) == (522, 300)  # 14 × 81 × 522 × 300 × 3 ≤ 512 MiB
    assert display_cell_size(64, 64, 4, 9) == (64, 64)  # never above the source size


def test_play_tick_step_loop_and_speed_move_all_cells_together(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    frames = decoded(result)

    def all_at(k):
        return all(np.array_equal(player.cell_frame(*key), clip[k]) for key, clip in frames.items())

    player.play()
    assert player.is_playing() and player.interval_ms() == 125
    for expected in (1, 2, 3):
        player.tick()
        assert player.frame_index == expected and all_at(expected)
    player.set_speed(2.0)
    assert player.interval_ms() == round(1000 / 16)
    player.pause()
    player.seek(FRAMES - 1)
    player.set_loop(True)
    player.tick()
    assert player.frame_index == 0 and all_at(0)  # loop wraps
    player.set_loop(False)
    player.seek(FRAMES - 2)
    player.play()
    player.tick()
    assert player.frame_index == FRAMES - 1 and not player.is_playing()  # no loop: stops at the end
    player.step(1)
    assert player.frame_index == FRAMES - 1
    player.step(-3)
    assert player.frame_index == FRAMES - 4 and all_at(FRAMES - 4)
    player.play()  # play at the end of a non-looping clip starts again
    assert player.is_playing()


def test_a_shorter_cell_holds_its_last_frame(qtbot, tmp_path):
    spec = make_spec()
    result = make_result(spec, tmp_path / "short", frames={(1, 2): 5})
    player = loaded_player(qtbot, spec, result)
    short = read_video(result.cell_at(1, 2).video)[0]
    assert player.frame_count == FRAMES
    player.seek(8)
    assert np.array_equal(player.cell_frame(1, 2), short[4])
    assert np.array_equal(player.cell_frame(0, 0), decoded(result)[(0, 0)][8])


def test_difference_view_against_the_strength_zero_cell(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    frames = decoded(result)
    assert player.difference_available() and player.difference_box.isEnabled()
    assert not player.gain_spin.isEnabled()
    player.seek(3)
    player.set_difference(True, 6.0)
    assert player.difference_box.isChecked() and player.gain_spin.value() == 6.0
    assert player.status.full_text().endswith("difference ×6")
    for (row, col), clip in frames.items():
        shown = player.cell_frame(row, col)
        if col == 0:  # strength 0 is the first column: compared with itself
            assert not shown.any()
            continue
        reference = frames[(row, 0)][3].astype(int)
        expected = np.clip(np.abs(clip[3].astype(int) - reference) * 6, 0, 255)
        assert np.abs(shown.astype(int) - expected).max() <= 1
        assert shown.any()
    # the check box and the gain box drive it too
    player.gain_spin.setValue(2.0)
    assert player.difference() == (True, 2.0)
    player.difference_box.setChecked(False)
    assert player.difference() == (False, 2.0)
    assert np.array_equal(player.cell_frame(0, 1), frames[(0, 1)][3])


def test_difference_is_refused_without_a_strength_zero(qtbot, tmp_path):
    spec = make_spec(strengths="0.5, 1")
    player = loaded_player(qtbot, spec, make_result(spec, tmp_path / "no zero"))
    assert not player.difference_available()
    player.set_difference(True)
    assert player.difference() == (False, 4.0)
    assert not player.difference_box.isEnabled() and not player.difference_box.isChecked()
    assert player.difference_box.toolTip() == NO_ZERO_TIP


@pytest.mark.parametrize("layout", ["horizontal", "vertical"])
def test_clicking_a_cell_emits_the_spec_position(qtbot, grid, layout):
    spec, result = grid
    player = loaded_player(qtbot, spec, result, layout)
    player.resize(900, 640)
    player.show()
    qtbot.waitExposed(player)
    geometry = player.geometry_of_grid()
    assert (geometry.rows, geometry.cols) == ((2, 3) if layout == "horizontal" else (3, 2))
    for key in [(r, c) for r in range(2) for c in range(3)]:
        point = player.cell_point(*key)
        with qtbot.waitSignal(player.cell_clicked, timeout=2000) as clicked:
            QTest.mouseClick(
                player.view.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point
            )
        assert clicked.args == list(key)
    # a label band or the margin is no cell
    band = player.view.image_rect().topLeft() + QPointF(2, 2)
    assert player.cell_at_point(band) is None
    with qtbot.assertNotEmitted(player.cell_clicked):
        QTest.mouseClick(
            player.view.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, band.toPoint()
        )
    # switching the layout keeps the frame and maps the clicks anew
    player.seek(2)
    other = "vertical" if layout == "horizontal" else "horizontal"
    player.set_layout(other)
    assert player.frame_index == 2
    with qtbot.waitSignal(player.cell_clicked, timeout=2000) as clicked:
        QTest.mouseClick(
            player.view.canvas,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            player.cell_point(1, 2),
        )
    assert clicked.args == [1, 2]
    assert np.array_equal(player.cell_frame(1, 2), decoded(result)[(1, 2)][2])


def test_open_cell_shows_the_cell_at_the_current_frame(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    player.resize(900, 640)
    player.show()
    qtbot.waitExposed(player)
    player.seek(5)
    dialog = player.open_cell(1, 2)
    assert isinstance(dialog, CellPlayerDialog) and not dialog.isModal() and dialog.isVisible()
    qtbot.waitUntil(
        lambda: not dialog.player.is_loading() and dialog.player.frame_count == FRAMES, timeout=10000
    )
    assert dialog.player.frame_index == 5
    assert dialog.player.path() == __import__("pathlib").Path(result.cell_at(1, 2).video)
    assert "strength 1" in dialog.windowTitle() and "seed 2" in dialog.windowTitle()
    # a double-click on a cell opens it too
    before = len(player.findChildren(CellPlayerDialog))
    QTest.mouseDClick(
        player.view.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, player.cell_point(0, 1)
    )
    opened = player.findChildren(CellPlayerDialog)
    assert len(opened) == before + 1 and any(d.cell.col == 1 and d.cell.row == 0 for d in opened)
    for each in opened:
        each.close()


def test_a_second_set_grid_replaces_the_first(qtbot, tmp_path):
    first_spec = make_spec(strengths="0, 1", seeds="1")
    first = make_result(first_spec, tmp_path / "first")
    second_spec = make_spec()
    second = make_result(second_spec, tmp_path / "second", size=64)
    player = GridPlayer()
    qtbot.addWidget(player)
    emitted = []
    player.loaded.connect(lambda: emitted.append(player.geometry_of_grid().cols))
    player.set_grid(first_spec, first)
    with qtbot.waitSignal(player.loaded, timeout=20000):
        player.set_grid(second_spec, second)
    qtbot.wait(300)  # anything the first load still delivers arrives (and is dropped) by now
    assert emitted == [3]
    assert player.composed().shape[:2] == (player.geometry_of_grid().height, player.geometry_of_grid().width)
    frames = decoded(second)
    for key, clip in frames.items():
        assert np.array_equal(player.cell_frame(*key), clip[0])


def test_a_missing_or_broken_cell_says_so_and_the_others_play(qtbot, tmp_path):
    spec = make_spec()
    result = make_result(spec, tmp_path / "holes", missing={(0, 1)})
    broken = result.cell_at(1, 0).video
    with open(broken, "wb") as handle:
        handle.write(b"not a video at all" * 20)
    player = GridPlayer()
    qtbot.addWidget(player)
    problems = []
    player.problem.connect(problems.append)
    with qtbot.waitSignal(player.loaded, timeout=20000):
        player.set_grid(spec, result)
    assert len(problems) == 2 and player.problems == problems
    assert "not found" in player.cell_error(0, 1) and result.cell_at(0, 1).video in player.cell_error(0, 1)
    assert "readable" in player.cell_error(1, 0) or "video" in player.cell_error(1, 0)
    assert player.cell_frame(0, 1) is None and player.cell_frame(1, 0) is None
    assert "2 cells could not be read" in player.status.full_text()
    x, y, w, h = player.geometry_of_grid().cell_rect(0, 1)
    tile = player.composed()[y : y + h, x : x + w]
    assert not np.array_equal(tile, np.broadcast_to(BACKGROUND_RGB, tile.shape))  # a message, drawn
    player.seek(7)
    frames = {(c.row, c.col): c for c in result.cells}
    for key in frames.keys() - {(0, 1), (1, 0)}:
        assert np.array_equal(player.cell_frame(*key), read_video(frames[key].video)[0][7])
    # the difference view: a cell whose strength-0 cell is unreadable says that, the rest compare
    player.set_difference(True)
    assert player.cell_frame(1, 1) is not None
    assert not player.cell_frame(0, 0).any()


def test_clear_and_an_empty_grid(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    player.clear("Render a grid to compare")
    assert player.composed() is None and player.frame_count == 0
    assert player.view.message() == "Render a grid to compare"
    assert not player.difference_available() and player.status.full_text() == ""
    player.set_grid(spec, GridResult((), 0, 0))
    assert player.view.message() == "The grid has no cells" and not player.is_loading()


def test_the_wheel_leaves_an_unfocused_gain_alone(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    player.show()
    qtbot.waitExposed(player)
    player.set_difference(True, 4.0)
    spin = player.gain_spin
    centre = QPointF(spin.width() / 2, spin.height() / 2)

    def wheel():
        event = QWheelEvent(
            centre,
            spin.mapToGlobal(centre),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(spin, event)

    wheel()
    assert spin.value() == 4.0
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    wheel()
    assert spin.value() == 5.0
    assert math.isclose(player.difference()[1], 5.0)


def test_hover_names_the_cell_and_the_labels_and_tab_reaches_the_controls(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    player.resize(900, 640)
    player.show()
    qtbot.waitExposed(player)
    tip = player._tooltip_at(QPointF(player.cell_point(1, 2)))
    assert tip.startswith("strength 1 · seed 2")
    geometry, target = player.geometry_of_grid(), player.view.image_rect()
    scale = target.width() / geometry.width
    x, _y, w, h = geometry.column_label_rect(1)
    assert player._tooltip_at(QPointF(target.left() + (x + w / 2) * scale, target.top() + h / 2 * scale)) == (
        "strength 0.5"
    )
    assert player.difference_box.nextInFocusChain() is player.gain_spin
    assert player.gain_spin.focusPolicy() == Qt.FocusPolicy.StrongFocus


def test_a_player_deleted_mid_decode_stops_its_workers(qtbot, grid):
    spec, result = grid
    player = GridPlayer()
    player.set_grid(spec, result)
    stop = player._stop[0]
    assert stop is not None and not stop.is_set()
    player.deleteLater()
    qtbot.waitUntil(stop.is_set, timeout=5000)
    qtbot.wait(300)  # what the workers still deliver goes nowhere, without an error


def test_keys_drive_the_grid_and_its_focus_shows(qtbot, grid):
    spec, result = grid
    player = loaded_player(qtbot, spec, result)
    player.show()
    qtbot.waitExposed(player)
    QTest.mouseClick(
        player.view.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, player.cell_point(0, 0)
    )
    qtbot.waitUntil(player.hasFocus)
    assert "solid #" in player.view.styleSheet()  # the accent ring
    QTest.keyClick(player, Qt.Key.Key_Right)
    QTest.keyClick(player, Qt.Key.Key_Right)
    assert player.frame_index == 2
    assert np.array_equal(player.cell_frame(1, 1), decoded(result)[(1, 1)][2])
    player.difference_box.setFocus()
    qtbot.waitUntil(lambda: not player.hasFocus())
    assert "transparent" in player.view.styleSheet()
