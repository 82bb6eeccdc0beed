"""Helpers for tests that need real plugin modules, folders and installed distributions."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

STRATEGY_PLUGIN = """
from difflora_gui import hookimpl
from difflora_gui.params import Param
from difflora_gui.specs import MergeStrategySpec

__version__ = "{version}"


def _select(stats, params, ctx):
    return {{s.name for s in stats}}


@hookimpl
def difflora_register_merge_strategies():
    return [MergeStrategySpec(
        name="{strategy}", title="{strategy} title", description="keeps every module",
        params=(Param("strength", "float", 1.0, "how strongly", minimum=0.0),),
        select=_select,
    )]
"""


def write_module(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def strategy_plugin_source(strategy: str, version: str = "1.0") -> str:
    return STRATEGY_PLUGIN.format(strategy=strategy, version=version)


def install_fake_distribution(
    site: Path, dist_name: str, version: str, module_name: str, source: str, entry_name: str | None = None
) -> None:
    """Write a module plus a ``*.dist-info`` with ``entry_points.txt`` into ``site`` (a sys.path dir).

    This is exactly what ``pip install`` leaves behind for the metadata importlib.metadata reads.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module_name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[difflora_gui.plugins]\n{entry_name or module_name} = {module_name}\n", encoding="utf-8"
    )
    (info / "RECORD").write_text("", encoding="utf-8")


class on_sys_path:
    """Context manager: put a folder first on sys.path, and clean imported modules afterwards."""

    def __init__(self, folder: Path, *modules: str):
        self.folder = str(folder)
        self.modules = modules

    def __enter__(self):
        sys.path.insert(0, self.folder)
        importlib.invalidate_caches()
        return self

    def __exit__(self, *exc):
        sys.path.remove(self.folder)
        for name in list(sys.modules):
            if name in self.modules or name.startswith(("difflora_user_plugins", "difflora_test_builtin")):
                sys.modules.pop(name, None)
        importlib.invalidate_caches()


def pip_install_copy(source: Path, files: Iterable[str], scratch: Path) -> Path:
    """``pip install`` a copy of ``source`` (only ``files``, relative paths) into a new folder; return it.

    The copy keeps the real sources clean: setuptools writes build/ and *.egg-info beside what it
    builds. No network and no dependencies: the build uses the setuptools already installed.
    """
    copy, target = scratch / "source", scratch / "site-packages"
    for name in files:
        if (source / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, copy / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return target
