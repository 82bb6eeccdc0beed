"""Counterpart generation with a tiny random FluxKontextPipeline (real diffusers code, CPU, offline).

The pipeline is built from configs (tests/kontext_tiny.py), saved with ``save_pretrained`` and
loaded back by the tool like a real FLUX.1 Kontext [dev] folder. Covered: a batch of odd-sized
images (not multiples of 16) comes back at exactly the input sizes; a rerun skips what is done and
redoes only a deleted output (bit for bit: its seed is seed + index); a cancel during the second
item leaves one output and no partial file; a bad model folder or source folder is one line; bad
source images are listed and skipped; the plugin, its parameters and the CLI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from difflora_gui.dataset import kontext
from difflora_gui.dataset.kontext import (
    DEFAULT_PROMPT,
    MANIFEST_NAME,
    KontextParams,
    generate_counterparts,
    list_sources,
    model_folder_problem,
    working_size,
)
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.context import JobContext
from difflora_gui.jobs.events import Artifact, Metric

SIZES = [(48, 40), (40, 56), (33, 21)]  # (width, height): none a multiple of 16


class RecordingContext(JobContext):
    """Keeps every event and progress report; ``cancel_when(text)`` cancels at a progress text."""

    def __init__(self, cancel_when=None):
        super().__init__(progress_interval_s=0.0)
        self.events, self.reports, self.lines = [], [], []
        self.cancel_when = cancel_when

    def progress(self, done, total=None, text=""):
        self.reports.append((done, total, text))
        super().progress(done, total, text)
        if self.cancel_when is not None and self.cancel_when(text):
            self.cancel()

    def _emit_event(self, event):
        self.events.append(event)

    def _emit_log(self, text):
        self.lines.append(text)

    def artifacts(self):
        return [e for e in self.events if isinstance(e, Artifact)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from kontext_tiny import save_tiny_kontext

    return save_tiny_kontext(tmp_path_factory.mktemp("kontext") / "FLUX.1-Kontext-tiny")


def make_sources(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for index, (w, h) in enumerate(SIZES):
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([xx * 5 % 256, yy * 7 % 256, (xx + yy) * 3 % 256], axis=-1).astype(np.uint8)
        image = cv2.add(image, rng.integers(0, 40, image.shape, dtype=np.uint8))
        path = folder / f"frame {index} ü.{'png' if index != 1 else 'jpg'}"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def params(model_dir, **overrides) -> KontextParams:
    values = {"model": str(model_dir), "steps": 2, "device": "cpu", "seed": 10, "max_sequence_length": 64}
    values.update(overrides)
    return KontextParams.from_values(values)


def size_of(path: Path) -> tuple[int, int]:
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image.shape[1], image.shape[0]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- settings, sizes and checks without a model -------------------------------------------------


def test_params_default_to_the_model_cards_prompt_and_kontext_settings():
    p = KontextParams.from_values({})
    assert p.prompt == DEFAULT_PROMPT and DEFAULT_PROMPT.startswith("Reduce detalization of this scene")
    assert (p.steps, p.guidance, p.seed, p.dtype, p.device) == (28, 2.5, 0, "auto", "auto")
    defaults = kontext.KONTEXT_SCHEMA.defaults()
    assert defaults["prompt"] == DEFAULT_PROMPT and defaults["steps"] == 28
    with pytest.raises(UserError, match="steps"):
        KontextParams.from_values({"steps": 0})


def test_the_plugin_registers_a_device_lane_tool_with_the_params():
    from difflora_gui.plugin_host import get_plugin_host

    tools = get_plugin_host().dataset_tools()
    spec = tools["kontext_counterparts"]
    assert spec.lane == "device" and spec.run == "difflora_gui.dataset.kontext:run"
    names = [p.name for p in spec.params.params]
    for name in ("model", "prompt", "seed", "steps", "guidance", "out_dir", "source_dir"):
        assert name in names
    assert spec.params.defaults()["prompt"] == DEFAULT_PROMPT


def test_working_size_pads_to_the_multiple_and_scales_only_large_sources():
    small = working_size(48, 40)
    assert small.scaled == (48, 40) and small.padded == (48, 48)
    large = working_size(1920, 1080)
    assert large.scaled == (1365, 768) and large.padded == (1376, 768)
    assert abs(large.scaled[0] / large.scaled[1] - 1920 / 1080) < 1e-3
    assert working_size(5, 3).padded == (16, 16)


def test_pad_to_mirrors_the_edge_and_keeps_the_image():
    from difflora_gui.dataset.kontext_pipeline import pad_to

    image = np.arange(40 * 48 * 3, dtype=np.uint8).reshape(40, 48, 3)
    padded = pad_to(image, 48, 48)
    assert padded.shape == (48, 48, 3)
    assert np.array_equal(padded[:40], image)
    assert np.array_equal(padded[40], image[38])  # mirrored about the last row
    assert pad_to(np.zeros((3, 5, 3), np.uint8), 16, 16).shape == (16, 16, 3)  # too small to mirror


def test_model_folder_problems_are_one_line_naming_what_is_missing(tmp_path, model_dir):
    assert model_folder_problem(model_dir) == ""
    assert "not found" in model_folder_problem(tmp_path / "nowhere")
    single = tmp_path / "flux1-kontext-dev.safetensors"
    single.write_bytes(b"x")
    assert "is a file: Kontext needs a diffusers-format folder" in model_folder_problem(single)
    empty = tmp_path / "empty"
    empty.mkdir()
    problem = model_folder_problem(empty)
    assert "model_index.json is missing" in problem and "\n" not in problem
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model_index.json").write_text(json.dumps({"_class_name": "FluxKontextPipeline"}))
    (partial / "vae").mkdir()
    (partial / "vae" / "config.json").write_text("{}")
    problem = model_folder_problem(partial)
    assert "\n" not in problem
    for name in ("transformer/", "text_encoder/", "text_encoder_2/", "tokenizer/", "vae/ weights"):
        assert name in problem
    other = tmp_path / "wan"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    assert "WanPipeline pipeline, not a FluxKontextPipeline" in model_folder_problem(other)


def test_a_folder_without_model_index_is_refused_before_anything_loads(tmp_path, model_dir):
    broken = tmp_path / "copy"
    broken.mkdir()
    for sub in Path(model_dir).iterdir():
        if sub.is_dir():
            (broken / sub.name).symlink_to(sub, target_is_directory=True)
    sources = make_sources(tmp_path / "A")

    def never(*args, **kwargs):
        raise AssertionError("the pipeline must not be loaded")

    with pytest.raises(UserError) as caught:
        generate_counterparts(sources, tmp_path / "B", params(broken), generator_factory=never)
    assert "model_index.json is missing" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "B").exists()


def test_list_sources_sets_aside_non_images_and_videos(tmp_path):
    folder = tmp_path / "A"
    make_sources(folder)
    (folder / "notes.txt").write_text("x")
    (folder / "clip.mp4").write_bytes(b"\x00" * 10)
    (folder / ".hidden.png").write_bytes(b"")
    images, skipped = list_sources(folder)
    assert [p.name for p in images] == ["frame 0 ü.png", "frame 1 ü.jpg", "frame 2 ü.png"]
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert "not an image" in reasons["notes.txt"] and "extract its frames" in reasons["clip.mp4"]
    with pytest.raises(UserError, match="source folder not found"):
        list_sources(tmp_path / "missing")


# --- the tiny pipeline ---------------------------------------------------------------------------


def test_a_batch_gives_one_output_per_source_at_exactly_its_size(tmp_path, model_dir):
    sources = make_sources(tmp_path / "A")
    before = {p: p.read_bytes() for p in sources}
    out = tmp_path / "B"
    ctx = RecordingContext()
    result = generate_counterparts(sources, out, params(model_dir), ctx)
    assert result.generated == ["frame 0 ü.png", "frame 1 ü.png", "frame 2 ü.png"]
    for source, (w, h) in zip(sources, SIZES, strict=True):
        assert size_of(out / f"{source.stem}.png") == (w, h)
    assert {p: p.read_bytes() for p in sources} == before  # sources untouched
    assert no_temp_files(out)
    # an artifact per image with its source and seed (seed + index), recorded in the manifest too
    arts = ctx.artifacts()
    assert [a.kind for a in arts] == ["image"] * 3
    assert [a.meta["seed"] for a in arts] == [10, 11, 12]
    assert [a.meta["source"] for a in arts] == [str(s) for s in sources]
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert [manifest["items"][f"{s.stem}.png"]["seed"] for s in sources] == [10, 11, 12]
    assert manifest["settings"]["prompt"] == DEFAULT_PROMPT and manifest["settings"]["steps"] == 2
    # progress per step up to the end, with an ETA in the text
    done, total, _ = ctx.reports[-1]
    assert done == total == 3 * 2
    assert any("2/3 frame 1 ü.jpg step 1/2 ETA" in text for _, _, text in ctx.reports)
    # scored as they arrive when the pair checks are there
    try:
        import difflora_gui.dataset.checks  # noqa: F401
    except ImportError:
        return
    assert len([e for e in ctx.events if isinstance(e, Metric) and e.name == "ssim"]) == 3
    assert set(result.scores) == set(result.generated)


def test_a_rerun_skips_finished_outputs_and_redoes_a_deleted_one_identically(tmp_path, model_dir):
    sources = make_sources(tmp_path / "A")
    out = tmp_path / "B"
    generate_counterparts(sources, out, params(model_dir))
    first = {p.name: p.read_bytes() for p in out.glob("*.png")}
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "frame 1 ü.png").unlink()
    ctx = RecordingContext()
    result = generate_counterparts(sources, out, params(model_dir), ctx)
    assert result.generated == ["frame 1 ü.png"]
    assert sorted(result.skipped_existing) == ["frame 0 ü.png", "frame 2 ü.png"]
    assert [a.meta["seed"] for a in ctx.artifacts()] == [11]  # its own seed, not the first free one
    decoded = cv2.imdecode(np.frombuffer((out / "frame 1 ü.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(first["frame 1 ü.png"], np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(decoded.astype(int) - original.astype(int)).max() <= 1  # same seed, same image
    for name in ("frame 0 ü.png", "frame 2 ü.png"):
        assert (out / name).stat().st_mtime_ns == mtimes[name]  # not rewritten
    # nothing left to do: the pipeline is not even loaded; other settings are noted, outputs kept
    ctx = RecordingContext()
    again = generate_counterparts(
        sources, out, params(model_dir, steps=3), ctx, generator_factory=_never_load
    )
    assert again.generated == [] and len(again.skipped_existing) == 3
    assert any("made with other settings (steps)" in line for line in ctx.lines)


def _never_load(*args, **kwargs):
    raise AssertionError("nothing to generate: the pipeline must not be loaded")


def test_a_damaged_output_is_redone_and_a_wrong_sized_one_is_kept(tmp_path, model_dir):
    sources = make_sources(tmp_path / "A")
    out = tmp_path / "B"
    out.mkdir()
    (out / "frame 0 ü.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert cv2.imwrite(str(out / "frame 2 ü.png"), np.zeros((8, 8, 3), np.uint8))
    ctx = RecordingContext()
    result = generate_counterparts(sources, out, params(model_dir), ctx)
    assert result.generated == ["frame 0 ü.png", "frame 1 ü.png"]
    assert size_of(out / "frame 0 ü.png") == SIZES[0]
    assert size_of(out / "frame 2 ü.png") == (8, 8)  # never overwritten without asking
    (kept,) = result.skipped
    assert "exists with size 8×8, expected 33×21; delete it to redo" in kept["reason"]


def test_a_cancel_during_the_second_item_leaves_one_output_and_no_partial_file(tmp_path, model_dir):
    sources = make_sources(tmp_path / "A")
    out = tmp_path / "B"
    ctx = RecordingContext(cancel_when=lambda text: text.startswith("2/3") and "step 1/3" in text)
    with pytest.raises(JobCancelled):
        generate_counterparts(sources, out, params(model_dir, steps=3), ctx)
    assert sorted(p.name for p in out.glob("*.png")) == ["frame 0 ü.png"]
    assert no_temp_files(out)
    assert [a.meta["source"] for a in ctx.artifacts()] == [str(sources[0])]
    steps_of_second = [text for _, _, text in ctx.reports if text.startswith("2/3")]
    assert steps_of_second[-1].startswith("2/3 frame 1 ü.jpg step 1/3")  # stopped mid-item
    # and the rerun finishes the rest
    result = generate_counterparts(sources, out, params(model_dir, steps=3))
    assert result.generated == ["frame 1 ü.png", "frame 2 ü.png"]


def test_the_job_lists_and_skips_bad_sources(tmp_path, model_dir):
    folder = tmp_path / "A"
    make_sources(folder)
    (folder / "empty.png").write_bytes(b"")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "frame 0 ü.webp").write_bytes(b"whatever")  # same stem as frame 0 ü.png
    (folder / "readme.md").write_text("x")
    ok, png = cv2.imencode(".png", np.full((40, 48, 3), 128, np.uint8))
    damaged = bytearray(png.tobytes())
    damaged[60:-40] = b"\x55" * (len(damaged) - 100)  # header and end marker intact: found at decode
    (folder / "frame 3 damaged.png").write_bytes(bytes(damaged))
    ctx = RecordingContext()
    summary = kontext.run(
        {
            "source_dir": str(folder),
            "out_dir": str(tmp_path / "B"),
            "model": str(model_dir),
            "steps": 1,
            "device": "cpu",
            "check_resolution": 0,
        },
        ctx,
    )
    assert summary["generated"] == ["frame 0 ü.png", "frame 1 ü.png", "frame 2 ü.png"]
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"empty.png", "broken.jpg", "frame 0 ü.webp", "readme.md", "frame 3 damaged.png"}
    assert "does not decode" in reasons["frame 3 damaged.png"]
    assert "empty" in reasons["empty.png"] and "same name as frame 0 ü.png" in reasons["frame 0 ü.webp"]
    assert all(f"skipped {s['path']}: {s['reason']}" in ctx.lines for s in summary["skipped"])


def test_the_output_folder_may_not_be_the_source_folder(tmp_path, model_dir):
    sources = make_sources(tmp_path / "A")
    with pytest.raises(UserError, match="the output folder is the source folder"):
        generate_counterparts(sources, tmp_path / "A", params(model_dir), generator_factory=_never_load)


def test_the_model_folder_defaults_to_the_settings(tmp_path, model_dir):
    from difflora_gui.settings import AppSettings

    settings = AppSettings()
    settings.kontext_model_dir = str(model_dir)
    settings.save()
    sources = make_sources(tmp_path / "A")[:1]
    result = generate_counterparts(sources, tmp_path / "B", params("", steps=1))
    assert result.generated == ["frame 0 ü.png"]


# --- the command line ----------------------------------------------------------------------------


def parse(argv):
    from difflora_gui.dataset import kontext_cli

    parser = argparse.ArgumentParser()
    kontext_cli.configure(parser)
    return kontext_cli, parser.parse_args(argv)


def test_cli_makes_the_set_and_resumes(tmp_path, model_dir, capsys):
    make_sources(tmp_path / "A")
    (tmp_path / "A" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    argv = [str(tmp_path / "A"), "--out", str(tmp_path / "B"), "--model", str(model_dir), "--steps", "1"]
    argv += ["--seed", "3", "--device", "cpu", "--prompt", "make it plain"]
    cli, args = parse(argv)
    assert cli.run(args) == 0
    text = capsys.readouterr()
    assert "3 generated, 0 already done, 1 skipped" in text.out
    assert "broken.png" in text.out + text.err
    manifest = json.loads((tmp_path / "B" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["settings"]["prompt"] == "make it plain" and manifest["settings"]["seed"] == 3
    cli, args = parse([*argv, "--json"])
    assert cli.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generated"] == [] and len(summary["skipped_existing"]) == 3


def test_cli_bad_model_or_source_folder_is_one_line(tmp_path, model_dir):
    make_sources(tmp_path / "A")
    cli, args = parse([str(tmp_path / "A"), "--out", str(tmp_path / "B"), "--model", str(tmp_path)])
    with pytest.raises(UserError) as caught:
        cli.run(args)
    assert "model_index.json is missing" in str(caught.value) and "\n" not in str(caught.value)
    cli, args = parse([str(tmp_path / "nope"), "--out", str(tmp_path / "B"), "--model", str(model_dir)])
    with pytest.raises(UserError, match="source folder not found"):
        cli.run(args)
    assert not (tmp_path / "B").exists()


def test_main_py_dataset_kontext_exits_2_for_a_bad_model_folder(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("difflora_gui.commands.dataset_cmd")
    root = Path(__file__).resolve().parents[1]
    make_sources(tmp_path / "A")
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "main.py"),
            "dataset",
            "kontext",
            str(tmp_path / "A"),
            "--out",
            str(tmp_path / "B"),
            "--model",
            str(tmp_path / "A"),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "model_index.json is missing" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- the Settings dialog's field -----------------------------------------------------------------


def test_the_settings_dialog_edits_and_checks_the_kontext_folder(qtbot, tmp_path, model_dir):
    from difflora_gui.qt.settings_dialog import SettingsDialog, validate_settings
    from difflora_gui.settings import AppSettings

    dialog = SettingsDialog(AppSettings(kontext_model_dir=str(model_dir)), ["cpu"])
    qtbot.addWidget(dialog)
    assert dialog.kontext_dir.text() == str(model_dir)
    assert validate_settings(dialog.values()) == []
    dialog.kontext_dir.setText(str(tmp_path))
    assert dialog.changes()["kontext_model_dir"] == str(tmp_path)
    problems = validate_settings(dialog.values())
    assert len(problems) == 1 and "model_index.json is missing" in problems[0]
    dialog.try_accept()
    assert "model_index.json is missing" in dialog.errors.text()
    dialog.kontext_dir.setText("")  # empty: not set, allowed
    assert validate_settings(dialog.values()) == []
