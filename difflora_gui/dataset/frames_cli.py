"""``python main.py dataset extract-frames VIDEO... --out DIR``: candidate frames for set A from films.

Delegated from the ``dataset`` command (``configure(parser)`` / ``run(args)``). Import-light: PyAV,
PySceneDetect and OpenCV load when the command runs. The options come from
:data:`difflora_gui.dataset.frame_options.FRAME_OPTIONS` (the plugin's form uses the same fields).
"""

from __future__ import annotations

import argparse
import json
import sys

from difflora_gui.config import add_arguments, values_from_args
from difflora_gui.dataset.frame_options import FRAME_OPTIONS

HELP = "extract candidate frames from films (one per shot, or every N seconds) into a folder"

DESCRIPTION = """\
Extract candidate frames for set A from one or more videos into OUT (created if missing):
one frame per shot (--mode scenes, cuts found by PySceneDetect's ContentDetector on a downscaled
copy of each frame, in one decoding pass), or one every --every SECONDS (--mode interval). A
shot's frame is taken half the minimum scene length after its cut (past any blend right after
the cut). Dark and blank frames and near-duplicates of frames already kept (64-bit dHash) are
skipped and listed.

Files are named <video stem>_<HH-MM-SS-mmm>_f<frame>.png. An existing file is never overwritten:
the new frame gets a numbered name (..._f000123-2.png). A video that cannot be read is listed
with its reason and skipped; the others are extracted.

exit codes: 0 done, 2 bad input (no video could be read, or a bad output folder),
130 cancelled (the frames already written are kept).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (only read)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder for the frames (set A)")
    add_arguments(parser, FRAME_OPTIONS)
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.fileio import atomic_write_json
    from difflora_gui.jobs.cli import run_in_terminal

    values = values_from_args(FRAME_OPTIONS, args)
    params = {"videos": list(args.videos), "out_dir": args.out, **values}
    summary = run_in_terminal(
        "difflora_gui.dataset.frames:run",
        params,
        description="extract frames",
        quiet=args.quiet,
        lane="light",
    )
    for entry in summary["skipped"]:
        print(f"skipped: {entry['where']}: {entry['reason']}", file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, summary)
    bad = sum(1 for video in summary["videos"] if video["error"])
    text = f"{summary['written']} frames written to {summary['out_dir']}; {len(summary['skipped'])} skipped"
    if bad:
        text += f" ({bad} video(s) unreadable or cut short, listed above)"
    if summary["renamed"]:
        text += f"; {summary['renamed']} names were taken, written with a number"
    return print_to_pipe(text)


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=1, ensure_ascii=False)
