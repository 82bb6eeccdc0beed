"""The Merge workbench's inputs box: Wan2.2 experts side by side, partners, overrides, per-expert
issues, long names, remembered folders and files that move away (real tiny LoRA files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QFileDialog

from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.merge.input_checks import default_output_name
from difflora_gui.merge.input_folders import LastFolders
from difflora_gui.qt.merge.inputs import InputsBox
from difflora_gui.qt.testing import close_window, make_main_window

TIMEOUT_MS = 30_000


@pytest.fixture
def window(qtbot, monkeypatch):
    win, dialogs = make_main_window(qtbot, monkeypatch)
    yield win
    close_window(win, dialogs)


@pytest.fixture
def box(qtbot, window):
    inputs = InputsBox(window.services)
    qtbot.addWidget(inputs)
    inputs.resize(450, 900)
    inputs.show()
    yield inputs
    try:
        qtbot.waitUntil(lambda: not inputs.reading(), timeout=TIMEOUT_MS)
    except Exception:  # say which read never ended
        for path, read in inputs._reads.items():
            print("read of", path, "job", read.handle and read.handle.state)
        raise


def lora(path: Path, variant: str = "tiny", seed: int = 0, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options.setdefault("rank", 2)
    options.setdefault("select", "self_attn")
    make_wan_lora(variant, seed=seed, path=path, **options)
    return path


def settle(qtbot, box: InputsBox) -> None:
    qtbot.waitUntil(lambda: not box.reading(), timeout=TIMEOUT_MS)


def test_a_high_noise_file_opens_the_expert_grid_and_brings_its_partner(qtbot, box, tmp_path):
    a_high = lora(tmp_path / "A" / "x_high_noise.safetensors")
    a_low = lora(tmp_path / "A" / "x_low_noise.safetensors", seed=1)
    b_high = lora(tmp_path / "B" / "y_high_noise.safetensors", seed=2)
    b_low = lora(tmp_path / "B" / "y_low_noise.safetensors", seed=3)
    assert not box.two_expert and box.one_model.isVisible()

    box.set_input("a", a_high)
    assert box.two_expert and box.expert_grid.isVisible() and not box.one_model.isVisible()
    assert box.slots["a_high"] == a_high and box.slots["a_low"] == a_low
    assert "filled with its partner x_low_noise.safetensors" in box.note_label.text()
    box.accept_files([b_low])  # a dropped file: its side is the first empty one, B
    settle(qtbot, box)
    assert box.slots["b_high"] == b_high and box.slots["b_low"] == b_low
    assert box.expert_grid.headings["high"].text() == "High-noise expert"
    assert "high-noise" in box.cards["a_high"].role_text
    assert "file name" in box.cards["a_high"].role_text
    assert box.problem() == "" and box.ready()
    assert box.fields() == {
        "lora_a": str(a_high),
        "lora_b": str(b_high),
        "lora_a_high": str(a_high),
        "lora_a_low": str(a_low),
        "lora_b_high": str(b_high),
        "lora_b_low": str(b_low),
        "expert": "both",
    }
    assert box.name_pair() == (a_high, b_high)
    assert default_output_name(*box.name_pair()) == "x-minus-y.safetensors"

    # Clear on the file that brought its partner clears the partner too
    box.cards["a_high"].clear_button.click()
    assert box.slots["a_high"] is None and box.slots["a_low"] is None
    assert box.problem().startswith("choose LoRA A, high-noise expert")


def test_a_wan21_pair_keeps_the_one_model_layout(qtbot, box, tmp_path):
    a = lora(tmp_path / "dense.safetensors")
    b = lora(tmp_path / "sparse.safetensors", seed=1)
    box.accept_files([a, b])
    settle(qtbot, box)
    assert not box.two_expert and box.paths == {"a": a, "b": b}
    assert box.fields()["lora_a_high"] is None and box.fields()["expert"] == "both"
    assert box.ready()
    assert "no expert named" in box.cards["a"].role_text


def test_choosing_two_experts_puts_a_joint_file_in_both_and_overrides_are_fields(qtbot, box, tmp_path):
    joint = lora(tmp_path / "joint.safetensors")
    b_high = lora(tmp_path / "y_high_noise.safetensors", seed=2)
    lora(tmp_path / "y_low_noise.safetensors", seed=3)
    box.set_input("a", joint)
    assert not box.two_expert
    box.mode_combo.setCurrentIndex(box.mode_combo.findData(True))
    box.mode_combo.activated.emit(box.mode_combo.currentIndex())
    assert box.two_expert
    assert box.slots["a_high"] == box.slots["a_low"] == joint
    assert "joint file, used for both experts" in box.cards["a_low"].role_text
    box.set_input("b", b_high)
    settle(qtbot, box)
    fields = box.fields()
    assert fields["lora_a_high"] == fields["lora_a_low"] == str(joint)

    # B's high-noise file marked "both experts": it goes into both of B's per-expert fields
    box.set_override("b_high", "both")
    assert box.slots["b_high"] == box.slots["b_low"] == b_high
    assert box.fields()["lora_b_low"] == str(b_high)
    assert "Both experts (your choice)" in box.cards["b_low"].role_text
    assert box.cards["b_high"].role_combo.currentData() == "both"
    # back to Auto: the name says high-noise, and the partner beside it comes back
    box.set_override("b_high", "auto")
    assert box.slots["b_low"] == tmp_path / "y_low_noise.safetensors"

    # what to write
    box.write_combo.setCurrentIndex(box.write_combo.findData("low"))
    box.write_combo.activated.emit(box.write_combo.currentIndex())
    assert box.fields()["expert"] == "low"
    assert box.active_slots() == ("a_low", "b_low")


def test_issues_are_per_expert_pair(qtbot, box, tmp_path):
    small = lora(tmp_path / "small_high_noise.safetensors", "1.3B", select="self_attn blocks=0")
    big = lora(tmp_path / "big_high_noise.safetensors", "14B", select="self_attn blocks=0")
    low_a = lora(tmp_path / "c_low_noise.safetensors", "14B", select="self_attn blocks=0", seed=4)
    box.set_input("a_high", small)
    box.set_input("b_high", big)
    box.set_input("a_low", low_a)
    box.set_input("b_low", low_a)  # the same file as A and B for the low-noise expert
    settle(qtbot, box)
    texts = [issue.text for issue in box.issues if issue.blocks_run]
    assert any(
        t.startswith("high-noise expert: A is for Wan 1.3B") and "different model sizes" in t for t in texts
    )
    assert any(t.startswith("low-noise expert: A and B are the same file") for t in texts)
    assert box.problem() in texts
    # writing only the low-noise expert: the high-noise pair no longer matters
    box.write_combo.setCurrentIndex(box.write_combo.findData("low"))
    box.write_combo.activated.emit(box.write_combo.currentIndex())
    assert all(issue.text.startswith("low-noise expert") for issue in box.issues)


def test_apply_fields_restores_a_two_expert_recipe(qtbot, box, tmp_path):
    a_high = lora(tmp_path / "x_high_noise.safetensors")
    joint = lora(tmp_path / "base_high.safetensors", seed=1)  # named high, but used for both
    values = {
        "lora_a": str(a_high),
        "lora_b": str(joint),
        "lora_a_high": str(a_high),
        "lora_a_low": None,
        "lora_b_high": str(joint),
        "lora_b_low": str(joint),
        "expert": "high",
    }
    box.apply_fields(values)
    settle(qtbot, box)
    assert box.two_expert and box.fields() == values
    assert box.cards["b_low"].role_combo.currentData() == "both"
    assert box.ready()


def test_a_long_file_name_is_elided_in_the_middle_and_the_buttons_stay_inside(qtbot, box, tmp_path):
    long_name = "a very long name of a LoRA trained for many epochs " * 4 + "END.safetensors"
    path = lora(tmp_path / long_name)
    box.resize(330, 700)
    box.set_input("a", path)
    settle(qtbot, box)
    qtbot.wait(20)
    card = box.cards["a"]
    label = card.file_label
    assert label.text() == long_name and label.toolTip() == str(path)
    shown = QLabel_text(label)
    # the start and the end of the name stay, the middle gives way
    assert "…" in shown and shown[0] == "a" and shown.endswith("s") and len(shown) < len(long_name)
    for button in (card.open_button, card.clear_button, box.swap_button):
        left = button.mapTo(box, QPoint(0, 0)).x()
        assert left >= 0 and left + button.width() <= box.width(), button.text()
    assert card.width() <= box.width()


def QLabel_text(label) -> str:  # noqa: N802 - the text Qt paints (superqt keeps the full one in text())
    from PySide6.QtWidgets import QLabel

    return QLabel.text(label)


def test_the_expert_grid_fits_a_450_px_settings_column(qtbot, box, tmp_path):
    lora(tmp_path / "x_low_noise.safetensors", seed=1)
    box.set_input("a", lora(tmp_path / "x_high_noise.safetensors"))
    settle(qtbot, box)
    box.resize(430, 900)
    qtbot.wait(20)
    grid = box.expert_grid
    assert grid.columns == 2  # side by side
    high, low = box.cards["a_high"], box.cards["a_low"]
    assert high.mapTo(box, QPoint(0, 0)).x() < low.mapTo(box, QPoint(0, 0)).x()
    for card in grid.cards.values():
        for button in (card.open_button, card.clear_button, card.role_combo):
            if not button.isVisible():
                continue
            right = button.mapTo(box, QPoint(button.width(), 0)).x()
            assert right <= box.width(), (card.role, button.objectName())
    box.resize(300, 900)  # narrower still: one column
    qtbot.wait(20)
    assert grid.columns == 1
    assert box.cards["a_low"].mapTo(box, QPoint(0, 0)).y() > box.cards["a_high"].mapTo(box, QPoint(0, 0)).y()


def test_file_dialogs_start_in_the_model_folder_then_remember_each_slot(
    qtbot, box, window, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    models.mkdir()
    window.services.update_settings(model_folders=[str(tmp_path / "gone"), str(models)])
    elsewhere = lora(tmp_path / "elsewhere" / "picked.safetensors")
    asked: list[str] = []

    def fake_dialog(_parent, _title, start, _filter):
        asked.append(start)
        return str(elsewhere), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    box.cards["b"].open_button.click()
    assert asked == [str(models)]  # nothing chosen for B yet: the first model folder that exists
    assert box.slots["b"] == elsewhere
    box.clear_input("b")
    box.cards["b"].open_button.click()
    assert asked[-1] == str(elsewhere.parent)  # B's last folder
    box.cards["a"].open_button.click()
    assert asked[-1] == str(models)  # A has its own memory
    assert LastFolders().folders["b"] == str(elsewhere.parent)  # kept for the next session


def test_a_moved_input_is_noticed_without_running_anything(qtbot, box, tmp_path):
    a = lora(tmp_path / "a.safetensors")
    b = lora(tmp_path / "b.safetensors", seed=1)
    box.accept_files([a, b])
    settle(qtbot, box)
    assert box.ready()
    changes = []
    box.changed.connect(changes.append)
    moved = tmp_path / "moved away.safetensors"
    a.rename(moved)
    qtbot.waitUntil(lambda: a in box.missing, timeout=5000)  # the file watcher saw it go
    assert box.problem() == f"LoRA A: file moved or deleted: {a}"
    assert f"file moved or deleted: {a}" in box.cards["a"].body.text().replace("\u200b", "")
    assert changes and changes[-1] is False  # the panel re-checks Run
    moved.rename(a)
    assert box.recheck_files()  # as when the window is activated again
    settle(qtbot, box)
    assert box.ready()


def test_a_combo_file_fills_both_experts_of_its_side_with_its_parts(qtbot, box, tmp_path):
    from difflora_gui.lora.synthetic import make_wan_combo

    combo = tmp_path / "combo.safetensors"  # nothing in the name: the key prefixes say it
    make_wan_combo("tiny", path=combo, rank=2, select="self_attn")
    joint = lora(tmp_path / "base.safetensors", seed=7, select="self_attn blocks=0")
    box.set_input("a", combo)
    box.set_input("b", joint)
    assert not box.two_expert  # not known before the read
    settle(qtbot, box)
    assert box.two_expert
    assert box.slots["a_high"] == box.slots["a_low"] == combo
    assert box.slots["b_high"] == box.slots["b_low"] == joint
    assert "combo file: its high-noise part (transformer_1 keys)" in box.cards["a_high"].role_text
    assert "low-noise part" in box.cards["a_low"].role_text
    high, low = box.summary_of("a_high"), box.summary_of("a_low")
    assert high is not None and low is not None and high is not low
    assert high.expert_role.role == "high" and low.expert_role.role == "low"
    fields = box.fields()
    assert fields["lora_a_high"] == fields["lora_a_low"] == str(combo)
    # the combo's experts each cover all blocks, the joint B only block 0: said once, for both experts
    coverage = [i.text for i in box.issues if "block coverage" in i.text]
    assert len(coverage) == 1 and coverage[0].startswith("both experts: ")
    assert box.ready()


def test_metadata_naming_an_expert_places_the_file_after_the_read(qtbot, box, tmp_path):
    plain = lora(tmp_path / "musubi run.safetensors", metadata={"difflora_expert": "low"})
    box.set_input("a", plain)
    settle(qtbot, box)
    assert box.two_expert and box.slots["a_low"] == plain and box.slots["a_high"] is None
    assert "metadata" in box.cards["a_low"].role_text
    # the user knows better: it is a joint file
    box.set_override("a_low", "both")
    assert box.slots["a_high"] == box.slots["a_low"] == plain
    settle(qtbot, box)
    assert box.slots["a_high"] == plain  # a later read does not undo the user's choice


def test_back_to_one_model_and_swap(qtbot, box, tmp_path):
    a_high = lora(tmp_path / "x_high_noise.safetensors")
    lora(tmp_path / "x_low_noise.safetensors", seed=1)
    b = lora(tmp_path / "plain.safetensors", seed=2)
    box.set_input("a", a_high)
    box.set_input("b", b)
    settle(qtbot, box)
    box.swap()
    assert box.slots["b_high"] == a_high and box.slots["a_high"] == box.slots["a_low"] == b
    assert box.fields()["lora_a"] == str(b)
    box.swap()
    box.set_two_expert(False)
    assert not box.two_expert and box.paths == {"a": a_high, "b": b}
    assert "x_low_noise.safetensors set aside" in box.note_label.text()
    box.set_two_expert(True)  # the expert slots kept their files
    assert box.slots["a_low"] == tmp_path / "x_low_noise.safetensors"


def test_a_file_gone_while_the_window_was_away_is_noticed_when_it_is_activated(qtbot, box, tmp_path):
    from PySide6.QtCore import QCoreApplication, QEvent

    a_high = lora(tmp_path / "x_high_noise.safetensors")
    a_low = lora(tmp_path / "x_low_noise.safetensors", seed=1)
    box.set_input("a", a_high)
    settle(qtbot, box)
    box.watcher.removePaths(box.watcher.files())  # as if the watcher missed it (a network share)
    a_low.unlink()
    assert a_low not in box.missing
    QCoreApplication.sendEvent(box, QEvent(QEvent.Type.WindowActivate))
    assert a_low in box.missing
    assert box.problem() == f"LoRA A, low-noise expert: file moved or deleted: {a_low}"
    assert "file moved or deleted" in box.cards["a_low"].body.text()


def test_input_changes_are_undoable_one_step_each(qtbot, box, tmp_path, monkeypatch):
    from difflora_gui.qt.undo import UndoStack

    stack = UndoStack()
    box.set_undo_stack(stack)
    a_high = lora(tmp_path / "x_high_noise.safetensors")
    a_low = lora(tmp_path / "x_low_noise.safetensors", seed=1)
    b = lora(tmp_path / "plain.safetensors", seed=2)
    box.accept_files([a_high, a_low, b])  # the pair counts as one input: A is x, B is plain
    assert stack.count() == 1
    assert box.slots["a_high"] == a_high and box.slots["a_low"] == a_low
    assert box.slots["b_high"] == box.slots["b_low"] == b
    box.cards["b_high"].override_chosen.emit("high")
    assert box.slots["b_low"] is None and stack.count() == 2
    box.expert_grid.swap_button.click()
    assert box.slots["b_high"] == a_high and stack.count() == 3
    stack.undo()
    assert box.slots["a_high"] == a_high and box.slots["b_low"] is None
    stack.undo()
    assert box.slots["b_low"] == b and box.cards["b_high"].role_combo.currentData() == "auto"
    stack.redo()
    assert box.slots["b_low"] is None and box.cards["b_high"].role_combo.currentData() == "high"
    steps = (stack.count(), stack.index())
    box.set_input("a", b)  # code (a recipe, a project), not the user: no step
    assert (stack.count(), stack.index()) == steps == (3, 2)
    settle(qtbot, box)


def test_a_file_in_the_other_experts_slot_is_warned_until_the_user_says_so(qtbot, box, tmp_path):
    low = lora(tmp_path / "x_low_noise.safetensors")
    box.set_input("a_high", low)
    settle(qtbot, box)
    warned = [i.text for i in box.issues if "is for the low-noise expert" in i.text]
    assert warned == [
        "LoRA A, high-noise expert: x_low_noise.safetensors is for the low-noise expert "
        "(set its card's expert to High noise if that is meant)"
    ]
    assert "used here for the high-noise expert" in box.cards["a_high"].role_text
    box.set_override("a_high", "high")
    assert box.slots["a_high"] == low
    assert not [i for i in box.issues if "is for the low-noise expert" in i.text]


def test_an_input_rewritten_in_place_is_read_again(qtbot, box, tmp_path):
    a = lora(tmp_path / "epoch.safetensors", rank=2)
    box.set_input("a", a)
    settle(qtbot, box)
    assert set(box.summaries["a"].ranks) == {2}
    make_wan_lora("tiny", rank=3, select="self_attn", path=a, overwrite=True)  # the trainer saved again
    qtbot.waitUntil(
        lambda: box.summaries["a"] is not None and set(box.summaries["a"].ranks) == {3}, timeout=10_000
    )
    assert str(a) in box.watcher.files()  # still watched after the file was replaced


# --- through the panel: what the box gives is what the merge writes ------------------------------


def _deltas(path: Path) -> dict:
    import torch

    from difflora_gui.lora.reader import open_lora

    with open_lora(path) as opened:
        return {name: opened.load(name).delta(dtype=torch.float64) for name in opened.names()}


def _combo_part_deltas(path: Path, expert: str) -> dict:
    import torch

    from difflora_gui.lora.reader import open_lora

    with open_lora(path) as opened:
        part = opened.part(expert)
        return {name: part.load(name).delta(dtype=torch.float64) for name in part.names()}


@pytest.mark.parametrize("layout", ["split", "combo"])
def test_a_two_expert_merge_from_the_panel_writes_each_experts_difference(
    qtbot, monkeypatch, tmp_path, layout
):
    import torch
    from merge_panel_helpers import PanelWindow

    from difflora_gui.lora.synthetic import make_wan_combo, make_wan_split

    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    if layout == "split":  # A and B as ai-toolkit pairs
        split_a = make_wan_split("tiny", stem=tmp_path / "A" / "concept", seed=0, rank=2, select="self_attn")
        split_b = make_wan_split("tiny", stem=tmp_path / "B" / "base", seed=5, rank=2, select="self_attn")
        dropped = [split_a["high"][0], split_a["low"][0], split_b["high"][0], split_b["low"][0]]
        expected = {e: (_deltas(split_a[e][0]), _deltas(split_b[e][0])) for e in ("high", "low")}
        stem = "concept-minus-base"
    else:  # A one combo file, B a joint file used for both experts
        combo = tmp_path / "A" / "concept combo.safetensors"
        make_wan_combo("tiny", path=combo, rank=2, select="self_attn")
        joint = lora(tmp_path / "B" / "base joint.safetensors", seed=9)
        dropped = [combo, joint]
        expected = {e: (_combo_part_deltas(combo, e), _deltas(joint)) for e in ("high", "low")}
        stem = "concept combo-minus-base joint"
    window = PanelWindow(qtbot, monkeypatch, tmp_path)
    try:
        panel = window.panel
        panel.accept_files(dropped)
        qtbot.waitUntil(lambda: not panel.inputs.reading(), timeout=TIMEOUT_MS)
        assert panel.inputs.two_expert
        panel.rank_form.editors["rank"].editor.setValue(0)  # the exact difference
        window.run("merge")
        written = sorted(p.name for p in window.out.iterdir() if p.suffix == ".safetensors")
        assert written == [f"{stem}_high_noise.safetensors", f"{stem}_low_noise.safetensors"]
        for expert in ("high", "low"):
            out = _deltas(window.out / f"{stem}_{expert}_noise.safetensors")
            da, db = expected[expert]
            assert set(out) == set(da)
            for name, delta in out.items():
                torch.testing.assert_close(delta, da[name] - db[name], rtol=1e-5, atol=1e-6)
    finally:
        window.close()


def test_default_output_name_leaves_out_the_expert_word_only():
    assert (
        default_output_name("a/x_high_noise.safetensors", "b/y_HIGH.safetensors") == "x-minus-y.safetensors"
    )
    assert default_output_name("a/highlights.safetensors", "b/low_res_base.safetensors") == (
        "highlights-minus-low_res_base.safetensors"
    )
    assert default_output_name("dense scenes.safetensors", "sparse.safetensors") == (
        "dense scenes-minus-sparse.safetensors"
    )


def test_an_override_on_a_one_model_card_opens_the_expert_grid(qtbot, box, tmp_path):
    plain = lora(tmp_path / "musubi run 3.safetensors")
    box.set_input("a", plain)
    settle(qtbot, box)
    assert not box.two_expert and box.cards["a"].role_row.isVisible()
    box.cards["a"].override_chosen.emit("high")
    assert box.two_expert and box.slots["a_high"] == plain and box.slots["a_low"] is None
    assert box.fields()["lora_a_high"] == str(plain) and box.fields()["lora_a_low"] is None
    assert box.cards["a_high"].role_combo.currentData() == "high"
