"""The Qt-free project model: sections, change notification, JSON file, validation, migration."""

from __future__ import annotations

import json

import pytest

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.project import (
    PROJECT_FORMAT,
    PROJECT_VERSION,
    Project,
    register_migration,
    versions,
    with_suffix,
)
from difflora_gui.project.records import RecordError
from difflora_gui.specs import SECTIONS


def test_new_project_has_every_section_and_is_clean():
    project = Project()
    assert project.name == "Untitled"
    assert project.section_keys() == list(SECTIONS)
    assert all(project.section(key) == {} for key in SECTIONS)
    assert not project.dirty
    assert project.path is None


def test_section_changes_notify_and_mark_dirty():
    project = Project()
    heard = []
    unsubscribe = project.subscribe(heard.append)
    project.set_section("merge", {"rank": 16, "blocks": [0, 1, 2]})
    assert heard == ["merge", "dirty"]
    assert project.dirty
    project.set_section("merge", {"rank": 16, "blocks": [0, 1, 2]})  # unchanged: no event
    assert heard == ["merge", "dirty"]
    project.update_section("merge", rank=8)
    assert project.section("merge") == {"rank": 8, "blocks": [0, 1, 2]}
    assert heard == ["merge", "dirty", "merge"]
    project.name = "Denser"
    assert heard[-1] == "name"
    unsubscribe()
    project.update_section("merge", rank=4)
    assert heard[-1] == "name"


def test_section_returns_a_copy():
    project = Project(sections={"dataset": {"pairs": [["a.png", "b.png"]]}})
    data = project.section("dataset")
    data["pairs"].append(["c.png", "d.png"])
    assert project.section("dataset") == {"pairs": [["a.png", "b.png"]]}
    assert not project.dirty


def test_panels_may_add_their_own_section_keys_but_not_reserved_ones():
    project = Project()
    project.set_section("merge.workbench", {"x": 1})
    assert "merge.workbench" in project.section_keys()
    for bad in ("name", "dirty", "Merge", "", "1abc"):
        with pytest.raises(ValueError):
            project.set_section(bad, {})


def test_unstorable_section_data_is_refused_up_front():
    project = Project()
    with pytest.raises(UserError, match="cannot be stored"):
        project.set_section("merge", {"tensor": object()})
    with pytest.raises(UserError):
        project.set_section("merge", {"nan": float("nan")})
    assert not project.dirty


def test_save_and_load_round_trip(tmp_path):
    folder = tmp_path / "my projects ü"
    folder.mkdir()
    path = folder / "Anime denser.difflora"
    project = Project("Anime denser", output_dir=str(tmp_path / "out"))
    project.set_section("merge", {"rank": 32, "blocks": list(range(40)), "note": "ß→∆"})
    project.save(path)
    assert not project.dirty
    assert project.path == path
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temp file left behind

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == PROJECT_FORMAT
    assert data["version"] == PROJECT_VERSION
    assert data["sections"]["merge"]["note"] == "ß→∆"

    loaded = Project.load(path)
    assert loaded.name == "Anime denser"
    assert loaded.output_dir == str(tmp_path / "out")
    assert loaded.section("merge") == {"rank": 32, "blocks": list(range(40)), "note": "ß→∆"}
    assert loaded.path == path
    assert not loaded.dirty


def test_save_without_a_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="choose where"):
        Project().save()
    with pytest.raises(UserError, match="folder does not exist"):
        Project().save(tmp_path / "missing" / "p.difflora")


def test_write_copy_keeps_path_and_dirty_flag(tmp_path):
    project = Project()
    project.save(tmp_path / "a.difflora")
    project.update_section("train", steps=100)
    project.write_copy(tmp_path / "autosave.difflora")
    assert project.path == tmp_path / "a.difflora"
    assert project.dirty
    assert Project.load(tmp_path / "autosave.difflora").section("train") == {"steps": 100}


def test_unknown_top_level_keys_survive_a_round_trip(tmp_path):
    path = tmp_path / "p.difflora"
    path.write_text(
        json.dumps({"format": PROJECT_FORMAT, "version": 1, "name": "x", "sections": {}, "notes": {"k": 1}}),
        encoding="utf-8",
    )
    project = Project.load(path)
    project.save(tmp_path / "q.difflora")
    assert json.loads((tmp_path / "q.difflora").read_text(encoding="utf-8"))["notes"] == {"k": 1}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "invalid JSON at line 1"),
        (b"[1, 2]", "not a DiffLoRA Studio project file"),
        (json.dumps({"version": 1}).encode(), "not a DiffLoRA Studio project file"),
        (json.dumps({"format": PROJECT_FORMAT}).encode(), "bad or missing project version"),
        (json.dumps({"format": PROJECT_FORMAT, "version": "1"}).encode(), "bad or missing project version"),
        (json.dumps({"format": PROJECT_FORMAT, "version": 99}).encode(), "made by a newer DiffLoRA Studio"),
        (json.dumps({"format": PROJECT_FORMAT, "version": 1, "sections": []}).encode(), '"sections" must be'),
        (
            json.dumps({"format": PROJECT_FORMAT, "version": 1, "sections": {"merge": 3}}).encode(),
            "section 'merge'",
        ),
        (json.dumps({"format": PROJECT_FORMAT, "version": 1, "name": 5}).encode(), '"name" must be'),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file_and_are_left_alone(tmp_path, content, problem):
    path = tmp_path / "bad project.difflora"
    path.write_bytes(content)
    with pytest.raises(BadFileError) as caught:
        Project.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert problem in message
    assert path.read_bytes() == content


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadFileError, match="file not found"):
        Project.load(tmp_path / "nope.difflora")
    with pytest.raises(BadFileError):
        Project.load(tmp_path)


