"""The demo project: 24 procedural pairs (A detailed, B simplified, two flawed on purpose), a tiny
random Wan model the preview renders and the built-in trainer trains, a project file that opens
the dataset; a second build rewrites nothing; ``python main.py demo build`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from difflora_gui.demo import dataset as demo_dataset
from difflora_gui.demo import tiny_model
from difflora_gui.demo.build import build_demo, demo_paths, is_built
from difflora_gui.errors import UserError
from difflora_gui.jobs.recording import RecordingContext

ROOT = Path(__file__).resolve().parent.parent
SHIFTED = demo_dataset.pair_id(demo_dataset.SHIFTED_PAIR)
CAST = demo_dataset.pair_id(demo_dataset.COLOUR_CAST_PAIR)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One demo built by the command line into a folder with a space and non-ASCII letters."""
    folder = tmp_path_factory.mktemp("demo") / "démo ü folder"
    started = time.perf_counter()
    proc = _cli("demo", "build", "--folder", str(folder), "--json")
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    print(f"demo build (subprocess, imports included): {elapsed:.1f} s")
    return result


def _read(path):
    import cv2

    image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def test_the_command_line_build_reports_every_part(demo):
    folder = Path(demo["folder"])
    assert demo["dataset"] == str(folder / "dataset") and demo["pairs"] == 24 and not demo["reused"]
    assert Path(demo["project"]).is_file() and Path(demo["project"]).suffix == ".difflora"
    assert "tiny random Wan model, renders noise-like clips" in demo["label"]
    assert is_built(folder)
    where = _cli("demo", "where", "--folder", str(folder), "--json")
    assert where.returncode == 0, where.stderr
    assert json.loads(where.stdout)["built"] is True
    assert json.loads(where.stdout)["project"] == demo["project"]


def test_the_dataset_has_24_pairs_of_equal_size_and_a_has_far_more_detail(demo):
    from difflora_gui.dataset.store import load_pair_set

    pair_set = load_pair_set(demo["dataset"])
    assert len(pair_set.pairs) == 24 and all(p.complete for p in pair_set.pairs)
    detail_a, detail_b = [], []
    for pair in pair_set.pairs:
        a, b = _read(pair.a.path), _read(pair.b.path)
        assert a.shape == b.shape == (256, 384, 3)
        detail_a.append(demo_dataset.laplacian_variance(a))
        detail_b.append(demo_dataset.laplacian_variance(b))
    assert np.mean(detail_a) > 3 * np.mean(detail_b)
    assert all(da > 3 * db for da, db in zip(detail_a, detail_b, strict=True))
    assert [p.id for p in pair_set.pairs][:2] == ["scene_01", "scene_02"]


def test_the_apps_pair_check_flags_the_shifted_and_the_colour_cast_pair(demo):
    from difflora_gui.dataset.check_job import run_check

    result = run_check({"dataset": demo["dataset"]}, RecordingContext())
    flags = {pid: set(scores.flag_codes) for pid, scores in result.scores.items()}
    assert len(flags) == 24
    assert "shift" in flags[SHIFTED]
    dx, dy = result.scores[SHIFTED].shift_source
    assert (round(abs(dx)), round(abs(dy))) == demo_dataset.SHIFT_PX
    assert flags[CAST] & {"blue_yellow", "green_magenta", "lightness", "saturation"}
    assert "blue_yellow" in flags[CAST]  # warmer: more red, less blue
    clean = [pid for pid in flags if pid not in (SHIFTED, CAST)]
    assert sum(1 for pid in clean if not flags[pid]) >= 20, {pid: flags[pid] for pid in clean if flags[pid]}


def test_the_same_seed_draws_the_same_pixels_and_another_seed_other_scenes():
    a1, b1 = demo_dataset.draw_pair(3, seed=5)
    a2, b2 = demo_dataset.draw_pair(3, seed=5)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    other, _ = demo_dataset.draw_pair(3, seed=6)
    assert not np.array_equal(a1, other)


def test_the_tiny_model_is_labelled_and_loads_with_the_preview_backend(demo):
    from difflora_gui.preview.render import model_facts_for

    model = Path(demo["model"])
    assert "demo" in model.name and tiny_model.is_complete(model)
    readme = (model / tiny_model.README_NAME).read_text(encoding="utf-8")
    assert readme.startswith("DiffLoRA demo — tiny random Wan model, renders noise-like clips")
    assert "Settings ▸ Wan diffusers folder" in readme
    facts = model_facts_for({"model_dir": str(model), "dtype": "fp32", "device": "cpu"})
    assert facts.num_blocks == tiny_model.TRANSFORMER_CONFIG["num_layers"]


