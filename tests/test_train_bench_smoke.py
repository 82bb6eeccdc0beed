"""The training benches still run: each in its ``--smoke`` mode (a few steps; no timing is asserted).

``bench/train_bench.py`` (built-in trainer vs the bare loop), ``bench/pair_training_bench.py``
(the pair experiment's whole path: pretraining, the three pair modes, reading the files back, the
prediction probe) and ``bench/gpu_train_bench.py --smoke --in-process`` (the GPU bench's code
path on the CPU with a narrow model). They run in this process, with their JSON output checked.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench(monkeypatch):
    """Import a bench module by name; torch's thread count is restored afterwards (benches set it)."""
    import torch

    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield lambda name: importlib.import_module(name)
    torch.set_num_threads(threads)
    for name in ("train_bench", "pair_training_bench", "gpu_train_bench", "train_bench_support"):
        sys.modules.pop(name, None)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_train_bench_smoke(bench, tmp_path, capsys):
    out = tmp_path / "train bench é.json"
    assert bench("train_bench").main(["--smoke", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "WARNING" not in text  # both sides trained the same modules
    data = json.loads(out.read_text(encoding="utf-8"))
    for clock in ("wall_ms", "cpu_ms"):
        figures = data["figures"][clock]
        assert _finite(figures["ratio_median"]) and figures["ratio_median"] > 0
        assert figures["builtin"]["median_ms"] > 0 and figures["bare"]["median_ms"] > 0
    builtin, bare = data["rows"]["builtin"][0], data["rows"]["bare"][0]
    assert len(builtin["wall_ms"]) == len(bare["wall_ms"]) == 5  # 6 steps, step 1 excluded
    assert builtin["checkpoints"] == 1  # every 3 of 6 steps: step 3 (the end writes the final file)


def test_pair_training_bench_smoke(bench, tmp_path, capsys):
    out = tmp_path / "pair bench.json"
    assert bench("pair_training_bench").main(["--smoke", "--bases", "pretrained", "--json", str(out)]) == 0
    assert "base model: pretrained" in capsys.readouterr().out
    table = json.loads(out.read_text(encoding="utf-8"))["tables"]["pretrained"]
    assert set(table["results"]) == {"independent", "synchronised", "slider"}
    for mode, row in table["results"].items():
        for key in ("cos_repeats", "cos_ideal", "cos_pred_repeats"):
            assert -1.0001 <= row[key] <= 1.0001, (mode, key)
        assert row["diff_norm"] > 0 and 0 <= row["out_share"] <= 1
        assert (row["diff_over_a"] is None) == (mode == "slider")
    assert _finite(table["pretrain"]["loss_last"])


def test_gpu_train_bench_smoke(bench, tmp_path):
    out = tmp_path / "gpu bench.json"
    assert bench("gpu_train_bench").main(["--smoke", "--in-process", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["info"]["narrow"] and data["info"]["layers"] == 2
    for side in ("builtin", "bare"):
        (row,) = data["rows"][side]
        assert len(row["wall_s"]) == 2 and row["peak_allocated_gib"] is None  # CPU: no VRAM figure
    assert _finite(data["figures"]["ratio_median"])
