"""The Dataset panel in a real window: import two folders (dialogs and drops), the grid, edits and undo,
the project keeping the set, the checks and a tool from the tools bar."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

from difflora_gui.dataset.grid_filter import FLAGGED
from difflora_gui.qt.testing import close_window, make_main_window

PANEL = "dataset-pairs"
TIMEOUT_MS = 30_000


def _image(seed: int, size=(96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def make_folders(root: Path, count: int = 4) -> tuple[Path, Path]:
    """A/ and B/ with ``count`` pairs, one unpaired file in each, a non-media file and an empty image in A."""
    a_dir, b_dir = root / "set A", root / "set B"
    a_dir.mkdir(parents=True)
    b_dir.mkdir(parents=True)
    for i in range(count):
        image = _image(i)
        cv2.imwrite(str(a_dir / f"frame_{i:03d}.png"), image)
        cv2.imwrite(str(b_dir / f"frame_{i:03d}.jpg"), cv2.GaussianBlur(image, (5, 5), 0))
    cv2.imwrite(str(a_dir / "only_in_a.png"), _image(50))
    cv2.imwrite(str(b_dir / "only_in_b.png"), _image(51))
    (a_dir / "notes.txt.md").write_text("not media", encoding="utf-8")
    (a_dir / "empty.png").write_bytes(b"")
    return a_dir, b_dir


class DatasetWindow:
    def __init__(self, qtbot, monkeypatch, plugins=()):
        self.qtbot = qtbot
        self.window, self.dialogs = make_main_window(qtbot, monkeypatch, plugins=plugins)
        self.window.resize(1280, 720)
        self.window.show_section("dataset")
        entry = self.window.panels[PANEL]
        assert entry.ok, entry.error + entry.traceback
        self.panel = entry.widget

    def wait_import(self) -> None:
        self.qtbot.waitUntil(lambda: self.panel.import_job is None, timeout=TIMEOUT_MS)

    def wait_thumbnails(self) -> None:
        self.qtbot.waitUntil(
            lambda: self.panel.loader.loaded > 0 and self.panel.loader.idle(), timeout=TIMEOUT_MS
        )

    def close(self) -> None:
        self.panel.loader.shutdown()
        close_window(self.window, self.dialogs)


@pytest.fixture
def dataset_window(qtbot, monkeypatch):
    window = DatasetWindow(qtbot, monkeypatch)
    yield window
    window.close()


def test_import_two_folders_from_the_dialogs_then_exclude_and_undo(dataset_window, monkeypatch, tmp_path):
    a_dir, b_dir = make_folders(tmp_path)
    before = sorted(p.name for p in a_dir.iterdir()), sorted(p.name for p in b_dir.iterdir())
    answers = iter([str(a_dir), str(b_dir)])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: next(answers)))
    panel = dataset_window.panel
    panel.import_bar.import_pair_button.click()
    assert panel.import_job is not None  # it runs as a job
    dataset_window.wait_import()
    assert panel.pair_set is not None and len(panel.pair_set.pairs) == 4
    assert panel.grid.model.rowCount() == 4
    rows = panel.import_results.rows()
    assert [name for name, _ in rows["Unpaired in A"]] == ["only_in_a.png"]
    assert [name for name, _ in rows["Unpaired in B"]] == ["only_in_b.png"]
    skipped = dict(rows["Skipped"])
    assert "empty.png" in skipped and skipped["empty.png"]
    assert "4 pairs" in panel.import_results.summary.text()
    # the set is the project's dataset, stored in its workspace
    assert panel.record is not None and (panel.folder / "pairs.json").is_file()
    assert panel.services.project.section("dataset")["dataset_id"] == panel.record.id
    # thumbnails: made off the UI thread into the dataset's thumbs/ folder
    dataset_window.wait_thumbnails()
    assert list((panel.folder / "thumbs").glob("*.jpg"))
    # open a pair: the first is selected and shown
    first = panel.pair_set.pairs[0]
    assert panel.grid.current_pair().id == first.id
    if panel.pair_view is not None:
        view = panel.pair_view
        dataset_window.qtbot.waitUntil(
            lambda: view.pair() is not None and view.pair().id == first.id, timeout=5000
        )
    # Space excludes the selection; Edit ▸ Undo includes it again; redo excludes
    panel.grid.view.setFocus()
    dataset_window.qtbot.keyClick(panel.grid.view, Qt.Key.Key_Space)
    assert panel.pair_set.pair(first.id).include is False
    assert dataset_window.window.current_undo_stack() is panel.undo_stack
    if panel.pair_view is not None:  # the pair view shows the edit
        dataset_window.qtbot.waitUntil(lambda: view.pair().include is False, timeout=5000)
    dataset_window.window.undo()  # Edit ▸ Undo
    assert panel.pair_set.pair(first.id).include is True
    panel.undo_stack.redo()
    assert panel.pair_set.pair(first.id).include is False
    # the source folders were only read
    assert (sorted(p.name for p in a_dir.iterdir()), sorted(p.name for p in b_dir.iterdir())) == before


def test_drop_two_folders_delete_swap_caption_and_project_restore(dataset_window, tmp_path):
    a_dir, b_dir = make_folders(tmp_path, count=5)
    window, panel = dataset_window.window, dataset_window.panel
    routed = window.route_files([a_dir, b_dir])
    assert routed == {PANEL: [a_dir, b_dir]}
    dataset_window.wait_import()
    assert len(panel.pair_set.pairs) == 5
    ids = panel.pair_set.ids()
    # Delete asks first; No keeps the pair
    dataset_window.dialogs.answers["Delete from the set"] = QMessageBox.StandardButton.No
    panel.grid.select_pair(ids[1])
    dataset_window.qtbot.keyClick(panel.grid.view, Qt.Key.Key_Delete)
    assert len(panel.pair_set.pairs) == 5
    dataset_window.dialogs.answers["Delete from the set"] = QMessageBox.StandardButton.Yes
    dataset_window.qtbot.keyClick(panel.grid.view, Qt.Key.Key_Delete)
    assert ids[1] not in panel.pair_set.ids() and panel.grid.model.rowCount() == 4
    panel.undo_stack.undo()
    assert panel.pair_set.ids() == ids and panel.grid.model.rowCount() == 5
    # swap and bulk captions through the context menu's actions
    panel.grid.select_pair(ids[0])
    a_before = panel.pair_set.pair(ids[0]).a
    menu = panel.context_menu()
    texts = [a.text().split("\t")[0] for a in menu.actions() if a.text()]
    assert "Swap A and B" in texts and "Delete from set…" in texts
    next(a for a in menu.actions() if a.text() == "Swap A and B").trigger()
    assert panel.pair_set.pair(ids[0]).b == a_before
    panel.grid.view.selectAll()
    assert len(panel.grid.selected_ids()) == 5
    panel.editor.set_captions(panel.grid.selected_ids(), "dense detail")
    assert all(p.caption == "dense detail" for p in panel.pair_set.pairs)
    panel.clear_captions()
    assert all(p.caption == "" for p in panel.pair_set.pairs)
    panel.grid.select_pair(ids[2])
    panel.set_included(False)
    panel.save_now()
    # the project keeps the set: save, open another, open it again
    project_file = tmp_path / "proj.difflora"
    window.project.save(project_file)
    from difflora_gui.project import Project

    window.services.set_project(Project())
    assert panel.pair_set is None and panel.grid.model.rowCount() == 0
    window.services.set_project(Project.load(project_file))
    assert panel.pair_set is not None and panel.pair_set.ids() == ids
    assert panel.pair_set.pair(ids[2]).include is False
    assert panel.pair_set.pair(ids[0]).b == a_before


def test_one_folder_as_set_a_and_dropped_files(dataset_window, tmp_path):
    a_dir, _b_dir = make_folders(tmp_path, count=3)
    panel = dataset_window.panel
    panel.accept_files([a_dir / "frame_000.png", a_dir / "frame_001.png"])  # files stand for their folder
    dataset_window.wait_import()
    assert panel.pair_set is not None and len(panel.pair_set.pairs) == 4
    assert all(p.b is None for p in panel.pair_set.pairs)
    dataset_window.wait_thumbnails()
    panel.accept_files([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert "Nothing" in panel.status_label.text()
    # two folders dropped on the panel itself: A and B
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(a_dir)), QUrl.fromLocalFile(str(_b_dir))])
    event = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    panel.dropEvent(event)
    dataset_window.wait_import()
    assert len(panel.pair_set.pairs) == 3 and all(p.complete for p in panel.pair_set.pairs)
    assert panel.pair_set.sources == {"a": str(a_dir), "b": str(_b_dir)}


def test_grid_sort_filter_by_scores_and_text(dataset_window, tmp_path):
    from difflora_gui.dataset.checks import Flag, PairScores

    a_dir, b_dir = make_folders(tmp_path, count=6)
    panel = dataset_window.panel
    panel.start_import(str(a_dir), str(b_dir))
    dataset_window.wait_import()
    ids = panel.pair_set.ids()
    scores = {
        pair_id: PairScores(
            pair_id=pair_id, ssim=0.9 - 0.1 * i, mad=float(i), flags=[Flag("shift", "moved")] if i % 2 else []
        )
        for i, pair_id in enumerate(ids)
    }
    panel.scores = scores
    panel.grid.set_scores(scores)
    bar = panel.grid.bar
    assert bar.sort_combo.findData("ssim") >= 0 and bar.flag_combo.findData("shift") >= 0
    bar.set_sort("ssim")  # SSIM: worst (lowest) first
    assert panel.grid.model.visible_ids()[0] == ids[-1]
    bar.set_flag_filter("*")
    assert panel.grid.model.visible_ids() and all(
        i % 2 for i in (ids.index(x) for x in panel.grid.model.visible_ids())
    )
    bar.set_flag_filter("")
    bar.text_edit.setText("frame_002")
    dataset_window.qtbot.waitUntil(lambda: panel.grid.model.visible_ids() == ["frame_002"], timeout=2000)
    # the badge and tooltip of a flagged cell
    row = panel.grid.model.row_of("frame_002")
    assert row == 0
    bar.text_edit.setText("")
    dataset_window.qtbot.waitUntil(lambda: panel.grid.model.rowCount() == 6, timeout=2000)
    index = panel.grid.model.index(panel.grid.model.row_of(ids[1]))
    assert "shift" in index.data(Qt.ItemDataRole.ToolTipRole)


def test_checks_run_fill_scores_and_summary(dataset_window, tmp_path):
    pytest.importorskip("difflora_gui.dataset.check_job")
    a_dir, b_dir = make_folders(tmp_path, count=3)
    panel = dataset_window.panel
    panel.start_import(str(a_dir), str(b_dir))
    dataset_window.wait_import()
    panel.checks.set_resolution(192)
    panel.checks.check_button.click()
    dataset_window.qtbot.waitUntil(lambda: panel.check_job is None, timeout=TIMEOUT_MS)
    assert set(panel.scores) == set(panel.pair_set.ids()), panel.status_label.text()
    assert panel.grid.bar.sort_combo.findData("ssim") >= 0
    assert panel.checks.summary_label.text() not in ("", "Not checked yet.")
    # the thresholds form is generated from CHECK_CONFIG, with tooltips
    form = panel.checks.form
    assert form is not None and form.labels["ssim_min"].toolTip()
    # a stricter threshold re-flags the pairs on show (no image read again) and is kept in the project
    before = sum(bool(s.flags) for s in panel.scores.values())
    form.set_values({"ssim_min": 1.0})
    after = sum(bool(s.flags) for s in panel.scores.values())
    assert after == 3 and after >= before
    assert panel.services.project.section("dataset")["thresholds"]["ssim_min"] == 1.0
    assert panel.grid.bar.flag_combo.findData(FLAGGED) >= 0


def test_tools_bar_runs_a_registered_tool_and_reloads(qtbot, monkeypatch, tmp_path):
    from difflora_gui import hookimpl
    from difflora_gui.params import Param
    from difflora_gui.specs import DatasetToolSpec

    a_dir, b_dir = make_folders(tmp_path, count=2)
    out = tmp_path / "made B"

    class Tool:
        @hookimpl
        def difflora_register_dataset_tools(self):
            return [
                DatasetToolSpec(
                    name="copy-blur",
                    title="Blur counterparts",
                    description="Writes a blurred copy of every A image (a stand-in counterpart tool).",
                    params=(
                        Param("a_dir", "path", "", "set A"),
                        Param("out", "path", str(out), "where B goes"),
                        Param("radius", "int", 3, "blur radius", minimum=1, maximum=9),
                    ),
                    run="tests.test_qt_dataset_panel:blur_tool",
                    lane="light",
                )
            ]

    window = DatasetWindow(qtbot, monkeypatch, plugins=[("blur-tool", Tool())])
    try:
        panel = window.panel
        assert "copy-blur" in panel.tools_bar.buttons
        panel.start_import(str(a_dir), "")
        window.wait_import()
        monkeypatch.setattr(QDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
        monkeypatch.setattr(
            "difflora_gui.qt.dataset.tools_bar.ToolDialog.exec",
            lambda self: (self.form.set_values({"radius": 5}), QDialog.DialogCode.Accepted)[1],
        )
        panel.tools_bar.buttons["copy-blur"].click()
        assert panel.tools_bar.dialog.form.value("a_dir") == str(a_dir)  # prefilled from the set
        # the settings the user ran it with are kept in the project for the next run
        assert panel.services.project.section("dataset")["tools"]["copy-blur"]["radius"] == 5
        qtbot.waitUntil(lambda: not panel.tool_jobs and panel.import_job is None, timeout=TIMEOUT_MS)
        qtbot.waitUntil(
            lambda: panel.import_job is None and bool(panel.pair_set.sources.get("b")), timeout=TIMEOUT_MS
        )
        assert panel.pair_set.sources["b"] == str(out)
        assert all(p.complete for p in panel.pair_set.pairs) and len(panel.pair_set.pairs) == 3
        monkeypatch.setattr(
            "difflora_gui.qt.dataset.tools_bar.ToolDialog.exec", lambda self: QDialog.DialogCode.Rejected
        )
        panel.tools_bar.buttons["copy-blur"].click()
        assert panel.tools_bar.dialog.form.value("radius") == 5  # the next form starts from them
    finally:
        window.close()


def blur_tool(params, ctx):
    out = Path(params["out"])
    out.mkdir(parents=True, exist_ok=True)
    files = [p for p in Path(params["a_dir"]).iterdir() if p.suffix == ".png" and p.stat().st_size]
    for done, path in enumerate(files):
        ctx.progress(done, len(files), path.name)
        image = cv2.imread(str(path))
        radius = 2 * int(params["radius"]) + 1
        cv2.imwrite(str(out / path.name), cv2.GaussianBlur(image, (radius, radius), 0))
    return {"written": len(files), "b_dir": str(out)}


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_layout_fits_small_and_full_hd_screens(qtbot, monkeypatch, tmp_path, size):
    a_dir, b_dir = make_folders(tmp_path, count=8)
    window = DatasetWindow(qtbot, monkeypatch)
    try:
        window.window.resize(*size)
        panel = window.panel
        panel.start_import(str(a_dir), str(b_dir))
        window.wait_import()
        window.wait_thumbnails()
        qtbot.wait(50)
        assert panel.width() <= size[0] and panel.grid.view.width() > 250
        assert panel.grid.view.viewport().height() > 150
        shot = tmp_path / f"dataset-{size[0]}.png"
        window.window.grab().save(str(shot))
        assert shot.stat().st_size > 0
        menu_point = panel.grid.view.visualRect(panel.grid.model.index(0)).center()
        assert isinstance(menu_point, QPoint)
    finally:
        window.close()


def test_which_side_a_tool_filled(tmp_path):
    from types import SimpleNamespace

    from difflora_gui.qt.dataset.tools_bar import reload_sources

    a_dir, frames, made_b = tmp_path / "A", tmp_path / "frames", tmp_path / "B"
    for folder in (a_dir, frames, made_b):
        folder.mkdir()
    sources = {"a": str(a_dir)}
    tool = SimpleNamespace(name="kontext_counterparts")
    # a counterpart tool read set A (its source field) and wrote out_dir: that is set B
    assert reload_sources({"out_dir": str(made_b)}, {"source_dir": str(a_dir)}, sources, tool) == {
        "a": str(a_dir),
        "b": str(made_b),
    }
    # frame extraction read videos and wrote out_dir: that is set A
    frames_tool = SimpleNamespace(name="frame_extraction")
    assert reload_sources({"out_dir": str(frames)}, {"videos": ["film.mp4"]}, {}, frames_tool) == {
        "a": str(frames)
    }
    # an export changes nothing; a tool that wrote nothing reloads nothing
    assert reload_sources({"out": str(made_b)}, {}, sources, SimpleNamespace(name="export_musubi")) == {}
    assert reload_sources({"pairs": 3}, {}, sources, SimpleNamespace(name="check_pairs")) == {}
    # a summary naming a side wins
    assert reload_sources({"b_dir": str(made_b)}, {}, sources, None)["b"] == str(made_b)


def test_copy_into_project_uses_copies_and_leaves_the_sources(dataset_window, tmp_path):
    a_dir, b_dir = make_folders(tmp_path / "sources", count=3)
    before = {p.name: p.read_bytes() for d in (a_dir, b_dir) for p in d.iterdir()}
    window, panel = dataset_window.window, dataset_window.panel
    assert not panel.import_bar.copy_button.isEnabled()  # nothing to copy yet
    window.route_files([a_dir, b_dir])
    dataset_window.wait_import()
    assert panel.import_bar.copy_button.isEnabled()
    ids = panel.pair_set.ids()
    panel.import_bar.copy_button.click()
    dataset_window.wait_import()
    folder = Path(panel.folder)
    assert panel.pair_set.ids() == ids
    for pair in panel.pair_set.pairs:
        for item in (pair.a, pair.b):
            path = Path(item.path)
            assert folder in path.parents and path.is_file()
    assert "Copied 3 pairs" in panel.status_label.text()
    assert {p.name: p.read_bytes() for d in (a_dir, b_dir) for p in d.iterdir()} == before
