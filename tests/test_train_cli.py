"""``python main.py train``: dry runs (text and JSON), config files, backend flags, bad input,
a real pair run with its merge command, and Ctrl+C then resume — all as real subprocesses."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difflora_gui.settings import AppSettings
from tests.app_process import ROOT, run_main
from tests.train_helpers import BACKEND, CMD_BACKEND, install_test_backends, make_pair_folders


@pytest.fixture
def data(tmp_path, _isolated_user_dirs):
    install_test_backends(_isolated_user_dirs / "data")
    a_dir, b_dir = make_pair_folders(tmp_path / "daten ö")
    return a_dir, b_dir, tmp_path / "out put"


def pair_args(data, backend=BACKEND, *extra):
    a_dir, b_dir, out = data
    return ["train", "pair", "--backend", backend, "--preset", "quick-test", "--a", a_dir, "--b", b_dir,
            "--output", out, "--device", "cpu", *extra]  # fmt: skip


def one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- dry runs ------------------------------------------------------------------------------------


def test_dry_run_prints_the_exact_commands_as_copyable_lines(data):
    result = run_main(*pair_args(data, CMD_BACKEND, "--dry-run"))
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line and not line.startswith(("#", "cd "))]
    assert len(commands) == 4  # caching and training, for A and for B
    listed = json.loads(run_main(*pair_args(data, CMD_BACKEND, "--dry-run", "--json")).stdout)
    assert [shlex.split(line) for line in commands] == listed  # quoted lines give the argv back
    assert listed[0][-1] == str(data[0]) and listed[2][-1] == str(data[1])  # folders with spaces
    assert "# writes " in result.stdout and "[[datasets]]" in result.stdout
    assert f"cd {shlex.quote(str(ROOT))}" in result.stdout
    assert not data[2].exists()  # nothing was run or written


def test_dry_run_json_of_wan22_per_expert_lists_every_command_of_the_four_runs(data):
    result = run_main(*pair_args(data, CMD_BACKEND, "--dry-run", "--json", "--task", "t2v-A14B"))
    assert result.returncode == 0, result.stderr
    commands = json.loads(result.stdout)
    assert len(commands) == 8 and all(
        isinstance(c, list) and all(isinstance(a, str) for a in c) for c in commands
    )
    trained = [c[c.index("--name") + 1] for c in commands if "--name" in c]
    assert trained == [
        "daten ö_A_high_noise",
        "daten ö_A_low_noise",
        "daten ö_B_high_noise",
        "daten ö_B_low_noise",
    ]


def test_dry_run_of_an_in_process_backend_prints_its_plans(data):
    result = run_main(*pair_args(data, BACKEND, "--dry-run", "--json", "--name", "x"))
    assert result.returncode == 0, result.stderr
    plans = json.loads(result.stdout)
    assert [(p["name"], p["side"], p["device"], p["steps"]) for p in plans] == [
        ("x_A", "a", "cpu", [0, 30]),
        ("x_B", "b", "cpu", [0, 30]),
    ]
    text = run_main(*pair_args(data, BACKEND, "--dry-run", "--name", "x")).stdout
    assert "trains in-process; its plan:" in text and '"name": "x_B"' in text


def test_config_file_toml_and_json_with_backend_table_and_flags_on_top(data, tmp_path):
    toml = tmp_path / "cfg ü.toml"
    toml.write_text(
        "learning_rate = 0.005\nnetwork_dim = 8\n[backend]\nstep_delay_s = 0.5\n", encoding="utf-8"
    )
    result = run_main(*pair_args(data, BACKEND, "--config", toml, "--dry-run", "--json"))
    plan = json.loads(result.stdout)[0]
    assert plan["learning_rate"] == 0.005 and plan["backend_config"]["step_delay_s"] == 0.5
    flags = ["--learning_rate", "0.01", "--backend-param", "step_delay_s=0.25", "--dry-run", "--json"]
    plan = json.loads(run_main(*pair_args(data, BACKEND, "--config", toml, *flags)).stdout)[0]
    assert plan["learning_rate"] == 0.01 and plan["backend_config"]["step_delay_s"] == 0.25
    js = tmp_path / "cfg.json"
    js.write_text(json.dumps({"learning_rate": 0.003}), encoding="utf-8")
    plan = json.loads(run_main(*pair_args(data, BACKEND, "--config", js, "--dry-run", "--json")).stdout)[0]
    assert plan["learning_rate"] == 0.003


def test_settings_give_model_paths_and_flags_override_them(data, tmp_path):
    model, other = tmp_path / "model dir", tmp_path / "other model"
    model.mkdir()
    other.mkdir()
    settings = AppSettings.load()
    settings.wan_model_dir = str(model)
    settings.save()
    plan = json.loads(run_main(*pair_args(data, BACKEND, "--dry-run", "--json")).stdout)[0]
    assert plan["backend_config"]["model"] == str(model)
    plan = json.loads(run_main(*pair_args(data, BACKEND, "--model", other, "--dry-run", "--json")).stdout)[0]
    assert plan["backend_config"]["model"] == str(other)


def test_dry_run_reports_what_would_stop_the_run(data, tmp_path):
    result = run_main(*pair_args(data, BACKEND, "--model", tmp_path / "missing", "--dry-run"))
    assert result.returncode == 2
    assert "error: daten ö_A, daten ö_B: model not found" in result.stderr  # once for both
    assert '"name": "daten ö_A"' in result.stdout  # the plan is still shown


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_config_key_is_one_line_naming_file_and_key(data, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = 1e-4\nlearnin_rate = 2\n", encoding="utf-8")
    one_line_error(
        run_main(*pair_args(data, BACKEND, "--config", bad, "--dry-run")), str(bad), "'learnin_rate'"
    )
    bad.write_text("[backend]\nnot_a_setting = 1\n", encoding="utf-8")
    one_line_error(
        run_main(*pair_args(data, BACKEND, "--config", bad, "--dry-run")), str(bad), "'not_a_setting'"
    )
    bad.write_text("learning_rate = [", encoding="utf-8")
    one_line_error(run_main(*pair_args(data, BACKEND, "--config", bad, "--dry-run")), str(bad), "TOML")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (["--backend", "nope"], "unknown trainer backend 'nope'"),
        (["--learning_rate", "-1"], "--learning_rate"),
        (["--backend-param", "bogus=1"], "bogus"),
        (["--backend-param", "novalue"], "KEY=VALUE"),
        (["--dataset", "x"], "not --dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(data, change, needle):
    one_line_error(run_main(*pair_args(data, BACKEND, *change, "--dry-run")), needle)


def test_missing_pieces_are_one_line(data):
    a_dir, b_dir, out = data
    one_line_error(run_main("train", "--backend", BACKEND, "--dataset", a_dir), "--output")
    one_line_error(run_main("train", "--dataset", a_dir, "--output", out), "--backend", BACKEND)
    one_line_error(run_main("train", "--backend", BACKEND, "--a", a_dir, "--output", out), "train pair")
    one_line_error(
        run_main("train", "pair", "--backend", BACKEND, "--a", a_dir, "--b", a_dir, "--output", out),
        "same folder",
    )
    one_line_error(
        run_main("train", "--backend", BACKEND, "--dataset", out / "nope", "--output", out), "nope"
    )


# --- running -------------------------------------------------------------------------------------


def test_pair_run_records_in_the_project_and_prints_a_valid_merge_command(data, tmp_path):
    from difflora_gui.cli import build_parser
    from difflora_gui.commands.merge_cmd import params_from_args
    from difflora_gui.project import Project, RunRecord

    project_file = tmp_path / "mein projekt.difflora"
    result = run_main(*pair_args(data, BACKEND, "--name", "anime", "--project", project_file, "--quiet"))
    assert result.returncode == 0, result.stderr
    out = data[2]
    assert f"anime_A: finished -> {out / 'anime_A.safetensors'}" in result.stdout
    line = result.stdout.split("merge them with:\n", 1)[1].strip().splitlines()[0]
    argv = shlex.split(line)
    assert argv[:3] == ["python", "main.py", "merge"]
    params = params_from_args(build_parser().parse_args(argv[2:]))
    assert params.lora_a == str(out / "anime_A.safetensors") and params.lora_b == str(
        out / "anime_B.safetensors"
    )
    merged = run_main(*argv[2:], "--quiet")  # and it merges
    assert merged.returncode == 0, merged.stderr
    assert Path(params.output).is_file()
    project = Project.load(project_file)
    assert [(r.name, r.status) for r in project.records(RunRecord)] == [
        ("anime_A", "finished"),
        ("anime_B", "finished"),
    ]
    assert len(project.section("train")["pairs"]) == 1


def test_ctrl_c_stops_and_keeps_then_the_printed_command_resumes(data, tmp_path):
    if os.name == "nt":
        pytest.skip("SIGINT to a child process is a POSIX test")
    out = data[2]
    args = pair_args(
        data, BACKEND, "--name", "cc", "--max_train_steps", "60", "--backend-param", "step_delay_s=0.03"
    )
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not (out / "cc_A-step00000010-state").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "press Ctrl+C again to abort" in stderr
    assert "cc_A: stopped; kept " in stdout and "cc_B: stopped; nothing kept" in stdout
    resume = stdout.split("resume with:\n", 1)[1].strip().splitlines()[0]
    argv = shlex.split(resume)
    assert argv[:4] == ["python", "main.py", "train", "pair"] and "--resume" in argv
    assert not (out / "cc_A.safetensors").exists()
    result = run_main(*argv[2:], "--quiet")
    assert result.returncode == 0, result.stderr
    assert (out / "cc_A.safetensors").is_file() and (out / "cc_B.safetensors").is_file()
    assert "merge them with:" in result.stdout


def test_failed_run_exits_1_with_its_error(data):
    result = run_main(
        *pair_args(data, BACKEND, "--name", "f", "--backend-param", "fail_at_step=3", "--quiet")
    )
    assert result.returncode == 1
    assert "f_A: failed: planned failure at step 3" in result.stdout
    assert "merge them with" not in result.stdout


# --- through the real backends -------------------------------------------------------------------


def test_builtin_backend_pair_on_the_tiny_wan_model(tmp_path):
    from difflora_gui.cli import build_parser
    from difflora_gui.commands.merge_cmd import params_from_args
    from difflora_gui.lora.reader import open_lora
    from tests.wan_tiny import save_tiny_wan, write_images

    model = save_tiny_wan(tmp_path / "wan model")
    names = ["p0", "p1"]
    a_dir = write_images(tmp_path / "set A", names, size=(32, 32), seed=1)
    b_dir = write_images(tmp_path / "set B", names, size=(32, 32), seed=1, pattern=True)
    out = tmp_path / "out é"
    args = ["train", "pair", "--backend", "builtin", "--preset", "quick-test", "--max_train_steps", "3",
            "--save_every_n_steps", "0", "--resolution", "32", "--a", a_dir, "--b", b_dir, "--output", out,
            "--name", "tiny", "--model", model, "--device", "cpu"]  # fmt: skip
    plans = json.loads(run_main(*args, "--dry-run", "--json").stdout)
    assert len(plans) == 2 and all(isinstance(plan, dict) for plan in plans)
    result = run_main(*args, "--quiet", "--backend-param", "num_threads=1")
    assert result.returncode == 0, result.stderr
    line = result.stdout.split("merge them with:\n", 1)[1].strip().splitlines()[0]
    params = params_from_args(build_parser().parse_args(shlex.split(line)[2:]))
    for path in (params.lora_a, params.lora_b):
        with open_lora(path) as lora:
            assert len(lora) > 0
    assert params.lora_a == str(out / "tiny_A.safetensors")


def musubi_args(tmp_path, data, *extra):
    from tests.musubi_helpers import fake_checkout, model_files

    checkout = fake_checkout(tmp_path / "musubi tuner", step_s=0.0)
    models = model_files(tmp_path / "models")
    a_dir, b_dir, out = data
    return ["train", "pair", "--backend", "musubi", "--preset", "quick-test", "--max_train_steps", "4",
            "--save_every_n_steps", "2", "--a", a_dir, "--b", b_dir, "--output", out, "--name", "mu",
            "--musubi-dir", checkout, "--python", sys.executable, "--dit", models["dit"], "--vae", models["vae"],
            "--t5", models["t5"], "--backend-param", "attention=sdpa", "--device", "cpu", *extra]  # fmt: skip


def test_musubi_dry_run_json_lists_caching_and_training_of_both_runs(data, tmp_path):
    result = run_main(*musubi_args(tmp_path, data, "--dry-run", "--json"))
    assert result.returncode == 0, result.stderr
    assert "trains pairs as independent runs" in result.stderr  # Musubi cannot synchronise
    commands = json.loads(result.stdout)
    scripts = [Path(c[1]).name for c in commands]
    assert (
        scripts == ["wan_cache_latents.py", "wan_cache_text_encoder_outputs.py", "wan_train_network.py"] * 2
    )
    train_a = commands[2]
    assert train_a[train_a.index("--output_name") + 1] == "mu_A"
    assert train_a[train_a.index("--network_alpha") + 1] == "4.0"
    text = run_main(*musubi_args(tmp_path, data, "--dry-run")).stdout
    listed = [shlex.split(line) for line in text.splitlines() if "wan_" in line and not line.startswith("#")]
    assert listed == commands


def test_musubi_pair_runs_the_stand_in_and_prints_the_merge(data, tmp_path):
    result = run_main(*musubi_args(tmp_path, data, "--quiet"))
    assert result.returncode == 0, result.stderr
    out = data[2]
    assert (out / "mu_A.safetensors").is_file() and (out / "mu_B.safetensors").is_file()
    line = result.stdout.split("merge them with:\n", 1)[1].strip().splitlines()[0]
    argv = shlex.split(line)
    assert argv[argv.index("--lora_a") + 1] == str(out / "mu_A.safetensors")


def test_second_ctrl_c_aborts_at_once(data):
    if os.name == "nt":
        pytest.skip("SIGINT to a child process is a POSIX test")
    out = data[2]
    # a slow step: the first Ctrl+C's "stop and keep" cannot finish before the second comes
    args = pair_args(
        data, BACKEND, "--name", "ab", "--max_train_steps", "20", "--backend-param", "step_delay_s=1.5"
    )
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:  # the job has started
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "aborted" in stderr and time.monotonic() - started < 15
    assert not (out / "ab_A.safetensors").exists()


def test_json_result_of_a_run(data):
    result = run_main(
        *pair_args(data, BACKEND, "--name", "js", "--json", "--quiet", "--max_train_steps", "4")
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(r["name"], r["status"], r["result"]["steps_done"]) for r in report["runs"]] == [
        ("js_A", "finished", 4),
        ("js_B", "finished", 4),
    ]
    assert report["merge"]["argv"][:3] == ["merge", "--lora_a", str(data[2] / "js_A.safetensors")]
    assert report["resume"] == []


def test_stopped_pair_in_a_project_resumes_from_its_record(data, tmp_path):
    if os.name == "nt":
        pytest.skip("SIGINT to a child process is a POSIX test")
    from difflora_gui.project import Project, RunRecord

    out, project_file = data[2], tmp_path / "proj.difflora"
    args = pair_args(data, BACKEND, "--name", "pr", "--max_train_steps", "60", "--project", project_file)
    args += ["--backend-param", "step_delay_s=0.03"]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not (out / "pr_A-step00000010-state").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    stopped = Project.load(project_file).records(RunRecord)
    assert [(r.name, r.status) for r in stopped] == [("pr_A", "stopped"), ("pr_B", "stopped")]
    assert stopped[0].state and not stopped[1].state
    resume = shlex.split(stdout.split("resume with:\n", 1)[1].strip().splitlines()[0])
    assert resume == [
        "python",
        "main.py",
        "train",
        "--project",
        str(project_file),
        "--resume",
        stopped[0].state,
    ]
    result = run_main(*resume[2:], "--quiet")
    assert result.returncode == 0, result.stderr
    assert "merge them with:" in result.stdout
    records = Project.load(project_file).records(RunRecord)
    assert [(r.id, r.status, r.steps_done) for r in records] == [(s.id, "finished", 60) for s in stopped]
    assert (
        records[0].checkpoints[0].endswith("pr_A-step00000010.safetensors")
    )  # the first part's files stay listed


def test_a_refused_run_or_a_dry_run_makes_no_project_file(data, tmp_path):
    project_file = tmp_path / "new.difflora"
    assert run_main(*pair_args(data, BACKEND, "--project", project_file, "--dry-run")).returncode == 0
    bad = run_main(*pair_args(data, BACKEND, "--project", project_file, "--model", tmp_path / "missing"))
    one_line_error(bad, "model not found")
    assert not project_file.exists() and not data[2].exists()


def test_single_run_resumes_from_a_state_and_names_itself_after_it(data):
    a_dir, _b_dir, out = data
    state = out / "solo-step00000005-state"
    state.mkdir(parents=True)
    (state / "state.json").write_text('{"step": 5}', encoding="utf-8")
    args = ["train", "--backend", BACKEND, "--preset", "quick-test", "--max_train_steps", "8", "--dataset", a_dir,
            "--output", out, "--device", "cpu", "--resume", state]  # fmt: skip
    plan = json.loads(run_main(*args, "--dry-run", "--json").stdout)
    assert [(p["name"], p["steps"]) for p in plan] == [("solo", [5, 8])]
    result = run_main(*args, "--json", "--quiet", "--step-delay-s", "0")  # a backend's own setting as a flag
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)["runs"]
    assert report["name"] == "solo" and report["result"]["steps_done"] == 8
    assert (out / "solo.safetensors").is_file()
    other = run_main(*args[:-1], out / "other-step00000005-state", "--name", "solo", "--dry-run")
    one_line_error(other, "belongs to none of these runs (solo)")


def test_relative_paths_on_the_command_line_become_absolute_before_musubi_runs_in_its_checkout(tmp_path):
    from tests.musubi_helpers import fake_checkout, model_files, write_items

    work = tmp_path / "mein ordner"
    fake_checkout(work / "musubi tuner")
    (work / "models").mkdir(parents=True)
    models = model_files(work / "models")
    write_items(work / "A", ["p0", "p1"])
    write_items(work / "B", ["p0", "p1"])
    args = ["train", "pair", "--backend", "musubi", "--preset", "quick-test", "--optimizer", "adamw",
            "--a", "A", "--b", "B", "--output", "out", "--name", "d", "--musubi-dir", "musubi tuner",
            "--dit", os.path.relpath(models["dit"], work), "--vae", os.path.relpath(models["vae"], work),
            "--t5", os.path.relpath(models["t5"], work), "--device", "cpu", "--dry-run", "--json"]  # fmt: skip
    result = run_main(*args, cwd=work)
    assert result.returncode == 0, result.stderr
    commands = json.loads(result.stdout)
    script = Path(commands[0][1])
    assert script.is_absolute() and script.is_file()  # .../musubi tuner/src/musubi_tuner/wan_cache_latents.py
    train = commands[2]
    for flag in ("--dit", "--dataset_config", "--output_dir"):
        assert Path(train[train.index(flag) + 1]).is_absolute(), flag
    assert Path(train[train.index("--dit") + 1]) == Path(models["dit"]).resolve()
