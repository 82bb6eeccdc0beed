"""The pair view: synchronised zoom, the swipe divider, the difference overlay, the training crop, edits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from difflora_gui.dataset.model import MediaItem, Pair, PairSet
from difflora_gui.qt.dataset.edits import DatasetEditor
from difflora_gui.qt.dataset.pair_view import PairView
from difflora_gui.qt.testing import DialogAnswers
from difflora_gui.qt.undo import UndoStack

SHOTS = Path("/tmp/d7_shots")
BLUE, RED = (255, 0, 0), (0, 0, 255)  # BGR


def _write(path: Path, color, size=(1920, 1080)) -> Path:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = color
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def pair_set(tmp_path):
    a = _write(tmp_path / "frame 01 A.png", BLUE)
    b = _write(tmp_path / "frame 01 B.png", RED)
    textured = np.random.default_rng(3).integers(0, 255, (135, 240, 3), dtype=np.uint8)
    textured = cv2.resize(textured, (960, 540), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "tex_a.jpg"), textured)
    cv2.imwrite(str(tmp_path / "tex_b.jpg"), np.roll(textured, 12, axis=1))
    pairs = [
        Pair("frame 01", MediaItem.from_path(a), MediaItem.from_path(b)),
        Pair("tex", MediaItem.from_path(tmp_path / "tex_a.jpg"), MediaItem.from_path(tmp_path / "tex_b.jpg")),
    ]
    return PairSet("set", pairs)


@pytest.fixture
def view(qtbot, pair_set):
    widget = PairView()
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    widget.show()
    qtbot.waitExposed(widget)
    editor = DatasetEditor(pair_set, UndoStack())
    widget.set_editor(editor)
    widget.editor = editor
    return widget


def _show(qtbot, view, pair_id: str, scores=None, resolution=256):
    pair = view.editor.pair_set.pair(pair_id)
    with qtbot.waitSignal(view.loaded, timeout=10000):
        view.set_pair(pair, scores, resolution)


def _pixel(widget, x: int, y: int):
    image = widget.grab().toImage()
    color = image.pixelColor(x, y)
    return color.red(), color.green(), color.blue()


def _shot(widget, name: str) -> None:
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()  # the pending re-layout (wrapped lines)
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))


def test_zoom_on_a_applies_the_same_view_to_b(qtbot, view):
    _show(qtbot, view, "tex")
    a, b = view.view_a, view.view_b
    fitted = a.zoom()
    assert b.zoom() == pytest.approx(fitted)
    # a wheel step over A zooms at the pointer; B follows
    point = QPointF(a.viewport().width() * 0.3, a.viewport().height() * 0.4)
    under = a.mapToScene(point.toPoint())
    event = QWheelEvent(
        point,
        a.viewport().mapToGlobal(point),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    a.wheelEvent(event)
    assert a.zoom() == pytest.approx(fitted * 1.25**2)
    assert b.transform() == a.transform()
    # the point under the pointer stays across (vertically the zoomed image is still shorter than the view: centred)
    assert abs(a.mapToScene(point.toPoint()).x() - under.x()) < 3
    assert (b.centre() - a.centre()).manhattanLength() < 1.5 / a.zoom()  # a view pixel
    # panning B moves A the same way
    b.horizontalScrollBar().setValue(b.horizontalScrollBar().value() + 40)
    assert (b.centre() - a.centre()).manhattanLength() < 1.5 / a.zoom()  # a view pixel
    _shot(view, "side_by_side_zoomed")
    # the keyboard: 1 shows pixels 1:1 (B too), a double-click fits both again
    qtbot.keyClick(a, Qt.Key.Key_1)
    assert a.zoom() == pytest.approx(1.0) and b.zoom() == pytest.approx(1.0)
    qtbot.mouseDClick(a.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(20, 20))
    assert a.zoom() == pytest.approx(fitted) and b.zoom() == pytest.approx(fitted)


def test_swipe_at_30_percent_shows_a_left_and_b_right(qtbot, view):
    _show(qtbot, view, "frame 01")
    view.set_mode("swipe")
    view.set_split(0.3)
    qtbot.wait(50)
    swipe = view.swipe_view
    assert swipe.split() == pytest.approx(0.3)
    vp = swipe.viewport()
    y = vp.height() // 2
    top_left = swipe.mapFromScene(QPointF(0, 0))
    bottom_right = swipe.mapFromScene(QPointF(1920, 1080))
    width = bottom_right.x() - top_left.x()
    left_x = int(top_left.x() + 0.15 * width)
    right_x = int(top_left.x() + 0.6 * width)
    near_left = int(top_left.x() + 0.27 * width)
    near_right = int(top_left.x() + 0.33 * width)
    assert _pixel(vp, left_x, y) == (0, 0, 255)  # A is blue
    assert _pixel(vp, near_left, y) == (0, 0, 255)
    assert _pixel(vp, near_right, y) == (255, 0, 0)  # B is red
    assert _pixel(vp, right_x, y) == (255, 0, 0)
    _shot(view, "swipe_30")
    # dragging the divider moves it and the slider
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(int(swipe.divider_x()), y))
    qtbot.mouseMove(vp, QPoint(right_x, y))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(right_x, y))
    assert swipe.split() == pytest.approx(0.6, abs=0.01)
    assert view.swipe_slider.value() == pytest.approx(600, abs=10)
    assert _pixel(vp, int(top_left.x() + 0.5 * width), y) == (0, 0, 255)


def test_difference_overlay_and_training_crop(qtbot, view):
    _show(qtbot, view, "tex")
    preview = view.preview()
    assert preview.heatmap.mean > 10  # B is A shifted by 12 px
    assert view.view_a.overlay_item is not None and not view.view_a.overlay_item.isVisible()
    view.set_heatmap(True, 0.8)
    assert view.view_b.overlay_item.isVisible() and view.view_b.overlay_item.opacity() == pytest.approx(0.8)
    assert view.opacity_slider.isEnabled()
    _shot(view, "difference")
    view.set_training_crop(True)
    assert view.view_a.scene_size() == (336, 192)  # 960×540 at 256 → bucket 336×192
    assert (
        "bucket 336×192" in view.bucket_label.text()
        and "A and B bucket 336×192 · 960×540 scaled to 341×192" in view.bucket_label.text()
    )
    assert view.view_a.base_item.pixmap().size().toTuple() == (336, 192)
    _shot(view, "training_crop")
    view.set_heatmap(False)
    view.set_training_crop(False)
    assert view.view_a.scene_size() == (960, 540)


def test_identical_pair_has_an_all_zero_heatmap(qtbot, view, tmp_path):
    same = _write(tmp_path / "same.png", (10, 120, 30), (320, 180))
    view.editor.pair_set.pairs.append(Pair("same", MediaItem.from_path(same), MediaItem.from_path(same)))
    _show(qtbot, view, "same")
    assert view.preview().heatmap.max == 0 and view.preview().crop_heatmap.max == 0


def test_scores_line_from_pair_scores(qtbot, view):
    from difflora_gui.dataset.checks import Flag, PairScores

    scores = PairScores(
        pair_id="tex", ssim=0.4321, mad=12.5, shift_source=(12.0, 0.0), lab_drift=(0.1, -6.0, 1.0)
    )
    scores.flags = [Flag("shift", "B is shifted 12 px right")]
    _show(qtbot, view, "tex", scores)
    text = view.scores_label.text()
    assert "SSIM 0.432" in text and "shift +12.0, +0.0 px" in text and "Δa -6.0" in text
    assert "B is shifted 12 px right" in text
    view.controls.swap_button.click()
    assert "before the last edit" in view.scores_label.text()


def test_controls_call_the_editor_and_follow_undo(qtbot, view, monkeypatch, tmp_path):
    answers = DialogAnswers().install(monkeypatch)
    _show(qtbot, view, "frame 01")
    stack = view.editor.undo_stack
    # exclude → undo → redo, the checkbox follows
    view.controls.include_box.click()
    assert view.editor.pair_set.pair("frame 01").include is False
    stack.undo()
    assert view.controls.include_box.isChecked() and view.editor.pair_set.pair("frame 01").include
    stack.redo()
    assert not view.controls.include_box.isChecked()
    # the caption is one step, kept on Enter
    view.controls.caption_edit.setFocus()
    view.controls.caption_edit.setText("film still")
    qtbot.keyClick(view.controls.caption_edit, Qt.Key.Key_Return)
    assert view.editor.pair_set.pair("frame 01").caption == "film still"
    assert stack.count() == 2
    stack.undo()
    assert view.controls.caption_edit.text() == ""
    # swap reloads the images: A now shows red
    with qtbot.waitSignal(view.loaded, timeout=10000):
        view.controls.swap_button.click()
    assert view.title_a.text().startswith("<b>A</b> · frame 01 B.png")
    with qtbot.waitSignal(view.loaded, timeout=10000):
        stack.undo()
    assert "frame 01 A.png" in view.title_a.text()
    # a bad replacement is refused with one message and changes nothing
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    count = stack.count()
    assert view.controls.replace("b", str(bad)) is False
    assert answers.titles("warning") == ["Replace refused"]
    assert "broken.png" in answers.asked[0].text
    assert stack.count() == count
    # a good one goes through the file dialog
    good = _write(tmp_path / "other.png", (0, 255, 0), (1920, 1080))
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(good), ""))
    with qtbot.waitSignal(view.loaded, timeout=10000):
        view.controls.replace_b_button.click()
    assert view.editor.pair_set.pair("frame 01").b.path == str(good)
    # removing the pair shown clears the view
    view.editor.remove(["frame 01"])
    assert view.pair() is None


def test_a_video_pair_shows_its_middle_frame_and_a_frame_slider(qtbot, view, tmp_path):
    import av

    paths = []
    for name, shade in (("clip_a.mp4", 40), ("clip_b.mp4", 200)):
        path = tmp_path / name
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=8)
            stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
            for i in range(9):
                frame = np.full((96, 160, 3), shade, np.uint8)
                frame[:, i * 16 : i * 16 + 8] = 255 - shade
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    view.editor.pair_set.pairs.append(
        Pair("clip", MediaItem.from_path(paths[0]), MediaItem.from_path(paths[1]))
    )
    _show(qtbot, view, "clip")
    assert view.frame_row.isVisible()
    assert view.frame_slider.maximum() == 8 and view.frame_slider.value() == 4
    with qtbot.waitSignal(view.loaded, timeout=10000):
        view.frame_slider.setValue(1)
    assert view.preview().frame_index == 1


def test_small_and_large_areas(qtbot, view):
    _show(qtbot, view, "tex")
    for size in ((600, 500), (1200, 800)):
        view.resize(*size)
        qtbot.wait(30)
        assert view.view_a.viewport().width() > 150 and view.view_a.viewport().height() > 120
        assert view.controls.replace_b_button.isVisible()
        _shot(view, f"area_{size[0]}x{size[1]}")
    view.clear()
    assert view.pair() is None and not view.controls.include_box.isEnabled()
