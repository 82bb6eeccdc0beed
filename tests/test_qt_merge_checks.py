"""What the workbench says about A and B before running, and what it imports at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from difflora_gui.lora.inspect import summarize
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.merge.demo_pair import make_demo_pair
from difflora_gui.merge.input_checks import (
    ERROR,
    INFO,
    WARNING,
    compare_inputs,
    default_output_name,
    training_facts,
)

ROOT = Path(__file__).resolve().parent.parent


def lora(tmp_path: Path, name: str, **kwargs):
    path = tmp_path / f"{name}.safetensors"
    make_wan_lora(path=path, **kwargs)
    return summarize(path)


def levels(issues, level):
    return [issue.text for issue in issues if issue.level == level]


def test_identical_setups_raise_nothing(tmp_path):
    a = lora(tmp_path, "a", variant="tiny", rank=4, seed=1)
    b = lora(tmp_path, "b", variant="tiny", rank=4, seed=2)
    assert compare_inputs(a, b) == []


def test_different_model_sizes_are_an_error_that_blocks_run(tmp_path):
    a = lora(tmp_path, "small", variant="1.3B", rank=2, select="self_attn blocks=0")
    b = lora(tmp_path, "big", variant="14B", rank=2, select="self_attn blocks=0")
    issues = compare_inputs(a, b)
    assert issues[0].level == ERROR and issues[0].blocks_run
    assert "Wan 1.3B T2V (dim 1536)" in issues[0].text
    assert "Wan 14B T2V" in issues[0].text and "(dim 5120)" in issues[0].text


def test_the_same_file_twice_is_an_error(tmp_path):
    a = lora(tmp_path, "a", variant="tiny", rank=2)
    assert levels(compare_inputs(a, a), ERROR) == ["A and B are the same file: their difference is zero"]


def test_coverage_task_and_training_differences_are_warnings(tmp_path):
    a, b = make_demo_pair(
        tmp_path / "a.safetensors",
        tmp_path / "b.safetensors",
        metadata_b={"ss_learning_rate": "1e-4", "ss_optimizer": "Lion"},
    )
    same = compare_inputs(summarize(a), summarize(b))
    assert levels(same, WARNING) == [
        "trained with a different learning rate: 2e-05 (A) vs 1e-4 (B); a differential LoRA works best "
        "when only the data differs"
    ]
    t2v = lora(tmp_path, "t2v", variant="tiny", rank=2, select="attn blocks=0")
    i2v = lora(tmp_path, "i2v", variant="tiny", task="i2v", rank=2, select="attn")
    warnings = levels(compare_inputs(t2v, i2v), WARNING)
    assert any(w.startswith("A is T2V but B is I2V") for w in warnings)
    assert any("blocks 1 only in B" in w for w in warnings)
    assert not levels(compare_inputs(t2v, i2v), ERROR)
    self_only = lora(tmp_path, "self", variant="tiny", rank=2, select="self_attn blocks=0")
    warnings = levels(compare_inputs(self_only, t2v), WARNING)
    assert warnings == ["different layer groups (cross_attn only in B)"]


def test_harmless_differences_are_infos(tmp_path):
    a = lora(tmp_path, "a", variant="tiny", rank=4, alpha=4.0)
    b = lora(tmp_path, "b", variant="tiny", rank=8, alpha=4.0, format="musubi", dtype="bfloat16")
    infos = levels(compare_inputs(a, b), INFO)
    assert any(i.startswith("ranks differ (A 4, B 8)") for i in infos)
    assert any(i.startswith("scales alpha/rank differ") for i in infos)
    assert "key formats differ (A comfy, B musubi): both are read alike" in infos
    assert any(i.startswith("dtypes differ") for i in infos)
    assert not levels(compare_inputs(a, b), ERROR)


def test_training_facts_come_from_the_trainer_metadata(tmp_path):
    a, _ = make_demo_pair(tmp_path / "a.safetensors", tmp_path / "b.safetensors", rank=8)
    facts = dict(training_facts(summarize(a)))
    assert facts == {
        "optimizer": "Lion",
        "learning rate": "2e-05",
        "max train steps": "5000",
        "network dim": "8",
        "network alpha": "8",
        "resolution": "(192, 192)",
    }


def test_default_output_name():
    assert default_output_name("/x/dense scenes.safetensors", "y/sparse.safetensors") == (
        "dense scenes-minus-sparse.safetensors"
    )


def test_the_window_with_the_workbench_starts_without_torch_pyqtgraph_or_safetensors():
    code = (
        "import json, sys\n"
        "from difflora_gui.qt.app import create_application\n"
        "from difflora_gui.qt.main_window import MainWindow\n"
        "app = create_application()\n"
        "window = MainWindow()\n"
        "entry = window.panels['merge-workbench']\n"
        "print(json.dumps({'ok': entry.ok, 'error': entry.error,\n"
        "  'loaded': {m: m in sys.modules for m in ('torch', 'pyqtgraph', 'safetensors', 'numpy')}}))\n"
        "window._closed = True\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report["error"]
    assert report["loaded"] == {"torch": False, "pyqtgraph": False, "safetensors": False, "numpy": False}


def test_the_screenshot_script_saves_the_workbench_after_a_merge(tmp_path):
    from PySide6.QtGui import QImage

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docs" / "make_screenshots.py"),
            "--only",
            "merge-workbench",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    image = QImage(str(tmp_path / "merge-workbench.png"))
    assert not image.isNull() and image.width() > 1200 and image.height() > 900
