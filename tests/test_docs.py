"""docs/plugins.md is tested against the hooks and specs it documents."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from difflora_gui import hookspecs, params, specs
from difflora_gui.qt import gui_hookspecs
from tests.app_process import run_main

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def all_hooks():
    for module in (hookspecs, gui_hookspecs):
        for name in dir(module):
            if name.startswith("difflora_") and callable(getattr(module, name)):
                yield name


@pytest.mark.parametrize("hook", sorted(all_hooks()))
def test_every_hook_has_a_reference_entry(hook):
    assert f"### `{hook}()`" in PLUGINS_MD, f"docs/plugins.md lacks a '### `{hook}()`' section"


def test_register_hook_lists_are_complete():
    assert set(hookspecs.REGISTER_HOOKS) | set(gui_hookspecs.GUI_REGISTER_HOOKS) == set(all_hooks())
    assert set(specs.SPEC_TYPES) == set(all_hooks())


@pytest.mark.parametrize(
    "cls",
    [params.Param, specs.MergeStrategySpec, specs.TrainerBackendSpec, specs.CliCommandSpec, specs.PanelSpec],
)
def test_every_spec_field_is_documented(cls):
    heading = "### Job specs" if cls is specs.TrainerBackendSpec else f"### `{cls.__name__}`"
    section = PLUGINS_MD.split(heading, 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"`(\w+)`", section))
    missing = {f.name for f in dataclasses.fields(cls)} - documented
    assert not missing, f"{cls.__name__} fields missing from docs/plugins.md: {sorted(missing)}"


def test_the_minimal_plugin_example_works():
    code = PLUGINS_MD.split("## A minimal plugin", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    folder = Path(os.environ["DIFFLORA_DATA_DIR"]) / "plugins"
    folder.mkdir(parents=True)
    (folder / "hello_command.py").write_text(code, encoding="utf-8")
    result = run_main("hello", "world")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello, world"
