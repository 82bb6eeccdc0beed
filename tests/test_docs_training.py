"""docs/training.md is checked against the code: the train command's flags, the presets, pair modes,
expert windows, the backend contract's fields, its links, and the example backend, which runs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from pathlib import Path

import pytest

from difflora_gui import specs
from difflora_gui.train import backend, plan
from difflora_gui.train.config import EXPERT_BOUNDARIES, EXPERT_WINDOWS, PAIR_MODES
from difflora_gui.train.presets import PRESET_NAMES
from tests.app_process import run_main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TRAINING_MD = (DOCS / "training.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][A-Za-z0-9_-]*")


def section(heading: str) -> str:
    return TRAINING_MD.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def example_plugin_code() -> str:
    return section("## Writing a trainer backend").split("```python", 1)[1].split("```", 1)[0]


def train_commands(markdown: str = TRAINING_MD) -> list[str]:
    """Every ``python main.py train ...`` of a markdown text: code-block lines (with ``\\``
    continuations) and inline code spans."""
    commands = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("python main.py train"):
                commands.append(line.strip())
    commands += [
        span for span in re.findall(r"`([^`]+)`", markdown) if span.startswith("python main.py train")
    ]
    return commands


@pytest.fixture
def example_plugin():
    """The doc's example backend installed in this test's user plugins folder."""
    folder = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    folder.mkdir(parents=True)
    (folder / "my_script_trainer.py").write_text(example_plugin_code(), encoding="utf-8")
    return folder


def parser_flags() -> set[str]:
    flags: set[str] = set()
    for args in (("train", "--help"), ("train", "pair", "--help")):
        result = run_main(*args)
        assert result.returncode == 0, result.stderr
        flags |= set(FLAG.findall(result.stdout))
    return flags


def test_every_train_flag_in_the_doc_exists(example_plugin):
    readme = train_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme  # the README's Train part
    commands = train_commands() + readme
    assert len(commands) >= 8  # the synopsis, the examples, the dry run, the example backend's
    known = parser_flags()
    assert {"--musubi-dir", "--python", "--dit", "--vae", "--t5", "--model", "--script"} <= known
    for command in commands:
        unknown = set(FLAG.findall(command)) - known
        assert not unknown, f"docs/training.md: {command!r} uses flags the parser lacks: {sorted(unknown)}"
    # flags named in the prose of the command-line section exist too (Musubi's own flags are
    # named in the Musubi sections, not here)
    prose = set(FLAG.findall(section("## Command line")))
    assert not prose - known, sorted(prose - known)


def test_presets_pair_modes_and_expert_windows_are_the_codes():
    presets = section("## Presets")
    assert set(re.findall(r"^\| `([\w-]+)` \|", presets, flags=re.M)) == set(PRESET_NAMES)
    modes = section("## Pair modes")
    assert set(re.findall(r"^\| `(\w+)`", modes, flags=re.M)) == set(PAIR_MODES)
    experts = section("## Wan2.2 A14B: per expert or joint")
    for task, windows in EXPERT_WINDOWS.items():
        high, low = windows["high"], windows["low"]
        assert f"| `{task}` | {high[0]}–{high[1]} | {low[0]}–{low[1]} |" in experts
    t2v, i2v = EXPERT_BOUNDARIES["t2v-A14B"], EXPERT_BOUNDARIES["i2v-A14B"]
    assert f"`--timestep_boundary {t2v}` or `{i2v}`" in experts


def test_the_backend_contract_is_documented():
    contract = section("## Writing a trainer backend")
    table = contract.split("**The types**", 1)[0]
    documented = set(re.findall(r"`(\w+)`", table))
    missing = {f.name for f in dataclasses.fields(specs.TrainerBackendSpec)} - documented
    assert not missing, f"TrainerBackendSpec fields missing from docs/training.md: {sorted(missing)}"
    types = contract.split("**The types**", 1)[1].split("**Events**", 1)[0]
    named = set(re.findall(r"\w+", types))
    for cls in (plan.TrainRun, plan.TrainResult, backend.TrainIssue, backend.TrainDescription):
        assert cls.__name__ in named
        missing = {f.name for f in dataclasses.fields(cls)} - named
        assert not missing, f"{cls.__name__} fields missing from docs/training.md: {sorted(missing)}"
    events = contract.split("**Events**", 1)[1]
    for metric in (backend.METRIC_LOSS, backend.METRIC_AVG_LOSS, backend.METRIC_LR, backend.METRIC_EPOCH):
        assert f"`{metric}`" in events


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {slug(line.lstrip("#")) for line in markdown.splitlines() if line.startswith("#")}


def test_links_lead_somewhere():
    links = re.findall(r"\]\(([^)\s]+)\)", TRAINING_MD)
    assert links
    for link in links:
        if link.startswith("http"):
            continue
        target, _, anchor = link.partition("#")
        text = (DOCS / target).read_text(encoding="utf-8") if target else TRAINING_MD
        if anchor:
            assert anchor in anchors(text), f"docs/training.md: no heading for {link}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    plugins = (DOCS / "plugins.md").read_text(encoding="utf-8")
    assert "(docs/training.md)" in readme and "(training.md)" in plugins


def test_the_example_backend_runs(example_plugin, tmp_path):
    data = tmp_path / "dense frames ü"
    data.mkdir()
    partner = tmp_path / "sparse frames"
    partner.mkdir()
    for folder in (data, partner):  # listed, never decoded by this backend
        (folder / "frame 1.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    script = tmp_path / "my train.py"
    # a training script of the user's: a tqdm-style bar on stderr, then its output file
    script.write_text(
        "import argparse, sys\n"
        "p = argparse.ArgumentParser()\n"
        "for a in ('--data', '--out', '--steps', '--rank', '--alpha', '--lr', '--seed'): p.add_argument(a)\n"
        "args = p.parse_args()\n"
        "for i in range(1, int(args.steps) + 1):\n"
        "    print(f'steps: {i * 100 // int(args.steps)}%|#| {i}/{args.steps} [00:00<00:00, 9.0it/s]', file=sys.stderr)\n"
        "open(args.out, 'wb').write(b'trained on ' + args.data.encode())\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    common = [
        "--backend",
        "my_script",
        "--script",
        str(script),
        "--output",
        str(out),
        "--max_train_steps",
        "3",
    ]
    dry = run_main(
        "train",
        "pair",
        *common,
        "--a",
        str(data),
        "--b",
        str(partner),
        "--name",
        "x",
        "--pair_mode",
        "independent",
        "--dry-run",
        "--json",
    )
    assert dry.returncode == 0, dry.stderr
    commands = json.loads(dry.stdout)
    assert [command[command.index("--out") + 1] for command in commands] == [
        str(out / "x_A.safetensors"),
        str(out / "x_B.safetensors"),
    ]
    assert all(
        command[1] == str(script) and command[command.index("--rank") + 1] == "16" for command in commands
    )
    result = run_main(
        "train", *common, "--dataset", str(data), "--name", "mine", "--device", "cpu", "--quiet"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert (out / "mine.safetensors").read_bytes() == b"trained on " + str(data).encode()
    assert "mine: finished" in result.stdout
    missing = run_main(
        "train", *common[:2], "--dataset", str(data), "--output", str(out), "--name", "y", "--dry-run"
    )
    assert missing.returncode == 2
    assert "set --script to your training script" in missing.stderr


def test_the_config_file_example_loads(tmp_path):
    from difflora_gui.train.musubi.settings import MUSUBI_PARAMS
    from difflora_gui.train.train_cli import load_config_file

    text = section("## Command line").split("```toml", 1)[1].split("```", 1)[0]
    path = tmp_path / "denser ü.toml"
    path.write_text(text, encoding="utf-8")
    config, table = load_config_file(path)
    assert config["optimizer"] == "lion" and config["learning_rate"] == 2e-5
    assert set(table) <= {param.name for param in MUSUBI_PARAMS}


def test_the_commands_are_shell_words():
    for command in train_commands():
        assert shlex.split(command.replace("\\", "/"))[:3] == ["python", "main.py", "train"]