def test_the_tiny_model_renders_a_5_frame_32px_clip(demo, tmp_path):
    from difflora_gui.preview import resident
    from difflora_gui.preview.backend import PreviewJob
    from difflora_gui.preview.render import run_preview
    from difflora_gui.preview.request import PreviewRequest
    from difflora_gui.preview.video_io import VideoReader

    request = PreviewRequest(prompt="a demo scene", seed=1, width=32, height=32, frames=5, fps=8, steps=2)
    out = tmp_path / "demo clip ü.mp4"
    job = PreviewJob(
        request=request,
        options={"model_dir": demo["model"], "dtype": "fp32", "device": "cpu"},
        out=str(out),
        cache_dir="",
    )
    try:
        result = run_preview(job, RecordingContext())
    finally:
        resident.release_resident()
    assert (result.frames, result.width, result.height) == (5, 32, 32)
    with VideoReader(out) as reader:
        assert (reader.frame_count, reader.width, reader.height) == (5, 32, 32)


def test_the_project_opens_on_the_dataset_and_trains_on_the_tiny_model(demo):
    from difflora_gui.dataset.store import dataset_folder, load_pair_set
    from difflora_gui.project import DatasetRecord, Project

    project = Project.load(demo["project"])
    assert project.name == "DiffLoRA demo"
    (record,) = project.records(DatasetRecord)
    assert project.section("dataset")["dataset_id"] == record.id and record.pair_count == 24
    assert dataset_folder(project, record.id) == Path(demo["dataset"])
    assert len(load_pair_set(dataset_folder(project, record.id)).pairs) == 24
    form = project.section("train")["form"]
    assert form["backend"] == "builtin" and form["preset"] == "quick-test"
    assert form["backend_settings"]["builtin"]["model"] == demo["model"]
    # relative to the project file when the Train section's paths are registered (the app's plugins)
    assert project.resolve_path(form["a_dir"]) == Path(demo["dataset"]) / "a"
    assert project.missing_files() == []


def test_a_second_build_is_fast_and_rewrites_nothing(demo):
    folder = Path(demo["folder"])
    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}
    ctx = RecordingContext()
    started = time.perf_counter()
    again = build_demo({"folder": str(folder)}, ctx)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0 and again["reused"] and again["built"] == []
    after = {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}
    assert after == before
    texts = [p.text for p in ctx.progress_reports]
    assert "writing pair 1 of 24" in texts and "building the tiny model" in texts


def test_a_partial_build_is_completed_and_the_rest_kept(demo, tmp_path):
    import shutil

    folder = tmp_path / "partial démo"
    shutil.copytree(demo["folder"], folder)
    paths = demo_paths(folder)
    missing = paths["dataset"] / "b" / "scene_05.png"
    original = missing.read_bytes()
    missing.unlink()
    (paths["folder"] / "demo.json").unlink()
    kept = paths["dataset"] / "a" / "scene_05.png"
    mtime = kept.stat().st_mtime_ns
    result = build_demo({"folder": str(folder)}, RecordingContext())
    assert result["built"] == ["1 pair(s)", "the manifest"]
    assert missing.read_bytes() == original  # deterministic: the same pixels as the first time
    assert kept.stat().st_mtime_ns == mtime


def test_a_cancelled_build_leaves_only_whole_deterministic_files(tmp_path):
    from difflora_gui.errors import JobCancelled

    folder = tmp_path / "cancelled démo"
    with pytest.raises(JobCancelled):
        build_demo({"folder": str(folder)}, RecordingContext(cancel_after_progress=4))
    written = sorted(p.name for p in (folder / "dataset" / "a").iterdir())
    assert 1 <= len(written) < 24 and all(name.endswith(".png") for name in written)  # no .tmp
    assert not (folder / "demo.json").exists() and not (folder / "DiffLoRA demo.difflora").exists()
    for path in (folder / "dataset").rglob("*.png"):
        number = int(path.stem.split("_")[1])
        side = 0 if path.parent.name == "a" else 1
        assert path.read_bytes() == demo_dataset.encode_png(demo_dataset.draw_pair(number)[side])


def test_a_folder_holding_another_demo_is_refused(demo, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "demo.json").write_text(json.dumps({"format": "difflora-demo", "seed": 1, "pairs": 24}))
    with pytest.raises(UserError, match="seed 1"):
        build_demo({"folder": str(folder)})
    (folder / "demo.json").write_text("{}")
    with pytest.raises(UserError, match="not a DiffLoRA demo folder"):
        build_demo({"folder": str(folder)})
    file = tmp_path / "a file"
    file.write_text("x")
    proc = _cli("demo", "build", "--folder", str(file))
    assert proc.returncode == 2 and "is a file" in proc.stderr


def test_the_builtin_trainer_trains_a_pair_on_the_demo_on_the_cpu(demo, tmp_path):
    dataset = Path(demo["dataset"])
    out = tmp_path / "runs ü"
    started = time.perf_counter()
    proc = _cli(
        "train", "pair", "--backend", "builtin", "--preset", "quick-test",
        "--a", str(dataset / "a"), "--b", str(dataset / "b"), "--output", str(out), "--name", "demo",
        "--model", demo["model"], "--device", "cpu", "--max_train_steps", "3", "--save_every_n_steps", "3",
        "--quiet",
    )  # fmt: skip
    print(f"3-step pair on the demo (subprocess): {time.perf_counter() - started:.1f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "demo_A.safetensors").is_file() and (out / "demo_B.safetensors").is_file()
