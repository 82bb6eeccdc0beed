"""The headless command line, run as users run it: real subprocesses of ``python main.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from difflora_gui import cli
from tests.app_process import run_main
from tests.plugin_helpers import write_module

ROOT = Path(__file__).resolve().parent.parent

COMMAND_PLUGIN = """
from difflora_gui import hookimpl
from difflora_gui.errors import UserError
from difflora_gui.jobs.cli import run_in_terminal
from difflora_gui.specs import CliCommandSpec

def configure(parser):
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--fail", action="store_true")

def job(params, ctx):
    for i in range(params["count"]):
        ctx.raise_if_cancelled()
        ctx.progress(i + 1, params["count"], "counting")
    return params["count"]

def run(args):
    if args.fail:
        raise UserError("the count file is unreadable", path="C:/some folder/count.txt")
    print("counted", run_in_terminal(job, {"count": args.count}, description="count"))

@hookimpl
def difflora_register_cli_commands():
    return [CliCommandSpec(name="count", help="count to N", configure=configure, run=run)]
"""

BAD_CONFIGURE = """
from difflora_gui import hookimpl
from difflora_gui.specs import CliCommandSpec

def configure(parser):
    raise RuntimeError("broken options")

@hookimpl
def difflora_register_cli_commands():
    return [CliCommandSpec(name="broken", help="never works", configure=configure, run=configure)]
"""


def test_help_lists_commands_without_importing_torch():
    result = run_main("--help")
    assert result.returncode == 0
    assert "plugins" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from difflora_gui.cli import build_parser; build_parser();"
            "print(sorted(m for m in ('torch', 'diffusers', 'PySide6', 'cv2', 'safetensors') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert probe.stdout.strip() == "[]", probe.stderr


def test_plugins_command_lists_plugins_with_errors(tmp_path):
    user_plugins = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    write_module(user_plugins, "user_broken", "import this_module_does_not_exist\n")
    result = run_main("plugins")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["name", "source", "version", "hooks", "status", "error"]
    assert "user_broken" in result.stdout and "failed" in result.stdout
    assert "No module named 'this_module_does_not_exist'" in result.stdout
    listed = json.loads(run_main("plugins", "--json").stdout)
    by_name = {p["name"]: p for p in listed}
    assert by_name["core"]["source"] == "built-in" and by_name["core"]["status"] == "enabled"
    assert by_name["user_broken"]["source"] == "folder" and by_name["user_broken"]["status"] == "failed"


def test_plugins_disable_enable_round_trip():
    user_plugins = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    write_module(user_plugins, "user_counter", COMMAND_PLUGIN)
    assert run_main("count", "--count", "2").returncode == 0
    assert run_main("plugins", "--disable", "user_counter").returncode == 0
    assert run_main("count").returncode == 2  # argparse: no such command any more
    listed = {p["name"]: p for p in json.loads(run_main("plugins", "--json").stdout)}
    assert listed["user_counter"]["status"] == "disabled"
    assert run_main("plugins", "--enable", "user_counter").returncode == 0
    assert run_main("count").returncode == 0


def test_plugin_command_runs_a_job_with_progress_and_bad_input_exits_2():
    user_plugins = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    write_module(user_plugins, "user_counter", COMMAND_PLUGIN)
    ok = run_main("count", "--count", "4")
    assert ok.returncode == 0, ok.stderr
    assert "counted 4" in ok.stdout
    assert "4/4" in ok.stderr  # the tqdm bar
    bad = run_main("count", "--fail")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: C:/some folder/count.txt: the count file is unreadable"


def test_a_command_whose_options_break_disables_only_its_plugin(capsys):
    user_plugins = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    write_module(user_plugins, "user_bad_options", BAD_CONFIGURE)
    write_module(user_plugins, "user_counter", COMMAND_PLUGIN)
    assert cli.main(["count", "--count", "1"]) == 0
    from difflora_gui.plugin_host import get_plugin_host

    info = get_plugin_host().info("user_bad_options")
    assert info.status == "failed" and "broken options" in info.error


def test_python_dash_m_is_the_same_as_main_py():
    result = subprocess.run(
        [sys.executable, "-m", "difflora_gui", "plugins"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and "core" in result.stdout


def test_no_command_shows_help_for_unknown_command():
    result = run_main("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.mark.parametrize(
    "module",
    [
        "difflora_gui",
        "difflora_gui.hookspecs",
        "difflora_gui.specs",
        "difflora_gui.params",
        "difflora_gui.plugin_host",
        "difflora_gui.jobs",
    ],
)
def test_plugin_facing_modules_are_light(module):
    code = (
        f"import sys, {module}; heavy = [m for m in ('torch', 'diffusers', 'PySide6', 'superqt', 'pyqtgraph', "
        "'cv2', 'safetensors', 'transformers') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
