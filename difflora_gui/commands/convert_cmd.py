"""``python main.py convert IN OUT``: rewrite a Wan LoRA in another format, dtype or module selection."""

from __future__ import annotations

import argparse
import sys

from difflora_gui.specs import CliCommandSpec

_DTYPES = ("keep", "float32", "float16", "bfloat16")


def configure(parser: argparse.ArgumentParser) -> None:
    from difflora_gui.lora.writer import FORMAT_HELP, FORMATS

    parser.add_argument("input", metavar="IN", help="a Wan LoRA .safetensors file (any trainer's format)")
    parser.add_argument(
        "output",
        metavar="OUT",
        help="the file to write (.safetensors); for a Wan2.2 combo file: OUT_high_noise and OUT_low_noise",
    )
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

    from difflora_gui.errors import UserError
    from difflora_gui.fileio import check_output_path
    from difflora_gui.lora.experts import expert_output_path
    from difflora_gui.lora.reader import open_lora
    from difflora_gui.lora.selector import parse_selector

    source, target = Path(args.input), Path(args.output)
    selector = parse_selector(args.select)
    if selector.is_weighted:  # convert keeps or drops modules; silently dropping the weights would mislead
        raise UserError(
            f"--select {args.select!r} has block weights (@): convert only keeps or leaves out modules; "
            "block weights scale a merge (python main.py merge --target_blocks ...), or leave the weights out"
        )
    with open_lora(source) as lora:
        # a combo file (both Wan2.2 experts) becomes the two files loaders pair by name
        jobs = [(lora.part(e), expert_output_path(target, e), e) for e in lora.experts_in_file]
        jobs = jobs or [(lora, target, None)]
        for _part, path, _expert in jobs:
            check_output_path(path, inputs=[source], overwrite=args.overwrite)  # fail before any work
        written = [_convert(part, path, expert, source, selector, args) for part, path, expert in jobs]
    for line in written:
        print(line)
    return 0


def _convert(lora, target, expert, source, selector, args) -> str:
    """Write one converted file (one expert of a combo file when ``expert`` is set); its report line."""
    from difflora_gui.lora.experts import EXPERT_METADATA_KEY, EXPERT_TITLES
    from difflora_gui.lora.writer import METADATA_PREFIX, InputFile, build_metadata, write_lora

    names = selector.select(lora.names())
    modules = list(lora.modules(names))
    dtype = _stored_dtype(lora, names) if args.dtype == "keep" else args.dtype
    kept = {
        k: v
        for k, v in lora.metadata.items()
        if not k.startswith(METADATA_PREFIX)
        and k not in ("ss_network_dim", "ss_network_alpha", EXPERT_METADATA_KEY)
    }
    title = args.title or lora.metadata.get("modelspec.title") or target.stem
    if expert is not None and not args.title:
        title = f"{title} ({EXPERT_TITLES[expert]})"
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
            expert=expert,
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
    what = f" ({EXPERT_TITLES[expert]})" if expert is not None else ""
    return f"wrote {target}{what}: {len(modules)} modules, {args.format} format, {dtype}"


COMMAND = CliCommandSpec(
    name="convert",
    help="rewrite a Wan LoRA in another key format (comfy, musubi, diffusers), dtype or module selection",
    description=(
        "Rewrite a Wan LoRA: read any trainer's format, keep the modules a selector picks, and write the\n"
        "comfy (default; loads everywhere, also WanVideoWrapper's block edit), musubi or diffusers format.\n"
        "The weight change ΔW = alpha/rank·up@down of every kept module stays the same. The output is\n"
        "written atomically; an input is never overwritten, an existing file only with --overwrite.\n"
        "A Wan2.2 A14B combo file (both experts in one file, transformer_1/transformer_2 keys) becomes\n"
        "two files, OUT's stem + _high_noise.safetensors and + _low_noise.safetensors, the names loaders pair."
    ),
    configure=configure,
    run=run,
)
