"""The built-in backend as the app sees it: the plugin spec, the checks before launch, the dry-run plan."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from difflora_gui.errors import UserError
from difflora_gui.settings import AppSettings
from difflora_gui.train.backend import backend_values, check_run, describe_run
from difflora_gui.train.builtin import optimizers, state
from difflora_gui.train.builtin.job import describe_builtin, validate_builtin
from difflora_gui.train.builtin.settings import resolve_precision
from tests.test_train_builtin_helpers import pair_runs, quick_config, setup_folders, single_run


@pytest.fixture(scope="module")
def spec():
    from difflora_gui.plugin_host import PluginHost
    from difflora_gui.train.backend import backend_spec

    return backend_spec(PluginHost(persist=False).load(), "builtin")


@pytest.fixture
def folders(tmp_path):
    return setup_folders(tmp_path, pair=True)


def _errors(issues):
    return [issue for issue in issues if issue.level == "error"]


def test_the_plugin_registers_the_backend_and_stays_import_light(spec):
    assert spec.title == "Built-in (diffusers + PEFT)"
    assert spec.pair_modes == ("synchronised", "independent", "slider") and spec.resumable
    assert [p.name for p in spec.params.params] == [
        "model",
        "vae_dir",
        "text_encoder_dir",
        "device",
        "dtype",
        "latent_cache",
        "num_threads",
    ]
    values = backend_values(spec, {"device": "cpu"}, AppSettings(wan_model_dir="/models/wan 1.3B"))
    assert values["model"] == "/models/wan 1.3B" and values["device"] == "cpu"
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import builtin_trainer; "
        "builtin_trainer.difflora_register_trainer_backends(); "
        "print(sorted(m for m in ('torch', 'numpy', 'diffusers', 'PySide6', 'safetensors') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_good_run_passes_every_check_and_its_plan_says_what_it_will_do(spec, folders):
    a_run, b_run = pair_runs(folders, quick_config(save_every_n_steps=10))
    assert _errors(check_run(spec, a_run)) == []
    plan = describe_run(spec, b_run).plan
    assert plan["precision"] == {"device": "cpu", "weight_dtype": "float32", "autocast": None}
    assert plan["items"] == 4 and plan["target_modules"] == 20 and plan["transformer"] == "transformer"
    assert plan["save_steps"] == [10, 20] and plan["noise_stream"] == "shared by A and B"
    assert plan["output"].endswith("pair_B.safetensors")
    json.dumps(plan)  # the CLI prints it as JSON


def test_problems_are_found_before_launch_and_name_their_field(folders):
    def problems(run):
        return {(issue.field, issue.text) for issue in _errors(validate_builtin(run))}

    missing = single_run(folders, model=str(folders["model"].parent / "nowhere"))
    assert any(f == "model" and "does not exist" in t for f, t in problems(missing))
    no_index = folders["model"].parent / "loose files"
    no_index.mkdir()
    assert any("model_index.json" in t for _, t in problems(single_run(folders, model=str(no_index))))
    broken = folders["model"].parent / "no vae"
    shutil.copytree(folders["model"], broken)
    shutil.rmtree(broken / "vae")
    assert any("no vae/" in t for _, t in problems(single_run(folders, model=str(broken))))
    from difflora_gui.train.plan import plan_single

    (high, low) = plan_single(
        quick_config(task="t2v-A14B"),
        folders["a"],
        folders["out"],
        "x",
        backend="builtin",
        backend_config={"model": str(folders["model"]), "device": "cpu"},
    )
    assert any("transformer_2" in t for _, t in problems(low))

    assert any(
        f == "targets" and "selects nothing" in t
        for f, t in problems(single_run(folders, quick_config(targets="ffn blocks=5")))
    )
    assert any(f == "resolution" for f, _ in problems(single_run(folders, quick_config(resolution="wide"))))
    assert any(
        f == "target_frames" for f, _ in problems(single_run(folders, quick_config(target_frames=[1, 8])))
    )
    assert any(
        f == "optimizer_args" for f, _ in problems(single_run(folders, quick_config(optimizer_args=["oops"])))
    )
    import torch

    if not torch.cuda.is_available():
        assert any(f == "device" and "CUDA" in t for f, t in problems(single_run(folders, device="cuda:0")))
    if importlib.util.find_spec("bitsandbytes") is None:
        text = {
            t
            for f, t in problems(single_run(folders, quick_config(optimizer="adamw8bit")))
            if f == "optimizer"
        }
        assert text == {"the adamw8bit optimizer needs the bitsandbytes package: pip install bitsandbytes"}


def test_a_run_that_cannot_start_fails_with_one_line_and_writes_nothing(folders):
    from difflora_gui.jobs.recording import run_sync

    before = sorted(folders["out"].iterdir())
    run = single_run(folders, model=str(folders["model"].parent / "nowhere"))
    outcome = run_sync("difflora_gui.train.builtin.job:run_builtin", run.to_json())  # a dict works too
    assert outcome.status == "failed" and isinstance(outcome.error, UserError)
    assert "\n" not in str(outcome.error) and sorted(folders["out"].iterdir()) == before


def test_optimizer_arguments_and_precision():
    assert optimizers.parse_optimizer_args(["weight_decay=0.01", "betas=(0.9, 0.99)", "mode=fast"]) == {
        "weight_decay": 0.01,
        "betas": (0.9, 0.99),
        "mode": "fast",
    }
    with pytest.raises(UserError):
        optimizers.parse_optimizer_args(["no equals sign"])
    assert resolve_precision("cuda:0", "auto", "bf16").to_json() == {
        "device": "cuda:0",
        "weight_dtype": "bfloat16",
        "autocast": "bfloat16",
    }
    assert resolve_precision("cpu", "auto", "bf16").autocast is None
    assert resolve_precision("cpu", "bfloat16", "no").to_json() == {
        "device": "cpu",
        "weight_dtype": "float32",
        "autocast": "bfloat16",
    }


def test_a_folder_that_is_no_state_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a built-in trainer state"):
        state.load_state(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(UserError, match="not a built-in trainer state"):
        state.load_state(tmp_path)


def test_describe_works_without_a_model(folders):
    run = single_run(folders, model=str(folders["model"].parent / "nowhere"))
    plan = describe_builtin(run).plan
    assert plan["items"] == 4 and "target_modules" not in plan


def test_a_14b_model_in_bf16_is_flagged_for_a_24_gb_card_and_1_3b_is_not(folders):
    from difflora_gui.train.builtin.job import _memory_issues
    from difflora_gui.train.builtin.settings import Precision

    gpu = Precision("cuda:0", "bfloat16", "bfloat16")
    big = _memory_issues(single_run(folders, quick_config(task="t2v-14B", resolution="336x192")), gpu)
    if torch_gpu_gb() is None:  # no GPU here: memory_fit assumes the common 24 GB card
        assert [i.level for i in big] == ["warning"] and "14B model in bf16" in big[0].text
        assert "Musubi" in big[0].text
    assert _memory_issues(single_run(folders, quick_config(task="t2v-1.3B", resolution="336x192")), gpu) == []


def torch_gpu_gb():
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 1024**3 if torch.cuda.is_available() else None


def test_stop_and_keep_before_the_first_step_says_there_is_nothing_to_keep(folders):
    from difflora_gui.jobs.recording import RecordingContext, run_sync

    ctx = RecordingContext()
    ctx.cancel(keep=True)
    outcome = run_sync("difflora_gui.train.builtin.job:run_builtin", single_run(folders), ctx)
    assert outcome.status == "cancelled"
    assert any("nothing to keep" in line for line in ctx.logs)
    assert [p.name for p in folders["out"].iterdir()] == [".builtin-cache"]


def test_a_wan22_folder_trained_as_wan21_is_warned_about(tmp_path, folders):
    assert not [
        i for i in validate_builtin(single_run(folders)) if i.level == "warning"
    ]  # index: [null, null]
    two = setup_folders(tmp_path / "two", two_experts=True)
    warnings = [i for i in validate_builtin(single_run(two)) if i.level == "warning"]
    assert any("Wan2.2 A14B folder" in w.text and w.field == "task" for w in warnings)


def test_a_14b_folder_with_a_1_3b_task_is_warned_about(folders):
    config_path = folders["model"] / "transformer" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(num_layers=40, num_attention_heads=40, attention_head_dim=128, ffn_dim=13824)
    config_path.write_text(json.dumps(config), encoding="utf-8")  # the check reads only the config
    issues = validate_builtin(single_run(folders, quick_config(task="t2v-1.3B")))
    assert any("Wan 14B transformer" in i.text for i in issues if i.level == "warning")
    assert not any(
        "Wan 14B transformer" in i.text
        for i in validate_builtin(single_run(folders, quick_config(task="t2v-14B")))
    )


def test_pairs_whose_a_and_b_fall_in_different_buckets_are_warned_about(folders):
    from tests.wan_tiny import write_images

    assert not [i for i in validate_builtin(pair_runs(folders, quick_config())[0]) if "bucket" in i.text]
    write_images(folders["b"], ["p1"], size=(128, 32), seed=3)  # B p1 is 4:1 (bucket 64x16), A p1 square
    (a_run, _b_run) = pair_runs(folders, quick_config(), name="wide")
    warnings = [i for i in validate_builtin(a_run) if "bucket" in i.text]
    assert len(warnings) == 1 and "p1" in warnings[0].text and warnings[0].level == "warning"
    independent = pair_runs(folders, quick_config(pair_mode="independent"), name="ind")[0]
    assert not [i for i in validate_builtin(independent) if "bucket" in i.text]
