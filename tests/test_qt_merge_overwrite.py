"""The workbench never loses a merge: names follow the inputs, Overwrite is never remembered,
replacing a file asks first (saying what it is), every merge is in the project's history."""

from __future__ import annotations

from pathlib import Path

import pytest
from merge_panel_helpers import PanelWindow
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from difflora_gui.fileio import sha256_file
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.project import MergeRecord

Button = QMessageBox.StandardButton
REPLACE = "Replace existing file?"


@pytest.fixture
def window(qtbot, monkeypatch, tmp_path):
    made = PanelWindow(qtbot, monkeypatch, tmp_path)
    yield made
    made.close()


@pytest.fixture
def pairs(tmp_path):
    """A Wan 1.3B pair and a Wan 14B pair (tiny: rank 2, one block's self-attention)."""
    folder = tmp_path / "loras"
    folder.mkdir()
    made = {}
    for size in ("1.3B", "14B"):
        for seed, side in ((0, "a"), (1, "b")):
            path = folder / f"{side}{size.replace('.', '')}.safetensors"
            make_wan_lora(size, rank=2, select="self_attn blocks=0", seed=seed, path=path)
            made[f"{side}{size}"] = path
    return (made["a1.3B"], made["b1.3B"]), (made["a14B"], made["b14B"])


def model_of(path: Path) -> str:
    with open_lora(path) as lora:
        return lora.model.variant


def merges(window) -> list[MergeRecord]:
    return window.window.project.merge_history()


def test_the_stale_name_and_remembered_overwrite_sequence_no_longer_replaces_a_merge(window, pairs):
    (a13, b13), (a14, b14) = pairs
    panel = window.panel
    window.load(a13, b13)
    first = window.out / "a13B-minus-b13B.safetensors"
    assert panel.output_edit.text() == str(first)
    panel.output_form.editors["overwrite"].editor.setChecked(True)
    window.qtbot.wait(400)  # the settings are written into the project after a short delay
    assert window.window.project.section("merge")["settings"]["overwrite"] is False  # never stored
    window.run("merge")
    assert first.is_file() and model_of(first) == "1.3B"
    assert not panel.output_form.value("overwrite")  # cleared after the merge

    # Re-run recipe: its file exists, so it asks; yes replaces it (same bytes, bit for bit)
    before = first.read_bytes()
    window.dialogs.answers[REPLACE] = Button.Yes
    panel.rerun_button.click()
    window.wait_job()
    assert first.read_bytes() == before
    asked = [d for d in window.dialogs.asked if d.title == REPLACE]
    assert len(asked) == 1 and "a13B-minus-b13B.safetensors" in asked[0].text
    assert "Wan 1.3B" in asked[0].text and "modified" in asked[0].text  # says what the file is

    # a 14B pair: the name follows it, Overwrite is unticked, Merge leaves the 1.3B file alone
    window.dialogs.answers.pop(REPLACE)  # a question now would fail the test
    window.load(a14, b14)
    second = window.out / "a14B-minus-b14B.safetensors"
    assert panel.output_edit.text() == str(second)
    assert not panel.output_form.value("overwrite")
    window.run("merge")
    assert first.read_bytes() == before and model_of(first) == "1.3B"
    assert model_of(second) == "14B"

    history = merges(window)
    assert [Path(r.output).name for r in history] == [first.name, first.name, second.name]
    assert history[1].replaced == [str(first)] and history[2].replaced == []
    for record in history[1:]:
        assert record.sha256 == {record.output: sha256_file(record.output)}
    assert len({r.id for r in history}) == 3  # appended, never replaced


