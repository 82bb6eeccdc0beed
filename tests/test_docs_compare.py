"""docs/compare.md is checked against the code: the grid command's flags and examples (parsed by
the real parser), its defaults, the axis kinds and limits, the block presets, the export formats
and limits, the sidecar's format and version, and its links."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from difflora_gui.cli import build_parser
from difflora_gui.commands import grid_cmd
from difflora_gui.commands.grid_cmd import FROM_OVERRIDES, RENDER_DEFAULTS, axes_from_args
from difflora_gui.compare import export
from difflora_gui.compare.grid_spec import AXIS_KINDS, MAX_CELLS
from difflora_gui.compare.grid_types import EXPORT_SUFFIXES, ExportOptions
from difflora_gui.compare.sidecar import SIDECAR_FORMAT, SIDECAR_VERSION

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "compare.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][A-Za-z0-9_-]*")


def section(heading: str) -> str:
    return DOC.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def grid_parser() -> argparse.ArgumentParser:
    """The grid command's parser as ``python main.py`` builds it (its plugin host, its sub-parser)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["grid"]


def parser_flags() -> set[str]:
    flags = {s for action in grid_parser()._actions for s in action.option_strings if s.startswith("--")}
    flags.discard("--help")
    return flags | {"--no-vae-tiling"}  # BooleanOptionalAction


def commands() -> list[str]:
    found = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", DOC, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("python main.py grid"):
                found.append(" ".join(line.split()))
    return found


def test_every_flag_of_the_command_is_documented_and_no_other():
    documented = set(FLAG.findall(section("## Rendering a grid from the command line")))
    assert documented == parser_flags()


def test_every_example_parses_with_the_real_parser_and_makes_its_axes(tmp_path, monkeypatch):
    examples = commands()
    assert len(examples) == 6
    monkeypatch.chdir(tmp_path)  # the examples' variant files, made here, so the axes are made too
    for command in examples:
        args = build_parser().parse_args(shlex.split(command)[2:])
        assert args._command.name == "grid"
        assert args.out and Path(args.out).suffix in EXPORT_SUFFIXES, command
        if args.from_sidecar:
            continue
        assert args.prompt, command
        for _kind, flag, text in args.axis_flags:
            if flag == "--variant":
                (tmp_path / text).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / text).write_bytes(b"")
        axes = axes_from_args(args)
        assert 1 <= len(axes) <= 3, command
        if args.size:
            width, height = (int(v) for v in args.size.split("x"))
            assert width % 16 == 0 and height % 16 == 0


def test_the_first_example_is_a_seven_by_two_grid():
    args = build_parser().parse_args(shlex.split(commands()[0])[2:])
    axes = axes_from_args(args)
    assert [(a.kind, len(a.values)) for a in axes] == [("strength", 7), ("seed", 2)]
    assert "renders the 7 × 2 grid" in section("## Rendering a grid from the command line")


def test_the_defaults_in_the_flag_table_are_the_codes():
    table = section("## Rendering a grid from the command line")
    for name in ("seed", "frames", "size", "fps"):
        assert f"(default {RENDER_DEFAULTS[name]})" in table, name
    options = ExportOptions()
    assert f"(0 to 51, default {options.crf})" in table and f"(default {options.preset})" in table
    assert f"{options.layout} (the default)" in table
    presets = table.split("x264 preset: ", 1)[1].split(" (default", 1)[0]
    assert re.split(r", | or ", presets) == list(grid_cmd.X264_PRESETS)
    assert "default: `renders/cache` in your per-user data folder" in table
    assert grid_cmd.default_cache_dir().parts[-2:] == ("renders", "cache")


def test_the_axis_table_and_limits_are_the_codes():
    grid = section("## The grid")
    assert re.findall(r"^\| `([a-z_]+)`", grid, flags=re.M) == [
        "strength",
        "strength_high",
        "seed",
        "variant",
        "blocks",
        "prompt",
    ]
    assert "`strength_low`" in grid and set(AXIS_KINDS) <= set(re.findall(r"`([a-z_]+)`", grid))
    assert f"at most {MAX_CELLS} cells" in grid


def test_the_block_presets_are_the_codes():
    from difflora_gui.lora.block_weights import PRESETS

    grid = " ".join(section("## The grid").split())
    named = grid.split("either a preset — ", 1)[1].split(", turned into", 1)[0]
    assert re.split(r", | and ", named) == list(PRESETS)


def test_the_export_formats_and_limits_are_the_codes():
    text = " ".join(section("## The export").split())
    assert re.findall(r"^- `(\.\w+)`", section("## The export"), flags=re.M) == [".mp4", ".webm", ".webp"]
    assert all(f"`{suffix}`" in text for suffix in EXPORT_SUFFIXES)
    assert f"at most {export.MAX_ANIMATED_FRAMES} frames and {export.MAX_ANIMATED_SIDE} pixels a side" in text
    assert export.sheet_path("grid.mp4").name == "grid.sheet.png" and "GRID.sheet.png" in DOC


def test_the_sidecar_section_is_the_codes():
    sidecar = " ".join(section("## The sidecar").split())
    assert f'"format": "{SIDECAR_FORMAT}"' in sidecar and f'"version": {SIDECAR_VERSION}' in sidecar
    allowed = {f"--{dest.replace('_', '-')}" for dest in FROM_OVERRIDES} - {"--from-sidecar"}
    named = sidecar.split("only ", 1)[1].split(" may be given", 1)[0]
    assert set(FLAG.findall(named)) == allowed


def test_the_links_resolve():
    anchors = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", DOC, flags=re.M)
    }
    for target in re.findall(r"\]\(([^)]+)\)", DOC):
        if target.startswith("#"):
            assert target[1:] in anchors, target
        elif not target.startswith("http"):
            assert (ROOT / "docs" / target.split("#")[0]).is_file(), target


def test_the_readme_section_links_here_and_its_command_parses():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The Compare section\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/compare.md)" in section
    lines = [line for line in section.splitlines() if line.startswith("python main.py grid")]
    assert len(lines) == 1
    args = build_parser().parse_args(shlex.split(lines[0])[2:])
    assert [(a.kind, len(a.values)) for a in axes_from_args(args)] == [("strength", 7), ("seed", 2)]
    assert args.backend == "diffusers" and args.layout == "vertical" and args.sheet == 16
    assert "imageio-ffmpeg" in readme.split("## Licence notes", 1)[1]
