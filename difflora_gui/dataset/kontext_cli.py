"""``python main.py dataset kontext SRC_DIR --out DIR --model PATH``: set B from set A with Kontext.

Delegated from the ``dataset`` command (``configure(parser)`` / ``run(args)``). Import-light: torch
and diffusers load only when there is something to generate. Bad input (a model folder that is not
a complete FluxKontextPipeline, a missing source folder) is one line and exit 2 before anything
loads; bad source images are listed and skipped. Ctrl+C stops after the current step (the
finished images stay; the rerun continues where it stopped). Exit 130 when cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys

from difflora_gui.dataset.kontext_params import DEFAULT_GUIDANCE, DEFAULT_STEPS, KONTEXT_SCHEMA

HELP = "make set B from set A with FLUX.1 Kontext [dev] (a local diffusers folder), resumable"

DESCRIPTION = """\
Run every image of SRC_DIR through FLUX.1 Kontext [dev] with one instruction (by default the model
card's simplification prompt) and write <OUT>/<same name>.png at the source's size. Item i of the
sorted folder uses seed SEED + i; the settings and seeds are kept in OUT/kontext-manifest.json.
Outputs that are already there (complete, right size) are skipped, so a rerun resumes.

--model is a diffusers-format FluxKontextPipeline folder (model_index.json, transformer, vae,
text_encoder, text_encoder_2, tokenizer, tokenizer_2, scheduler), e.g. a local copy of
black-forest-labs/FLUX.1-Kontext-dev; nothing is downloaded. Without --model the folder set in
Settings is used.

--backend comfyui makes the same images on running ComfyUI servers instead (Settings ▸ ComfyUI
servers; --server NAME|URL picks one, default: every healthy one), with the server's model file
names as --backend-param unet=... clip_l=... t5=... vae=... (see docs/comfyui.md).

exit codes: 0 done, 2 bad input, 130 cancelled (finished images kept).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("source_dir", metavar="SRC_DIR", help="the folder of set A (only read)")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="the folder for set B (created if missing)"
    )
    parser.add_argument(
        "--model", default="", metavar="PATH", help="the FluxKontextPipeline folder (default: Settings)"
    )
    parser.add_argument(
        "--prompt", default=None, metavar="TEXT", help="the instruction (default: the model card's)"
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, metavar="N", help=f"steps (default {DEFAULT_STEPS})"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the first image (default 0)"
    )
    parser.add_argument(
        "--guidance",
        type=float,
        default=DEFAULT_GUIDANCE,
        metavar="G",
        help=f"guidance (default {DEFAULT_GUIDANCE})",
    )
    parser.add_argument("--device", default="auto", metavar="D", help="auto, cpu or cuda:N (default auto)")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "bfloat16", "float16", "float32"),
        help="default: bfloat16 on CUDA",
    )
    parser.add_argument(
        "--offload",
        default="auto",
        choices=("auto", "none", "model", "sequential"),
        help="CPU offload (default auto)",
    )
    parser.add_argument(
        "--max-area",
        dest="max_area",
        type=int,
        default=None,
        metavar="PX",
        help="working area (default 1048576)",
    )
    parser.add_argument(
        "--check-resolution",
        dest="check_resolution",
        type=int,
        default=None,
        metavar="N",
        help="score each pair at this short side (0: no scoring; default 256)",
    )
    parser.add_argument(
        "--backend",
        choices=("diffusers", "comfyui"),
        default="diffusers",
        help="diffusers: in this app (default); comfyui: on running ComfyUI servers",
    )
    parser.add_argument("--server", default="", metavar="NAME|URL", help="--backend comfyui: one server")
    parser.add_argument(
        "--backend-param",
        dest="backend_param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--backend comfyui: unet, clip_l, t5, vae (the server's file names), timeout_s",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def params_from_args(args: argparse.Namespace) -> dict:
    """The job's checked values (``UserError`` naming a bad one)."""
    values = {
        "source_dir": args.source_dir,
        "out_dir": args.out,
        "model": args.model,
        "seed": args.seed,
        "steps": args.steps,
        "guidance": args.guidance,
        "device": args.device,
        "dtype": args.dtype,
        "offload": args.offload,
    }
    for name in ("prompt", "max_area", "check_resolution"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return KONTEXT_SCHEMA.resolve(values, owner="dataset kontext")


def comfy_params_from_args(args: argparse.Namespace) -> dict:
    """The ComfyUI tool's checked values: the shared ones, the server, the model file names."""
    from difflora_gui.comfy.kontext_job import SCHEMA
    from difflora_gui.errors import UserError
    from difflora_gui.params import parse_key_values

    if args.model:
        raise UserError(
            "--model is a local diffusers folder; with --backend comfyui name the server's files with --backend-param unet=..."
        )
    values = {
        "source_dir": args.source_dir,
        "out_dir": args.out,
        "seed": args.seed,
        "steps": args.steps,
        "guidance": args.guidance,
        "server": args.server,
    }
    for name in ("prompt", "max_area", "check_resolution"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(parse_key_values(args.backend_param or []))
    return SCHEMA.resolve(values, owner="dataset kontext --backend comfyui")


def run(args: argparse.Namespace) -> int:
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.dataset.kontext import KontextResult, list_sources
    from difflora_gui.dataset.kontext_params import check_model_folder, resolve_model_folder
    from difflora_gui.jobs.cli import run_in_terminal

    if args.backend == "comfyui":
        params = comfy_params_from_args(args)
        list_sources(params["source_dir"])
        summary = run_in_terminal(
            "difflora_gui.comfy.kontext_job:run_comfy_kontext",
            params,
            description="kontext on ComfyUI",
            quiet=args.quiet,
            lane="light",
        )
    else:
        params = params_from_args(args)
        params["model"] = str(check_model_folder(resolve_model_folder(params["model"])))
        list_sources(params["source_dir"])  # a missing source folder: one line, before any loading
        summary = run_in_terminal(
            "difflora_gui.dataset.kontext:run",
            params,
            description="kontext",
            quiet=args.quiet,
            resumable=True,
        )
    if args.json:
        return print_to_pipe(json.dumps(summary, indent=1, ensure_ascii=False))
    result = KontextResult(**summary)
    if args.quiet and result.skipped:
        for item in result.skipped:
            print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    return print_to_pipe(result.summary())
