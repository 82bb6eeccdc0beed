"""The headless command line: ``python main.py COMMAND ...``.

Commands come from ``difflora_register_cli_commands`` (the core ones too, through the essential
``core`` plugin). Bad input is one line on stderr and exit code 2; a cancelled job exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from difflora_gui import APP_NAME, __version__
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.specs import resolve_callable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def _utf8_console() -> None:
    """Windows consoles default to a legacy code page; never crash printing a file name."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def build_parser(host=None) -> argparse.ArgumentParser:
    from difflora_gui.plugin_host import get_plugin_host

    host = host or get_plugin_host()
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description=f"{APP_NAME} {__version__}. Without a command the GUI opens.",
        epilog="Run 'python main.py COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for plugin_name, spec in host.call_register("difflora_register_cli_commands"):
        try:
            command_parser = sub.add_parser(
                spec.name,
                help=spec.help,
                description=spec.description or spec.help,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            resolve_callable(spec.configure)(command_parser)
        except Exception as exc:
            host._fail(plugin_name, f"command {spec.name!r} could not set up its options: {exc}")
            sub._name_parser_map.pop(spec.name, None)
            sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != spec.name]
            continue
        command_parser.set_defaults(_command=spec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _utf8_console()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    spec = getattr(args, "_command", None)
    if spec is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from difflora_gui.settings import AppSettings

    if warning := AppSettings.load().load_warning:  # a bad value or a damaged file: one line
        print(f"warning: {warning}", file=sys.stderr)
    try:
        code = resolve_callable(spec.run)(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (JobCancelled, KeyboardInterrupt):
        print("cancelled; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:  # any command's reader stopped early (`... | head`): not an error
        from difflora_gui.console_output import silence_stdout

        silence_stdout()
        return EXIT_OK
    return EXIT_OK if code is None else int(code)
