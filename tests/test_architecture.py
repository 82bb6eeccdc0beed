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


#: modules of difflora_gui/qt/ that import no Qt on purpose, and why they still live there
QT_FREE_ON_PURPOSE = {
    "__init__.py": "package marker",
    "merge/__init__.py": "package marker",
    "dataset/__init__.py": "package marker",
    "train/__init__.py": "package marker",
    "preview/__init__.py": "package marker",
    "comfy/__init__.py": "package marker",
    "compare/__init__.py": "package marker",
    "gui_hookspecs.py": "the GUI-only hook declarations; Qt-free so plugins stay importable headless",
    "xcb_libraries.py": "runs before Qt is loaded, to report missing X11 libraries instead of Qt aborting",
    "heap.py": "the window's garbage-collector tuning after the Qt and plot imports",
    "merge/plotting.py": "loads pyqtgraph on a background thread for the workbench's plots",
    "merge/input_placement.py": "a mixin of the InputsBox widget: where it places a file among its cards",
    "preview/lora_drops.py": "a mixin of the Preview and Compare panels: LoRA files dropped on them",
    "merge/input_reads.py": "a mixin of the InputsBox widget: its read jobs and the file watch on its cards",
    "merge/input_undo.py": "a mixin of the InputsBox widget: its edits as steps on the panel's undo stack",
    "undo_actions.py": "binds the window's Edit ▸ Undo/Redo actions to the current panel's Qt undo stack",
}
QT_MODULES = ("PySide6", "superqt", "pyqtgraph")


def _imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_qt_package_holds_only_code_that_needs_qt():
    """A Qt-free module under difflora_gui/qt/ belongs in the core (where the CLI can use it too)."""
    qt_dir = ROOT / "difflora_gui" / "qt"
    qt_free = set()
    for path in qt_dir.rglob("*.py"):
        imports = _imports(path)
        uses_qt = any(name.split(".")[0] in QT_MODULES for name in imports) or any(
            name.startswith("difflora_gui.qt.")
            and not any(name.endswith(free.removesuffix(".py").replace("/", ".")) for free in QT_FREE_ON_PURPOSE)
            for name in imports
        )
        if not uses_qt:
            qt_free.add(path.relative_to(qt_dir).as_posix())
    misplaced = sorted(qt_free - set(QT_FREE_ON_PURPOSE))
    assert not misplaced, f"move these Qt-free modules to the core: {misplaced}"