def test_older_sections_are_migrated_forward(tmp_path, monkeypatch):
    monkeypatch.setitem(versions.SECTION_VERSIONS, "train", 2)

    def rename_steps(data):
        data["sections"]["train"] = {"max_steps": data["sections"]["train"].pop("steps")}
        return data

    monkeypatch.setitem(versions.MIGRATIONS, "train", {1: rename_steps})
    path = tmp_path / "old.difflora"
    original = json.dumps(
        {"format": PROJECT_FORMAT, "version": 1, "name": "old", "sections": {"train": {"steps": 100}}}
    )
    path.write_text(original, encoding="utf-8")
    project = Project.load(path)
    assert project.section("train") == {"max_steps": 100}
    assert project.dirty  # it needs saving in the new format...
    assert path.read_text(encoding="utf-8") == original  # ...but loading never rewrites the file
    project.save()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["version"] == PROJECT_VERSION
    assert saved["versions"]["train"] == 2


def test_register_migration_adds_a_step_for_one_section(monkeypatch):
    monkeypatch.setattr(versions, "MIGRATIONS", {})
    monkeypatch.setitem(versions.SECTION_VERSIONS, "preview", 2)

    @register_migration("preview", 1)
    def add_seed(data):
        data["sections"]["preview"]["seed"] = 42
        return data

    assert {"preview": {1: add_seed}} == versions.MIGRATIONS
    data = {"format": PROJECT_FORMAT, "version": 1, "sections": {"preview": {}}}
    assert Project.from_json(data).section("preview") == {"seed": 42}


def test_missing_migration_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(versions.SECTION_VERSIONS, "dataset", 3)
    path = tmp_path / "old.difflora"
    path.write_text(
        json.dumps({"format": PROJECT_FORMAT, "version": 1, "sections": {"dataset": {}}}), encoding="utf-8"
    )
    with pytest.raises(BadFileError, match="no migration for section 'dataset' from version 1"):
        Project.load(path)


def test_with_suffix(tmp_path):
    assert with_suffix(tmp_path / "a").name == "a.difflora"
    assert with_suffix(tmp_path / "a.difflora").name == "a.difflora"
    assert with_suffix(tmp_path / "a.v2").name == "a.v2.difflora"


def test_the_merge_history_keeps_every_merge_with_its_files_and_hashes(tmp_path):
    from difflora_gui.project import MergeRecord

    project = Project()
    recipe = {"lora_a": str(tmp_path / "a.safetensors"), "lora_b": str(tmp_path / "b.safetensors")}
    high, low = tmp_path / "out_high_noise.safetensors", tmp_path / "out_low_noise.safetensors"
    first = project.record_merge(recipe, str(high), id="m1", outputs=[str(high), str(low)],
                                 sha256={str(high): "aa", str(low): "bb"})  # fmt: skip
    again = project.record_merge(recipe, str(high), id="m1", outputs=[str(high), str(low)],
                                 sha256={str(high): "cc", str(low): "dd"}, replaced=[str(high), str(low)])  # fmt: skip
    assert again.id != first.id  # appended, never replacing the earlier merge
    assert [r.id for r in project.merge_history()] == [first.id, again.id]
    assert first.written == [str(high), str(low)] and first.output == str(high)
    assert project.producer_of(low) is again  # the newest merge that wrote it

    path = tmp_path / "history.difflora"
    project.save(path)
    stored = json.loads(path.read_text(encoding="utf-8"))
    kept = next(r for r in stored["records"] if r["id"] == again.id)
    assert kept["outputs"] == ["out_high_noise.safetensors", "out_low_noise.safetensors"]  # relative to it
    assert kept["sha256"] == {"out_high_noise.safetensors": "cc", "out_low_noise.safetensors": "dd"}
    reopened = Project.load(path)
    record = reopened.get_record(again.id)
    assert isinstance(record, MergeRecord)
    assert record.sha256 == {str(high): "cc", str(low): "dd"} and record.replaced == [str(high), str(low)]
    assert [r.id for r in reopened.merge_history()] == [first.id, again.id]


def test_an_older_merge_record_without_outputs_reads_its_one_output():
    from difflora_gui.project import MergeRecord, Record

    record = Record.from_json({"kind": "merge", "id": "old", "output": "/x/y.safetensors", "recipe": {}})
    assert isinstance(record, MergeRecord) and record.outputs == ["/x/y.safetensors"] and record.sha256 == {}
    with pytest.raises(RecordError):
        Record.from_json({"kind": "merge", "id": "bad", "sha256": ["not", "a", "map"]})
