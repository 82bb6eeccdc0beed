"""Pairing rules, pair_folders/import_single on real files, and the stored pair set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from difflora_gui.dataset.model import PairSet
from difflora_gui.dataset.pairing import PairingRule, import_single, natural_key, pair_folders, run_pairing
from difflora_gui.dataset.store import (
    PAIRS_FILE,
    copy_into_workspace,
    create_dataset,
    dataset_folder,
    load_pair_set,
    save_pair_set,
)
from difflora_gui.errors import BadFileError, UserError
from difflora_gui.jobs.recording import RecordingContext
from tests.dataset_media_helpers import folder_digest, write_image, write_video


def names(items) -> list[str]:
    return [Path(i.path).name for i in items]


# --- rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("stem", "stem"),
        ("", "stem"),
        ("  STEM ", "stem"),
        ("suffix:_dense,_sparse", "suffix:_dense,_sparse"),
        ("suffix: _A , _B", "suffix:_A,_B"),
        ("suffix:,_simple", "suffix:,_simple"),
        (r"regex:^(?P<key>\d+)_", r"regex:^(?P<key>\d+)_"),
        ("regex:a,b", "regex:a,b"),
    ],
)
def test_rule_text_round_trip(text, expected):
    rule = PairingRule.parse(text)
    assert str(rule) == expected
    assert PairingRule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    "text, message",
    [
        ("suffix:_a", "expected suffix"),
        ("suffix:,", "expected suffix"),
        ("suffix:_x,_X", "must differ"),
        ("regex:", "expected regex"),
        ("regex:(", "bad regular expression"),
        ("name", "unknown pairing rule"),
        ("stem:x", "unknown pairing rule"),
    ],
)
def test_bad_rules_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=message):
        PairingRule.parse(text)


def test_rule_keys():
    suffix = PairingRule.parse("suffix:_dense,_sparse")
    assert suffix.key("shot3_dense", "a") == "shot3"
    assert suffix.key("Shot3_DENSE", "a") == "Shot3"  # case-insensitive
    assert suffix.key("shot3_sparse", "b") == "shot3"
    assert suffix.key("shot3_sparse", "a") is None
    assert suffix.key("_dense", "a") is None  # nothing left as the key
    one_sided = PairingRule.parse("suffix:,_simple")
    assert one_sided.key("frame1", "a") == "frame1"
    assert one_sided.key("frame1_simple", "a") is None
    assert one_sided.key("frame1_simple", "b") == "frame1"
    assert one_sided.key("frame1", "b") is None
    assert PairingRule.parse(r"regex:(?P<key>\d+)$").key("take_0042", "a") == "0042"
    assert PairingRule.parse(r"regex:^x(\d+)_(\w+)").key("x12_left", "b") == "12"
    assert PairingRule.parse(r"regex:\d+").key("a7b", "a") == "7"
    assert PairingRule.parse(r"regex:\d+").key("none", "a") is None


def test_natural_order():
    stems = ["frame10", "Frame2", "frame1", "frame2b", "frame003x"]
    assert sorted(stems, key=natural_key) == ["frame1", "Frame2", "frame2b", "frame003x", "frame10"]


# --- pairing two folders --------------------------------------------------------------------------


def make_folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "dense", tmp_path / "sparse"
    for i in (1, 2, 10):
        write_image(a / f"frame{i}.png", seed=i)
        write_image(b / f"frame{i}.jpg", seed=i + 100)
    write_image(a / "only_a.png")
    write_image(b / "only_b.webp")
    write_video(a / "clip.mp4", frames=6)
    write_video(b / "clip.webm", frames=6)
    (a / ".hidden.png").write_bytes(b"not even an image")
    (a / "Thumbs.db").write_bytes(b"junk")
    (a / "sub").mkdir()
    write_image(a / "sub" / "frame3.png")
    (a / "frame2.txt").write_text("a caption for frame 2\n", encoding="utf-8")
    (b / "readme.txt").write_text("no image has this name", encoding="utf-8")
    return a, b


def test_pair_by_stem(tmp_path):
    a, b = make_folders(tmp_path)
    before = folder_digest(tmp_path)
    ctx = RecordingContext()
    pair_set = pair_folders(a, b, "stem", ctx)
    assert pair_set.ids() == ["clip", "frame1", "frame2", "frame10"]
    assert [(names([p.a]), names([p.b])) for p in pair_set.pairs][1] == (["frame1.png"], ["frame1.jpg"])
    assert pair_set.pair("clip").a.kind == "video" and pair_set.pair("clip").b.kind == "video"
    assert pair_set.pair("frame2").caption == "a caption for frame 2"
    assert pair_set.pair("frame1").caption == "" and pair_set.pair("frame1").include
    assert names(pair_set.unpaired_a) == ["only_a.png"]
    assert names(pair_set.unpaired_b) == ["only_b.webp"]
    assert [(Path(s.path).name, s.reason) for s in pair_set.skipped] == [
        ("readme.txt", "a text file with no image or video of that name")
    ]
    assert pair_set.sources == {"a": str(a), "b": str(b)} and pair_set.rule == "stem"
    assert pair_set.pair("frame1").a.path == str(a / "frame1.png")  # paths as given
    assert ctx.progress_reports and ctx.progress_reports[-1].done == ctx.progress_reports[-1].total == 10
    assert folder_digest(tmp_path) == before  # nothing in the sources changed


def test_pair_by_suffix_in_two_folders_and_in_one(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for key in ("shot1", "shot2", "Shot10"):
        write_image(a / f"{key}_Dense.png")
        write_image(b / f"{key}_sparse.png")
    write_image(a / "stray.png")
    pair_set = pair_folders(a, b, "suffix:_dense,_sparse")
    assert pair_set.ids() == ["shot1", "shot2", "Shot10"]
    assert names(pair_set.unpaired_a) == ["stray.png"] and pair_set.unpaired_b == []
    both = tmp_path / "both"
    for key in ("x1", "x2"):
        write_image(both / f"{key}_A.jpg")
        write_image(both / f"{key}_B.jpg")
    write_image(both / "x3_A.jpg")
    write_image(both / "loose.jpg")
    same = pair_folders(both, both, "suffix:_A,_B")
    assert same.ids() == ["x1", "x2"]
    assert names([same.pair("x2").a, same.pair("x2").b]) == ["x2_A.jpg", "x2_B.jpg"]
    assert names(same.unpaired_a) == ["x3_A.jpg"] and same.unpaired_b == []
    assert [Path(s.path).name for s in same.skipped] == ["loose.jpg"]
    assert "neither side" in same.skipped[0].reason
    with pytest.raises(UserError, match="same folder"):
        pair_folders(both, both, "stem")


def test_pair_by_regex(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "take_0001_hd.png")
    write_image(a / "take_0002_hd.png")
    write_image(b / "0001-simple.png")
    write_image(b / "0002-simple.png")
    write_image(b / "cover.png")
    pair_set = pair_folders(a, b, r"regex:(?P<key>\d{4})")
    assert pair_set.ids() == ["0001", "0002"]
    assert names(pair_set.unpaired_b) == ["cover.png"]


def test_duplicate_keys_pair_same_extensions_and_ids_stay_unique(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_image(a / "a.jpg")
    write_image(a / "a.png")
    write_image(b / "a.png")
    pair_set = pair_folders(a, b)
    assert pair_set.ids() == ["a"]
    assert names([pair_set.pairs[0].a, pair_set.pairs[0].b]) == ["a.png", "a.png"]
    assert names(pair_set.unpaired_a) == ["a.jpg"]
    c, d = tmp_path / "C", tmp_path / "D"
    for name in ("Frame.png", "frame.jpg"):
        write_image(c / name)
    for name in ("FRAME.png", "frame.jpg"):
        write_image(d / name)
    mixed = pair_folders(c, d)
    assert len(mixed.pairs) == 2 and len({i.casefold() for i in mixed.ids()}) == 2
    assert mixed.ids() == ["frame", "Frame~2"]  # frame.jpg sorts before Frame.png
    assert names([mixed.pair("frame").a, mixed.pair("frame").b]) == ["frame.jpg", "frame.jpg"]


def test_bad_files_are_skipped_with_their_reasons(tmp_path):
    a, b = make_folders(tmp_path)
    (a / "frame1.png").write_bytes(b"")
    (b / "frame2.jpg").write_text("text, not a JPEG", encoding="utf-8")
    pair_set = pair_folders(a, b)
    assert pair_set.ids() == ["clip", "frame10"]
    reasons = {Path(s.path).name: s.reason for s in pair_set.skipped}
    assert "empty" in reasons["frame1.png"] and "not an image" in reasons["frame2.jpg"]
    assert names(pair_set.unpaired_a) == ["frame2.png", "only_a.png"]
    assert names(pair_set.unpaired_b) == ["frame1.jpg", "only_b.webp"]


def test_missing_folders_and_files_instead_of_folders(tmp_path):
    a, b = make_folders(tmp_path)
    with pytest.raises(UserError, match="folder not found"):
        pair_folders(a, tmp_path / "nope")
    with pytest.raises(UserError, match="not a folder"):
        pair_folders(a / "frame1.png", b)


def test_a_folder_that_vanishes_during_the_import_is_a_clear_error(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(40):
        write_image(a / f"f{i}.png", 16, 16)
        write_image(b / f"f{i}.png", 16, 16)
    before_a = folder_digest(a)

    class Vanishing(RecordingContext):
        def _emit_progress(self, progress):
            super()._emit_progress(progress)
            if progress.done >= 3 and b.exists():
                shutil.rmtree(b)

    with pytest.raises(UserError, match="disappeared during the import") as caught:
        pair_folders(a, b, "stem", Vanishing(progress_interval_s=0))
    assert str(b) in str(caught.value)
    assert folder_digest(a) == before_a


def test_import_single_folder(tmp_path):
    a, _ = make_folders(tmp_path)
    (a / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    pair_set = import_single(a)
    assert pair_set.ids() == ["clip", "frame1", "frame2", "frame10", "only_a"]
    assert all(p.b is None and not p.complete for p in pair_set.pairs)
    assert pair_set.sources == {"a": str(a)}
    assert [Path(s.path).name for s in pair_set.skipped] == ["broken.jpg"]
    assert run_pairing({"a_dir": str(a)}, RecordingContext()).ids() == pair_set.ids()


def test_many_files_probe_in_parallel_in_order(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(150):
        write_image(a / f"img{i}.jpg", 24, 16, seed=i)
        write_image(b / f"img{i}.jpg", 24, 16, seed=i)
    pair_set = pair_folders(a, b)
    assert pair_set.ids() == [f"img{i}" for i in range(150)]


# --- the stored pair set --------------------------------------------------------------------------


def test_save_and_load_round_trip_atomically(tmp_path):
    a, b = make_folders(tmp_path)
    pair_set = pair_folders(a, b)
    pair_set.set_included(["frame1"], False)
    folder = tmp_path / "dataset"
    written = save_pair_set(folder, pair_set)
    assert written == folder / PAIRS_FILE
    assert [p.name for p in folder.iterdir()] == [PAIRS_FILE]  # no temporary file left
    stored = json.loads(written.read_text(encoding="utf-8"))
    assert stored["pairs"][1]["a"]["path"] == str(a.resolve() / "frame1.png")  # outside: absolute
    loaded = load_pair_set(folder)
    assert loaded.ids() == pair_set.ids() and not loaded.pair("frame1").include
    assert loaded.pair("frame2").a.path == str((a / "frame2.png").resolve())
    assert load_pair_set(written).ids() == pair_set.ids()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "bad JSON"),
        (b"{not json", "bad JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"format": "something-else"}', "not a DiffLoRA pair list"),
        (b'{"format": "difflora-pairs", "pairs": 5}', "damaged"),
        (b'{"format": "difflora-pairs", "pairs": [{"id": "x", "a": {"path": 3}}]}', "damaged"),
        (b'{"format": "difflora-pairs", "skipped": [7]}', "damaged"),
        (b'{"format": "difflora-pairs", "version": 99}', "newer"),
    ],
)
def test_a_damaged_pair_list_is_one_clear_error(tmp_path, content, message):
    (tmp_path / PAIRS_FILE).write_bytes(content)
    with pytest.raises(BadFileError, match=message) as caught:
        load_pair_set(tmp_path)
    assert PAIRS_FILE in str(caught.value) and "\n" not in str(caught.value)


def test_no_pair_list(tmp_path):
    with pytest.raises(BadFileError, match="no pair list"):
        load_pair_set(tmp_path)


def test_project_dataset_record_and_relative_paths(tmp_path):
    from difflora_gui.project.model import Project
    from difflora_gui.project.records import DatasetRecord

    project_dir = tmp_path / "proj"
    a, b = make_folders(project_dir)
    project = Project("p")
    project.save(project_dir / "p.difflora")
    pair_set = pair_folders(a, b)
    record = create_dataset(project, pair_set, name="film")
    assert isinstance(record, DatasetRecord) and record.pair_count == 4
    assert project.get_record(record.id) == record
    folder = dataset_folder(project, record.id)
    assert folder == project.workspace_root / "datasets" / record.id
    assert sorted(record.sources) == sorted([str(a.resolve()), str(b.resolve())])
    stored = json.loads((folder / PAIRS_FILE).read_text(encoding="utf-8"))
    assert not Path(stored["pairs"][0]["a"]["path"]).is_absolute()  # inside the project: relative
    moved = tmp_path / "moved"
    shutil.move(str(project_dir), moved)
    reopened = load_pair_set(moved / folder.relative_to(project_dir))
    assert reopened.pair("frame1").a.path == str(moved / "dense" / "frame1.png")
    assert Path(reopened.pair("frame1").a.path).is_file()
    assert dataset_folder(project, "unknown1234").name == "unknown1234"


def test_copy_into_workspace_copies_never_moves(tmp_path):
    a, b = make_folders(tmp_path / "src")
    other = tmp_path / "other"
    write_image(other / "frame1.png", seed=77)  # the same name as an A item, other pixels
    pair_set = pair_folders(a, b)
    pair_set.replace_item(
        "frame2", "a", pair_set.pair("frame2").a.__class__(str(other / "frame1.png"), "image")
    )
    before = folder_digest(tmp_path / "src")
    target = tmp_path / "ws" / "datasets" / "d1"
    copied = copy_into_workspace(pair_set, target, RecordingContext())
    assert folder_digest(tmp_path / "src") == before
    assert sorted(p.name for p in (target / "a").iterdir()) == sorted(
        ["clip.mp4", "frame1.png", "frame1~2.png", "frame10.png", "only_a.png"]
    )
    assert Path(copied.pair("frame2").a.path) == target / "a" / "frame1~2.png"
    assert (target / "a" / "frame1~2.png").read_bytes() == (other / "frame1.png").read_bytes()
    assert copied.sources == {"a": str(target / "a"), "b": str(target / "b")}
    assert all(Path(i.path).is_file() for p in copied.pairs for i in (p.a, p.b))
    again = copy_into_workspace(pair_set, target)  # copied before: the same files, no new names
    assert [p.to_json() for p in again.pairs] == [p.to_json() for p in copied.pairs]
    assert len(list((target / "a").iterdir())) == 5


def test_pair_set_json_round_trip_of_a_real_import(tmp_path):
    a, b = make_folders(tmp_path)
    pair_set = pair_folders(a, b)
    assert PairSet.from_json(json.loads(json.dumps(pair_set.to_json()))) == pair_set


def test_pair_dropped_files(tmp_path):
    from difflora_gui.dataset.pairing import pair_files

    a, b = make_folders(tmp_path)
    elsewhere = write_image(tmp_path / "loose" / "frame10.png")
    pair_set = pair_files(
        [a / "frame1.png", a / "frame2.png", a / "notes.md", a / "gone.png"],
        [b / "frame1.jpg", b / "frame2.jpg", elsewhere],
    )
    assert pair_set.ids() == ["frame1", "frame2"]
    assert pair_set.pair("frame2").caption == "a caption for frame 2"
    assert names(pair_set.unpaired_b) == ["frame10.png"]
    assert {Path(s.path).name: s.reason for s in pair_set.skipped} == {
        "notes.md": "not an image or video (.md)",
        "gone.png": "the file does not exist (moved or deleted?)",
    }
    assert pair_set.sources == {"a": str(a)}  # B's files come from two folders


def test_cancel_stops_the_import(tmp_path):
    from difflora_gui.errors import JobCancelled

    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(60):
        write_image(a / f"f{i}.png", 16, 16)
        write_image(b / f"f{i}.png", 16, 16)
    ctx = RecordingContext(cancel_after_progress=2, progress_interval_s=0)
    with pytest.raises(JobCancelled):
        pair_folders(a, b, "stem", ctx)
    assert ctx.progress_reports[-1].done < 120


def test_undoing_a_removal_puts_pairs_back_in_their_places(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in (1, 2, 3, 10, 11):
        write_image(a / f"f{i}.png", 8, 8)
        write_image(b / f"f{i}.png", 8, 8)
    pair_set = pair_folders(a, b)
    assert pair_set.ids() == ["f1", "f2", "f3", "f10", "f11"]
    removed = pair_set.remove(["f2", "f10"])
    pair_set.restore(removed)
    assert pair_set.ids() == ["f1", "f2", "f3", "f10", "f11"]  # natural order, not f10 before f2
