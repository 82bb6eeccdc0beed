"""``python main.py grid``: flags → grid job (axes, their order, the stack, the outputs), --from a
sidecar, bad input as one line (exit 2, nothing written), and real grids of the tiny Wan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from difflora_gui.cli import build_parser, main
from difflora_gui.commands.grid_cmd import default_cache_dir, job_from_args
from difflora_gui.compare.grid_types import ExportOptions
from difflora_gui.compare.sidecar import read_sidecar, write_sidecar
from tests.app_process import run_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny Wan and three tiny LoRAs, in folders whose names have a space and an ü."""
    from difflora_gui.lora.synthetic import make_wan_lora
    from tests.wan_tiny import save_tiny_wan

    folder = tmp_path_factory.mktemp("grid cli") / "my models ü"
    wan = save_tiny_wan(folder / "wan 2.1")
    loras = []
    for seed, name in enumerate(("slider ü", "slider, v2", "accel"), start=1):
        path = folder / f"{name}.safetensors"
        make_wan_lora("tiny", path=path, rank=4, seed=seed, up_std=0.2)
        loras.append(path)
    return wan, loras


RENDER = ["--prompt", "a cat", "--frames", "5", "--steps", "2", "--size", "32x32", "--fps", "8"]
MODEL = ["--dtype", "fp32", "--device", "cpu"]


def _job(tiny, tmp_path, *argv, out="g.mp4"):
    wan, loras = tiny
    args = build_parser().parse_args(
        ["grid", "--model", str(wan), *MODEL, *RENDER, *map(str, argv), "--out", str(tmp_path / out)]
    )
    return job_from_args(args)


def test_strengths_and_seeds_make_a_three_by_two_grid(tiny, tmp_path):
    wan, (slider, *_rest) = tiny
    job = _job(tiny, tmp_path, "--lora", slider, "--strengths", "-1:1:1", "--seeds", "1,2")
    spec = job.spec
    assert [(a.kind, a.values) for a in spec.axes] == [("strength", (-1.0, 0.0, 1.0)), ("seed", (1, 2))]
    assert (spec.columns, spec.rows, spec.count, spec.target) == (3, 2, 6, 0)
    base = spec.base
    assert (base.prompt, base.frames, base.steps, base.width, base.height, base.fps) == (
        "a cat",
        5,
        2,
        32,
        32,
        8,
    )
    assert [entry.file for entry in base.loras] == [str(slider)]
    assert spec.num_blocks == 2  # the tiny Wan's, from the backend's model facts
    assert (job.backend, job.options["model_dir"], job.options["dtype"]) == ("diffusers", str(wan), "fp32")
    assert job.device == "cpu" and job.lane == "" and not job.overwrite
    assert job.out == str(tmp_path / "g.mp4") and job.export == ExportOptions()
    assert Path(job.cache_dir) == default_cache_dir()
    assert Path(job.cache_dir).is_relative_to(os.environ["DIFFLORA_DATA_DIR"])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_axis_order_default_and_chosen(tiny, tmp_path):
    _wan, (slider, *_rest) = tiny
    flags = [
        "--lora",
        slider,
        "--prompts",
        "a dog",
        "--seeds",
        "1:3:1",
        "--prompts",
        "a cat",
        "--strengths",
        "0,2",
    ]
    job = _job(tiny, tmp_path, *flags)
    assert [a.kind for a in job.spec.axes] == ["strength", "seed", "prompt"]
    assert job.spec.axes[2].values == ("a dog", "a cat") and job.spec.base.prompt == "a cat"
    chosen = _job(tiny, tmp_path, *flags, "--axes", "prompts,strength,seed")
    assert [a.kind for a in chosen.spec.axes] == ["prompt", "strength", "seed"]
    assert (chosen.spec.columns, chosen.spec.rows) == (2, 6)


def test_variants_by_list_and_one_by_one_and_the_first_is_the_lora(tiny, tmp_path):
    _wan, (slider, comma, accel) = tiny
    job = _job(tiny, tmp_path, "--variants", f"{slider},{accel}", "--variant", comma, "--seeds", "1")
    assert [a.kind for a in job.spec.axes] == ["seed", "variant"]  # strength and seed first by default
    variant = job.spec.axes[1]
    assert variant.kind == "variant" and variant.values == (str(slider), str(accel), str(comma))
    assert variant.label(2) == "slider, v2"  # a file name with a comma comes in through --variant
    assert [e.file for e in job.spec.base.loras] == [str(slider)]


