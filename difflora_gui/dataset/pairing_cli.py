"""``python main.py dataset pair A_DIR [B_DIR] [--rule ...] [--json OUT]``: pair two folders.

Import-light (argparse only at import); the pairing runs as a job with a progress bar.
"""

from __future__ import annotations

import argparse
import sys

HELP = "pair the files of two folders (A: concept present, B: concept absent); list the unpaired and skipped"

DESCRIPTION = """\
Pair the images and clips of folder A (concept present) with those of folder B (concept absent)
and list what stayed unpaired and what was skipped (unreadable, truncated, empty, not media,
too large), each with its reason. Nothing in the folders is changed. Without B_DIR, A alone is
listed as set A (for a counterpart tool to make B).

rules (--rule):
  stem                    identical file stems (frame_0001.png <-> frame_0001.jpg); the default
  suffix:_dense,_sparse   A stems end with _dense, B stems with _sparse (case-insensitive);
                          either may be empty: suffix:,_simple
  regex:PATTERN           the key is the named group 'key', else the first group, else the
                          whole match of PATTERN in the stem, e.g. regex:^(\\d+)

exit codes: 0 done (unpaired or skipped files are findings, not errors), 2 bad input.
"""

MAX_LISTED = 50


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("a_dir", metavar="A_DIR", help="folder of set A (concept present)")
    parser.add_argument("b_dir", metavar="B_DIR", nargs="?", help="folder of set B (concept absent)")
    parser.add_argument("--rule", default="stem", help="pairing rule: stem, suffix:_A,_B or regex:PATTERN")
    parser.add_argument("--json", metavar="OUT", help="write the pair set as JSON to OUT ('-' for stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--all", action="store_true", help="list every unpaired and skipped file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def summary_lines(pair_set, *, limit: int | None = MAX_LISTED) -> list[str]:
    """The text report: counts, then the unpaired and the skipped files with their reasons."""
    lines = [
        f"{len(pair_set.pairs)} pairs"
        + (f" (rule {pair_set.rule})" if pair_set.rule else "")
        + "".join(f"; {side.upper()}: {folder}" for side, folder in sorted(pair_set.sources.items()))
    ]

    def listing(title: str, rows: list[str]) -> None:
        if not rows:
            return
        lines.append(f"{title} ({len(rows)}):")
        shown = rows if limit is None else rows[:limit]
        lines.extend(f"  {row}" for row in shown)
        if len(shown) < len(rows):
            lines.append(f"  … and {len(rows) - len(shown)} more (--all lists them)")

    if "b" in pair_set.sources:
        listing("unpaired in A", [i.path for i in pair_set.unpaired_a])
        listing("unpaired in B", [i.path for i in pair_set.unpaired_b])
    listing("skipped", [f"{s.path}: {s.reason}" for s in pair_set.skipped])
    return lines


def run(args: argparse.Namespace) -> int:
    import json

    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.dataset.pairing import PairingRule, scan_folder
    from difflora_gui.fileio import atomic_write_json, check_output_path
    from difflora_gui.jobs.cli import run_in_terminal

    rule = PairingRule.parse(args.rule)
    for folder in (args.a_dir, args.b_dir):  # bad folders before any work
        if folder:
            scan_folder(folder)
    to_stdout = args.json == "-"
    if args.json and not to_stdout:
        check_output_path(args.json, overwrite=args.overwrite)
    params = {"a_dir": args.a_dir, "b_dir": args.b_dir, "rule": str(rule)}
    pair_set = run_in_terminal(
        "difflora_gui.dataset.pairing:run_pairing",
        params,
        description="pairing",
        quiet=args.quiet or to_stdout,
        lane="light",
    )
    if to_stdout:
        return print_to_pipe(json.dumps(pair_set.to_json(), indent=2, ensure_ascii=False))
    text = "\n".join(summary_lines(pair_set, limit=None if args.all else MAX_LISTED))
    if args.json:
        atomic_write_json(args.json, pair_set.to_json(), overwrite=args.overwrite)
        text += f"\nwrote {args.json}"
    code = print_to_pipe(text)
    if not pair_set.pairs:
        print("warning: no pairs were found", file=sys.stderr)
    return code
