"""Settings ▸ Training: the Musubi checkout, its Python, the Wan files and the diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QDialog, QFileDialog, QLabel, QScrollArea
from safetensors.numpy import save_file

from difflora_gui.qt.settings_dialog import SettingsDialog, validate_settings
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.settings import AppSettings

TRAINING = (
    "musubi_tuner_dir",
    "musubi_python",
    "wan_dit",
    "wan_dit_high_noise",
    "wan_vae",
    "wan_t5",
    "wan_clip",
    "wan_model_dir",
    "wan_vae_dir",
    "wan_text_encoder_dir",
)


@pytest.fixture
def files(tmp_path):
    """A Musubi checkout, a venv Python and Wan files, in folders with spaces and non-ASCII names."""
    root = tmp_path / "Modèles Wan ü 模型"
    musubi = root / "musubi tuner"
    (musubi / "src" / "musubi_tuner").mkdir(parents=True)
    (musubi / "src" / "musubi_tuner" / "wan_train_network.py").write_text("# train\n", encoding="utf-8")
    python = musubi / ".venv" / "Scripts" / "python.exe"
    python.parent.mkdir(parents=True)
    python.write_bytes(b"MZ")
    models = root / "diffusion models"
    models.mkdir()
    dit = models / "wan2.2_t2v_low_noise_14B_fp16.safetensors"
    high = models / "wan2.2_t2v_high_noise_14B_fp16.safetensors"
    for path in (dit, high):
        save_file(
            {"model.diffusion_model.blocks.0.cross_attn.k.weight": np.zeros((4, 4), np.float16)}, str(path)
        )
    vae = root / "vae" / "Wan2.1_VAE.pth"
    t5 = root / "text encoders" / "models_t5_umt5-xxl-enc-bf16.pth"
    clip = root / "clip vision" / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
    for path in (vae, t5, clip):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"PK\x03\x04")
    wan = root / "Wan2.1-T2V-1.3B Diffusers"
    (wan / "transformer").mkdir(parents=True)
    (wan / "transformer" / "config.json").write_text("{}", encoding="utf-8")
    (wan / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}), encoding="utf-8")
    components = []
    for name in ("Wan VAE ü", "UMT5 encoder 模型"):
        component = root / "shared components" / name
        component.mkdir(parents=True)
        (component / "config.json").write_text("{}", encoding="utf-8")
        save_file({"w": np.zeros((2, 2), np.float16)}, str(component / "model.safetensors"))
        components.append(component)
    paths = (musubi, python, dit, high, vae, t5, clip, wan, *components)
    return dict(zip(TRAINING, (str(p) for p in paths), strict=True))


def test_training_paths_load_save_and_reopen(qtbot, monkeypatch, files):
    AppSettings(recent_projects=["keep me"]).save()
    win, dialogs = make_main_window(qtbot, monkeypatch)

    def edit(dialog: SettingsDialog):
        for name, value in files.items():
            dialog.training.fields[name].setText(value)
        assert all(
            not f.problem_label.isVisible() and f.problem() == "" for f in dialog.training.fields.values()
        )
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
        return dialog.result()

    monkeypatch.setattr(SettingsDialog, "exec", edit)
    assert win.edit_settings()
    stored = json.loads(AppSettings.path().read_text(encoding="utf-8"))
    assert {name: stored[name] for name in TRAINING} == files
    assert stored["recent_projects"] == ["keep me"]
    assert {name: getattr(win.services.settings, name) for name in TRAINING} == files

    reopened = SettingsDialog(AppSettings.load(), ["cpu"])
    qtbot.addWidget(reopened)
    assert reopened.training.values() == files
    assert reopened.musubi_dir is reopened.training.fields["musubi_tuner_dir"]
    assert {name: reopened.changes()[name] for name in TRAINING} == files
    close_window(win, dialogs)


def test_a_wrong_folder_is_shown_under_its_field_and_blocks_save(qtbot, tmp_path, files):
    AppSettings().save()
    before = AppSettings.path().read_bytes()
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    not_musubi = tmp_path / "a random folder é"
    not_musubi.mkdir()
    field = dialog.training.fields["musubi_tuner_dir"]
    field.edit.setText(str(not_musubi))  # as typed: checked once typing pauses
    qtbot.waitUntil(field.problem_label.isVisible, timeout=2000)
    expected = (
        f"{not_musubi} does not look like a Musubi Tuner checkout (no src/musubi_tuner/wan_train_network.py)"
    )
    assert field.problem_label.text() == expected
    assert field.problem_label.objectName() == "validationErrors"
    assert field.edit.toolTip() == expected
    wan = dialog.training.fields["wan_model_dir"]
    wan.setText(str(not_musubi))
    assert "model_index.json is missing" in wan.problem_label.text()
    dialog.try_accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.errors.text().splitlines() == [
        expected,
        f"{not_musubi} is not a diffusers model folder: model_index.json is missing",
    ]
    assert AppSettings.path().read_bytes() == before

    field.setText(files["musubi_tuner_dir"])
    wan.setText(files["wan_model_dir"])
    assert not field.problem_label.isVisible() and field.edit.toolTip() == ""
    dialog.try_accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_wrong_files_are_named(qtbot, tmp_path, files):
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    fields = dialog.training.fields
    fields["wan_dit"].setText(files["wan_vae"].replace(".pth", ".bin"))
    fields["wan_vae"].setText(files["musubi_tuner_dir"])
    fields["musubi_python"].setText(str(tmp_path / "no python.exe"))
    lora = tmp_path / "dense_A.safetensors"
    save_file(
        {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": np.zeros((2, 4), np.float16)}, str(lora)
    )
    fields["wan_dit_high_noise"].setText(str(lora))
    assert fields["wan_dit"].problem().startswith("Wan DiT not found")
    assert fields["wan_vae"].problem() == f"the Wan VAE is a folder, not a file: {files['musubi_tuner_dir']}"
    assert fields["musubi_python"].problem() == f"Python for Musubi not found: {tmp_path / 'no python.exe'}"
    assert (
        fields["wan_dit_high_noise"].problem() == f"the high-noise DiT is a LoRA file, not a Wan DiT: {lora}"
    )
    assert len(validate_settings(dialog.values())) == 4


def test_a_saved_path_on_a_drive_that_is_away_is_kept(qtbot, tmp_path, files):
    away = str(tmp_path / "E drive (away)" / "wan2.1_t2v_14B_bf16.safetensors")
    saved = AppSettings(wan_dit=away, wan_t5=files["wan_t5"])
    dialog = SettingsDialog(saved, ["cpu"])
    qtbot.addWidget(dialog)
    field = dialog.training.fields["wan_dit"]
    assert field.kept()
    assert field.problem_label.objectName() == "mutedLabel"
    assert "kept as saved (a drive or share may be away)" in field.problem_label.text()
    assert validate_settings(dialog.values(), saved) == []
    dialog.output_dir.setText(str(tmp_path))  # the user came to change something else
    dialog.try_accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.values().wan_dit == away

    # a newly typed path that is not there is a mistake, not an absent drive
    again = SettingsDialog(saved, ["cpu"])
    qtbot.addWidget(again)
    again.training.fields["wan_dit"].setText(away + "x")
    assert not again.training.fields["wan_dit"].kept()
    again.try_accept()
    assert again.result() != QDialog.DialogCode.Accepted
    assert again.errors.text() == f"Wan DiT not found: {away}x"


def test_browse_starts_at_the_value_or_the_last_chosen_folder(qtbot, monkeypatch, files):
    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    starts = []

    def pick(answer):
        def fake(parent, caption, start, file_filter=""):
            starts.append((caption, start))
            return (answer, "") if file_filter else answer

        return fake

    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick(files["wan_dit"]))
    dialog.training.fields["wan_dit"].browse_button.click()
    assert dialog.training.fields["wan_dit"].text() == files["wan_dit"]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick(files["wan_vae"]))
    dialog.training.fields["wan_vae"].browse_button.click()  # empty: starts where the DiT was found
    dialog.training.fields["wan_dit"].browse_button.click()  # set: starts at its own file
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick(files["wan_model_dir"]))
    dialog.training.fields["wan_model_dir"].browse_button.click()
    assert starts == [
        ("Wan DiT", ""),
        ("VAE", str(Path(files["wan_dit"]).parent)),
        ("Wan DiT", files["wan_dit"]),
        ("Wan diffusers folder", ""),
    ]
    assert dialog.training.values()["wan_model_dir"] == files["wan_model_dir"]
    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick(""))  # cancelled: the value stays
    dialog.training.fields["wan_vae"].browse_button.click()
    assert dialog.training.fields["wan_vae"].text() == files["wan_vae"]


def test_the_component_folders_follow_the_diffusers_folder_with_hints(qtbot, tmp_path, files):
    from PySide6.QtWidgets import QFormLayout

    dialog = SettingsDialog(AppSettings(), ["cpu"])
    qtbot.addWidget(dialog)
    training = dialog.training
    assert list(training.fields)[-3:] == ["wan_model_dir", "wan_vae_dir", "wan_text_encoder_dir"]
    form = training.layout()
    labels = {}
    for row in range(form.rowCount()):
        label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
        field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
        if label is not None and field is not None:
            labels[field.widget()] = label.widget().text()
    assert labels[training.fields["wan_vae_dir"]] == "Wan VAE folder"
    assert labels[training.fields["wan_text_encoder_dir"]] == "Wan text encoder folder"
    hints = [w.text() for w in training.findChildren(QLabel) if w.objectName() == "mutedLabel"]
    assert any(h.startswith("Empty: the diffusers folder's vae/") for h in hints)
    assert any(h.startswith("Empty: the diffusers folder's text_encoder/") for h in hints)
    vae = training.fields["wan_vae_dir"]
    vae.setText(files["wan_vae"])  # a Musubi .pth file is not a component folder
    assert vae.problem().startswith("the Wan VAE folder is a file")
    vae.setText(str(tmp_path / "nowhere"))
    assert vae.problem() == f"Wan VAE folder not found: {tmp_path / 'nowhere'}"
    vae.setText(files["wan_vae_dir"])
    assert vae.problem() == ""
    # the Preview group names where its VAE comes from
    training.fields["wan_model_dir"].setText(files["wan_model_dir"])
    assert "the VAE from shared components/Wan VAE ü" in dialog.preview.model_label.text()


def test_the_training_group_fits_and_scrolls_on_a_1280x720_screen(qtbot, tmp_path):
    wrong = str(tmp_path / "nowhere")
    dialog = SettingsDialog(AppSettings(model_folders=[str(tmp_path)]), ["cpu"])
    qtbot.addWidget(dialog)
    for field in dialog.training.fields.values():
        field.setText(wrong)  # every field shows its problem, in red
        assert field.problem_label.objectName() == "validationErrors"
    dialog.show()
    qtbot.waitExposed(dialog)
    hint = dialog.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720 - 60
    assert dialog.width() <= 1280 and dialog.height() <= 720 - 60
    scroll = dialog.findChild(QScrollArea)
    last = dialog.training.fields["wan_text_encoder_dir"]
    scroll.ensureWidgetVisible(last.problem_label)
    qtbot.waitUntil(lambda: not last.problem_label.visibleRegion().isEmpty(), timeout=2000)
    assert dialog.buttons.isVisible()
    # the labels wrap inside the dialog: nothing makes it wider than the screen
    assert scroll.widget().minimumSizeHint().width() <= 1280
