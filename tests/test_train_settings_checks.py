"""Settings ▸ Training checks (difflora_gui.train.settings_checks): real folders and real files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from difflora_gui.settings import AppSettings
from difflora_gui.train.settings_checks import (
    TRAINING_FIELDS,
    SettingProblem,
    component_folder_problem,
    dit_file_problem,
    field_problem,
    is_absent,
    model_file_problem,
    musubi_dir_problem,
    python_problem,
    training_problems,
    wan_folder_problem,
)

#: paths as Windows users have them: spaces and non-ASCII letters
ODD = "Modèles Wan ü 模型"


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    return folder


def musubi_checkout(folder):
    (folder / "src" / "musubi_tuner").mkdir(parents=True)
    (folder / "src" / "musubi_tuner" / "wan_train_network.py").write_text("# train\n", encoding="utf-8")
    return folder


def tensor(*shape):
    return np.zeros(shape, dtype=np.float16)


def test_every_training_setting_is_checked():
    names = {f.name for f in TRAINING_FIELDS}
    assert names == {
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
    }
    assert all(hasattr(AppSettings(), name) for name in names)
    assert all(field_problem(name, "") == "" for name in names)  # empty = not set, allowed


def test_musubi_checkout(root):
    good = musubi_checkout(root / "musubi tuner")
    assert musubi_dir_problem(str(good)) == ""
    plain = root / "random folder"
    plain.mkdir()
    assert musubi_dir_problem(plain) == (
        f"{plain} does not look like a Musubi Tuner checkout (no src/musubi_tuner/wan_train_network.py)"
    )
    old = root / "old musubi"
    old.mkdir()
    (old / "wan_train_network.py").write_text("")
    assert "an old Musubi Tuner checkout" in musubi_dir_problem(old)
    assert musubi_dir_problem(root / "nope") == f"Musubi Tuner folder not found: {root / 'nope'}"
    a_file = root / "musubi.zip"
    a_file.write_bytes(b"PK")
    assert "is a file, not a folder" in musubi_dir_problem(a_file)


def test_python(root):
    venv = root / "venv"
    (venv / "Scripts").mkdir(parents=True)
    python = venv / "Scripts" / "python.exe"
    python.write_bytes(b"MZ")
    assert python_problem(python) == ""
    assert python_problem(sys.executable) == ""
    assert python_problem(venv) == (
        f"the Python for Musubi is a folder; choose the python inside it (Scripts\\python.exe): {venv}"
    )
    assert python_problem(root / "gone.exe") == f"Python for Musubi not found: {root / 'gone.exe'}"


def test_model_files(root):
    vae = root / "Wan2.1_VAE.pth"
    vae.write_bytes(b"PK\x03\x04 a pickle is never opened")
    assert model_file_problem(vae, "Wan VAE") == ""
    assert model_file_problem(root / "x.pth", "Wan VAE") == f"Wan VAE not found: {root / 'x.pth'}"
    wrong = root / "vae.ckpt"
    wrong.write_bytes(b"x")
    assert (
        model_file_problem(wrong, "Wan VAE") == f"the Wan VAE should be a .safetensors or .pth file: {wrong}"
    )
    empty = root / "t5.pth"
    empty.write_bytes(b"")
    assert model_file_problem(empty, "T5 text encoder") == f"the T5 text encoder is empty (0 bytes): {empty}"
    assert (
        model_file_problem(root, "CLIP image encoder")
        == f"the CLIP image encoder is a folder, not a file: {root}"
    )
    upper = root / "CLIP.SAFETENSORS"
    save_file({"visual.proj": tensor(2, 2)}, str(upper))
    assert field_problem("wan_clip", str(upper)) == ""


def test_the_dit_header_is_read(root):
    original = root / "wan2.1_t2v_1.3B_fp16.safetensors"
    save_file({"blocks.0.cross_attn.k.weight": tensor(4, 4), "head.head.weight": tensor(2, 4)}, str(original))
    assert dit_file_problem(original) == ""
    comfy = root / "wan2.2_t2v_high_noise_14B_fp16.safetensors"
    save_file({"model.diffusion_model.blocks.0.cross_attn.k.weight": tensor(4, 4)}, str(comfy))
    assert field_problem("wan_dit_high_noise", str(comfy)) == ""
    lora = root / "dense_A.safetensors"
    save_file({"diffusion_model.blocks.0.cross_attn.k.lora_down.weight": tensor(2, 4)}, str(lora))
    assert dit_file_problem(lora) == f"the Wan DiT is a LoRA file, not a Wan DiT: {lora}"
    diffusers = root / "diffusion_pytorch_model.safetensors"
    save_file({"blocks.0.attn2.to_k.weight": tensor(4, 4)}, str(diffusers))
    assert "is a diffusers-format transformer file; Musubi needs the original layout" in dit_file_problem(
        diffusers
    )
    other = root / "flux.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": tensor(4, 4)}, str(other))
    assert dit_file_problem(other) == (
        f"the Wan DiT has no Wan DiT weights (blocks.0.cross_attn.k.weight is missing): {other}"
    )
    cut = root / "unfinished download.safetensors"
    cut.write_bytes(original.read_bytes()[:-10])
    assert dit_file_problem(cut).startswith(f"the Wan DiT cannot be used: {cut}: truncated")
    pickle = root / "wan.pth"
    pickle.write_bytes(b"\x80\x02 not opened")
    assert dit_file_problem(pickle) == ""  # .pth: its suffix and size only, never unpickled


def test_a_real_diffusers_wan_folder(root):
    from tests.wan_tiny import save_tiny_wan

    folder = save_tiny_wan(root / "Wan tiny")
    assert wan_folder_problem(folder) == ""
    assert field_problem("wan_model_dir", str(folder)) == ""


def test_wan_folder_problems(root):
    assert wan_folder_problem(root) == f"{root} is not a diffusers model folder: model_index.json is missing"
    (root / "model_index.json").write_text("{broken", encoding="utf-8")
    assert "unreadable model_index.json" in wan_folder_problem(root)
    (root / "model_index.json").write_text(
        json.dumps({"_class_name": "FluxKontextPipeline"}), encoding="utf-8"
    )
    assert wan_folder_problem(root) == f"{root} holds a FluxKontextPipeline, not a Wan pipeline"
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}), encoding="utf-8")
    assert wan_folder_problem(root) == f"{root} has no transformer/ folder (an unfinished download?)"
    (root / "transformer").mkdir()
    assert "transformer/config.json is missing" in wan_folder_problem(root)
    (root / "transformer" / "config.json").write_text("{}", encoding="utf-8")
    assert wan_folder_problem(root) == ""
    assert wan_folder_problem(root / "model_index.json").startswith("the Wan diffusers folder is a file")
    assert wan_folder_problem(root / "gone") == f"Wan diffusers folder not found: {root / 'gone'}"


def test_component_folders(root):
    from tests.wan_tiny import save_tiny_wan

    folder = save_tiny_wan(root / "Wan tiny")
    assert field_problem("wan_vae_dir", "") == "" and field_problem("wan_text_encoder_dir", "") == ""
    assert field_problem("wan_vae_dir", str(folder / "vae")) == ""
    assert field_problem("wan_text_encoder_dir", str(folder / "text_encoder")) == ""
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    assert field_problem("wan_vae_dir", str(weights)) == (
        f"the Wan VAE folder is a file; choose the folder that holds config.json and *.safetensors: {weights}"
    )
    gone = root / "gone"
    assert field_problem("wan_text_encoder_dir", str(gone)) == f"Wan text encoder folder not found: {gone}"
    assert (
        field_problem("wan_vae_dir", "vae")
        == "the Wan VAE folder needs a full path (from the drive or /), not vae"
    )
    empty = root / "empty"
    empty.mkdir()
    assert "has no config.json" in component_folder_problem(empty, "Wan VAE folder")
    (empty / "config.json").write_text("{}", encoding="utf-8")
    assert component_folder_problem(empty, "Wan VAE folder") == (
        f"the Wan VAE folder has no weights (*.safetensors): {empty}"
    )
    problems = training_problems(AppSettings(wan_vae_dir=str(empty), wan_text_encoder_dir=str(gone)))
    assert [(p.field, p.absent) for p in problems] == [("wan_vae_dir", False), ("wan_text_encoder_dir", True)]


def test_a_relative_path_is_refused(root, monkeypatch):
    musubi_checkout(root / "musubi tuner")
    monkeypatch.chdir(root)  # it exists from here, but Musubi runs in its checkout folder
    assert field_problem("musubi_tuner_dir", "musubi tuner") == (
        "the Musubi Tuner checkout needs a full path (from the drive or /), not musubi tuner"
    )
    assert field_problem("wan_vae", "models/vae.pth").startswith("the Wan VAE needs a full path")
    assert field_problem("musubi_tuner_dir", str(root / "musubi tuner")) == ""


def test_training_problems_name_the_field_and_say_when_a_path_is_away(root):
    plain = root / "plain"
    plain.mkdir()
    settings = AppSettings(
        musubi_tuner_dir=str(plain),
        wan_dit=str(root / "E drive away" / "wan.safetensors"),
        wan_t5="   ",
    )
    problems = training_problems(settings)
    assert [(p.field, p.absent) for p in problems] == [("musubi_tuner_dir", False), ("wan_dit", True)]
    assert isinstance(problems[0], SettingProblem)
    assert problems[1].text == f"Wan DiT not found: {root / 'E drive away' / 'wan.safetensors'}"
    assert is_absent(str(root / "nothing")) and not is_absent(str(plain)) and not is_absent("")


def test_the_checks_import_neither_qt_nor_torch():
    code = (
        "import sys, difflora_gui.train.settings_checks as c; "
        "c.dit_file_problem(sys.executable); "
        "print(sorted(m for m in ('torch', 'numpy', 'PySide6', 'safetensors') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