def test_the_target_entry_per_expert_strengths_and_blocks(tiny, tmp_path):
    _wan, (slider, _comma, accel) = tiny
    job = _job(
        tiny,
        tmp_path,
        *("--lora", f"{accel}:0.5", "--lora-blocks", "attn", "--lora", slider, "--target", "2"),
        *("--strengths-high", "0,1", "--blocks", "first third", "--blocks", "ffn blocks=1"),
    )
    spec = job.spec
    assert spec.target == 1 and [a.kind for a in spec.axes] == ["strength_high", "blocks"]
    assert spec.base.loras[0].selector == "attn" and spec.base.loras[0].strength == 0.5
    cell = spec.cell_at(1, 1)
    assert cell.request.loras[1].strength_high == 1.0 and cell.request.loras[1].selector == "ffn blocks=1"
    assert spec.cell_at(0, 0).request.loras[1].selector == "all blocks=0"  # first third of 2 blocks
    assert cell.request.loras[0] == spec.base.loras[0]  # the other entry never changes


def test_the_vae_and_text_encoder_folders_and_vae_slicing_reach_the_backend(tiny, tmp_path):
    wan, (slider, *_rest) = tiny
    job = _job(
        tiny,
        tmp_path,
        *("--lora", slider, "--strengths", "0,1", "--vae-slicing"),
        *("--vae-dir", wan / "vae", "--text-encoder-dir", wan / "text_encoder"),
    )
    assert job.options["vae_slicing"] is True
    assert Path(job.options["vae_dir"]) == wan / "vae"
    assert Path(job.options["text_encoder_dir"]) == wan / "text_encoder"


def test_export_options_lane_and_cache(tiny, tmp_path):
    _wan, (slider, *_rest) = tiny
    cache = tmp_path / "cache ü"
    job = _job(
        tiny,
        tmp_path,
        *("--lora", slider, "--strengths", "0,1", "--layout", "vertical", "--sheet", "2", "--crf", "30"),
        *("--preset", "medium", "--no-labels", "--lane", "device:cuda:*", "--cache", cache),
        out="grid.webp",
    )
    assert job.export == ExportOptions(
        layout="vertical", crf=30, preset="medium", sheet_frame=2, labels=False
    )
    assert (job.lane, job.cache_dir, Path(job.out).suffix) == ("device:cuda:*", str(cache), ".webp")


def _error(capsys, *argv) -> str:
    code = main(["grid", *map(str, argv)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--strengths", "-1:1:-1"], "bad strength range '-1:1:-1'"),
        (["--strengths", "0,x"], "bad strength 'x'"),
        (["--seeds", "1.5"], "whole numbers"),
        (["--strengths", "0,1", "--seeds", "1", "--prompts", "p", "--blocks", "attn"], "at most 3 axes"),
        (
            ["--strengths", "0,1", "--lora", "missing ü.safetensors"],
            "missing ü.safetensors: LoRA file not found",
        ),
        (["--variant", "gone.safetensors"], "gone.safetensors: LoRA file not found"),
        ([], "needs an axis"),
        (["--seeds", "1", "--axes", "seed,strength"], "no --strengths is given"),
        (["--seeds", "1", "--prompts", "p", "--axes", "seed"], "leaves out prompt"),
        (["--seeds", "1", "--axes", "colour"], "unknown axis 'colour'"),
        (["--strengths", "0,1"], "needs a LoRA to change"),
        (["--strengths", "0,1", "--lora", "{slider}", "--target", "0"], "from 1"),
        (["--seeds", "1", "--lane", "gpu7"], "--lane"),
        (["--seeds", "1", "--lora", "{slider}", "--blocks", "bogus"], "bogus"),
        (["--seeds", "1", "--blocks", "first third"], "needs a LoRA to change"),
    ],
)
def test_bad_flags_are_one_line_and_write_nothing(tiny, tmp_path, capsys, argv, expected):
    wan, (slider, *_rest) = tiny
    argv = [a.replace("{slider}", str(slider)) for a in argv]
    out = tmp_path / "g.mp4"
    line = _error(capsys, "--model", wan, *MODEL, *RENDER, *argv, "--out", out, "--cache", tmp_path / "c")
    assert expected in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", ["g.mp4", "g.json", "g.sheet.png"])
