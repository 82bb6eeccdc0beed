"""The built-in trainer with the VAE and text encoder in folders of their own (Settings ▸ Training ▸
Wan VAE folder / Wan text encoder folder): checked before launch, read instead of the model
folder's, and a run trains the same LoRA as one on the complete folder."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from difflora_gui.settings import AppSettings
from difflora_gui.train.backend import backend_values
from difflora_gui.train.builtin import encode
from difflora_gui.train.builtin.job import describe_builtin, validate_builtin
from tests.test_train_builtin_helpers import quick_config, setup_folders, single_run, train


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    folders = setup_folders(tmp_path_factory.mktemp("components"))
    model = folders["model"]
    split = model.parent / "wan without vae and encoder"
    shutil.copytree(model, split)
    parts = model.parent / "shared parts ü"
    shutil.move(split / "vae", parts / "Wan VAE")
    shutil.move(split / "text_encoder", parts / "umt5")
    for file in (split / "tokenizer").iterdir():
        shutil.move(file, parts / "umt5" / file.name)
    (split / "tokenizer").rmdir()
    folders.update(split=split, vae=parts / "Wan VAE", text_encoder=parts / "umt5")
    return folders


def _dirs(folders) -> dict:
    return {"vae_dir": str(folders["vae"]), "text_encoder_dir": str(folders["text_encoder"])}


def _errors(run):
    return [(i.field, i.text) for i in validate_builtin(run) if i.level == "error"]


def test_the_settings_reach_the_backend_and_the_checks(folders):
    from difflora_gui.plugin_host import PluginHost
    from difflora_gui.train.backend import backend_spec

    spec = backend_spec(PluginHost(persist=False).load(), "builtin")
    settings = AppSettings(
        wan_model_dir=str(folders["split"]),
        wan_vae_dir=str(folders["vae"]),
        wan_text_encoder_dir=str(folders["text_encoder"]),
    )
    values = backend_values(spec, {"device": "cpu"}, settings)
    assert (values["model"], values["vae_dir"], values["text_encoder_dir"]) == (
        str(folders["split"]),
        str(folders["vae"]),
        str(folders["text_encoder"]),
    )
    plain = single_run(folders, model=str(folders["split"]))
    texts = [text for _field, text in _errors(plain)]
    assert any("no vae/ folder" in t for t in texts) and any("no text_encoder/ folder" in t for t in texts)
    run = single_run(folders, model=str(folders["split"]), **_dirs(folders))
    assert _errors(run) == []
    plan = describe_builtin(run).plan
    assert (plan["vae"], plan["text_encoder"]) == (str(folders["vae"]), str(folders["text_encoder"]))
    missing = folders["split"].parent / "no such VAE"
    run = single_run(folders, model=str(folders["split"]), **{**_dirs(folders), "vae_dir": str(missing)})
    assert _errors(run) == [
        ("vae_dir", f"{missing}: the Wan VAE folder does not exist (Settings ▸ Training ▸ Wan VAE folder)")
    ]


def test_encodings_from_the_separate_folders_equal_the_folders_own(folders):
    from difflora_gui.train.builtin import data
    from difflora_gui.train.dataset_folder import list_items

    clips = [data.Clip(item, 1, item.stem) for item in list_items(folders["a"])]
    common = {"device": "cpu", "check_cancel": lambda: None}

    def latents(model, **kw):
        return encode.encode_latents(
            model, clips, 32, cache=encode.TensorCache(None), report=lambda *_: None, **common, **kw
        )

    def captions(model, cache=None, **kw):
        return encode.encode_captions(
            model, ["a red car", ""], cache=cache or encode.TensorCache(None), **common, **kw
        )

    own, split = latents(folders["model"]), latents(folders["split"], vae_dir=folders["vae"])
    assert own.keys() == split.keys() and all((own[k] == split[k]).all() for k in own)
    own = captions(folders["model"])
    split = captions(folders["split"], text_encoder_dir=folders["text_encoder"])
    assert all((own[k] == split[k]).all() for k in own)
    # the embedding cache is keyed on the files of the text encoder actually read
    folder = folders["out"] / "cache"
    cache = encode.TensorCache(folder)
    other = folders["model"].parent / "another umt5"
    shutil.copytree(folders["text_encoder"], other)
    captions(folders["split"], cache, text_encoder_dir=other)
    written = set(folder.iterdir())
    assert len(written) == 2
    captions(folders["split"], cache, text_encoder_dir=other)
    assert set(folder.iterdir()) == written  # read back, not encoded again
    os.utime(other / "model.safetensors", ns=(9, 9))  # other weights: other keys
    captions(folders["split"], cache, text_encoder_dir=other)
    assert len(set(folder.iterdir())) == 4


def test_a_run_on_separate_folders_trains_the_same_lora(folders):
    config = quick_config(max_train_steps=4)
    whole = train(single_run(folders, config, name="whole"))
    split = train(single_run(folders, config, name="split", model=str(folders["split"]), **_dirs(folders)))
    assert whole.status == split.status == "done"
    from safetensors.torch import load_file

    a = load_file(folders["out"] / "whole.safetensors")
    b = load_file(folders["out"] / "split.safetensors")
    assert a and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
