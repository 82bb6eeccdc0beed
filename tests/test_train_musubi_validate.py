"""The Musubi backend's checks before launch, on DiT headers the tests write (no weights)."""

from __future__ import annotations

import importlib.util

import pytest

from difflora_gui.train import memory_fit
from difflora_gui.train.backend import check_run
from difflora_gui.train.musubi.validate import validate_musubi
from plugins.musubi_trainer import difflora_register_trainer_backends
from tests.musubi_helpers import (
    backend_config,
    fake_checkout,
    model_files,
    pair_runs,
    quick_config,
    single_run,
    write_dit_header,
    write_items,
)


@pytest.fixture(autouse=True)
def _a_24_gb_gpu(monkeypatch):
    monkeypatch.setattr(memory_fit, "gpu_memory_gb", lambda device="auto": (24.0, False))


@pytest.fixture
def setup(tmp_path):
    checkout = fake_checkout(tmp_path / "Musubi Tuner ü")
    dataset = write_items(tmp_path / "set ü", ["a", "b"])
    return tmp_path, checkout, dataset


def _issues(tmp_path, checkout, dataset, task="t2v-1.3B", dtype="BF16", config=None, **backend):
    models = model_files(tmp_path / f"models {task}", task, dtype)
    run = single_run(
        tmp_path,
        quick_config(task=task, **(config or {})),
        backend_config(checkout, models, **backend),
        dataset,
    )
    return validate_musubi(run), models


def _texts(issues, level):
    return [issue.text for issue in issues if issue.level == level]


def test_a_complete_setup_passes(setup):
    issues, _models = _issues(*setup, config={"mixed_precision": "bf16"})
    assert issues == []


def test_a_14b_model_in_bf16_warns_that_it_will_not_fit_24_gb(setup):
    issues, _ = _issues(*setup, task="t2v-14B", config={"mixed_precision": "bf16"})
    assert _texts(issues, "error") == []
    (warning,) = _texts(issues, "warning")
    assert "14B model in bf16" in warning and "will not fit 24 GB" in warning and "fp8_base" in warning
    fp8, _ = _issues(*setup, task="t2v-14B", config={"mixed_precision": "bf16"}, fp8_base=True)
    assert fp8 == []
    swapped, _ = _issues(*setup, task="t2v-14B", config={"mixed_precision": "bf16"}, blocks_to_swap=30)
    assert swapped == []


def test_the_dit_must_fit_the_task_size_and_kind(setup):
    tmp_path, checkout, dataset = setup
    models = model_files(tmp_path / "m", "t2v-1.3B")
    run = single_run(tmp_path, quick_config(task="t2v-14B"), backend_config(checkout, models), dataset)
    (error,) = _texts(validate_musubi(run), "error")
    assert "is a 1.3B model but the task t2v-14B needs 14B" in error
    models["dit"] = str(write_dit_header(tmp_path / "t2v14.safetensors", "14B", in_dim=16))
    models["clip"] = str(tmp_path / "m" / "wan_2.1_vae.safetensors")
    run = single_run(tmp_path, quick_config(task="i2v-14B"), backend_config(checkout, models), dataset)
    assert any(
        "t2v model but the task i2v-14B is i2v" in text for text in _texts(validate_musubi(run), "error")
    )


def test_the_precision_must_fit_the_dit_dtype(setup):
    issues, _ = _issues(*setup, dtype="F16", config={"mixed_precision": "bf16"})
    (error,) = _texts(issues, "error")
    assert "float16 weights" in error and "mixed_precision fp16 or no" in error
    fine, _ = _issues(*setup, dtype="F16", config={"mixed_precision": "fp16"})
    assert fine == []
    fp8, _ = _issues(
        *setup, dtype="F8_E4M3", config={"mixed_precision": "bf16"}, fp8_base=True, fp8_scaled=True
    )
    assert any("already fp8" in text for text in _texts(fp8, "error"))