def test_an_existing_output_is_refused_without_overwrite(tiny, tmp_path, capsys, existing):
    wan, (slider, *_rest) = tiny
    (tmp_path / existing).write_bytes(b"keep me")
    argv = ["--model", wan, *MODEL, *RENDER, "--lora", slider, "--seeds", "1", "--sheet", "0"]
    line = _error(capsys, *argv, "--out", tmp_path / "g.mp4")
    assert existing in line and "already exists" in line and "--overwrite" in line
    assert (tmp_path / existing).read_bytes() == b"keep me"
    assert job_from_args(
        build_parser().parse_args(["grid", *map(str, argv), "--out", str(tmp_path / "g.mp4"), "--overwrite"])
    )


def test_a_bad_output_name_missing_prompt_and_missing_model(tiny, tmp_path, capsys):
    wan, (slider, *_rest) = tiny
    assert "exports to .mp4" in _error(
        capsys, "--model", wan, *RENDER, "--seeds", "1", "--out", tmp_path / "g.avi"
    )
    assert "--out" in _error(capsys, "--model", wan, *RENDER, "--seeds", "1")
    assert "--prompt" in _error(capsys, "--model", wan, "--seeds", "1", "--out", tmp_path / "g.mp4")
    assert "no wan" in _error(
        capsys, "--model", tmp_path / "no wan", *RENDER, "--seeds", "1", "--out", tmp_path / "g.mp4"
    )
    assert list(tmp_path.iterdir()) == []


def test_from_a_sidecar_takes_its_job_and_only_the_allowed_overrides(tiny, tmp_path, capsys):
    _wan, (slider, *_rest) = tiny
    job = _job(tiny, tmp_path, "--lora", slider, "--strengths", "0,1", "--seeds", "1,2", "--sheet", "1")
    sidecar = write_sidecar(tmp_path / "old.json", job, None)
    again = job_from_args(build_parser().parse_args(["grid", "--from", str(sidecar)]))
    assert again == job
    moved = job_from_args(
        build_parser().parse_args(
            [
                "grid",
                "--from",
                str(sidecar),
                "--out",
                str(tmp_path / "new.gif"),
                "--cache",
                str(tmp_path / "c2"),
            ]
            + ["--layout", "vertical", "--sheet", "3", "--lane", "device:cpu", "--overwrite"]
        )
    )
    assert (moved.spec, moved.options, moved.backend) == (job.spec, job.options, job.backend)
    assert (moved.out, moved.cache_dir, moved.lane) == (
        str(tmp_path / "new.gif"),
        str(tmp_path / "c2"),
        "device:cpu",
    )
    assert (moved.export.layout, moved.export.sheet_frame, moved.export.crf, moved.overwrite) == (
        "vertical",
        3,
        20,
        True,
    )
    for flag in (
        ["--seeds", "3"],
        ["--prompt", "x"],
        ["--lora", str(slider)],
        ["--frames", "9"],
        ["--no-labels"],
    ):
        line = _error(capsys, "--from", sidecar, *flag)
        assert f"{flag[0]} comes from the sidecar" in line
    (tmp_path / "g.mp4").write_bytes(b"keep me")
    assert "already exists" in _error(capsys, "--from", sidecar)  # its own out is there: --overwrite
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    assert "broken.json: not a grid sidecar: not JSON" in _error(capsys, "--from", tmp_path / "broken.json")
    assert read_sidecar(sidecar) == job


def test_a_sidecar_whose_lora_is_gone_is_bad_input(tiny, tmp_path, capsys):
    _wan, (slider, *_rest) = tiny
    job = _job(tiny, tmp_path, "--lora", slider, "--strengths", "0,1")
    gone = tmp_path / "gone ü.safetensors"
    gone.write_bytes(slider.read_bytes())
    import dataclasses

    moved = dataclasses.replace(
        job,
        spec=dataclasses.replace(
            job.spec, base=job.spec.base.replace(loras=(job.spec.base.loras[0].__class__(str(gone)),))
        ),
    )
    sidecar = write_sidecar(tmp_path / "s.json", moved, None)
    gone.unlink()
    line = _error(capsys, "--from", sidecar)
    assert "gone ü.safetensors" in line and "not there any more" in line


def test_bad_input_from_a_real_process_is_one_line(tmp_path):
    done = run_main("grid", "--prompt", "p", "--strengths", "1:0:1", "--out", tmp_path / "g.mp4")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "bad strength range" in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


# --- real grids of the tiny Wan -------------------------------------------------------------------