def test_pointing_the_output_at_an_existing_file_asks_first(window, pairs):
    (a13, b13), (a14, b14) = pairs
    panel = window.panel
    window.load(a13, b13)
    window.run("merge")
    earlier = Path(panel.last_result.output)
    kept = earlier.read_bytes()

    window.load(a14, b14)
    panel.set_output(earlier)
    assert panel.merge_button.isEnabled()  # it asks when clicked, saying what would be lost
    window.dialogs.answers[REPLACE] = Button.No
    panel.merge_button.click()
    assert panel.job is None and earlier.read_bytes() == kept
    assert "nothing was written" in panel.status_label.text()
    assert "Wan 1.3B" in window.dialogs.asked[-1].text
    assert len(merges(window)) == 1

    window.dialogs.answers[REPLACE] = Button.Yes
    window.run("merge")
    assert model_of(earlier) == "14B"
    assert merges(window)[-1].replaced == [str(earlier)]


def test_an_automatic_name_that_is_taken_is_numbered(window, pairs):
    (a13, b13), _ = pairs
    panel = window.panel
    window.load(a13, b13)
    window.run("merge")
    assert panel.output_edit.text() == str(window.out / "a13B-minus-b13B.safetensors")
    window.run("merge")  # no question: the automatic name moves on
    numbered = window.out / "a13B-minus-b13B_00002.safetensors"
    assert numbered.is_file() and panel.last_result.output == str(numbered)
    assert window.dialogs.titles("question") == []
    window.run("merge")
    assert (window.out / "a13B-minus-b13B_00003.safetensors").is_file()
    assert len(merges(window)) == 3


def test_open_output_folder_opens_the_folder_the_merge_wrote_to(window, pairs, monkeypatch):
    (a13, b13), _ = pairs
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url) or True))
    panel = window.panel
    window.load(a13, b13)
    assert panel.open_folder_button.isHidden()
    window.run("merge")
    assert not panel.open_folder_button.isHidden()
    assert "a13B-minus-b13B.safetensors" in panel.status_label.text()
    panel.open_folder_button.click()
    assert opened == [QUrl.fromLocalFile(str(window.out))]


def test_loading_other_inputs_makes_the_analysis_stale_and_disables_export(window, pairs):
    (a13, b13), (a14, b14) = pairs
    panel = window.panel
    window.load(a13, b13)
    window.run("analyze")
    assert panel.export_csv_button.isEnabled()
    assert "nothing written" in panel.status_label.text()
    window.load(a14, b14)
    assert not panel.export_csv_button.isEnabled() and not panel.export_png_button.isEnabled()
    assert panel.status_label.text() == ""  # the old status line went too
    view = panel.analysis_view
    stale = getattr(view, "is_stale", None)
    assert (callable(stale) and stale()) or stale is True or panel.analysis is None or not view.isVisible()
    window.run("analyze")
    assert panel.export_csv_button.isEnabled()


def test_a_two_expert_merge_says_both_files_and_keeps_both_in_the_history(window, tmp_path):
    from difflora_gui.lora.synthetic import make_wan_split

    folder = tmp_path / "wan22"
    folder.mkdir()
    a = make_wan_split("tiny", stem=folder / "concept", seed=1, rank=2)
    b = make_wan_split("tiny", stem=folder / "base", seed=5, rank=2)
    panel = window.panel
    window.window.route_files([a["high"][0], a["low"][0], b["high"][0], b["low"][0]])
    window.qtbot.waitUntil(lambda: panel.inputs.ready(), timeout=60_000)
    if not getattr(panel.inputs, "two_expert", False):
        pytest.skip("the inputs box does not pair expert files yet")
    assert panel.output_edit.text() == str(window.out / "concept-minus-base.safetensors")
    window.run("merge")
    high = window.out / "concept-minus-base_high_noise.safetensors"
    low = window.out / "concept-minus-base_low_noise.safetensors"
    assert high.is_file() and low.is_file()
    status = panel.status_label.text()
    assert high.name in status and low.name in status
    record = merges(window)[-1]
    assert record.outputs == [str(high), str(low)]
    assert record.sha256 == {str(high): sha256_file(high), str(low): sha256_file(low)}
    # both names are taken now: the next automatic merge numbers the pair
    window.run("merge")
    assert (window.out / "concept-minus-base_00002_high_noise.safetensors").is_file()
    assert (window.out / "concept-minus-base_00002_low_noise.safetensors").is_file()
    assert window.dialogs.titles("question") == []
