"""docs/comfyui.md is checked against the code: the comfy command's flags per sub-command, the
preview backend's and the Kontext tool's options, the templates and their nodes, the binding
parameters, the error messages it quotes, and its links (and the README's links to it)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from difflora_gui.comfy import binding, kontext_job
from difflora_gui.comfy.workflows import TEMPLATES, template_classes
from difflora_gui.commands import comfy_cmd, preview_cmd
from plugins import comfyui_preview

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "comfyui.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][A-Za-z0-9_-]*")
#: where the messages quoted under Troubleshooting come from
MESSAGE_SOURCES = (
    *sorted((ROOT / "difflora_gui" / "comfy").glob("*.py")),
    ROOT / "difflora_gui" / "qt" / "comfy_health.py",
    ROOT / "difflora_gui" / "commands" / "comfy_cmd.py",
)


def section(heading: str, text: str = DOC) -> str:
    return text.split(heading + "\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def table_names(text: str) -> list[str]:
    return re.findall(r"^\| `([\w.:]+)` \|", text, flags=re.M)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="python main.py comfy")
    comfy_cmd.configure(parser)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    return flags - {"--help"}


@pytest.mark.parametrize("command", ["status", "validate", "run"])
def test_every_flag_of_each_sub_command_is_documented_and_no_other(command):
    documented = set(FLAG.findall(section(f"### comfy {command}")))
    assert documented == flags_of(subparsers()[command])


def test_the_command_examples_parse():
    parsers = subparsers()
    block = section("## The command line").split("```\n", 1)[1].split("```", 1)[0]
    examples = [line for line in block.splitlines() if line.startswith("python main.py comfy")]
    assert [shlex.split(line)[3] for line in examples] == ["status", "validate", "run"]
    for line in examples:
        words = shlex.split(line)[3:]
        parsers[words[0]].parse_args(words[1:])


def test_the_templates_and_their_nodes_are_the_codes():
    rows = [r for r in section("### The workflows").splitlines() if r.startswith("| `")]
    assert table_names("\n".join(rows)) == [t.name for t in TEMPLATES]
    for row, template in zip(rows, TEMPLATES, strict=True):
        nodes = set(re.findall(r"`(\w+)`", row.rsplit("|", 2)[1]))
        assert nodes == template_classes(template.name), template.name


def test_the_preview_options_are_the_backends():
    assert table_names(section("### The options")) == [p.name for p in comfyui_preview.PARAMS]
    timeout = next(p for p in comfyui_preview.PARAMS if p.name == "timeout_s")
    assert f"(default {timeout.default:g})" in section("### The options")


def test_the_preview_example_parses_with_the_backends_options():
    block = section("### What ComfyUI can and cannot render").split("```\n", 1)[1].split("```", 1)[0]
    parser = argparse.ArgumentParser(prog="python main.py preview")
    preview_cmd.configure(parser)
    args = parser.parse_args(shlex.split(block.strip())[3:])
    assert args.backend == "comfyui"
    known = {p.name for p in comfyui_preview.PARAMS}
    assert {item.split("=", 1)[0] for item in args.backend_param} <= known


def test_the_kontext_options_are_the_tools():
    kontext = section("## Kontext counterparts through ComfyUI")
    own = [p.name for p in kontext_job.PARAMS if p.name not in kontext_job._SHARED]
    assert table_names(kontext) == own
    for key, name in kontext_job.DEFAULT_MODELS.items():
        assert f"`{key}` | " in kontext and f"(default `{name}`" in kontext


def test_the_binding_parameters_are_the_codes():
    own = " ".join(section("## Your own workflows").split())
    named = own.split("The parameters are ", 1)[1].split(". Without", 1)[0]
    assert re.findall(r"`(\w+)`", named) == list(binding.PARAMS)
    assert f"`{binding.BLOCKS_INPUT}`" in own


def test_the_quoted_messages_are_in_the_code():
    # adjacent string literals (a message split over lines) read as one
    source = "".join(path.read_text(encoding="utf-8") for path in MESSAGE_SOURCES)
    source = re.sub(r"\"\s*\n\s*f?\"", "", source)
    rows = [r for r in section("## Troubleshooting").splitlines() if r.startswith("| `")]
    assert len(rows) >= 15
    for row in rows:
        message = re.match(r"\| `([^`]+)`", row).group(1)
        assert message in source, message


def anchors(text: str) -> set[str]:
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, flags=re.M)
    }


def test_the_links_resolve():
    for target in re.findall(r"\]\(([^)]+)\)", DOC):
        if target.startswith("#"):
            assert target[1:] in anchors(DOC), target
        elif not target.startswith("http"):
            path, _, anchor = target.partition("#")
            assert (ROOT / "docs" / path).is_file(), target
            if anchor:
                assert anchor in anchors((ROOT / "docs" / path).read_text(encoding="utf-8")), target


def test_the_readme_and_the_preview_page_link_here():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count("(docs/comfyui.md)") >= 2
    assert "python main.py comfy status" in readme and "comfy run" in readme
    assert "(comfyui.md)" in (ROOT / "docs" / "preview.md").read_text(encoding="utf-8")
