"""The Preview player and A/B compare (pytest-qt, offscreen): real videos decoded, frames checked on screen."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from difflora_gui.preview.video_io import VideoReader, write_video
from difflora_gui.qt.preview.frame_view import qimage_rgb
from difflora_gui.qt.preview.player import VideoPlayer
from difflora_gui.qt.preview.swipe import SwipeCompare


def numbered_clip(frames=9, height=48, width=64, seed=0) -> np.ndarray:
    """Smooth frames that differ from each other (a moving gradient), uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = [
        np.stack(
            [
                128 + 100 * np.sin(x / width * 3 + 0.3 * i + seed),
                128 + 100 * np.cos(y / height * 2 + 0.2 * i),
                np.full_like(x, (20 * i + 40 * seed) % 256),
            ],
            -1,
        )
        for i in range(frames)
    ]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def loaded_player(qtbot, path) -> VideoPlayer:
    player = VideoPlayer()
    qtbot.addWidget(player)
    with qtbot.waitSignal(player.loaded, timeout=10000):
        player.load(path)
    return player


@pytest.fixture
def h264(tmp_path):
    return write_video(tmp_path / "clip.mp4", numbered_clip(), 8)


def test_loads_an_mp4_and_shows_each_frame_exactly(qtbot, h264):
    player = loaded_player(qtbot, h264)
    decoded = VideoReader(h264).frames()
    assert player.frame_count == 9 and player.frame_index == 0 and player.fps() == pytest.approx(8.0)
    assert player.label() == str(h264) and "64×48" in player.info.text() and "h264" in player.info.text()
    player.resize(400, 300)
    player.show()
    qtbot.waitExposed(player)
    player.set_zoom(1.0)
    with qtbot.waitSignal(player.frame_changed) as changed:
        player.seek(4)
    assert changed.args == [4] and player.frame_index == 4
    assert np.array_equal(player.current_frame(), decoded[4])
    # at 100 % the screen pixels are the decoded pixels
    assert np.array_equal(qimage_rgb(player.view.canvas.grab().toImage()), decoded[4])
    player.step()
    assert player.frame_index == 5
    assert np.array_equal(qimage_rgb(player.view.canvas.grab().toImage()), decoded[5])
    assert player.bar.counter.text() == "frame 6 / 9"
    player.step(-100)
    assert player.frame_index == 0
    player.seek(99)
    assert player.frame_index == 8


@pytest.mark.parametrize(("name", "codec"), [("fallback.mp4", "mp4v"), ("clip.webm", "auto")])
def test_plays_mp4v_and_webm(qtbot, tmp_path, name, codec):
    clip = numbered_clip(frames=5)
    player = loaded_player(qtbot, write_video(tmp_path / name, clip, 8, codec=codec))
    assert player.frame_count == 5 and player.current_frame().shape == (48, 64, 3)
    player.seek(3)
    assert np.abs(player.current_frame().astype(int) - clip[3]).mean() < 6


