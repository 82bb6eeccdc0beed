"""``python main.py dataset check A_DIR B_DIR``: score every pair and summarise the set.

Prints the set summary and the worst pairs; ``--json OUT`` / ``--csv OUT`` write every score and
flag per pair (``-`` for stdout). Flags are findings, not errors: the exit code is 0 when pairs
are flagged, 2 for bad input (one line), 130 when cancelled. The thresholds' flags come from
:data:`~difflora_gui.dataset.check_config.CHECK_CONFIG`.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "score every pair: SSIM, alignment, colour drift, sizes (flags are findings: exit 0)"
DESCRIPTION = """\
Score every pair of two folders at the training resolution: SSIM and mean absolute difference
(grey and per channel), the shift of B against A (phase correlation), colour drift (mean Lab
difference and histogram distance), size and aspect, and for videos frame count, fps and
duration. Prints a set summary (distributions, one line per kind of finding, a set-level colour
drift when most pairs drift the same way) and the worst pairs.

A_DIR and B_DIR may also be given as one dataset folder holding pairs.json (--dataset); its scores
are then cached in it as scores-<resolution>.json and only changed pairs are rechecked.
exit codes: 0 done (also when pairs are flagged), 2 bad input, 130 cancelled.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from difflora_gui.config import add_arguments
    from difflora_gui.dataset.check_config import CHECK_CONFIG

    parser.add_argument("a_dir", nargs="?", metavar="A_DIR", help="set A: the concept present")
    parser.add_argument("b_dir", nargs="?", metavar="B_DIR", help="set B: the concept absent")
    parser.add_argument("--rule", default="stem", help="pairing rule: stem, suffix:_A,_B, regex:PATTERN")
    parser.add_argument(
        "--dataset", metavar="DIR", help="a dataset folder with pairs.json (scores are cached there)"
    )
    parser.add_argument("--json", metavar="OUT", help="write every score, flag and the summary as JSON")
    parser.add_argument("--csv", metavar="OUT", help="write one row of scores and flags per pair as CSV")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --json/--csv files")
    parser.add_argument("--worst", type=int, default=10, metavar="N", help="worst pairs printed (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_arguments(parser, CHECK_CONFIG)


def _write(target: str, text: str, overwrite: bool) -> None:
    from difflora_gui.fileio import atomic_write_text

    if target == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    atomic_write_text(target, text, overwrite=overwrite)


def run(args: argparse.Namespace) -> int:
    from difflora_gui.config import values_from_args
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.dataset.check_config import CHECK_CONFIG, CheckThresholds
    from difflora_gui.dataset.check_job import run_check
    from difflora_gui.dataset.check_summary import scores_csv
    from difflora_gui.errors import UserError
    from difflora_gui.fileio import check_output_path
    from difflora_gui.jobs.cli import run_in_terminal

    values = CheckThresholds.from_values(values_from_args(CHECK_CONFIG, args)).to_json()
    if args.dataset:
        if args.a_dir or args.b_dir:
            raise UserError("give either --dataset DIR or A_DIR B_DIR, not both")
        params = {**values, "dataset": args.dataset}
    else:
        if not (args.a_dir and args.b_dir):
            raise UserError("dataset check needs A_DIR and B_DIR (or --dataset DIR)")
        params = {**values, "a_dir": args.a_dir, "b_dir": args.b_dir, "rule": args.rule}
    for target in (args.json, args.csv):
        if target and target != "-":
            check_output_path(target, overwrite=args.overwrite)
    result = run_in_terminal(run_check, params, description="check", quiet=args.quiet, lane="light")
    if args.json:
        _write(args.json, json.dumps(result.to_json(), indent=1, ensure_ascii=False), args.overwrite)
    if args.csv:
        _write(args.csv, scores_csv(result.scores), args.overwrite)
    pair_set = result.pair_set
    lines = result.summary.lines(worst=max(0, args.worst), scores=result.scores)
    unpaired = len(pair_set.unpaired_a) + len(pair_set.unpaired_b)
    if unpaired or pair_set.skipped:
        lines.append(
            f"not checked: {len(pair_set.unpaired_a)} unpaired in A, {len(pair_set.unpaired_b)} in B, "
            f"{len(pair_set.skipped)} skipped files"
        )
        lines += [f"  skipped {s.path}: {s.reason}" for s in pair_set.skipped[:20]]
    if args.json == "-" or args.csv == "-":
        print("\n".join(lines), file=sys.stderr)
        return 0
    return print_to_pipe("\n".join(lines))
