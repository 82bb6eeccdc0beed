"""DatasetEditor: every edit of a pair set is one undoable step, and no file on disk changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from difflora_gui.dataset.model import MediaItem, Pair, PairSet
from difflora_gui.errors import UserError
from difflora_gui.qt.dataset.edits import DatasetEditor
from difflora_gui.qt.undo import UndoStack


@pytest.fixture
def folder(tmp_path):
    for side, value in (("A", 200), ("B", 60)):
        (tmp_path / side).mkdir()
        for stem in ("one", "two", "three"):
            cv2.imwrite(str(tmp_path / side / f"{stem}.png"), np.full((32, 48, 3), value, np.uint8))
    cv2.imwrite(str(tmp_path / "new ünïcode.png"), np.full((32, 48, 3), 9, np.uint8))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


def _listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture
def editor(qtbot, folder):
    pairs = [
        Pair(
            stem,
            MediaItem.from_path(folder / "A" / f"{stem}.png"),
            MediaItem.from_path(folder / "B" / f"{stem}.png"),
        )
        for stem in ("one", "two", "three")  # not in id order on purpose
    ]
    stack = UndoStack()
    return DatasetEditor(PairSet("set", pairs), stack)


def test_exclude_undo_redo(qtbot, editor):
    with qtbot.waitSignal(editor.changed) as blocker:
        editor.set_included(["two"], False)
    assert blocker.args == [["two"]]
    assert editor.pair_set.pair("two").include is False
    assert editor.undo_stack.count() == 1 and editor.undo_stack.undoText() == "Exclude pair two"
    with qtbot.waitSignal(editor.changed) as blocker:
        editor.undo_stack.undo()
    assert blocker.args == [["two"]] and editor.pair_set.pair("two").include is True
    editor.undo_stack.redo()
    assert editor.pair_set.pair("two").include is False
    # excluding what is already excluded is no step
    assert editor.set_included(["two"], False) == []
    assert editor.undo_stack.count() == 1


def test_a_bulk_caption_is_one_step(editor):
    editor.set_captions(["one", "two"], "a film still")
    editor.set_captions(["one", "two", "three"], "dense")
    assert editor.undo_stack.count() == 2
    assert [p.caption for p in editor.pair_set.pairs] == ["dense", "dense", "dense"]
    editor.undo_stack.undo()
    assert [p.caption for p in editor.pair_set.pairs] == ["a film still", "a film still", ""]
    editor.undo_stack.undo()
    assert [p.caption for p in editor.pair_set.pairs] == ["", "", ""]
    editor.undo_stack.redo()
    editor.undo_stack.redo()
    editor.set_captions(["one", "two", "three"], "")  # bulk clear
    assert editor.undo_stack.undoText() == "Clear the caption of 3 pairs"
    assert all(p.caption == "" for p in editor.pair_set.pairs)


def test_swap_then_undo_restores_a_and_b(editor, folder):
    before = editor.pair_set.pair("one")
    editor.swap(["one", "three"])
    assert editor.undo_stack.count() == 1
    swapped = editor.pair_set.pair("one")
    assert swapped.a == before.b and swapped.b == before.a
    editor.undo_stack.undo()
    assert editor.pair_set.pair("one") == before
    assert editor.pair_set.pair("three").a.path.endswith(str((folder / "A" / "three.png").name))


def test_remove_deletes_from_the_set_only_and_undo_puts_them_back_in_place(editor, folder):
    listing = _listing(folder)
    editor.remove(["two", "one"])
    assert editor.pair_set.ids() == ["three"]
    editor.undo_stack.undo()
    assert editor.pair_set.ids() == ["one", "two", "three"]
    editor.undo_stack.redo()
    assert editor.pair_set.ids() == ["three"]
    assert _listing(folder) == listing  # nothing on disk changed


def test_replace_checks_the_file(editor, folder, qtbot):
    listing = _listing(folder)
    for bad, reason in (
        ("empty.png", "empty"),
        ("text.png", ""),
        ("notes.txt", "not an image or video"),
        ("missing.png", ""),
    ):
        with pytest.raises(UserError) as info:
            editor.replace("one", "b", str(folder / bad))
        message = str(info.value)
        assert bad in message and "\n" not in message
        assert reason in message
    assert editor.undo_stack.count() == 0
    assert editor.pair_set.pair("one").b.path == str(folder / "B" / "one.png")

    good = folder / "new ünïcode.png"
    assert editor.replace("one", "b", str(good)) is True
    assert editor.pair_set.pair("one").b.path == str(good)
    assert editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert editor.pair_set.pair("one").b.path == str(folder / "B" / "one.png")
    assert _listing(folder) == listing
    with pytest.raises(ValueError):
        editor.replace("one", "c", str(good))


def test_unknown_ids_are_ignored(editor):
    assert editor.set_included(["nope"], False) == []
    assert editor.swap([]) == []
    assert editor.undo_stack.count() == 0
    assert editor.pair("nope") is None