def _png(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _decoded(path):
    from difflora_gui.preview.video_io import read_video

    frames, _fps = read_video(path)
    return frames


def test_a_real_grid_its_cache_and_an_exact_rerender_from_the_sidecar(tiny, tmp_path):
    import av
    import numpy as np

    from difflora_gui.compare.grid_canvas import grid_geometry
    from difflora_gui.compare.grid_types import GridResult

    wan, (slider, *_rest) = tiny
    out = tmp_path / "g ü.mp4"
    argv = [
        "grid",
        "--model",
        wan,
        *MODEL,
        *RENDER,
        "--lora",
        slider,
        "--strengths",
        "-1:1:1",
        "--seeds",
        "1,2",
    ]
    first = run_main(*argv, "--out", out, "--quiet")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == str(out)
    sidecar = out.with_suffix(".json")
    job = read_sidecar(sidecar)
    assert [(a.kind, a.values) for a in job.spec.axes] == [("strength", (-1.0, 0.0, 1.0)), ("seed", (1, 2))]
    geometry = grid_geometry(job.spec, 32, 32)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (geometry.width, geometry.height)
    grid_frames = _decoded(out)
    assert grid_frames.shape == (5, geometry.height, geometry.width, 3)

    # asked again: every cell comes from the cache
    again = run_main(*argv, "--out", out, "--overwrite", "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    cached = GridResult.from_json(json.loads(again.stdout))
    assert (cached.rendered, cached.cached, len(cached.cells)) == (0, 6, 6)
    assert not any(cell.rendered for cell in cached.cells)
    assert np.array_equal(_decoded(out), grid_frames)

    # from the sidecar into a fresh cache: all six rendered again, each cell the same. The cells'
    # H.264 files are not compared: the preview's encoder (PyAV, thread_type AUTO) does not give
    # the same bitstream every time for these 32 × 32 clips (decoded frames then differ by up to
    # ~20 levels), so the lossless PNG of each cell's first frame is what must be equal.
    fresh = tmp_path / "fresh cache"
    redo = run_main(
        "grid", "--from", sidecar, "--cache", fresh, "--out", tmp_path / "g2.mp4", "--json", "--quiet"
    )
    assert redo.returncode == 0, redo.stderr
    rerendered = GridResult.from_json(json.loads(redo.stdout))
    assert (rerendered.rendered, rerendered.cached) == (6, 0)
    for cell in rerendered.cells:
        before = cached.cell_at(cell.row, cell.col)
        assert Path(cell.video).is_relative_to(fresh) and not Path(before.video).is_relative_to(fresh)
        assert (cell.key, cell.labels, cell.request) == (before.key, before.labels, before.request)
        ours, theirs = _png(cell.first_frame), _png(before.first_frame)
        assert ours.shape == (32, 32, 3) and np.array_equal(ours, theirs), (cell.row, cell.col)
        assert _decoded(cell.video).shape == (5, 32, 32, 3)
    assert _decoded(tmp_path / "g2.mp4").shape == grid_frames.shape
    assert read_sidecar(tmp_path / "g2.json").spec == job.spec
    # the cells differ where they should: strength -1 is not strength 1, seed 1 is not seed 2
    first = _png(cached.cell_at(0, 0).first_frame)
    assert not np.array_equal(first, _png(cached.cell_at(0, 2).first_frame))
    assert not np.array_equal(first, _png(cached.cell_at(1, 0).first_frame))


def test_a_lora_changed_since_the_sidecar_is_named_in_a_warning(tiny, tmp_path, capsys):
    from difflora_gui.compare.grid_types import CellResult, GridResult
    from difflora_gui.preview.render import hash_lora

    _wan, (slider, _comma, accel) = tiny
    job = _job(tiny, tmp_path, "--lora", slider, "--lora", accel, "--strengths", "0,1")

    def result(slider_hash):
        cells = []
        for cell in job.spec.cells():
            request = cell.request.to_json()
            request["loras"][0]["sha256"] = slider_hash
            request["loras"][1]["sha256"] = hash_lora(accel)
            cells.append(
                CellResult(
                    cell.index, cell.row, cell.col, cell.labels, "", "", "k", True, 5, 32, 32, 8, request
                )
            )
        return GridResult(tuple(cells), rendered=2, cached=0)

    same = write_sidecar(tmp_path / "same.json", job, result(hash_lora(slider)))
    job_from_args(build_parser().parse_args(["grid", "--from", str(same)]))
    assert capsys.readouterr().err == ""
    changed = write_sidecar(tmp_path / "changed.json", job, result("0" * 64))
    assert job_from_args(build_parser().parse_args(["grid", "--from", str(changed)])).spec == job.spec
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"warning: {slider}: changed since the grid was rendered; its cells will differ"]
