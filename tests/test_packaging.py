"""A regular (non-editable) install ships the built-in plugins and the resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.plugin_helpers import pip_install_copy

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def declared_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]["packages"]


def test_every_package_is_declared():
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "difflora_gui").rglob("__init__.py")
    }
    assert found - set(declared_packages()) == set(), "add new packages to [tool.setuptools] packages"


def test_an_installed_wheel_finds_its_plugins_and_resources(tmp_path):
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    target = pip_install_copy(ROOT, filter(None, tracked.decode("utf-8").split("\0")), tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    neutral = tmp_path / "elsewhere"
    neutral.mkdir()
    listed = subprocess.run(
        [sys.executable, "-m", "difflora_gui", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=neutral,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    for name in ("full_svd", "randomized_svd", "magnitude_filter", "merge_workbench"):
        assert plugins[name]["source"] == "built-in" and plugins[name]["status"] == "enabled", plugins
        assert str(target) in plugins[name]["location"]
    probe = subprocess.run(
        [sys.executable, "-c", "from difflora_gui import paths; print(paths.resources_dir())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=neutral,
        timeout=60,
    )
    resources = Path(probe.stdout.strip())
    assert resources.is_relative_to(target) and (resources / "style.qss").is_file()
    assert (resources / "icons" / "merge.svg").is_file()