def test_keyboard_shortcuts(qtbot, h264):
    player = loaded_player(qtbot, h264)
    qtbot.keyClick(player, Qt.Key.Key_Space)
    assert player.is_playing()
    qtbot.keyClick(player, Qt.Key.Key_Space)
    assert not player.is_playing()
    qtbot.keyClick(player, Qt.Key.Key_Right)
    qtbot.keyClick(player, Qt.Key.Key_Period)
    assert player.frame_index == 2
    qtbot.keyClick(player, Qt.Key.Key_Left)
    assert player.frame_index == 1
    qtbot.keyClick(player, Qt.Key.Key_Comma)
    assert player.frame_index == 0
    qtbot.keyClick(player, Qt.Key.Key_End)
    assert player.frame_index == 8
    qtbot.keyClick(player, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert player.frame_index == 0  # ten back, stopped at the first frame
    qtbot.keyClick(player, Qt.Key.Key_Home)
    assert player.frame_index == 0
    assert player.loop()
    qtbot.keyClick(player, Qt.Key.Key_L)
    assert not player.loop() and not player.bar.loop_button.isChecked()
    qtbot.keyClick(player, Qt.Key.Key_BracketRight)
    assert player.speed() == 1.5
    qtbot.keyClick(player, Qt.Key.Key_1)
    assert player.view.zoom() == 1.0 and player.bar.zoom_combo.currentText() == "100%"
    qtbot.keyClick(player, Qt.Key.Key_F)
    assert player.view.zoom() == "fit"
    # a step while playing pauses, as in common players
    player.play()
    qtbot.keyClick(player, Qt.Key.Key_Right)
    assert not player.is_playing() and player.frame_index == 1
    # the same keys with the scrub slider focused
    player.play()
    qtbot.keyClick(player.bar.slider, Qt.Key.Key_Right)
    assert not player.is_playing() and player.frame_index == 2
    qtbot.keyClick(player.bar.slider, Qt.Key.Key_Space)
    assert player.is_playing()
    player.pause()
    # Ctrl/Alt combinations are the window's shortcuts
    qtbot.keyClick(player, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert not player.loop()


def test_loop_wraps_and_no_loop_stops_at_the_end(qtbot, h264):
    player = loaded_player(qtbot, h264)
    player.set_loop(True)
    player.seek(8)
    player.play()
    player.tick()
    assert player.frame_index == 0 and player.is_playing()
    player.set_loop(False)
    player.seek(7)
    player.tick()
    assert player.frame_index == 8 and not player.is_playing()
    assert player.bar.play_button.toolTip().startswith("Play")
    player.play()  # play at the end starts again
    assert player.frame_index == 0 and player.is_playing()
    player.pause()


def test_scrubbing_holds_playback_and_the_buttons_work(qtbot, h264):
    player = loaded_player(qtbot, h264)
    slider = player.bar.slider
    player.play()
    slider.setSliderDown(True)  # the user grabs the handle
    assert not player.is_playing()
    slider.setValue(5)
    assert player.frame_index == 5 and player.bar.counter.text() == "frame 6 / 9"
    slider.setSliderDown(False)
    assert player.is_playing()
    qtbot.mouseClick(player.bar.play_button, Qt.MouseButton.LeftButton)
    assert not player.is_playing()
    qtbot.mouseClick(player.bar.forward_button, Qt.MouseButton.LeftButton)
    assert player.frame_index == 6
    qtbot.mouseClick(player.bar.back_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(player.bar.back_button, Qt.MouseButton.LeftButton)
    assert player.frame_index == 4 and slider.value() == 4
    qtbot.mouseClick(player.bar.loop_button, Qt.MouseButton.LeftButton)
    assert not player.loop()


def test_speed_sets_the_timer_and_playback_really_advances(qtbot, h264):
    player = loaded_player(qtbot, h264)
    assert player.interval_ms() == 125  # 8 fps
    player.set_speed(2.0)
    assert player.interval_ms() == 62 and player.bar.speed_combo.currentText() == "2×"
    player.set_speed(0.3)
    assert player.speed() == 0.25 and player.interval_ms() == 500
    player.set_speed(2.0)
    player.play()
    assert player._timer.interval() == 62
    seen = []
    player.frame_changed.connect(seen.append)
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=3000)
    player.pause()
    assert seen[:3] == [1, 2, 3]  # every frame, in order


def test_controls_do_not_move_and_the_label_elides(qtbot, tmp_path):
    player = VideoPlayer()
    qtbot.addWidget(player)
    label = "strength 1.50 · seed 42 · blocks 0-9,20-29 · " + "a very long prompt " * 10
    player.set_frames(numbered_clip(frames=120).astype(np.float32) / 255.0, 16, label)
    player.resize(640, 400)
    player.show()
    qtbot.waitExposed(player)
    assert player.frame_count == 120 and player.label() == label
    assert player.title.toolTip() == label and player.title.text() != label
    before = (player.bar.counter.width(), player.bar.loop_button.geometry())
    player.seek(119)
    player.play()
    QApplication.processEvents()
    assert player.bar.counter.text() == "frame 120 / 120"
    assert (player.bar.counter.width(), player.bar.loop_button.geometry()) == before
    player.pause()
    player.clear()
    assert player.frame_count == 0 and player.view.message() == "No clip"
    assert not player.bar.play_button.isEnabled()


def test_a_bad_file_says_so_and_a_newer_load_wins(qtbot, tmp_path, h264):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all\n" * 10)
    player = VideoPlayer()
    qtbot.addWidget(player)
    with qtbot.waitSignal(player.failed, timeout=10000) as failed:
        player.load(broken)
    assert str(broken) in failed.args[0] and "\n" not in failed.args[0]
    assert player.frame_count == 0 and str(broken) in player.view.message()
    other = write_video(tmp_path / "other.mp4", numbered_clip(frames=4), 8)
    loads = []
    player.loaded.connect(lambda: loads.append(player.frame_count))
    player.load(h264)
    player.load(other)
    qtbot.waitUntil(lambda: bool(loads), timeout=10000)
    qtbot.wait(300)  # the first decode has finished by now and was dropped
    assert loads == [4] and player.path() == other


def test_decoding_a_full_preview_keeps_the_window_responsive(qtbot, tmp_path):
    clip = np.repeat(numbered_clip(frames=9, height=480, width=832), 9, axis=0)
    path = write_video(tmp_path / "full.mp4", clip, 16)
    player = VideoPlayer()
    qtbot.addWidget(player)
    started = time.perf_counter()
    player.load(path)
    returned = time.perf_counter() - started
    with qtbot.waitSignal(player.loaded, timeout=20000):
        pass
    assert returned < 0.1, f"load() blocked the window for {returned:.3f} s"
    assert player.frame_count == 81 and player.current_frame().shape == (480, 832, 3)


def test_the_scrub_slider_is_wheel_guarded_in_a_scroll_area(qtbot, h264):
    from difflora_gui.qt.wheel_guard import install_wheel_guard

    install_wheel_guard()
    player = loaded_player(qtbot, h264)
    area = QScrollArea()
    qtbot.addWidget(area)
    area.setWidget(player)
    area.show()
    slider = player.bar.slider
    event = QWheelEvent(
        QPointF(5, 5), QPointF(slider.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(slider, event)
    assert player.frame_index == 0


# --- A/B compare ------------------------------------------------------------------------------


def two_clips(frames=6, height=120, width=100):
    return numbered_clip(frames, height, width, seed=0), numbered_clip(frames, height, width, seed=3)


def test_swipe_composes_left_from_a_and_right_from_b(qtbot):
    a, b = two_clips()
    compare = SwipeCompare()
    qtbot.addWidget(compare)
    compare.set_clips(a, b, 8, "strength 1.5", "strength 0")
    compare.position = 0.3
    assert compare.position == 0.3
    composed = compare.composed()
    assert np.array_equal(composed[:, :30], a[0][:, :30]) and np.array_equal(composed[:, 30:], b[0][:, 30:])
    # on screen at 100 %: the same split (away from the divider line and the labels)
    compare.resize(500, 400)
    compare.show()
    qtbot.waitExposed(compare)
    compare.set_zoom(1.0)
    shown = qimage_rgb(compare.swipe_view.canvas.grab().toImage())
    assert shown.shape == a[0].shape
    assert np.array_equal(shown[40:, :28], a[0][40:, :28]) and np.array_equal(shown[40:, 32:], b[0][40:, 32:])


def test_one_seek_moves_both_clips(qtbot):
    a, b = two_clips()
    short_b = b[:4]
    compare = SwipeCompare()
    qtbot.addWidget(compare)
    compare.set_clips(a, short_b, 8, "A", "B")
    assert compare.frame_count == 6
    compare.seek(3)
    assert compare.frame_index == 3
    assert np.array_equal(compare.swipe_view.composed()[:, 60:], short_b[3][:, 60:])
    assert np.array_equal(compare.swipe_view.composed()[:, :40], a[3][:, :40])
    compare.set_mode("side")
    assert compare.stack.currentIndex() == 1
    assert np.array_equal(compare.left_view.composed(), a[3]) and np.array_equal(
        compare.right_view.composed(), short_b[3]
    )
    compare.step(2)  # past the end of the shorter clip: it holds its last frame
    assert np.array_equal(compare.left_view.composed(), a[5]) and np.array_equal(
        compare.right_view.composed(), short_b[3]
    )
    assert compare.left_title.full_text() == "A" and compare.right_title.full_text() == "B"


def test_dragging_the_divider_moves_the_swipe(qtbot):
    a, b = two_clips()
    compare = SwipeCompare()
    qtbot.addWidget(compare)
    compare.set_clips(a, b, 8, "A", "B")
    compare.resize(500, 400)
    compare.show()
    qtbot.waitExposed(compare)
    rect = compare.swipe_view.image_rect()
    canvas = compare.swipe_view.canvas
    y = round(rect.center().y())

    def at(fraction: float) -> QPoint:
        return QPoint(round(rect.left() + fraction * rect.width()), y)

    no_key = Qt.KeyboardModifier.NoModifier
    with qtbot.waitSignal(compare.position_changed):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, no_key, at(0.6))
    assert compare.position == pytest.approx(0.6, abs=0.02)
    qtbot.mouseMove(canvas, at(0.8))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, no_key, at(0.8))
    assert compare.position == pytest.approx(0.8, abs=0.02)
    assert compare.swipe_view.split_column() == pytest.approx(80, abs=2)
    qtbot.keyClick(compare, Qt.Key.Key_Space)
    assert compare.is_playing()
    compare.pause()


def test_a_player_closed_while_decoding_is_left_alone(qtbot, tmp_path):
    import threading

    path = write_video(tmp_path / "clip.mp4", numbered_clip(frames=40, height=240, width=320), 16)
    player = VideoPlayer()
    player.load(path)
    decoding = [t for t in threading.enumerate() if t.name == "preview-decode"]
    player.deleteLater()
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in decoding), timeout=10000)
    QApplication.processEvents()  # the queued result finds no player, and nothing breaks
