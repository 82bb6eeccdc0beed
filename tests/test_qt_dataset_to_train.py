"""Dataset → Train in one click: "Train on these pairs…" opens the Train section with the project's
dataset exported as its set A and set B, leaves the rest of the Train form as the user set it, and
says in the status bar what changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from difflora_gui.dataset.pairing import pair_folders
from difflora_gui.qt.testing import close_window, make_main_window
from tests.train_helpers import make_pair_folders

DATASET_PANEL = "dataset-pairs"
TRAIN_PANEL = "train-runs"
JOB_TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot, monkeypatch):
    window, dialogs = make_main_window(qtbot, monkeypatch)
    window.devices.set_devices([])  # detection done: the CPU only (jobs wait for this)
    window.resize(1280, 720)
    window.show_section("dataset")
    yield window
    window.panels[DATASET_PANEL].widget.loader.shutdown()
    close_window(window, dialogs)


def _panels(window):
    dataset, train = window.panels[DATASET_PANEL], window.panels[TRAIN_PANEL]
    assert dataset.ok and train.ok, dataset.error + train.error
    return dataset.widget, train.widget


def test_the_button_waits_for_pairs_and_says_what_it_does(window, tmp_path):
    dataset, _train = _panels(window)
    button = dataset.train_button
    assert not button.isEnabled() and "Import pairs first" in button.toolTip()
    a_dir, b_dir = make_pair_folders(tmp_path / "pairs ü", 3)
    dataset.adopt_set(pair_folders(a_dir, b_dir), new=True)
    assert button.isEnabled() and "these 3 pairs" in button.toolTip()
    assert "set A and set B" in button.toolTip()
    dataset.clear_set()
    assert not button.isEnabled()


def test_train_on_these_pairs_fills_set_a_and_b_and_keeps_the_rest(window, qtbot, tmp_path):
    dataset, train = _panels(window)
    a_dir, b_dir = make_pair_folders(tmp_path / "pairs ü", 3)
    dataset.adopt_set(pair_folders(a_dir, b_dir), new=True)
    dataset.editor.remove([dataset.pair_set.pairs[-1].id])  # an edit not yet saved by the timer
    assert dataset.train_button.toolTip().count("these 2 pairs") == 1
    # what the user set in the Train form before
    old_a, old_b = make_pair_folders(tmp_path / "older sets", 1)
    train.datasets.set_folders(str(old_a), str(old_b))
    train.datasets.name_edit.setText("my lora")
    train.datasets.output_edit.setText(str(tmp_path / "out folder"))
    config_before = train.config_box.state()

    dataset.train_button.click()
    assert window.current_section() == "train"
    assert "exporting the dataset's 2 pairs" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: train.export_job is None, timeout=JOB_TIMEOUT_MS)

    new_a, new_b = map(Path, train.datasets.folders())
    assert (new_a.name, new_b.name) == ("A", "B") and new_a.parent == new_b.parent
    assert window.project.workspace.root in new_a.parents
    assert sorted(p.name for p in new_a.glob("*.png")) == ["item0.png", "item1.png"]  # the edit is in
    assert sorted(p.name for p in new_b.glob("*.png")) == ["item0.png", "item1.png"]
    message = window.statusBar().currentMessage()
    assert "set A and set B hold the dataset's 2 pairs now (were set A and set B)" in message
    assert "nothing else changed" in message and "Name" not in message  # the user's name stays
    # nothing else in the form changed
    assert train.datasets.name() == "my lora"
    assert train.datasets.output_edit.text() == str(tmp_path / "out folder")
    assert train.config_box.state() == config_before
    assert sorted(p.name for p in a_dir.iterdir()) == ["item0.png", "item1.png", "item2.png"]  # sources kept


def test_the_button_is_shown_whole_at_1280_by_720(window, qtbot, tmp_path):
    dataset, _train = _panels(window)
    a_dir, b_dir = make_pair_folders(tmp_path / "pairs", 2)
    dataset.adopt_set(pair_folders(a_dir, b_dir), new=True)
    qtbot.wait(50)
    button = dataset.train_button
    assert button.isVisible() and button.width() >= button.sizeHint().width()
    # no part of it scrolled away or covered: what is drawn of it is all of it
    assert button.visibleRegion().boundingRect() == button.rect()
    corner = button.mapTo(window, button.rect().bottomRight())
    assert corner.x() < window.width() and corner.y() < window.height()


def test_the_tools_flow_onto_a_second_line_at_1280_by_720_instead_of_scrolling_sideways(window, qtbot):
    from PySide6.QtWidgets import QScrollArea

    dataset, _train = _panels(window)
    qtbot.wait(50)
    frame = dataset.findChild(QScrollArea, "datasetPanelScroll")
    assert frame.horizontalScrollBar().maximum() == 0 and frame.verticalScrollBar().maximum() == 0
    buttons = list(dataset.tools_bar.buttons.values())
    assert len(buttons) >= 5
    for button in buttons:  # "Export for…" at the end of the row was cut off before
        assert button.visibleRegion().boundingRect() == button.rect(), button.text()
    assert len({button.y() for button in buttons}) >= 2
    assert dataset.tools_bar.height() == dataset.tools_bar.minimumSizeHint().height()  # no empty band
    window.resize(1920, 1080)
    qtbot.waitUntil(lambda: len({b.y() for b in buttons}) == 1)  # one row where there is room


def test_an_empty_train_form_gets_the_folders_and_says_the_name_it_took(window, qtbot, tmp_path):
    dataset, train = _panels(window)
    a_dir, b_dir = make_pair_folders(tmp_path / "pairs", 2)
    dataset.adopt_set(pair_folders(a_dir, b_dir), new=True)
    assert dataset.train_on_dataset()
    qtbot.waitUntil(lambda: train.export_job is None, timeout=JOB_TIMEOUT_MS)
    message = window.statusBar().currentMessage()
    assert "2 pairs now (were empty); Name: A;" in message
    assert train.datasets.name() == "A"
    # again: the same export folders, said so
    assert dataset.train_on_dataset()
    qtbot.waitUntil(lambda: train.export_job is None, timeout=JOB_TIMEOUT_MS)
    assert "(exported again)" in window.statusBar().currentMessage()


def test_the_demo_project_goes_from_its_dataset_to_train_in_one_click(window, qtbot, tmp_path):
    from difflora_gui.demo.build import build_demo
    from difflora_gui.jobs.recording import RecordingContext

    built = build_demo({"folder": str(tmp_path / "démo")}, RecordingContext())
    assert window.open_project(built["project"])
    dataset, train = _panels(window)
    qtbot.waitUntil(
        lambda: dataset.pair_set is not None and len(dataset.pair_set.pairs) == 24, timeout=10_000
    )
    backend_before = train.config_box.state()
    assert dataset.train_button.isEnabled()
    dataset.train_button.click()
    assert window.current_section() == "train"
    qtbot.waitUntil(lambda: train.export_job is None, timeout=JOB_TIMEOUT_MS)
    new_a, new_b = map(Path, train.datasets.folders())
    media = [sorted(p.stem for p in side.iterdir() if p.suffix != ".txt") for side in (new_a, new_b)]
    assert len(media[0]) == 24 and media[0] == media[1]  # every pair, its captions beside
    message = window.statusBar().currentMessage()
    assert "24 pairs now (were a and b)" in message and "Name" not in message
    assert train.config_box.state() == backend_before  # the demo's quick-test config stays
