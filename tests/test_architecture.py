"""Guards on the architecture: the Qt-free contract covers every core module."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import difflora_gui

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contract_covers_every_core_module():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(
        c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == "Qt stays in difflora_gui.qt"
    )
    covered = set(contract["source_modules"])
    core = {
        f"difflora_gui.{m.name}"
        for m in pkgutil.iter_modules(difflora_gui.__path__)
        if m.name not in ("qt", "__main__")
    }
    assert core - covered == set(), "add new core modules to the import-linter contract in pyproject.toml"
    assert {"PySide6", "superqt", "pyqtgraph", "difflora_gui.qt"} <= set(contract["forbidden_modules"])
