"""The project workspace: version-1 files, relative paths, moved folders, missing files, records, lineage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.jobs.eventlog import EventLog, read_events
from difflora_gui.jobs.events import Artifact, Metric
from difflora_gui.project import (
    PROJECT_FORMAT,
    PROJECT_VERSION,
    DatasetRecord,
    LoraUse,
    MergeRecord,
    Project,
    RenderRecord,
    RunRecord,
    new_record_id,
)
from difflora_gui.settings import data_dir

FIXTURES = Path(__file__).parent / "fixtures" / "projects"
V1_LORAS = ("loras/dense ü A.safetensors", "loras/dense ü B.safetensors", "out/denser ü.safetensors")


def make_file(path: Path, content: bytes = b"lora") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def v1_project_folder(tmp_path: Path) -> Path:
    """The version-1 fixture copied into a folder with the LoRA files it names beside it."""
    folder = tmp_path / "projects ß" / "anime denser"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "v1-merge-workbench.difflora", folder / "denser.difflora")
    for relative in V1_LORAS:
        make_file(folder / relative)
    return folder / "denser.difflora"


def test_a_version_1_project_written_by_the_merge_workbench_opens(tmp_path):
    path = v1_project_folder(tmp_path)
    original = path.read_bytes()
    project = Project.load(path)
    assert project.dirty  # migrated: it needs saving in the new format
    assert path.read_bytes() == original  # loading never rewrites the file
    merge = project.section("merge")
    settings, recipe = merge["settings"], merge["recipe"]
    assert (settings["targets"], settings["rank"], settings["exclude_non_targeted"]) == ("attn", 8, True)
    assert recipe["created"] == "2026-12-01T21:58:02Z"
    assert merge["output_auto"] is False
    folder = path.parent
    for key, relative in zip(("lora_a", "lora_b", "output"), V1_LORAS, strict=True):
        assert Path(settings[key]) == folder / relative
        assert Path(recipe[key]).is_file()
    assert Path(merge["last_output"]) == folder / V1_LORAS[2]
    assert project.output_dir == str(folder / "out")
    assert project.missing_files() == []

    # the last merge became a record with its inputs, recipe and output
    (record,) = project.records("merge")
    assert isinstance(record, MergeRecord)
    assert merge["last_merge_id"] == record.id
    assert (Path(record.lora_a), Path(record.lora_b), Path(record.output)) == tuple(folder / p for p in V1_LORAS)
    assert record.recipe["rank"] == 8 and record.created == "2026-12-01T21:58:02Z"

    project.save()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["version"] == PROJECT_VERSION
    assert saved["versions"]["merge"] == 2 and saved["versions"]["records"] == 1
    assert saved["sections"]["merge"]["settings"]["lora_a"] == V1_LORAS[0]  # relative, POSIX
    assert saved["records"][0]["lora_a"] == V1_LORAS[0]
    assert saved["output_dir"] == "out"
    again = Project.load(path)
    assert not again.dirty
    assert again.section("merge") == project.section("merge")
    assert again.records() == project.records()


def test_a_version_1_project_with_absolute_paths_is_stored_relative_after_saving(tmp_path):
    folder = tmp_path / "work"
    lora = make_file(folder / "loras" / "a.safetensors")
    path = folder / "p.difflora"
    stored = {"settings": {"lora_a": str(lora), "lora_b": str(lora)}, "output_auto": True}
    data = {"format": PROJECT_FORMAT, "version": 1, "name": "p", "sections": {"merge": stored}}
    path.write_text(json.dumps(data), encoding="utf-8")
    project = Project.load(path)
    assert project.records() == []  # no merge ran yet: nothing to record
    project.save()
    assert json.loads(path.read_text(encoding="utf-8"))["sections"]["merge"]["settings"]["lora_a"] == (
        "loras/a.safetensors"
    )


def build_project(folder: Path, external: Path) -> Project:
    """A saved project with files inside its folder, workspace data and one external input."""
    project = Project("moved")
    folder.mkdir(parents=True)
    project.save(folder / "moved.difflora")
    dataset = project.add_record(DatasetRecord(sources=[str(external)], pair_count=2))
    dataset.location = str(project.workspace.dir_for("datasets", dataset.id))
    make_file(Path(dataset.location) / "pairs.json", b"[]")
    run = RunRecord(dataset_id=dataset.id, config={"rank": 16}, backend="musubi")
    checkpoint = make_file(project.workspace.dir_for("runs", run.id) / "a-000100.safetensors")
    run.checkpoints = [str(checkpoint)]
    with EventLog(project.workspace.events_path("runs", run.id)) as log:
        log.append(Metric("loss", 0.25, 100))
        log.append(Artifact("checkpoint", "a-000100.safetensors"))
    project.add_record(run)
    lora_b = make_file(folder / "loras" / "b.safetensors")
    output = make_file(folder / "out" / "diff.safetensors")
    merge = project.add_record(
        MergeRecord(lora_a=str(checkpoint), lora_b=str(lora_b), run_a=run.id, output=str(output),
                    recipe={"lora_a": str(checkpoint), "lora_b": str(lora_b), "output": str(output), "rank": 4})
    )
    project.update_section(
        "merge", settings={"lora_a": str(checkpoint), "lora_b": str(lora_b), "output": str(output)}
    )
    project.add_record(RenderRecord(loras=[LoraUse(str(output), -2.0, merge.id)], prompt="a city"))
    project.save()
    return project


def test_a_moved_project_folder_still_finds_its_files(tmp_path):
    external = tmp_path / "sources" / "frames"
    external.mkdir(parents=True)
    build_project(tmp_path / "old place", external)
    stored = json.loads((tmp_path / "old place" / "moved.difflora").read_text(encoding="utf-8"))
    assert stored["sections"]["merge"]["settings"]["lora_b"] == "loras/b.safetensors"
    assert stored["records"][0]["sources"] == [str(external)]  # external: absolute

    moved = tmp_path / "elsewhere ü" / "copy"
    shutil.copytree(tmp_path / "old place", moved)
    shutil.rmtree(tmp_path / "old place")  # nothing may still point there
    project = Project.load(moved / "moved.difflora")
    assert project.workspace.root == moved / "moved.difflora.d"
    assert project.missing_files() == []
    for record in project.records():
        for _where, path in record.paths():
            assert Path(path).exists() and Path(path).is_relative_to(moved) or path == str(external)
    settings = project.section("merge")["settings"]
    assert all(Path(settings[key]).is_file() for key in ("lora_a", "lora_b", "output"))
    (merge,) = project.records(MergeRecord)
    assert Path(merge.recipe["lora_a"]).is_file()  # the stored recipe re-runs from the new place
    (run,) = project.records(RunRecord)
    events = read_events(project.workspace.events_path("runs", run.id))
    assert [type(e).__name__ for e in events] == ["Metric", "Artifact"]
    assert project.resolve_path(project.store_path(run.checkpoints[0])) == Path(run.checkpoints[0])


def test_a_missing_external_file_is_reported_with_its_path(tmp_path):
    external = tmp_path / "sources" / "frames"
    external.mkdir(parents=True)
    weights = make_file(tmp_path / "models" / "wan14b.safetensors")
    project = build_project(tmp_path / "project", external)
    project.update_section("merge", settings={"lora_a": str(weights), "lora_b": str(weights)})
    project.save()
    external.rmdir()
    weights.unlink()
    loaded = Project.load(tmp_path / "project" / "moved.difflora")
    missing = {m.path: m for m in loaded.missing_files()}
    assert set(missing) == {external, weights}
    assert missing[weights].where == "merge: settings.lora_a, merge: settings.lora_b"
    assert missing[external].where.startswith("dataset ") and "(sources)" in missing[external].where
    line = missing[weights].describe()
    assert str(weights) in line and "\n" not in line


def test_records_and_lineage_round_trip(tmp_path):
    project = Project()
    dataset = project.add_record(DatasetRecord(name="dense pairs", pair_count=1000))
    run_a = project.add_record(RunRecord(dataset_id=dataset.id, config={"lr": 1e-4, "tags": ["x"]}))
    run_b = project.add_record(RunRecord(dataset_id=dataset.id, config={"lr": 1e-4}))
    merge = project.add_record(MergeRecord(run_a=run_a.id, run_b=run_b.id, recipe={"rank": 4}))
    other = tmp_path / "other.safetensors"
    render = project.add_record(
        RenderRecord(loras=[LoraUse(str(other), 0.5), LoraUse("", -3.0, merge.id)], settings={"seed": 7})
    )
    assert len({r.id for r in project.records()}) == 5 and all(len(r.id) == 12 for r in project.records())
    assert project.lineage(render.id) == [render, merge, run_a, run_b, dataset]
    assert project.lineage(run_b.id) == [run_b, dataset]
    path = tmp_path / "records.difflora"
    project.save(path)
    loaded = Project.load(path)
    assert loaded.records() == project.records()
    assert [type(r) for r in loaded.records()] == [DatasetRecord, RunRecord, RunRecord, MergeRecord, RenderRecord]
    assert loaded.lineage(render.id) == [render, merge, run_a, run_b, dataset]
    assert loaded.get_record(render.id).loras[0] == LoraUse(str(other), 0.5, None)
    with pytest.raises(UserError, match="no record 'nope'"):
        loaded.lineage("nope")


def test_unknown_record_fields_survive_and_bad_records_are_one_line_errors(tmp_path):
    path = tmp_path / "p.difflora"
    record = {"kind": "run", "id": "abc123abc123", "created": "", "future_field": [1, 2]}
    data = {"format": PROJECT_FORMAT, "version": 2, "sections": {}, "records": [record]}
    path.write_text(json.dumps(data), encoding="utf-8")
    project = Project.load(path)
    project.save()
    assert json.loads(path.read_text(encoding="utf-8"))["records"][0]["future_field"] == [1, 2]
    for bad, problem in (({"kind": "spaceship", "id": "x"}, "unknown record kind"),
                         ({"kind": "run", "id": "x", "checkpoints": "a"}, "'checkpoints' must be a list")):
        path.write_text(json.dumps({**data, "records": [bad]}), encoding="utf-8")
        with pytest.raises(BadFileError) as caught:
            Project.load(path)
        assert str(path) in str(caught.value) and problem in str(caught.value) and "record 1" in str(caught.value)


def test_the_workspace_of_an_unsaved_project_survives_the_first_save(tmp_path):
    project = Project()
    unsaved = project.workspace.root
    assert unsaved.parent == data_dir() / "unsaved"
    assert not unsaved.exists()  # nothing is created until asked for
    run = RunRecord()
    checkpoint = make_file(project.workspace.dir_for("runs", run.id) / "last.safetensors", b"weights")
    run.checkpoints = [str(checkpoint)]
    project.add_record(run)
    with EventLog(project.workspace.events_path("runs", run.id)) as log:
        log.append(Metric("loss", 0.5, 1))
    autosave = project.write_copy(tmp_path / "autosave.difflora")  # an autosave names the workspace
    assert Project.load(autosave).workspace.root == unsaved

    path = tmp_path / "first.difflora"
    project.save(path)
    root = tmp_path / "first.difflora.d"
    assert project.workspace.root == root
    assert (root / "runs" / run.id / "last.safetensors").read_bytes() == b"weights"
    assert read_events(root / "runs" / run.id / "events.jsonl") == [Metric("loss", 0.5, 1)]
    assert not unsaved.exists()  # moved, not copied
    assert Path(project.get_record(run.id).checkpoints[0]) == root / "runs" / run.id / "last.safetensors"
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["records"][0]["checkpoints"] == [f"first.difflora.d/runs/{run.id}/last.safetensors"]
    assert Project.load(path).missing_files() == []


def test_save_as_copies_the_workspace_and_never_overwrites_another(tmp_path):
    project = Project()
    project.save(tmp_path / "a.difflora")
    make_file(project.workspace.dir_for("merges", "m1") / "analysis.json", b"{}")
    project.save(tmp_path / "b.difflora")
    assert (tmp_path / "a.difflora.d" / "merges" / "m1" / "analysis.json").is_file()  # the old one stays
    assert (tmp_path / "b.difflora.d" / "merges" / "m1" / "analysis.json").is_file()

    make_file(tmp_path / "c.difflora.d" / "merges" / "m1" / "analysis.json", b"someone else's")
    project.update_section("merge", note="x")
    with pytest.raises(UserError, match="already holds another merges/m1/analysis.json"):
        project.save(tmp_path / "c.difflora")
    assert not (tmp_path / "c.difflora").exists()
    assert (tmp_path / "c.difflora.d" / "merges" / "m1" / "analysis.json").read_bytes() == b"someone else's"
    assert project.path == tmp_path / "b.difflora" and project.dirty


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": PROJECT_VERSION + 1}, f"project version {PROJECT_VERSION + 1}; this version reads up to"),
        ({"versions": {"merge": 3}}, "section 'merge' was made by a newer DiffLoRA Studio (version 3;"),
        ({"versions": {"records": 9}}, "section 'records' was made by a newer DiffLoRA Studio (version 9;"),
    ],
)
def test_newer_versions_are_refused_with_one_clear_line(tmp_path, change, problem):
    path = tmp_path / "future.difflora"
    data = {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "sections": {"merge": {}}, **change}
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BadFileError) as caught:
        Project.load(path)
    message = str(caught.value)
    assert problem in message and "update the app" in message
    assert "\n" not in message and str(path) in message


def test_store_path_and_resolve_path(tmp_path):
    project = Project()
    outside = tmp_path / "elsewhere" / "x.safetensors"
    assert project.store_path(outside) == str(outside)  # unsaved: everything absolute
    (tmp_path / "proj").mkdir()
    project.save(tmp_path / "proj" / "p.difflora")
    inside = tmp_path / "proj" / "sub dir" / "ü.safetensors"
    assert project.store_path(inside) == "sub dir/ü.safetensors"
    assert project.store_path(outside) == str(outside)
    assert project.resolve_path("sub dir/ü.safetensors") == inside
    assert project.resolve_path(str(outside)) == outside
    assert project.store_path("") == ""


def test_record_merge_links_its_inputs_to_the_runs_that_wrote_them(tmp_path):
    (tmp_path / "p").mkdir()
    project = Project()
    project.save(tmp_path / "p" / "p.difflora")
    run = project.add_record(RunRecord())
    checkpoint = make_file(project.workspace.dir_for("runs", run.id) / "a.safetensors")
    run.checkpoints = [str(checkpoint)]
    project.add_record(run)
    outside_b = make_file(tmp_path / "b.safetensors")
    record_id = new_record_id()  # known before the job starts, so its events go to its folder
    events = project.workspace.events_path("merges", record_id)
    with EventLog(events) as log:
        log.append(Artifact("lora", "denser.safetensors"))
    output = make_file(events.parent / "denser.safetensors")
    recipe = {"lora_a": str(checkpoint), "lora_b": str(outside_b), "output": str(output), "rank": 4,
              "created": "2026-12-01T22:00:00Z"}
    merge = project.record_merge(recipe, output, id=record_id)
    assert (merge.id, merge.run_a, merge.run_b, merge.created) == (record_id, run.id, None, "2026-12-01T22:00:00Z")
    assert project.lineage(merge.id) == [merge, run]
    assert project.producer_of(output) == merge
    (artifact,) = read_events(events)
    assert project.workspace.artifact_path("merges", record_id, artifact.path) == output
    project.save()
    assert Project.load(project.path).lineage(merge.id) == [merge, run]


def test_workspace_folders_are_made_on_demand_by_kind(tmp_path):
    project = Project()
    (tmp_path / "w").mkdir()
    project.save(tmp_path / "w" / "w.difflora")
    assert not project.workspace.exists()  # nothing up front
    run = RunRecord()
    folder = project.workspace.dir_for(run.kind, run.id)
    assert folder == tmp_path / "w" / "w.difflora.d" / "runs" / run.id and folder.is_dir()
    assert project.workspace.dir_for("grids", "g1").parent.name == "grids"
    assert sorted(p.name for p in project.workspace.root.iterdir()) == ["grids", "runs"]
    assert project.workspace.events_path("runs", run.id) == folder / "events.jsonl"
    for bad_kind, bad_id in (("checkpoints", "x"), ("runs", "../x"), ("runs", "")):
        with pytest.raises(ValueError):
            project.workspace.dir_for(bad_kind, bad_id)


def test_a_failed_first_save_keeps_the_unsaved_workspace_and_paths(tmp_path, monkeypatch):
    from difflora_gui.project import model

    project = Project()
    run = RunRecord()
    checkpoint = make_file(project.workspace.dir_for("runs", run.id) / "c.safetensors")
    run.checkpoints = [str(checkpoint)]
    project.add_record(run)

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    working = model.atomic_write_json
    monkeypatch.setattr(model, "atomic_write_json", disk_full)
    with pytest.raises(UserError, match="No space left"):
        project.save(tmp_path / "p.difflora")
    assert project.path is None and project.dirty
    assert project.get_record(run.id).checkpoints == [str(checkpoint)] and checkpoint.is_file()
    assert not (tmp_path / "p.difflora.d").exists()  # the copy was taken back
    monkeypatch.setattr(model, "atomic_write_json", working)
    project.save(tmp_path / "p.difflora")
    assert (tmp_path / "p.difflora.d" / "runs" / run.id / "c.safetensors").is_file()
    assert not checkpoint.exists()  # moved out of the unsaved area once the file was written


def test_an_unsaved_workspace_a_job_writes_to_during_the_save_is_kept(tmp_path, monkeypatch):
    from difflora_gui.project import model

    project = Project()
    events = project.workspace.events_path("runs", "r1")
    log = EventLog(events)
    log.append(Metric("loss", 1.0, 1))
    real_copy = model.copy_workspace

    def copy_while_the_job_writes(source, target):
        undo = real_copy(source, target)
        log.append(Metric("loss", 0.9, 2))  # the running job appends after the copy was taken
        return undo

    monkeypatch.setattr(model, "copy_workspace", copy_while_the_job_writes)
    project.save(tmp_path / "p.difflora")
    log.close()
    assert read_events(events) == [Metric("loss", 1.0, 1), Metric("loss", 0.9, 2)]  # not deleted
    assert read_events(tmp_path / "p.difflora.d" / "runs" / "r1" / "events.jsonl") == [Metric("loss", 1.0, 1)]


def test_copy_skips_files_a_job_is_still_writing_and_ones_that_vanish(tmp_path, monkeypatch):
    from difflora_gui.project import workspace

    source = tmp_path / "unsaved"
    (source / "datasets" / "d1" / "thumbs").mkdir(parents=True)
    (source / "datasets" / "d1" / "thumbs" / "a.jpg").write_bytes(b"jpeg")
    (source / "datasets" / "d1" / "thumbs" / ".b.jpg.x1y2.tmp").write_bytes(b"half")
    (source / "datasets" / "d1" / "thumbs" / "c.jpg").write_bytes(b"gone soon")
    real_copy2 = workspace.shutil.copy2

    def copy2_racing_a_job(src, dst, **kwargs):
        if Path(src).name == "c.jpg":
            Path(src).unlink()  # the thumbnail job replaced it between the listing and the copy
        return real_copy2(src, dst, **kwargs)

    monkeypatch.setattr(workspace.shutil, "copy2", copy2_racing_a_job)
    target = tmp_path / "p.difflora.d"
    workspace.copy_workspace(source, target)
    thumbs = target / "datasets" / "d1" / "thumbs"
    assert sorted(p.name for p in thumbs.iterdir()) == ["a.jpg"]
    assert (thumbs / "a.jpg").read_bytes() == b"jpeg"
