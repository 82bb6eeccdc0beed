"""``python main.py preview``: flags → request, the LoRA grammar (Windows paths), bad input, a real render."""

from __future__ import annotations

import pytest

from difflora_gui.cli import build_parser
from difflora_gui.commands.preview_cmd import request_from_args, split_lora
from difflora_gui.errors import UserError
from difflora_gui.preview.request import ACCELERATOR_PRESET
from tests.app_process import run_main


def _args(*argv):
    return build_parser().parse_args(["preview", *argv])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.safetensors", ("a.safetensors", 1.0)),
        ("a.safetensors:0.8", ("a.safetensors", 0.8)),
        ("a.safetensors:-2", ("a.safetensors", -2.0)),
        ("C:\\x\\y.safetensors:0.8", ("C:\\x\\y.safetensors", 0.8)),
        ("C:\\x\\y.safetensors", ("C:\\x\\y.safetensors", 1.0)),
        ("D:/loras/my lora.safetensors:1.5", ("D:/loras/my lora.safetensors", 1.5)),
        ("/tmp/odd:name.safetensors", ("/tmp/odd:name.safetensors", 1.0)),
        ("C:5", ("C:5", 1.0)),
    ],
)
def test_lora_file_and_strength_split_from_the_right_only_for_a_number(text, expected):
    assert split_lora(text) == expected


def test_a_file_whose_name_ends_in_a_number_after_a_colon_is_that_file(tmp_path):
    odd = tmp_path / "x.safetensors:2"
    odd.write_bytes(b"")
    assert split_lora(str(odd)) == (str(odd), 1.0)


def test_non_finite_strength_is_refused():
    with pytest.raises(UserError, match="finite"):
        split_lora("a.safetensors:nan")


def test_flags_make_the_request_and_per_lora_options_follow_their_lora(tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    one.write_bytes(b"x")
    two.write_bytes(b"y")
    args = _args(
        "--expert",
        "low",
        "--lora",
        f"{one}:1.5",
        "--blocks",
        "attn blocks=0@0.5",
        "--lora",
        str(two),
        "--strength-high",
        "-1",
        "--prompt",
        "a cat",
        "--negative",
        "blurry",
        "--seed",
        "7",
        "--frames",
        "9",
        "--steps",
        "3",
        "--size",
        "64x48",
        "--guidance",
        "4.5",
        "--shift",
        "2",
        "--sampler",
        "euler",
        "--fps",
        "8",
    )
    request = request_from_args(args)
    assert (request.prompt, request.negative_prompt, request.seed, request.frames) == (
        "a cat",
        "blurry",
        7,
        9,
    )
    assert (request.width, request.height, request.steps, request.fps) == (64, 48, 3, 8)
    assert (request.guidance, request.flow_shift, request.sampler) == (4.5, 2.0, "euler")
    first, second = request.loras
    assert first.file == str(one) and first.strength == 1.5 and first.selector == "attn blocks=0@0.5"
    assert first.expert == "low" and second.expert == "low"  # given before the first --lora: every one
    assert second.file == str(two) and second.strength == 1.0 and second.selector == "all"
    assert second.strength_high == -1.0 and first.strength_high is None


def test_accelerator_preset_under_explicit_flags():
    preset = request_from_args(_args("--prompt", "p", "--accelerator", "--size", "64x64", "--frames", "5"))
    assert preset.steps == ACCELERATOR_PRESET["steps"] and preset.guidance == ACCELERATOR_PRESET["guidance"]
    assert preset.sampler == ACCELERATOR_PRESET["sampler"]
    own = request_from_args(_args("--prompt", "p", "--accelerator", "--steps", "6", "--size", "64x64"))
    assert own.steps == 6 and own.guidance == ACCELERATOR_PRESET["guidance"]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--size", "64"], "--size"),
        (["--size", "60x64"], "multiple of 16"),
        (["--frames", "8"], "4N\\+1"),
        (["--lora", "missing.safetensors"], "missing.safetensors"),
        (["--blocks", "bogus", "--lora", "x"], "bogus"),
    ],
)
def test_bad_flags_are_one_line_user_errors(argv, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(UserError, match=match):
        request_from_args(_args("--prompt", "p", *argv))


def _one_line_error(done):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_bad_lora_path_exits_2_naming_the_file(tmp_path):
    out = tmp_path / "out.mp4"
    done = run_main(
        "preview", "--lora", str(tmp_path / "nope ü.safetensors:0.5"), "--prompt", "p", "--out", str(out)
    )
    line = _one_line_error(done)
    assert "nope ü.safetensors" in line and "not found" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_out_exits_2_without_overwrite(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    done = run_main("preview", "--prompt", "p", "--out", str(out))
    assert "already exists" in _one_line_error(done) and "--overwrite" in done.stderr
    assert out.read_bytes() == b"keep me"


def test_a_missing_model_folder_exits_2_naming_it(tmp_path):
    out = tmp_path / "out.mp4"
    line = _one_line_error(run_main("preview", "--model", tmp_path / "no wan", "--prompt", "p", "--out", out))
    assert "no wan" in line and not out.exists()


def test_no_output_is_bad_input(tmp_path):
    assert "--out" in _one_line_error(run_main("preview", "--prompt", "p"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from difflora_gui.lora.synthetic import make_wan_lora
    from tests.wan_tiny import save_tiny_wan

    folder = tmp_path_factory.mktemp("preview cli") / "my models ü"
    wan = save_tiny_wan(folder / "wan 2.1")
    lora = folder / "slider ü.safetensors"
    make_wan_lora("tiny", path=lora, rank=4, seed=1, up_std=0.2)
    return wan, lora


RENDER = [
    "--prompt",
    "a cat",
    "--seed",
    "3",
    "--frames",
    "5",
    "--steps",
    "2",
    "--size",
    "48x32",
    "--fps",
    "8",
]
MODEL = ["--dtype", "fp32", "--device", "cpu"]


def test_a_real_render_writes_the_video_and_lossless_frames(tiny_model, tmp_path):
    import json

    import cv2
    import numpy as np

    from difflora_gui.jobs.recording import RecordingContext
    from difflora_gui.preview.backend import PreviewJob
    from difflora_gui.preview.render import run_preview
    from difflora_gui.preview.video_io import VideoReader

    wan, lora = tiny_model
    out, frames = tmp_path / "out ü.mp4", tmp_path / "frames ü"
    argv = ["preview", "--model", wan, "--lora", f"{lora}:1.5", *RENDER, *MODEL, "--out", out]
    done = run_main(*argv, "--frames-dir", frames, "--cache", tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "step 2 of 2" in done.stderr
    with VideoReader(out) as reader:
        assert (reader.frame_count, reader.width, reader.height) == (5, 48, 32)
    pngs = sorted(frames.glob("frame_*.png"))
    assert len(pngs) == 5
    # the same request in this process gives exactly these frames
    request = json.loads(
        run_main(*argv[:-1], tmp_path / "again.mp4", "--cache", tmp_path / "cache", "--json").stdout
    )
    assert request["cache_hit"] is True  # the second run is replayed from the cache
    job = PreviewJob.from_json(
        {
            "request": request["request"],
            "options": {"model_dir": str(wan), "dtype": "fp32", "device": "cpu"},
            "frames_dir": str(tmp_path / "in process"),
        }
    )
    run_preview(job, RecordingContext())
    for png in pngs:
        theirs = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        ours = cv2.imread(str(tmp_path / "in process" / png.name), cv2.IMREAD_UNCHANGED)
        assert theirs.shape == (32, 48, 3) and np.array_equal(theirs, ours), png.name
