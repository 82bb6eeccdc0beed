"""``python main.py inspect FILE``: what a LoRA file holds (model, format, blocks, ranks, metadata)."""

from __future__ import annotations

import argparse
import json

from difflora_gui.console_output import print_to_pipe
from difflora_gui.specs import CliCommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a LoRA .safetensors file (any Wan trainer's format)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--modules", action="store_true", help="also list every module (shape, rank, alpha, ‖ΔW‖)"
    )
    parser.add_argument(
        "--no-check",
        dest="check_values",
        action="store_false",
        help="read only the header: skip the NaN/Inf check and the ‖ΔW‖ figures (faster on big files)",
    )


def run(args: argparse.Namespace) -> int:
    from difflora_gui.lora.inspect import summarize

    summary = summarize(args.file, check_values=args.check_values)
    if args.json:
        text = json.dumps(summary.to_json(), indent=2, ensure_ascii=False)
    else:
        text = summary.to_text(modules=args.modules)
    return print_to_pipe(text)


COMMAND = CliCommandSpec(
    name="inspect",
    help="show what a LoRA file holds: model, format, blocks, layer groups, ranks, alphas, dtypes, metadata",
    description=(
        "Show what a LoRA file holds. Reads every Wan LoRA format (musubi/kohya, ComfyUI/diffusion-pipe/\n"
        "ai-toolkit, diffusers/PEFT), identifies the model (Wan 1.3B/14B/5B, T2V/I2V) from the shapes and\n"
        "checks every value for NaN/Inf. For Wan2.2 A14B it shows which expert a file is for and what says\n"
        "so (key prefix, file name, metadata; never the shapes), and a combo file's two experts one by one.\n"
        "Bad files are one line on stderr and exit code 2."
    ),
    configure=configure,
    run=run,
)
