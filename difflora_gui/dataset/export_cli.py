"""``python main.py dataset export-musubi``: a pair set as two Musubi Tuner dataset TOMLs (or plain folders).

``configure(parser)`` / ``run(args) -> int``; the ``dataset`` command (``commands/dataset_cmd.py``)
delegates to them. Import-light: the export itself is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "export a pair set as two Musubi Tuner dataset TOMLs (or plain A/B folders)"

DESCRIPTION = """\
Export a paired dataset for Musubi Tuner: the folders A/ (concept present) and B/ (concept absent)
with matching file names and a caption file per item (an empty one for an empty caption: Musubi
skips images without one), an empty cache folder per dataset, and dataset_A.toml / dataset_B.toml
with identical settings that differ only in their folders. Train LoRA A with
--dataset_config dataset_A.toml and LoRA B with dataset_B.toml, then merge them.

The pairs come from two folders (paired by --rule), a pair list (--pairs pairs.json or a dataset
folder) or a project (--project FILE). Only included, complete pairs are exported; the sources are
copied (or hard-linked with --hardlink), never changed. --folders-only writes the A/ and B/
folders without TOMLs, for other trainers (ai-toolkit folder_path / control_path).
"""

EPILOG = """\
video clips: --target-frames lists clip lengths of the form 4N+1 (1,25,45); --frame-extraction
head|chunk|slide|uniform|full picks where they are cut (slide steps by --frame-stride, uniform takes
--frame-sample windows, full takes up to --max-frames). A set with images and clips gets an images
and a videos dataset per side.

