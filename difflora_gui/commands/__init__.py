"""The essential ``core`` plugin: the app's own headless commands.

Each module in this package defines ``COMMAND`` (a :class:`~difflora_gui.specs.CliCommandSpec`)
and stays import-light; the work itself is imported when the command runs.
"""

from __future__ import annotations

import importlib
import pkgutil

from difflora_gui import hookimpl


@hookimpl
def difflora_register_cli_commands():
    commands = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        command = getattr(module, "COMMAND", None)
        if command is not None:
            commands.append(command)
    return commands
