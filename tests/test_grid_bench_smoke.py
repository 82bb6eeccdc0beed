"""The grid bench still runs: a tiny grid, our export and the ffmpeg command line, figures checked.

No timing is asserted (a 2 × 2 grid of 64 × 48 cells is all process start-up); what is checked
is that both methods made the same grid: the frame count, the size, H.264 in yuv420p.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_grid_bench_smoke(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("grid_bench", None)
    grid_bench = importlib.import_module("grid_bench")
    figures = tmp_path / "figures é.json"
    keep = tmp_path / "cells ü"
    argv = ["--cols", "2", "--rows", "2", "--frames", "9", "--size", "64x48", "--repeat", "1"]
    assert grid_bench.main([*argv, "--keep", str(keep), "--json", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "ratio ours/ffmpeg" in printed and ("target met" in printed or "target missed" in printed)
    data = json.loads(figures.read_text(encoding="utf-8"))
    ours, ffmpeg = data["outputs"]["ours"], data["outputs"]["ffmpeg"]
    for info in (ours, ffmpeg):
        assert info["frames"] == 9 and info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
        assert info["mb"] > 0
    assert (ours["width"], ours["height"]) == (ffmpeg["width"], ffmpeg["height"])
    assert data["ratio"] > 0 and len(data["times_s"]["ours"]) == 1
    sys.modules.pop("grid_bench", None)
