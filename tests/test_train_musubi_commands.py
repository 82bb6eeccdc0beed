"""The Musubi backend's commands and dataset TOMLs, compared with expected literal lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import parse_selector
from difflora_gui.train.musubi import commands
from difflora_gui.train.musubi.describe import describe_musubi
from difflora_gui.train.musubi.settings import settings_defaults
from difflora_gui.train.musubi.staging import dataset_toml, stage
from difflora_gui.train.musubi.targets import musubi_modules, network_targets
from difflora_gui.train.plan import TrainRun
from difflora_gui.train.presets import preset_values
from tests.musubi_helpers import pair_runs, quick_config, single_run, write_items


@pytest.fixture
def setup(tmp_path):
    a = write_items(tmp_path / "Set A ü", ["one", "two"])
    b = write_items(tmp_path / "Set B ü", ["one", "two", "three"])
    models = tmp_path / "Models ü"
    backend = {
        "musubi_dir": str(tmp_path / "Musubi Tuner ü"),
        "python": str(tmp_path / "venv ü" / "python"),
        "dit": str(models / "low noise.safetensors"),
        "dit_high_noise": str(models / "high noise.safetensors"),
        "vae": str(models / "wan vae.safetensors"),
        "t5": str(models / "umt5 xxl.pth"),
        "attention": "sdpa",
        "max_data_loader_n_workers": 2,
    }
    return tmp_path, a, b, backend


def _config(name, **values):
    return {**preset_values(name), "pair_mode": "independent", **values}


def test_model_card_pair_commands(setup):
    tmp_path, a, b, backend = setup
    run_a, run_b = pair_runs(tmp_path, _config("model-card"), backend, a, b)
    out = tmp_path / "out put ü"
    py, scripts = backend["python"], f"{backend['musubi_dir']}/src/musubi_tuner"
    toml = str(out / ".musubi" / "diff_A" / "dataset.toml")
    assert commands.commands(run_a) == [
        [py, f"{scripts}/wan_cache_latents.py", "--dataset_config", toml, "--vae", backend["vae"], "--skip_existing"],
        [
            py,
            f"{scripts}/wan_cache_text_encoder_outputs.py",
            "--dataset_config",
            toml,
            "--t5",
            backend["t5"],
            "--batch_size",
            "16",
            "--skip_existing",
        ],
        [
            py,
            f"{scripts}/wan_train_network.py",
            "--task", "t2v-14B",
            "--dit", backend["dit"],
            "--dataset_config", toml,
            "--sdpa",
            "--mixed_precision", "bf16",
            "--gradient_checkpointing",
            "--max_data_loader_n_workers", "2",
            "--persistent_data_loader_workers",
            "--network_module", "networks.lora_wan",
            "--network_dim", "16",
            "--network_alpha", "16.0",
            "--optimizer_type", "lion_pytorch.Lion",
            "--learning_rate", "2e-05",
            "--lr_scheduler", "constant_with_warmup",
            "--lr_warmup_steps", "50",
            "--max_grad_norm", "1.0",
            "--timestep_sampling", "shift",
            "--discrete_flow_shift", "3.0",
            "--max_train_steps", "5000",
            "--save_every_n_steps", "500",
            "--save_state",
            "--seed", "42",
            "--output_dir", str(out),
            "--output_name", "diff_A",
        ],
    ]  # fmt: skip
    # B differs only in its own folders and name
    a_train, b_train = commands.train_command(run_a), commands.train_command(run_b)
    differ = [(x, y) for x, y in zip(a_train, b_train, strict=True) if x != y]
    assert differ == [(toml, str(out / ".musubi" / "diff_B" / "dataset.toml")), ("diff_A", "diff_B")]


def test_model_card_dataset_toml_trains_the_matched_pairs_only(setup):
    tmp_path, a, b, backend = setup
    _run_a, run_b = pair_runs(tmp_path, _config("model-card"), backend, a, b)
    work = tmp_path / "out put ü" / ".musubi" / "diff_B"
    text = dataset_toml(run_b)
    assert text.splitlines()[3:] == [
        "[general]",
        "resolution = [336, 192]",
        "caption_extension = '.txt'",
        "batch_size = 1",
        "num_repeats = 1",
        "enable_bucket = true",
        "bucket_no_upscale = false",
        "",
        "[[datasets]]",
        f"image_directory = '{work / 'data' / 'images'}'",
        f"cache_directory = '{work / 'cache' / 'images'}'",
    ]
    staged = stage(run_b)
    assert staged.counts == {"image": 2}  # "three" has no partner in A
    assert sorted(p.name for p in (work / "data" / "images").iterdir()) == [
        "one.png",
        "one.txt",
        "two.png",
        "two.txt",
    ]
    assert (work / "data" / "images" / "one.txt").read_text(encoding="utf-8") == ""  # empty captions
    assert tomllib.loads(staged.toml.read_text(encoding="utf-8"))["general"]["resolution"] == [336, 192]
    assert sorted(p.name for p in b.iterdir()) == ["one.png", "three.png", "two.png"]  # input untouched


def test_images_and_videos_are_separate_datasets(setup):
    tmp_path, a, _b, backend = setup
    write_items(a, ["clip"], suffix=".MP4")
    run = single_run(tmp_path, quick_config(target_frames=[1, 25]), backend, a)
    data = tomllib.loads(dataset_toml(run))
    assert [sorted(d) for d in data["datasets"]] == [
        ["cache_directory", "image_directory"],
        ["cache_directory", "frame_extraction", "target_frames", "video_directory"],
    ]
    assert data["datasets"][1]["target_frames"] == [1, 25]
    stage(run)
    assert (Path(data["datasets"][1]["video_directory"]) / "clip.mp4").is_file()  # lower-case suffix


def test_wan22_per_expert_commands(setup):
    tmp_path, a, b, backend = setup
    runs = pair_runs(tmp_path, _config("wan22-a14b-per-expert", mixed_precision="fp16"), backend, a, b)
    assert [r.name for r in runs] == [
        "diff_A_high_noise",
        "diff_A_low_noise",
        "diff_B_high_noise",
        "diff_B_low_noise",
    ]
    out = tmp_path / "out put ü"
    high = commands.train_command(runs[0])
    assert high[2:8] == ["--task", "t2v-A14B", "--dit", backend["dit_high_noise"], "--dataset_config",
                         str(out / ".musubi" / "diff_A_high_noise" / "dataset.toml")]  # fmt: skip
    assert "--dit_high_noise" not in high and "--timestep_boundary" not in high
    assert high[high.index("--timestep_sampling") :] == [
        "--timestep_sampling", "shift",
        "--discrete_flow_shift", "3.0",
        "--min_timestep", "875",
        "--max_timestep", "1000",
        "--preserve_distribution_shape",
        "--max_train_steps", "5000",
        "--save_every_n_steps", "500",
        "--save_state",
        "--seed", "42",
        "--output_dir", str(out),
        "--output_name", "diff_A_high_noise",
    ]  # fmt: skip
    low = commands.train_command(runs[3])
    assert low[low.index("--dit") + 1] == backend["dit"]
    assert low[low.index("--min_timestep") : low.index("--preserve_distribution_shape") + 1] == [
        "--min_timestep", "0", "--max_timestep", "875", "--preserve_distribution_shape"
    ]  # fmt: skip
    assert "--mixed_precision" in low and low[low.index("--mixed_precision") + 1] == "fp16"


def test_joint_mode_passes_both_experts_and_an_integer_boundary(setup):
    tmp_path, a, b, backend = setup
    config = _config("wan22-a14b-joint", task="i2v-A14B", mixed_precision="fp16")
    run_a, _run_b = pair_runs(tmp_path, config, {**backend, "offload_inactive_dit": True}, a, b)
    assert run_a.name == "diff_A" and run_a.expert is None
    train = commands.train_command(run_a)
    assert train[2:11] == [
        "--task", "i2v-A14B",
        "--dit", backend["dit"],
        "--dit_high_noise", backend["dit_high_noise"],
        "--timestep_boundary", "900",
        "--offload_inactive_dit",
    ]  # fmt: skip
    assert "--min_timestep" not in train
    assert "--i2v" in commands.cache_latents_command(run_a)
    assert "--clip" not in commands.cache_latents_command(run_a)  # Wan2.2 I2V has no CLIP


def test_wan21_i2v_caches_with_clip(setup):
    tmp_path, a, _b, backend = setup
    run = single_run(tmp_path, quick_config(task="i2v-14B"), {**backend, "clip": "C:/models ü/clip.pth"}, a)
    latents = commands.cache_latents_command(run)
    assert latents[latents.index("--i2v") :] == ["--i2v", "--clip", "C:/models ü/clip.pth", "--skip_existing"]
    train = commands.train_command(run)
    assert train[train.index("--clip") + 1] == "C:/models ü/clip.pth"


def test_resume_shortens_the_steps_and_writes_into_its_own_folder(setup):
    tmp_path, a, _b, backend = setup
    run = single_run(tmp_path, quick_config(max_train_steps=30, save_every_n_steps=10), backend, a)
    state = tmp_path / "out put ü" / "diff-step00000010-state"
    resumed = TrainRun.from_json({**run.to_json(), "resume": str(state)})  # steps_done read from the name
    train = commands.train_command(resumed)
    folder = tmp_path / "out put ü" / ".musubi" / "diff" / "resume-from-step00000010"
    assert train[train.index("--max_train_steps") :] == [
        "--max_train_steps", "20",
        "--save_every_n_steps", "10",
        "--save_state",
        "--seed", "42",
        "--output_dir", str(folder),
        "--output_name", "diff",
        "--resume", str(state),
    ]  # fmt: skip
    assert describe_musubi(resumed).plan["resumed_at_step"] == 10
    done = TrainRun.from_json({**run.to_json(), "resume": str(state), "steps_done": 30})
    with pytest.raises(UserError, match="already at step 30"):
        commands.train_command(done)


def test_optimizers_schedules_and_memory_flags(setup):
    tmp_path, a, _b, backend = setup
    names = {}
    for optimizer in ("adamw", "adamw8bit", "lion", "prodigy", "adafactor"):
        run = single_run(tmp_path, quick_config(optimizer=optimizer), backend, a)
        train = commands.train_command(run)
        names[optimizer] = train[train.index("--optimizer_type") + 1]
        assert "--lr_warmup_steps" not in train  # constant: Musubi raises on a warm-up
    assert names == {
        "adamw": "AdamW",
        "adamw8bit": "AdamW8bit",
        "lion": "lion_pytorch.Lion",
        "prodigy": "prodigyopt.Prodigy",
        "adafactor": "Adafactor",
    }
    memory = {
        **backend,
        "fp8_scaled": True,
        "blocks_to_swap": 10,
        "attention": "flash_attn",
        "multi_gpu": True,
    }
    run = single_run(tmp_path, quick_config(optimizer_args=["weight_decay=0.01"]), memory, a)
    train = commands.train_command(run)
    assert train[:12] == [
        backend["python"], "-m", "accelerate.commands.launch",
        "--num_cpu_threads_per_process", "1",
        "--mixed_precision", "no",
        "--multi_gpu",
        "--num_processes", "2",
        f"{backend['musubi_dir']}/src/musubi_tuner/wan_train_network.py",
        "--task",
    ]  # fmt: skip
    assert "--flash_attn" in train and "--sdpa" not in train
    assert train[train.index("--fp8_base") : train.index("--fp8_base") + 4] == [
        "--fp8_base", "--fp8_scaled", "--blocks_to_swap", "10"
    ]  # fmt: skip
    assert train[train.index("--optimizer_args") + 1] == "weight_decay=0.01"
    bad = single_run(tmp_path, quick_config(optimizer_args=["betas=(0.9, 0.99)=x"]), backend, a)
    with pytest.raises(UserError, match="exactly one '='"):
        commands.train_command(bad)


def test_command_env_and_device(setup):
    tmp_path, a, _b, backend = setup
    run = single_run(tmp_path, quick_config(), backend, a)
    run.device = "cuda:1"
    assert commands.command_env(run) == {
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": "1",
    }
    description = describe_musubi(run)
    assert description.commands == commands.commands(run) and description.cwd == backend["musubi_dir"]
    assert list(description.files) == [str(tmp_path / "out put ü" / ".musubi" / "diff" / "dataset.toml")]
    assert not (tmp_path / "out put ü").exists()  # describing writes nothing


@pytest.mark.parametrize(
    "targets",
    [
        "attn",
        "self_attn",
        "ffn blocks=0-9",
        "attn 0-10,20,25-29",
        r"self_attn include=\.(q|k)$",
        "all exclude=k_img|v_img",
        r"attn blocks=0-19 exclude=cross_attn\.o",
        "cross_attn include=img",
    ],
)
@pytest.mark.parametrize("task", ["t2v-1.3B", "i2v-14B"])
def test_targets_become_patterns_that_fullmatch_exactly_the_selected_modules(task, targets):
    try:
        result = network_targets(task, targets)
    except UserError:
        assert task == "t2v-1.3B" and "img" in targets  # no image cross-attention without CLIP
        return
    selector = parse_selector(targets)
    expected = [m for m in musubi_modules(task) if selector.matches(m)]
    if not result.network_args:
        assert expected == musubi_modules(task)
        return
    exclude, include = result.network_args
    assert exclude == "exclude_patterns=[r'.*']"
    patterns = [re.compile(p) for p in eval(include.split("=", 1)[1])]  # noqa: S307 - our own literal
    trained = [m for m in musubi_modules(task) if any(p.fullmatch(m) for p in patterns)]
    assert trained == expected == list(result.modules)
    assert "=" not in include.split("=", 1)[1]  # Musubi splits each network arg on "="


def test_all_needs_no_patterns_and_inexpressible_selectors_are_refused():
    assert network_targets("t2v-14B", "all").network_args == ()
    assert len(network_targets("t2v-14B", "all").modules) == 400
    with pytest.raises(UserError, match="block weights"):
        network_targets("t2v-14B", "attn blocks=0-9@0.5")
    with pytest.raises(UserError, match="none of the layers"):
        network_targets("t2v-14B", "other")
    with pytest.raises(UserError, match="has 30 blocks"):
        network_targets("t2v-1.3B", "attn blocks=35-39")
    mixed = network_targets("t2v-14B", "ffn,other")
    assert "head.head" in mixed.not_trainable and len(mixed.modules) == 80


def test_settings_defaults_come_from_app_settings():
    from difflora_gui.settings import AppSettings

    settings = AppSettings(
        musubi_tuner_dir="D:/musubi ü", musubi_python="", wan_dit="D:/dit.safetensors", wan_t5="t5"
    )
    assert settings_defaults(settings) == {
        "musubi_dir": "D:/musubi ü",
        "dit": "D:/dit.safetensors",
        "t5": "t5",
    }


def test_the_plugin_registers_the_backend():
    from plugins.musubi_trainer import difflora_register_trainer_backends

    (spec,) = difflora_register_trainer_backends()
    assert spec.name == "musubi" and spec.pair_modes == ("independent",)
    assert spec.run == "difflora_gui.train.musubi.job:run_musubi"
    assert {"musubi_dir", "python", "dit", "dit_high_noise", "vae", "t5", "clip", "extra_args"} <= set(
        spec.params.defaults()
    )
