"""``python main.py plugins``: list plugins; enable or disable one."""

from __future__ import annotations

import argparse
import json

from difflora_gui.commands._table import format_table
from difflora_gui.specs import CliCommandSpec, register_hook_names


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--enable", metavar="NAME", help="enable a plugin (remembered)")
    group.add_argument("--disable", metavar="NAME", help="disable a plugin (remembered)")


def _short_hook(name: str) -> str:
    return (
        name.removeprefix("difflora_gui_register_")
        .removeprefix("difflora_register_")
        .removeprefix("difflora_")
    )


def run(args: argparse.Namespace) -> int:
    from difflora_gui.plugin_host import get_plugin_host

    host = get_plugin_host()
    if args.enable:
        info = host.set_enabled(args.enable, True)
        print(f"{info.name}: {info.status}" + (f" ({info.error})" if info.error else ""))
        return 0 if info.status == "enabled" else 1
    if args.disable:
        info = host.set_enabled(args.disable, False)
        print(f"{info.name}: {info.status}")
        return 0
    infos = host.infos()
    # calling the register hooks is what exposes a plugin that raises inside one
    for hook in register_hook_names(gui=False):
        host.call_register(hook)
    infos = host.infos()
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
        return 0
    rows = [
        [
            i.name,
            i.source,
            i.version or "-",
            ", ".join(_short_hook(h) for h in i.hooks) or "-",
            i.status,
            i.error,
        ]
        for i in infos
    ]
    print(format_table(rows, ["name", "source", "version", "hooks", "status", "error"]))
    return 0


COMMAND = CliCommandSpec(
    name="plugins",
    help="list plugins (name, source, version, hooks, status, error); enable or disable one",
    configure=configure,
    run=run,
)