def test_a_comfyui_prefixed_dit_is_read(setup):
    tmp_path, checkout, dataset = setup
    models = model_files(tmp_path / "m", "t2v-1.3B")
    models["dit"] = str(
        write_dit_header(tmp_path / "comfy.safetensors", "1.3B", prefix="model.diffusion_model.")
    )
    run = single_run(tmp_path, quick_config(), backend_config(checkout, models), dataset)
    assert validate_musubi(run) == []


def test_missing_files_and_folders_are_errors(setup):
    tmp_path, checkout, dataset = setup
    models = model_files(tmp_path / "m", "t2v-1.3B")
    backend = backend_config(checkout, {**models, "vae": str(tmp_path / "gone.safetensors"), "t5": ""})
    errors = _texts(validate_musubi(single_run(tmp_path, quick_config(), backend, dataset)), "error")
    assert any("the VAE is not a file" in text for text in errors)
    assert any("set the T5 text encoder (t5)" in text for text in errors)
    not_musubi = backend_config(tmp_path / "somewhere", models)
    errors = _texts(validate_musubi(single_run(tmp_path, quick_config(), not_musubi, dataset)), "error")
    assert any("is not a musubi-tuner checkout" in text for text in errors)
    no_python = backend_config(checkout, models, python=str(tmp_path / "no python"))
    errors = _texts(validate_musubi(single_run(tmp_path, quick_config(), no_python, dataset)), "error")
    assert errors == [f"the Python for Musubi is not a file: {tmp_path / 'no python'}"]


def test_wan22_needs_the_experts_files_and_wan21_i2v_needs_clip(setup):
    tmp_path, checkout, dataset = setup
    models = model_files(tmp_path / "m", "t2v-A14B", "F16")
    del models["dit_high_noise"]
    config = quick_config(task="t2v-A14B", expert_mode="per_expert", mixed_precision="fp16")
    runs = pair_runs(
        tmp_path,
        config,
        backend_config(checkout, models, fp8_base=True),
        dataset,
        write_items(tmp_path / "b", ["a", "b"]),
    )
    high, low = runs[0], runs[1]
    assert any("high-noise DiT (dit_high_noise)" in text for text in _texts(validate_musubi(high), "error"))
    assert _texts(validate_musubi(low), "error") == []
    i2v = model_files(tmp_path / "i2v", "i2v-14B")
    del i2v["clip"]
    run = single_run(
        tmp_path, quick_config(task="i2v-14B"), backend_config(checkout, i2v, fp8_base=True), dataset
    )
    assert any("CLIP image encoder" in text for text in _texts(validate_musubi(run), "error"))


def test_the_python_must_have_what_the_run_needs(setup):
    if importlib.util.find_spec("xformers") is not None:
        pytest.skip("xformers is installed here")
    issues, _ = _issues(*setup, attention="xformers")
    (error,) = _texts(issues, "error")
    assert "cannot import xformers, needed for --xformers" in error


def test_targets_and_settings_musubi_cannot_run_are_refused(setup):
    issues, _ = _issues(*setup, config={"targets": "attn blocks=0-9@0.5"})
    assert any("block weights are a merge setting" in text for text in _texts(issues, "error"))
    issues, _ = _issues(*setup, blocks_to_swap=35)
    assert any("blocks_to_swap is at most 29" in text for text in _texts(issues, "error"))
    issues, _ = _issues(*setup, extra_args=["--seed", "7"])
    assert _texts(issues, "warning") == ["extra_args repeat --seed, which the app sets: the later value wins"]


def test_check_run_refuses_pair_modes_musubi_cannot_train(setup):
    tmp_path, checkout, dataset = setup
    (spec,) = difflora_register_trainer_backends()
    models = model_files(tmp_path / "m")
    b = write_items(tmp_path / "b", ["a", "b"])
    runs = pair_runs(
        tmp_path, quick_config(pair_mode="synchronised"), backend_config(checkout, models), dataset, b
    )
    assert any("cannot train pair mode 'synchronised'" in issue.text for issue in check_run(spec, runs[0]))
    runs = pair_runs(
        tmp_path, quick_config(pair_mode="independent"), backend_config(checkout, models), dataset, b
    )
    assert check_run(spec, runs[0]) == []