exit codes: 0 done, 2 bad input (nothing written), 130 cancelled (nothing written).
"""


def _flag(parser, name: str, **kwargs) -> None:
    """``--name-with-dashes`` and ``--name_with_underscores`` both work."""
    dashed = "--" + name.replace("_", "-")
    spellings = [dashed] if "_" not in name else [dashed, "--" + name]
    parser.add_argument(*spellings, dest=name, **kwargs)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("a_dir", nargs="?", metavar="A_DIR", help="the folder of set A (concept present)")
    parser.add_argument("b_dir", nargs="?", metavar="B_DIR", help="the folder of set B (concept absent)")
    _flag(parser, "out", required=True, metavar="DIR", help="the export folder (new or empty)")
    source = parser.add_argument_group("where the pairs come from (instead of A_DIR B_DIR)")
    _flag(source, "pairs", metavar="FILE", help="a pair list (pairs.json) or a dataset folder holding one")
    _flag(source, "project", metavar="FILE", help="a project file: export its dataset")
    _flag(
        source,
        "dataset",
        metavar="ID",
        help="with --project: the dataset's id or name, when there are several",
    )
    _flag(
        source, "rule", default="stem", help="how A_DIR and B_DIR pair up: stem, suffix:_A,_B, regex:PATTERN"
    )
    musubi = parser.add_argument_group("dataset settings (the same in both TOMLs)")
    _flag(
        musubi, "resolution", default="192", help="training resolution: 192, or WIDTHxHEIGHT such as 336x192"
    )
    _flag(
        musubi,
        "repeats",
        type=int,
        default=1,
        metavar="N",
        help="num_repeats: times each item is seen per epoch",
    )
    _flag(musubi, "batch_size", type=int, default=1, metavar="N", help="batch size")
    _flag(
        musubi,
        "no_bucket",
        action="store_true",
        help="no aspect buckets (every item cropped to the resolution)",
    )
    _flag(musubi, "bucket_no_upscale", action="store_true", help="buckets never larger than the item")
    _flag(
        musubi, "caption_extension", default=".txt", metavar="EXT", help="caption file suffix (default .txt)"
    )
    video = parser.add_argument_group("video clips")
    _flag(
        video,
        "target_frames",
        default="1,25,45",
        metavar="LIST",
        help="clip lengths, each 4N+1 (default 1,25,45)",
    )
    _flag(
        video,
        "frame_extraction",
        default="head",
        choices=("head", "chunk", "slide", "uniform", "full"),
        help="where clips are cut from each video (default head)",
    )
    _flag(video, "frame_stride", type=int, default=1, metavar="N", help="slide: frames between windows")
    _flag(
        video,
        "frame_sample",
        type=int,
        default=1,
        metavar="N",
        help="uniform: windows per video (at least 2)",
    )
    _flag(video, "max_frames", type=int, default=129, metavar="N", help="full: at most this many frames")
    _flag(
        video, "source_fps", type=float, default=None, metavar="FPS", help="the clips' frame rate (e.g. 30.0)"
    )
    out = parser.add_argument_group("output")
    _flag(out, "folders_only", action="store_true", help="plain A/ and B/ folders, no TOMLs")
    _flag(
        out, "hardlink", action="store_true", help="hard-link the files where the drive allows it (else copy)"
    )
    _flag(out, "overwrite", action="store_true", help="replace a previous export in --out")
    _flag(out, "json", action="store_true", help="print the result as JSON on stdout")
    _flag(out, "quiet", action="store_true", help="no progress bar")


def _int_list(text: str, name: str) -> list[int]:
    from difflora_gui.errors import UserError

    try:
        return [int(p) for p in str(text).replace(" ", ",").split(",") if p]
    except ValueError:
        raise UserError(
            f"--{name.replace('_', '-')} must be whole numbers separated by commas, got {text!r}"
        ) from None


def params_from_args(args: argparse.Namespace) -> dict:
    from difflora_gui.errors import UserError

    sources = [
        name
        for name, given in (("A_DIR B_DIR", args.a_dir), ("--pairs", args.pairs), ("--project", args.project))
        if given
    ]
    if len(sources) != 1:
        raise UserError("give the pairs one way: A_DIR B_DIR, --pairs FILE or --project FILE")
    if args.a_dir and not args.b_dir:
        raise UserError("give both A_DIR and B_DIR")
    if args.dataset and not args.project:
        raise UserError("--dataset goes with --project")
    params = {
        "out": args.out,
        "format": "folders" if args.folders_only else "musubi",
        "overwrite": args.overwrite,
        "link": args.hardlink,
        "caption_extension": args.caption_extension,
    }
    if args.a_dir:
        params.update(a_dir=args.a_dir, b_dir=args.b_dir, rule=args.rule)
    elif args.pairs:
        params["pairs_file"] = args.pairs
    else:
        params.update(project=args.project, dataset=args.dataset)
    if not args.folders_only:
        params.update(
            resolution=args.resolution,
            repeats=args.repeats,
            batch_size=args.batch_size,
            enable_bucket=not args.no_bucket,
            bucket_no_upscale=args.bucket_no_upscale,
            target_frames=_int_list(args.target_frames, "target_frames"),
            frame_extraction=args.frame_extraction,
            frame_stride=args.frame_stride,
            frame_sample=args.frame_sample,
            max_frames=args.max_frames,
            source_fps=args.source_fps,
        )
    return params


def print_summary(summary: dict, stream=None) -> None:
    stream = stream if stream is not None else sys.stdout
    print(f"exported {summary['pairs']} pairs to {summary['out_dir']}", file=stream)
    if summary["format"] == "musubi":
        for d in summary["datasets"]:
            print(
                f"  {d['side'].upper()} {d['kind']}s: {d['items']} in {d['directory']} (cache {d['cache']})",
                file=stream,
            )
        print(f"  train LoRA A with --dataset_config {summary['toml_a']}", file=stream)
        print(f"  train LoRA B with --dataset_config {summary['toml_b']}", file=stream)
    else:
        for side, folder in summary["folders"].items():
            print(f"  {side.upper()}: {folder}", file=stream)
    if summary["linked"]:
        print(f"  {summary['linked']} media files hard-linked instead of copied", file=stream)
    left = summary["left_out"]
    if left:
        print(f"left out {len(left)} pairs:", file=stream)
        for x in left[:20]:
            print(f"  {x['pair']}: {x['reason']}", file=stream)
        if len(left) > 20:
            print(f"  … and {len(left) - 20} more (see difflora-export.json)", file=stream)


def run(args: argparse.Namespace) -> int:
    from difflora_gui.jobs.cli import run_in_terminal

    params = params_from_args(args)
    summary = run_in_terminal(
        "difflora_gui.dataset.export_job:run_export",
        params,
        description="export",
        quiet=args.quiet,
        lane="light",
    )
    if args.json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print_summary(summary)
    return 0
