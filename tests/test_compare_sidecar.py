"""The grid sidecar: the job comes back exactly, bad files are one error naming the file, nothing
existing is overwritten unless asked."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest

from difflora_gui import __version__
from difflora_gui.compare.grid_spec import Axis, GridSpec
from difflora_gui.compare.grid_types import CellResult, ExportOptions, GridJob, GridResult
from difflora_gui.compare.sidecar import (
    SIDECAR_FORMAT,
    SIDECAR_VERSION,
    read_sidecar,
    recorded_lora_hashes,
    sidecar_data,
    sidecar_path_for,
    write_sidecar,
)
from difflora_gui.errors import UserError
from difflora_gui.preview.request import LoraEntry, PreviewRequest


def make_job(tmp_path) -> GridJob:
    base = PreviewRequest(
        prompt="a cat ü",
        seed=3,
        width=32,
        height=32,
        frames=5,
        steps=2,
        loras=(
            LoraEntry(str(tmp_path / "slider ü.safetensors"), 1.0, "attn"),
            LoraEntry("accel.safetensors"),
        ),
    )
    spec = GridSpec(
        base,
        (
            Axis.parse("strength", "-1:1:0.5"),
            Axis.parse("seed", "1,2"),
            Axis("variant", (str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")), ("A", "B")),
        ),
        target=0,
        num_blocks=30,
    )
    return GridJob(
        spec=spec,
        backend="diffusers",
        options={"model_dir": str(tmp_path / "wan"), "dtype": "fp32", "device": "cpu"},
        cache_dir=str(tmp_path / "cache"),
        cache_mb=512,
        lane="device:cuda:*",
        device="cpu",
        out=str(tmp_path / "grid.mp4"),
        export=ExportOptions(layout="vertical", crf=18, sheet_frame=2, labels=False),
    )


def make_result(job: GridJob) -> GridResult:
    cells = tuple(
        CellResult(
            index=cell.index,
            row=cell.row,
            col=cell.col,
            labels=cell.labels,
            video=f"/cache/{n}/video.mp4",
            first_frame=f"/cache/{n}/first.png",
            key=f"{n:064x}",
            rendered=True,
            frames=5,
            width=32,
            height=32,
            fps=16,
            request=cell.request.to_json(),
        )
        for n, cell in enumerate(job.spec.cells())
    )
    return GridResult(cells, rendered=len(cells), cached=0, out=job.out)


def test_the_job_comes_back_equal_and_the_cells_are_recorded(tmp_path):
    job = make_job(tmp_path)
    result = make_result(job)
    path = write_sidecar(tmp_path / "grid ü.json", job, result)
    assert read_sidecar(path) == job
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["format"], data["version"], data["app_version"]) == (
        SIDECAR_FORMAT,
        SIDECAR_VERSION,
        __version__,
    )
    assert datetime.fromisoformat(data["created"]).utcoffset().total_seconds() == 0
    assert len(data["cells"]) == job.spec.count == 20
    first = data["cells"][0]
    assert set(first) == {"row", "col", "labels", "key", "request"}
    assert first["key"] == result.cells[0].key and first["request"] == result.cells[0].request
    assert first["labels"] == list(result.cells[0].labels)
    # every cell's request is the one the spec makes at that place
    for cell in data["cells"]:
        assert PreviewRequest.from_json(cell["request"]) == job.spec.cell_at(cell["row"], cell["col"]).request


def test_a_job_without_a_result_has_no_cells(tmp_path):
    job = make_job(tmp_path)
    assert sidecar_data(job, None)["cells"] == []
    assert read_sidecar(write_sidecar(tmp_path / "g.json", job, None)) == job


def test_the_sidecar_sits_next_to_the_video():
    assert sidecar_path_for("/x/my grid.mp4").name == "my grid.json"
    assert sidecar_path_for("g.webp").name == "g.json"


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    job = make_job(tmp_path)
    path = tmp_path / "grid.json"
    path.write_text("keep me", encoding="utf-8")
    with pytest.raises(UserError, match="already exists") as caught:
        write_sidecar(path, job, None)
    assert str(path) in str(caught.value)
    assert path.read_text(encoding="utf-8") == "keep me"
    write_sidecar(path, job, None, overwrite=True)
    assert read_sidecar(path) == job
    assert [p.name for p in tmp_path.iterdir()] == ["grid.json"]  # no temporary file left


def _sidecar(tmp_path, **changes) -> dict:
    data = sidecar_data(make_job(tmp_path), None)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        ("[1, 2]", "not a grid sidecar"),
        (lambda d: {**d, "format": "something-else"}, "not a grid sidecar"),
        (lambda d: {**d, "version": SIDECAR_VERSION + 1}, "newer DiffLoRA Studio"),
        (lambda d: {**d, "version": "1"}, "version must be a whole number"),
        (lambda d: {k: v for k, v in d.items() if k != "job"}, 'no "job"'),
        (lambda d: {**d, "job": {**d["job"], "cache_dir": ""}}, "needs a cache folder"),
        (lambda d: {**d, "job": {**d["job"], "colour": "red"}}, "unknown grid job field"),
        (lambda d: {**d, "job": {**d["job"], "spec": {**d["job"]["spec"], "axes": []}}}, "one to 3 axes"),
        (lambda d: {**d, "job": {**d["job"], "export": {"layout": "diagonal"}}}, "layout"),
        (lambda d: {**d, "job": {**d["job"], "export": [1]}}, "job.export must be an object"),
        (lambda d: {**d, "job": {**d["job"], "spec": {**d["job"]["spec"], "target": "first"}}}, "wrong type"),
    ],
)
def test_a_bad_sidecar_is_one_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad sidecar ü.json"
    if callable(content):
        content = json.dumps(content(sidecar_data(make_job(tmp_path), None)))
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=match) as caught:
        read_sidecar(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_a_missing_sidecar_names_the_file(tmp_path):
    with pytest.raises(UserError, match="not found") as caught:
        read_sidecar(tmp_path / "none.json")
    assert str(tmp_path / "none.json") in str(caught.value)
    with pytest.raises(UserError, match="not a file"):
        read_sidecar(tmp_path)


def test_the_cells_lora_hashes_are_read_back(tmp_path):
    job = make_job(tmp_path)
    result = make_result(job)
    hashed = []
    for n, cell in enumerate(result.cells):
        request = dict(cell.request)
        request["loras"] = [{**entry, "sha256": f"{n}{i}"} for i, entry in enumerate(request["loras"])]
        hashed.append(dataclasses.replace(cell, request=request))
    path = write_sidecar(tmp_path / "g.json", job, dataclasses.replace(result, cells=tuple(hashed)))
    found = recorded_lora_hashes(path)
    assert set(found) == {
        str(tmp_path / "a.safetensors"),
        str(tmp_path / "b.safetensors"),
        "accel.safetensors",
    }
    assert (
        recorded_lora_hashes(write_sidecar(tmp_path / "none.json", job, result)) == {}
    )  # no hashes recorded
