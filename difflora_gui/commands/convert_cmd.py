"""``python main.py convert IN OUT``: rewrite a Wan LoRA in another format, dtype or module selection."""

from __future__ import annotations

import argparse
import sys

from difflora_gui.specs import CliCommandSpec

_DTYPES = ("keep", "float32", "float16", "bfloat16")


def configure(parser: argparse.ArgumentParser) -> None:
    from difflora_gui.lora.writer import FORMAT_HELP, FORMATS

    parser.add_argument("input", metavar="IN", help="a Wan LoRA .safetensors file (any trainer's format)")
    parser.add_argument("output", metavar="OUT", help="the file to write (.safetensors)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="comfy",
        help="key format; " + "; ".join(f"{name}: {text}" for name, text in FORMAT_HELP.items()),
    )
    parser.add_argument("--dtype", choices=_DTYPES, default="keep", help="tensor dtype (keep: as stored)")
    parser.add_argument(
        "--select",
        metavar="SELECTOR",
        default="all",
        help="modules to keep, e.g. 'attn', 'ffn blocks=0-9', 'all exclude=k_img|v_img' (docs/selectors.md)",
    )
    parser.add_argument(
        "--title", help="modelspec.title of the new file (default: the input's, or OUT's name)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never an input)")


def _stored_dtype(lora, names: list[str]) -> str:
    dtypes = {lora.dtype(n) for n in names}
    if len(dtypes) == 1 and next(iter(dtypes)) in ("float32", "float16", "bfloat16"):
        return dtypes.pop()
    return "float32"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from difflora_gui.fileio import check_output_path
    from difflora_gui.lora.reader import open_lora
    from difflora_gui.lora.selector import parse_selector
    from difflora_gui.lora.writer import METADATA_PREFIX, InputFile, build_metadata, write_lora

    source, target = Path(args.input), Path(args.output)
    selector = parse_selector(args.select)
    check_output_path(target, inputs=[source], overwrite=args.overwrite)
    with open_lora(source) as lora:
        names = selector.select(lora.names())
        modules = list(lora.modules(names))
        dtype = _stored_dtype(lora, names) if args.dtype == "keep" else args.dtype
        kept = {
            k: v
            for k, v in lora.metadata.items()
            if not k.startswith(METADATA_PREFIX) and k not in ("ss_network_dim", "ss_network_alpha")
        }
        title = args.title or lora.metadata.get("modelspec.title") or target.stem
        metadata = {
            **kept,
            **build_metadata(
                modules=modules,
                title=title,
                model=lora.model,
                inputs=[InputFile.from_path(source, "source")],
                strategy="convert",
                params={"format": args.format, "dtype": dtype},
                selector=str(selector),
            ),
        }
    write_lora(
        target,
        modules,
        format=args.format,
        dtype=dtype,
        metadata=metadata,
        inputs=[source],
        overwrite=args.overwrite,
        warn=lambda text: print(f"warning: {text}", file=sys.stderr),
    )
    print(f"wrote {target}: {len(modules)} modules, {args.format} format, {dtype}")
    return 0


COMMAND = CliCommandSpec(
    name="convert",
    help="rewrite a Wan LoRA in another key format (comfy, musubi, diffusers), dtype or module selection",
    description=(
        "Rewrite a Wan LoRA: read any trainer's format, keep the modules a selector picks, and write the\n"
        "comfy (default; loads everywhere, also WanVideoWrapper's block edit), musubi or diffusers format.\n"
        "The weight change ΔW = alpha/rank·up@down of every kept module stays the same. The output is\n"
        "written atomically; an input is never overwritten, an existing file only with --overwrite."
    ),
    configure=configure,
    run=run,
)
