"""docs/preview.md is checked against the code: the preview command's flags and examples, the
accelerator preset, the settings it names, the export's message and format, and its links."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from difflora_gui.commands import preview_cmd
from difflora_gui.preview.bake import NOTHING_LEFT
from difflora_gui.preview.request import ACCELERATOR_PRESET
from difflora_gui.qt.settings_preview import DTYPES, OFFLOAD
from difflora_gui.settings import setting_bounds

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "preview.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][A-Za-z0-9_-]*")


def section(heading: str) -> str:
    return DOC.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="python main.py preview")
    preview_cmd.configure(result)
    return result


def parser_flags() -> set[str]:
    flags = set()
    for action in parser()._actions:
        flags.update(s for s in action.option_strings if s.startswith("--"))
    flags.discard("--help")
    if "--vae-tiling" in flags:
        flags.add("--no-vae-tiling")  # BooleanOptionalAction
    return flags


def commands() -> list[str]:
    found = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", DOC, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("python main.py preview"):
                found.append(line.strip())
    return found


def test_every_flag_of_the_command_is_documented_and_no_other():
    documented = set(FLAG.findall(section("## Rendering from the command line")))
    assert documented == parser_flags()


def test_the_examples_parse():
    examples = commands()
    assert len(examples) == 2
    for command in examples:
        args = parser().parse_args(shlex.split(command)[3:])
        assert args.out and args.prompt and args.lora_specs
        width, height = preview_cmd.parse_size(args.size)
        assert width % 16 == 0 and height % 16 == 0
        assert (args.frames - 1) % 4 == 0


def test_the_defaults_in_the_flag_table_are_the_parsers():
    table = section("## Rendering from the command line")
    defaults = {a.dest: a.default for a in parser()._actions}
    assert f"(default {defaults['frames']})" in table
    assert f"(default {defaults['size']})" in table
    assert f"(default {defaults['seed']})" in table
    assert f"(default {defaults['fps']})" in table


def test_the_accelerator_preset_is_the_codes():
    preset = ACCELERATOR_PRESET
    text = (
        f"{preset['steps']} steps, guidance {preset['guidance']:g}, flow shift {preset['flow_shift']:g}, "
        f"the {preset['sampler']} sampler"
    )
    assert text in section("## The LoRA stack")


def test_the_settings_named_are_the_settings():
    model = section("## The model")
    low, high = setting_bounds("preview_cache_mb")
    assert f"in MB ({low} to {high}, default 2048)" in model
    for dtype in DTYPES:
        assert f"`{dtype}`" in model
    savers = re.findall(r"^\| `(\w+)` \|", model, flags=re.M)
    assert savers == list(OFFLOAD)


def test_the_export_section_says_what_the_bake_does():
    export = section("## Export: bake a LoRA")
    assert NOTHING_LEFT in export.replace("\n", " ")
    assert "diffusion_model.blocks.N." in export
    assert "NAME_high_noise.safetensors" in export and "NAME_low_noise.safetensors" in export


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


def test_the_player_keys_are_the_players(qtbot):
    import numpy as np
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    from difflora_gui.qt.preview.player import VideoPlayer

    names = {"Space": "Space", "←": "Left", "→": "Right", ",": "Comma", ".": "Period", "<": "Less"}
    names.update({">": "Greater", "[": "BracketLeft", "]": "BracketRight"})
    rows = [r for r in section("## The player").splitlines() if r.startswith("| `")]
    documented = {
        getattr(Qt.Key, "Key_" + names.get(key, key))
        for row in rows
        for key in re.findall(r"`([^`]+)`", row.split("|")[1])
    }
    player = VideoPlayer()
    qtbot.addWidget(player)
    player.set_frames(np.zeros((20, 16, 16, 3), np.uint8), 8)
    player.show()
    qtbot.waitExposed(player)

    def handled(key) -> bool:
        event = QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(player, event)
        player.pause()
        return event.isAccepted()

    candidates = [getattr(Qt.Key, f"Key_{c}") for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    candidates += [getattr(Qt.Key, "Key_" + n) for n in (*names.values(), "Up", "Down", "PageUp", "PageDown")]
    candidates += [Qt.Key.Key_Home, Qt.Key.Key_End, Qt.Key.Key_Minus, Qt.Key.Key_Plus, Qt.Key.Key_Escape]
    assert {key for key in candidates if handled(key)} == documented


def test_the_block_presets_are_the_codes():
    from difflora_gui.lora.block_weights import PRESETS

    stack = " ".join(section("## The LoRA stack").split())
    named = stack.split("the presets ", 1)[1].split(", and the layer-group filter", 1)[0]
    assert re.split(r", | and ", named) == list(PRESETS)
