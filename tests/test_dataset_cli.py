"""``python main.py dataset ...``: the pair subcommand in real subprocesses and in-process, delegation."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from difflora_gui import cli
from difflora_gui.commands import dataset_cmd
from difflora_gui.dataset.model import PairSet
from tests.app_process import ROOT, run_main
from tests.dataset_media_helpers import folder_digest, write_image, write_video


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "A dense", tmp_path / "B sparse"
    for i in (1, 2, 10):
        write_image(a / f"frame{i}_dense.jpg", seed=i)
        write_image(b / f"frame{i}_sparse.jpg", seed=i)
    write_image(a / "frame3_dense.jpg")
    write_video(b / "clip_sparse.mp4", frames=4)
    (b / "broken_sparse.png").write_bytes(b"")
    return a, b


def test_pair_subprocess_prints_pairs_unpaired_and_skipped(folders, tmp_path):
    a, b = folders
    before = folder_digest(tmp_path)
    result = run_main("dataset", "pair", a, b, "--rule", "suffix:_dense,_sparse")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"3 pairs (rule suffix:_dense,_sparse); A: {a}; B: {b}"
    assert lines[1:] == [
        "unpaired in A (1):",
        f"  {a / 'frame3_dense.jpg'}",
        "unpaired in B (1):",
        f"  {b / 'clip_sparse.mp4'}",
        "skipped (1):",
        f"  {b / 'broken_sparse.png'}: the file is empty (0 bytes)",
    ]
    assert "pairing" in result.stderr and "9/9" in result.stderr  # the progress bar
    assert folder_digest(tmp_path) == before


def test_pair_json_is_written_atomically_and_never_overwritten_without_asking(folders, tmp_path):
    a, b = folders
    out = tmp_path / "out" / "pairs ü.json"
    out.parent.mkdir()
    result = run_main("dataset", "pair", a, b, "--rule", "suffix:_dense,_sparse", "--json", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(f"wrote {out}")
    pair_set = PairSet.from_json(json.loads(out.read_text(encoding="utf-8")))
    assert pair_set.ids() == ["frame1", "frame2", "frame10"]
    assert pair_set.skipped[0].reason == "the file is empty (0 bytes)"
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    first = out.read_bytes()
    again = run_main("dataset", "pair", a, b, "--json", out, "--quiet")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: {out}: output file already exists (use --overwrite to replace it)"
    )
    assert out.read_bytes() == first
    forced = run_main("dataset", "pair", a, b, "--json", out, "--overwrite", "--quiet")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["rule"] == "stem"


def test_pair_json_to_stdout(folders):
    a, b = folders
    result = run_main("dataset", "pair", a, b, "--rule", "suffix:_dense,_sparse", "--json", "-")
    assert result.returncode == 0, result.stderr
    assert PairSet.from_json(json.loads(result.stdout)).ids() == ["frame1", "frame2", "frame10"]
    assert result.stderr == ""  # no progress bar when the JSON goes to stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["{a}", "{missing}"], "error: {missing}: folder not found"),
        (["{missing}", "{b}"], "error: {missing}: folder not found"),
        (["{a}", "{b}", "--rule", "nonsense"], "error: unknown pairing rule 'nonsense'"),
        (["{a}", "{a}"], "error: {a}: A and B are the same folder"),
        (
            ["{a}", "{b}", "--json", "{missing}/out.json"],
            "error: {missing}/out.json: output folder does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(folders, tmp_path, args, message):
    a, b = folders
    values = {"a": a, "b": b, "missing": tmp_path / "no such folder"}
    result = run_main("dataset", "pair", *[arg.format(**values) for arg in args])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message.format(**values)), result.stderr
    assert result.stdout == ""


def test_single_folder_and_in_process_main(folders, capsys, tmp_path):
    a, b = folders
    assert cli.main(["dataset", "pair", str(a), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"4 pairs (rule stem); A: {a}"
    assert "unpaired" not in out
    target = tmp_path / "in process.json"
    assert (
        cli.main(
            ["dataset", "pair", str(a), str(b), "--rule", "suffix:_dense,_sparse", "--json", str(target)]
        )
        == 0
    )
    assert json.loads(target.read_text(encoding="utf-8"))["sources"] == {"a": str(a), "b": str(b)}
    capsys.readouterr()
    assert cli.main(["dataset", "pair", str(a), str(tmp_path / "gone")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'gone'}: folder not found"


def test_long_lists_are_shortened_unless_all(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    for i in range(60):
        write_image(a / f"lonely{i}.png", 8, 8)
    b.mkdir()
    assert cli.main(["dataset", "pair", str(a), str(b), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "unpaired in A (60):" in out and "… and 10 more (--all lists them)" in out
    assert cli.main(["dataset", "pair", str(a), str(b), "--quiet", "--all"]) == 0
    assert "more (--all" not in capsys.readouterr().out


def test_dataset_without_a_subcommand_prints_help_and_exits_2(capsys):
    assert cli.main(["dataset"]) == 2
    assert "pair" in capsys.readouterr().out


def test_missing_and_broken_subcommand_modules_are_left_out(monkeypatch, tmp_path, capsys):
    broken = tmp_path / "broken_dataset_sub.py"
    broken.write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        dataset_cmd,
        "SUBCOMMANDS",
        (
            ("pair", "difflora_gui.dataset.pairing_cli", "pair"),
            ("later", "difflora_gui.dataset.not_written_yet_cli", "not there"),
            ("broken", "broken_dataset_sub", "broken"),
        ),
    )
    parser = argparse.ArgumentParser()
    dataset_cmd.configure(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == ["pair"]
    assert set(dataset_cmd.UNAVAILABLE) == {"broken"}
    args = parser.parse_args(["pair", str(tmp_path), "--quiet"])
    assert dataset_cmd.run(args) == 0
    assert "warning: 'dataset broken' is unavailable (RuntimeError: half written)" in capsys.readouterr().err


def test_building_the_parser_stays_light():
    """``dataset``'s subcommands must not import cv2/av/torch just to set up their options."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from difflora_gui.cli import build_parser; build_parser();"
            "print(sorted(m for m in ('torch', 'cv2', 'av', 'PySide6', 'scenedetect', 'diffusers') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    assert Path(ROOT / "main.py").is_file()
