"""Settings and the demo's tiny model: a note while the Wan diffusers folder is the demo's model
(also a renamed copy of it), none for a real folder; the hints saying what to point the Wan folder,
Musubi Tuner and the ComfyUI servers at; the dialog still fits 1280×720. And the README's demo and
real-models parts, whose commands parse."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QScrollArea

from difflora_gui.cli import build_parser
from difflora_gui.demo import tiny_model
from difflora_gui.qt.settings_dialog import SERVERS_HINT, SettingsDialog
from difflora_gui.qt.settings_training import (
    DEMO_MODEL_NOTE,
    MUSUBI_DIR_HINT,
    MUSUBI_PYTHON_HINT,
    WAN_FOLDER_HINT,
    is_demo_model_dir,
)
from difflora_gui.settings import DEFAULT_COMFYUI_URL, AppSettings

ROOT = Path(__file__).resolve().parent.parent
REAL_FOLDERS = (
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    "Wan-AI/Wan2.1-T2V-14B-Diffusers",
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
)


def _diffusers_folder(folder: Path, readme: str | None = None) -> Path:
    """A folder the Wan diffusers field accepts (model_index.json, transformer/)."""
    (folder / "transformer").mkdir(parents=True)
    (folder / "transformer" / "config.json").write_text("{}", encoding="utf-8")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}), encoding="utf-8")
    if readme is not None:
        (folder / tiny_model.README_NAME).write_text(readme, encoding="utf-8")
    return folder


@pytest.fixture
def demo_model(tmp_path) -> Path:
    return _diffusers_folder(tmp_path / "démo ü" / tiny_model.MODEL_FOLDER_NAME, tiny_model.README_TEXT)


@pytest.fixture
def real_model(tmp_path) -> Path:
    return _diffusers_folder(tmp_path / "modèles" / "Wan2.1-T2V-1.3B-Diffusers")


def _dialog(qtbot, settings: AppSettings) -> SettingsDialog:
    dialog = SettingsDialog(settings, ["cpu"])
    qtbot.addWidget(dialog)
    return dialog


def test_the_demo_model_is_known_by_its_name_or_its_readme(tmp_path, demo_model, real_model):
    assert is_demo_model_dir(demo_model) and is_demo_model_dir(str(demo_model) + "  ")
    renamed = demo_model.rename(demo_model.parent / "my tiny model")
    assert is_demo_model_dir(renamed)  # its README.txt still says what it is
    assert not is_demo_model_dir(real_model)
    (real_model / tiny_model.README_NAME).write_text("my notes about this model\n", encoding="utf-8")
    assert not is_demo_model_dir(real_model)
    assert not is_demo_model_dir("") and not is_demo_model_dir(tmp_path / "nowhere")


def test_the_note_shows_for_the_demo_folder_and_not_for_a_real_one(qtbot, demo_model, real_model):
    dialog = _dialog(qtbot, AppSettings(wan_model_dir=str(demo_model)))
    dialog.show()
    qtbot.waitExposed(dialog)
    note, training = dialog.training.demo_note, dialog.training
    assert note.text() == DEMO_MODEL_NOTE
    assert "tiny demo model (random weights)" in note.text() and "noise-like clips" in note.text()
    assert "Wan2.1-T2V-1.3B-Diffusers" in note.text() and "README ▸ Configure real models" in note.text()
    assert note.isVisible() and training.demo_model
    assert "noise-like clips" in dialog.preview.model_label.text()  # the Preview group says so too

    # another folder typed in: the note goes once typing pauses, and the Preview line with it
    training.model_dir.edit.setText(str(real_model))
    qtbot.waitUntil(lambda: not note.isVisible(), timeout=2000)
    assert not training.demo_model
    assert "noise-like" not in dialog.preview.model_label.text()
    assert "Wan2.1-T2V-1.3B-Diffusers" in dialog.preview.model_label.text()

    # back to the demo's folder by Browse… (setText): shown again
    training.model_dir.setText(str(demo_model))
    qtbot.waitUntil(note.isVisible, timeout=2000)
    assert "noise-like clips" in dialog.preview.model_label.text()


def test_no_note_for_a_real_folder_or_none(qtbot, real_model):
    for settings in (AppSettings(wan_model_dir=str(real_model)), AppSettings()):
        dialog = _dialog(qtbot, settings)
        dialog.show()
        qtbot.waitExposed(dialog)
        assert not dialog.training.demo_note.isVisible() and not dialog.training.demo_model
        assert "noise-like" not in dialog.preview.model_label.text()


def test_the_note_does_not_stop_a_save_and_keeps_the_demo_folder(qtbot, demo_model):
    dialog = _dialog(qtbot, AppSettings(wan_model_dir=str(demo_model)))
    dialog.try_accept()
    assert dialog.errors.text() == ""
    assert dialog.values().wan_model_dir == str(demo_model)


def _label_texts(widget) -> list[str]:
    return [label.text() for label in widget.findChildren(QLabel) if label.text()]


def test_every_page_says_what_to_point_it_at(qtbot):
    dialog = _dialog(qtbot, AppSettings())
    dialog.show()
    qtbot.waitExposed(dialog)
    training = _label_texts(dialog.training)
    assert WAN_FOLDER_HINT in training and MUSUBI_DIR_HINT in training and MUSUBI_PYTHON_HINT in training
    for folder in REAL_FOLDERS:
        assert folder in WAN_FOLDER_HINT
    assert "git clone https://github.com/kohya-ss/musubi-tuner" in MUSUBI_DIR_HINT
    assert "src/musubi_tuner/" in MUSUBI_DIR_HINT  # what the checkout check looks for
    assert ".venv\\Scripts\\python.exe" in MUSUBI_PYTHON_HINT and ".venv/bin/python" in MUSUBI_PYTHON_HINT
    assert SERVERS_HINT in _label_texts(dialog)
    assert DEFAULT_COMFYUI_URL in SERVERS_HINT and "models/loras" in SERVERS_HINT
    # always visible: every hint is shown without any folder set
    for label in dialog.findChildren(QLabel):
        if label.text() in (WAN_FOLDER_HINT, MUSUBI_DIR_HINT, MUSUBI_PYTHON_HINT, SERVERS_HINT):
            assert label.isVisible(), label.text()


def test_with_the_note_the_dialog_fits_1280x720_and_the_notes_wrap(qtbot, demo_model):
    dialog = _dialog(qtbot, AppSettings(wan_model_dir=str(demo_model)))
    dialog.resize(820, 640)
    dialog.show()
    qtbot.waitExposed(dialog)
    hint = dialog.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720 - 60
    scroll = dialog.findChild(QScrollArea)
    assert scroll.widget().minimumSizeHint().width() <= 1280
    note = dialog.training.demo_note
    scroll.ensureWidgetVisible(note)
    qtbot.waitUntil(lambda: not note.visibleRegion().isEmpty(), timeout=2000)
    # wrapped, whole and without a gap: exactly as tall as its text needs at its width
    qtbot.waitUntil(lambda: note.height() == note.heightForWidth(note.width()), timeout=2000)
    assert note.height() >= 2 * note.fontMetrics().lineSpacing()
    assert note.width() <= scroll.viewport().width()
    for label in (*dialog.training.findChildren(QLabel), dialog.preview.model_label):
        if label.isVisible() and label.wordWrap() and label.text():
            assert label.height() >= label.heightForWidth(label.width()), label.text()  # never clipped


# --- the README ---------------------------------------------------------------------------------


def _readme_section(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def _commands(markdown: str) -> list[str]:
    """Every ``python main.py …`` of a markdown text, in code blocks and inline code spans."""
    commands = []
    for line in markdown.splitlines():
        if line.strip().startswith("python main.py"):
            commands.append(line.strip())
    commands += [span for span in markdown.split("`")[1::2] if span.startswith("python main.py")]
    return commands


def test_the_readme_demo_part_follows_the_quick_start_and_its_commands_parse():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("## Quick start") < readme.index("## Try the demo") < readme.index("## What is in it")
    demo = _readme_section("## Try the demo")
    assert "Help ▸ Open demo project" in demo and "noise-like clips" in demo and "24" in demo
    assert "(#configure-real-models)" in demo
    commands = _commands(demo)
    assert "python main.py demo build" in commands and "python main.py demo where" in commands
    parser = build_parser()
    parsed = [parser.parse_args(shlex.split(command)[2:]) for command in commands]
    # the whole path from a terminal: build, train the pair, merge, preview — on the demo's model
    assert [args.command for args in parsed[:4]] == ["demo", "train", "merge", "preview"]
    train, preview = parsed[1], parsed[3]
    assert train.backend == "builtin" and train.preset == "quick-test"
    assert Path(train.backend__model).name == Path(preview.model).name == tiny_model.MODEL_FOLDER_NAME


def test_the_readme_says_how_to_point_the_app_at_real_models():
    section = _readme_section("## Configure real models")
    for folder in REAL_FOLDERS:
        assert folder in section
    for place in ("Settings ▸ Training", "Settings ▸ ComfyUI servers", "--model"):
        assert place in section
    assert "git clone https://github.com/kohya-ss/musubi-tuner" in section
    assert DEFAULT_COMFYUI_URL in section and "models/loras" in section
    for command in ("preview", "grid", "train"):  # the commands it says take --model
        assert "--model" in _help(command)


def _help(command: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([command, "--help"])
    return out.getvalue()
