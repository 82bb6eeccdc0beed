"""The example third-party package, installed for real with pip and found through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.app_process import run_main
from tests.plugin_helpers import pip_install_copy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "difflora-example-strategy"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """``pip install`` the example into its own folder (no dependencies, no network)."""
    files = [str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if "build" not in p.parts]
    target = pip_install_copy(EXAMPLE, files, tmp_path_factory.mktemp("example"))
    assert list(target.glob("difflora_example_strategy-0.2.0.dist-info/entry_points.txt"))
    return target


def run_app(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run_main(*args, env={"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **env})


def test_installed_package_is_discovered_through_its_entry_point(installed_example):
    listed = {p["name"]: p for p in json.loads(run_app(installed_example, "plugins", "--json").stdout)}
    plugin = listed["cosine_filter"]
    assert plugin["source"] == "package"
    assert plugin["version"] == "0.2.0"
    assert plugin["status"] == "enabled", plugin["error"]
    assert plugin["hooks"] == ["difflora_register_merge_strategies"]


def test_autoload_switch_hides_the_package(installed_example):
    env_result = run_app(installed_example, "plugins", "--json", DIFFLORA_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "cosine_filter" not in {p["name"] for p in json.loads(env_result.stdout)}


def test_the_strategy_filters_on_cosine(installed_example, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    from difflora_gui.jobs import RecordingContext
    from difflora_gui.plugin_host import PluginHost
    from difflora_gui.specs import resolve_callable

    host = PluginHost(
        builtin_dir=installed_example / "none",
        user_dir=installed_example / "none",
        autoload=True,
        persist=False,
    ).load()
    spec = host.merge_strategies()["cosine_filter"]
    assert spec.is_filter and not spec.is_compressor
    params = spec.params.resolve({"max_cosine": "0.3"})

    class Stats:
        def __init__(self, name, cosine):
            self.name, self.cosine = name, cosine

    ctx = RecordingContext()
    kept = resolve_callable(spec.select)([Stats("a", 0.9), Stats("b", 0.1), Stats("c", None)], params, ctx)
    assert kept == {"b", "c"}
    assert ctx.logs == ["cosine_filter: kept 2 of 3 modules (cosine <= 0.3)"]
