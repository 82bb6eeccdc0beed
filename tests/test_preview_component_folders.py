"""The preview's VAE and text encoder from folders of their own, and VAE slicing.

A tiny diffusers Wan folder is split: its vae/ and text_encoder/ (with or without the tokenizer)
moved to other folders, set as ``vae_dir`` / ``text_encoder_dir``; the render must be the one of
the complete folder, pixel for pixel.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from preview_resident_helpers import entry, render
from wan_tiny import save_tiny_wan

from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview.model_files import ModelSettings, check_model, model_problems, used_files
from difflora_gui.preview.resident import get_resident, release_resident
from difflora_gui.settings import AppSettings


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The complete folder, a copy without vae/ and text_encoder/ (tokenizer moved too), and a
    copy whose tokenizer stayed in the model folder."""
    base = tmp_path_factory.mktemp("components")
    whole = save_tiny_wan(base / "wan")
    parts = base / "shared models"
    shutil.copytree(whole, base / "wan_split")
    shutil.move(base / "wan_split" / "vae", parts / "Wan VAE")
    shutil.move(base / "wan_split" / "text_encoder", parts / "umt5 encoder")
    for file in (base / "wan_split" / "tokenizer").iterdir():
        shutil.move(file, parts / "umt5 encoder" / file.name)
    (base / "wan_split" / "tokenizer").rmdir()
    shutil.copytree(whole, base / "wan_keeps_tokenizer")
    shutil.rmtree(base / "wan_keeps_tokenizer" / "text_encoder")
    shutil.copytree(whole / "text_encoder", parts / "bare encoder")
    make_wan_lora("tiny", path=base / "a.safetensors", up_std=0.5, seed=1)
    yield base
    release_resident()


def _options(folder, **kw) -> ModelSettings:
    return ModelSettings(model_dir=str(folder), dtype="fp32", **kw)


def test_a_split_model_renders_exactly_like_the_complete_folder(split):
    lora = entry(split / "a.safetensors", 1.0)
    whole = render(get_resident(_options(split / "wan")), lora)
    parts = split / "shared models"
    options = _options(
        split / "wan_split", vae_dir=str(parts / "Wan VAE"), text_encoder_dir=str(parts / "umt5 encoder")
    )
    assert model_problems(options) == []
    resident = get_resident(options)
    assert np.array_equal(render(resident, lora), whole)
    assert resident.pipe.vae.dtype.is_floating_point and str(resident.pipe.vae.dtype) == "torch.float32"
    # the tokenizer may also stay in the model folder's tokenizer/
    kept = _options(split / "wan_keeps_tokenizer", text_encoder_dir=str(parts / "bare encoder"))
    assert model_problems(kept) == []
    assert np.array_equal(render(get_resident(kept), lora), whole)
    release_resident()


def test_a_missing_or_empty_component_folder_is_named_in_one_line(split, tmp_path):
    folder = split / "wan_split"
    # without the folders set, the split model lacks its own vae/ and text_encoder/
    problems = model_problems(_options(folder))
    assert f"{folder}: no vae/ folder" in problems and f"{folder}: no text_encoder/ folder" in problems
    missing = tmp_path / "not here"
    problems = model_problems(
        _options(folder, vae_dir=str(missing), text_encoder_dir=str(split / "shared models" / "umt5 encoder"))
    )
    assert problems == [
        f"{missing}: the Wan VAE folder does not exist (Settings ▸ Training ▸ Wan VAE folder)"
    ]
    empty = tmp_path / "encoder without weights"
    empty.mkdir()
    shutil.copy(split / "wan" / "text_encoder" / "config.json", empty / "config.json")
    problems = model_problems(
        _options(split / "wan", vae_dir=str(split / "shared models" / "Wan VAE"), text_encoder_dir=str(empty))
    )
    assert problems == [f"{empty}: the Wan text encoder folder has no weights (*.safetensors)"]
    with pytest.raises(Exception, match="has no weights"):
        check_model(_options(split / "wan", text_encoder_dir=str(empty)))
    # an encoder folder without a tokenizer, and a model folder without tokenizer/
    bare = tmp_path / "bare"
    shutil.copytree(split / "wan" / "text_encoder", bare)
    problems = model_problems(
        _options(folder, vae_dir=str(split / "shared models" / "Wan VAE"), text_encoder_dir=str(bare))
    )
    assert len(problems) == 1 and "no tokenizer/ folder" in problems[0] and str(bare) in problems[0]


def test_the_fingerprint_follows_the_files_actually_read(tmp_path):
    whole = save_tiny_wan(tmp_path / "wan")
    vae = tmp_path / "vae elsewhere"
    shutil.copytree(whole / "vae", vae)
    options = _options(whole, vae_dir=str(vae))
    files = set(used_files(options))
    assert vae / "config.json" in files and whole / "vae" / "config.json" not in files
    first = options.fingerprint()
    assert first != _options(whole).fingerprint()
    os.utime(whole / "vae" / "config.json", ns=(5, 5))  # not read: the key stays
    assert options.fingerprint() == first
    os.utime(vae / "diffusion_pytorch_model.safetensors", ns=(7, 7))
    assert options.fingerprint() != first
    # slicing splits a batch of clips and a render decodes one: the pixels, and so the key, stay
    assert _options(whole, vae_dir=str(vae), vae_slicing=True).fingerprint() == options.fingerprint()


def test_settings_reach_the_options_and_slicing_reaches_the_vae(split):
    parts = split / "shared models"
    app = AppSettings(
        wan_model_dir=str(split / "wan_split"),
        wan_vae_dir=str(parts / "Wan VAE"),
        wan_text_encoder_dir=str(parts / "umt5 encoder"),
        preview_dtype="fp32",
        preview_vae_slicing=True,
    )
    options = ModelSettings.from_settings(app)
    assert (options.vae_dir, options.text_encoder_dir, options.vae_slicing) == (
        str(parts / "Wan VAE"),
        str(parts / "umt5 encoder"),
        True,
    )
    assert ModelSettings.from_json(options.to_json()) == options
    resident = get_resident(options)
    assert resident.pipe.vae.use_slicing and not resident.pipe.vae.use_tiling
    lora = entry(split / "a.safetensors", 1.0)
    sliced = render(resident, lora)
    plain = get_resident(_options(split / "wan"))
    assert not plain.pipe.vae.use_slicing
    assert np.array_equal(render(plain, lora), sliced)  # one clip: slicing changes no pixel
    release_resident()
