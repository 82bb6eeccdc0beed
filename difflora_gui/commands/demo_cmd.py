"""``python main.py demo build|where``: the demo project, built on this computer (no download).

``demo build`` writes a procedural paired dataset (24 pairs: set A with small detail and texture,
set B the same scenes simplified; one pair shifted and one colour-cast for the checks to find),
a tiny random Wan model (labelled: it renders noise-like clips) and a project file opening both;
a second build reuses what is there. ``demo where`` prints where the demo is and whether it is
built. Import-light: the build's modules load when it runs.
"""

from __future__ import annotations

import argparse
import json

from difflora_gui.specs import CliCommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="demo_command", metavar="SUBCOMMAND")
    build = sub.add_parser(
        "build",
        help="build the demo project (dataset, tiny model, project file); reuses what is complete",
        description=(
            "Build the demo project: a procedural paired dataset, a tiny random Wan model (it renders "
            "noise-like clips: it is there to try the app, not to judge a LoRA) and a project file. "
            "Exit codes: 0 built (or already complete), 2 bad input, 130 cancelled."
        ),
    )
    build.add_argument(
        "--folder", metavar="DIR", default="", help="where to build (default: see 'demo where')"
    )
    build.add_argument("--seed", type=int, default=None, help="the dataset's random seed (default 1234)")
    build.add_argument("--json", action="store_true", help="print the built paths as JSON")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(_demo_run=_run_build)
    where = sub.add_parser("where", help="print where the demo project is and whether it is built")
    where.add_argument("--folder", metavar="DIR", default="", help="a demo folder (default: per-user)")
    where.add_argument("--json", action="store_true", help="print JSON")
    where.set_defaults(_demo_run=_run_where)
    parser.set_defaults(_demo_parser=parser)


def _run_build(args: argparse.Namespace) -> int:
    from difflora_gui.jobs.cli import run_in_terminal

    params = {"folder": args.folder}
    if args.seed is not None:
        params["seed"] = args.seed
    result = run_in_terminal(
        "difflora_gui.demo.build:build_demo",
        params,
        description="demo build",
        quiet=args.quiet or args.json,
        lane="light",
    )
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        state = "already complete" if result["reused"] else "built"
        print(f"demo project {state}: {result['project']}")
        print(f"  dataset: {result['dataset']} ({result['pairs']} pairs)")
        print(f"  model:   {result['model']} ({result['label']})")
        print(f'open it:   python main.py "{result["project"]}"')
    return 0


def _run_where(args: argparse.Namespace) -> int:
    from difflora_gui.demo.build import demo_paths, is_built

    paths = demo_paths(args.folder or None)
    built = is_built(paths["folder"])
    if args.json:
        data = {key: str(value) for key, value in paths.items()}
        data["built"] = built
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(f"{paths['folder']} ({'built' if built else 'not built: python main.py demo build'})")
    for key in ("project", "dataset", "model"):
        print(f"  {key}: {paths[key]}")
    return 0


def run(args: argparse.Namespace) -> int:
    handler = getattr(args, "_demo_run", None)
    if handler is None:
        args._demo_parser.print_help()
        return 2
    return handler(args)


COMMAND = CliCommandSpec(
    name="demo",
    help="the demo project (procedural pairs, tiny random Wan model): build it, or show where it is",
    configure=configure,
    run=run,
)
