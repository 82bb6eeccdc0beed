"""Start-up in a real subprocess: the window shows without torch/diffusers; both entry points work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from difflora_gui.project import Project
from difflora_gui.qt.app import PROBE_PREFIX

ROOT = Path(__file__).resolve().parent.parent


def launch(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = os.environ.copy()  # carries the per-test DIFFLORA_CONFIG_DIR / DIFFLORA_DATA_DIR
    env.update({"QT_QPA_PLATFORM": "offscreen", "DIFFLORA_STARTUP_PROBE": "1", "PYTHONIOENCODING": "utf-8"})
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
    reports = [
        json.loads(line[len(PROBE_PREFIX) :])
        for line in proc.stdout.splitlines()
        if line.startswith(PROBE_PREFIX)
    ]
    return proc, reports


@pytest.mark.parametrize("entry", [["main.py"], ["-m", "difflora_gui"]], ids=["main.py", "-m difflora_gui"])
def test_the_window_shows_before_torch_or_diffusers_is_imported(entry):
    proc, reports = launch(*entry)
    assert proc.returncode == 0, proc.stderr
    assert len(reports) == 1, proc.stdout
    imported = reports[0]["imported"]
    assert imported["torch"] is False
    assert imported["diffusers"] is False
    assert imported["transformers"] is False
    assert reports[0]["since_run_gui_s"] > 0
    assert "Traceback" not in proc.stderr


def test_a_project_given_on_the_command_line_is_opened(tmp_path):
    path = tmp_path / "cli project ü.difflora"
    Project("From the command line").save(path)
    proc, reports = launch("main.py", str(path))
    assert proc.returncode == 0, proc.stderr
    assert reports[-1] == {"project": "From the command line"}


def test_startup_benchmark_runs_and_reports(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "startup.py"), "--runs", "1", "--budget", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "launch -> first shown window: median" in proc.stdout
    assert "torch or diffusers imported before the window showed: no" in proc.stdout
