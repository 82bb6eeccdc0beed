"""``python -m difflora_gui`` and ``python main.py``: the GUI without arguments, else the CLI."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_SUFFIX = ".difflora"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (len(argv) == 1 and argv[0].lower().endswith(PROJECT_SUFFIX) and Path(argv[0]).is_file()):
        from difflora_gui.qt.app import run_gui

        return run_gui(project=argv[0] if argv else None)
    from difflora_gui.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
