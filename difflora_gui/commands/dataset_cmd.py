"""``python main.py dataset SUBCOMMAND``: paired datasets (pair, check, extract-frames, kontext, export-musubi).

Each subcommand lives in its own module with ``configure(parser)`` and ``run(args) -> int``
(import-light: the work is imported when it runs). A module that is not there is left out, and
one whose options fail to set up is left out with a warning when ``dataset`` runs, so the other
subcommands keep working.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from difflora_gui.specs import CliCommandSpec

#: (subcommand, module, help if the module gives none)
SUBCOMMANDS = (
    ("pair", "difflora_gui.dataset.pairing_cli", "pair the files of two folders"),
    ("check", "difflora_gui.dataset.check_cli", "score every pair: SSIM, alignment, colour drift, sizes"),
    ("extract-frames", "difflora_gui.dataset.frames_cli", "extract candidate frames from films"),
    ("kontext", "difflora_gui.dataset.kontext_cli", "make set B with Flux.1 Kontext"),
    ("export-musubi", "difflora_gui.dataset.export_cli", "export two Musubi Tuner dataset TOMLs"),
)

#: subcommands that could not be set up: name → the reason (shown when ``dataset`` runs)
UNAVAILABLE: dict[str, str] = {}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    UNAVAILABLE.clear()
    for name, module_name, fallback_help in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built (yet): left out quietly
                continue
            UNAVAILABLE[name] = f"{type(exc).__name__}: {exc}"
            continue
        except Exception as exc:  # a broken module must not take the other subcommands down
            UNAVAILABLE[name] = f"{type(exc).__name__}: {exc}"
            continue
        help_text = getattr(module, "HELP", None) or fallback_help
        child = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "DESCRIPTION", None) or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        try:
            module.configure(child)
        except Exception as exc:
            UNAVAILABLE[name] = f"its options could not be set up: {type(exc).__name__}: {exc}"
            sub._name_parser_map.pop(name, None)
            sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != name]
            continue
        child.set_defaults(_dataset_run=module.run)
    parser.set_defaults(_dataset_parser=parser)


def run(args: argparse.Namespace) -> int:
    for name, reason in UNAVAILABLE.items():
        print(f"warning: 'dataset {name}' is unavailable ({reason})", file=sys.stderr)
    handler = getattr(args, "_dataset_run", None)
    if handler is None:
        args._dataset_parser.print_help()
        return 2
    code = handler(args)
    return 0 if code is None else int(code)


COMMAND = CliCommandSpec(
    name="dataset",
    help="paired datasets: pair folders, check pairs, extract frames, make counterparts, export for Musubi",
    description=(
        "Paired datasets: set A (concept present) and set B (concept absent), alike in everything\n"
        "but the concept. Subcommands pair two folders, score the pairs (alignment, colour drift,\n"
        "SSIM), extract frames from films, make set B with Flux Kontext and export Musubi Tuner\n"
        "dataset TOMLs. Bad input is one line on stderr and exit code 2."
    ),
    configure=configure,
    run=run,
)
