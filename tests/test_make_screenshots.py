"""docs/make_screenshots.py (issue 16): the demo walked through the window, one PNG per section, at a
small window size into a temporary folder; each PNG is the window's size and not blank."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from difflora_gui.demo import dataset as demo_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "make_screenshots.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_options_refuse_unknown_sections_and_bad_sizes():
    script = load_script()
    parser = script.build_parser()
    args = parser.parse_args(["--sections", "merge, dataset", "--size", "800x600"])
    assert args.sections == ["merge", "dataset"] and args.size == (800, 600)
    for bad in (["--sections", "dataset,mergeX"], ["--size", "800"], ["--size", "100x100"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


@pytest.mark.slow
def test_one_screenshot_per_section_none_blank(tmp_path, monkeypatch):
    import numpy as np
    import torch
    from PySide6.QtGui import QImage

    script = load_script()
    torch.set_num_threads(2)
    out = tmp_path / "shots ü"
    out.mkdir()
    (out / "train.png").write_bytes(b"old")  # the script's own output: replaced
    (out / "notes.txt").write_text("kept")  # anything else: untouched
    demo = tmp_path / "démo"
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    args = script.build_parser().parse_args(
        ["--out", str(out), "--size", "960x600", "--demo", str(demo), "--fast", "--threads", "2"]
    )
    written = script.write_screenshots(args, tmp_path / "scratch")
    assert [p.name for p in written] == [f"{name}.png" for name in script.SECTIONS]
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in written), "notes.txt"])
    assert (out / "notes.txt").read_text() == "kept"
    for path in written:
        image = QImage(str(path))
        assert (image.width(), image.height()) == (960, 600), path.name
        image = image.convertToFormat(QImage.Format.Format_RGB888)
        pixels = np.frombuffer(image.constBits(), np.uint8).reshape(600, image.bytesPerLine())[:, : 960 * 3]
        # a window with text, cards and plots: many distinct colours and a wide spread
        assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 50, path.name
    # the demo was built where asked and kept
    assert (demo / "DiffLoRA demo.difflora").is_file()
    assert len(list((demo / "dataset" / "a").iterdir())) >= demo_dataset.COLOUR_CAST_PAIR
