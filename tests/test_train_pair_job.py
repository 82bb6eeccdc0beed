"""The pair job: checks before anything starts, placement on one or two GPU lanes, the records
in the project, Stop and keep then resume, and the merge offer (parsed by our merge command)."""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path

import pytest

from difflora_gui.errors import UserError
from difflora_gui.jobs.scheduler import Scheduler
from difflora_gui.lora.reader import open_lora
from difflora_gui.plugin_host import PluginHost
from difflora_gui.project import DatasetRecord, Project, RunRecord
from difflora_gui.train import run_records
from difflora_gui.train.backend import backend_spec
from difflora_gui.train.pair_job import PairJob, assert_shared_config, merge_offer, place_runs
from difflora_gui.train.pair_terminal import run_pair_in_terminal
from difflora_gui.train.plan import plan_pair, plan_single
from difflora_gui.train.presets import preset_values
from tests import train_helpers
from tests.train_helpers import BACKEND, make_pair_folders, register_test_backends


@pytest.fixture
def host():
    plugins = PluginHost(autoload=False, persist=False)
    register_test_backends(plugins)
    return plugins


@pytest.fixture
def spec(host):
    return backend_spec(host, BACKEND)


@pytest.fixture
def folders(tmp_path):
    return make_pair_folders(tmp_path / "data ü")


def quick(**changes):
    return {**preset_values("quick-test"), "max_train_steps": 6, "save_every_n_steps": 3, **changes}


def pair(folders, out, config=None, backend_config=None, name="concept"):
    a_dir, b_dir = folders
    return plan_pair(
        config or quick(), a_dir, b_dir, out, name, backend=BACKEND, backend_config=backend_config or {}
    )


def lanes(*devices):
    scheduler = Scheduler(thread_prefix="test-train")
    scheduler.register_devices(devices)
    return scheduler


def runs_of(names):
    return {entry["name"]: entry for entry in train_helpers.RUNS if entry["name"] in names}


# --- placement -----------------------------------------------------------------------------------


def test_placement_rules(folders, tmp_path):
    runs = pair(folders, tmp_path / "out")
    place_runs(runs, ["cpu"])
    assert [r.device for r in runs] == ["cpu", "cpu"]
    place_runs(runs, ["cpu", "cuda:0"])
    assert [r.device for r in runs] == ["cuda:0", "cuda:0"]
    place_runs(runs, ["cpu", "cuda:0", "cuda:1"])
    assert [r.device for r in runs] == ["cuda:0", "cuda:1"]
    place_runs(runs, ["cuda:0", "cuda:1"], device="cuda:1")  # the user's choice wins
    assert [r.device for r in runs] == ["cuda:1", "cuda:1"]
    multi = pair(folders, tmp_path / "out", backend_config={"multi_gpu": True})
    place_runs(multi, ["cpu", "cuda:0", "cuda:1"])  # each run uses every card: in turn
    assert [r.device for r in multi] == ["cuda:0", "cuda:0"]

    experts = pair(folders, tmp_path / "out", config=quick(task="t2v-A14B", expert_mode="per_expert"))
    assert [r.name for r in experts] == [
        "concept_A_high_noise",
        "concept_A_low_noise",
        "concept_B_high_noise",
        "concept_B_low_noise",
    ]
    place_runs(experts, ["cuda:0", "cuda:1"])
    assert [r.device for r in experts] == [
        "cuda:0",
        "cuda:0",
        "cuda:1",
        "cuda:1",
    ]  # A on one card, B on the other
    place_runs(experts, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"])
    assert [r.device for r in experts] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_runs_must_share_one_config(folders, tmp_path):
    runs = pair(folders, tmp_path / "out")
    assert_shared_config(runs)
    runs[1].config["learning_rate"] = 1.0
    with pytest.raises(ValueError, match="share one config"):
        assert_shared_config(runs)


# --- running on the lanes ------------------------------------------------------------------------


def test_one_device_trains_a_then_b(spec, folders, tmp_path):
    runs = pair(folders, tmp_path / "out", backend_config={"step_delay_s": 0.01}, name="seq")
    job = PairJob.prepare(spec, runs, devices=["cpu", "cuda:0"])
    assert [r.device for r in job.runs] == ["cuda:0", "cuda:0"] and not job.parallel
    outcomes = run_pair_in_terminal(job, quiet=True, scheduler=lanes("cpu", "cuda:0"))
    assert [o.state for o in outcomes] == ["done", "done"]
    seen = runs_of({"seq_A", "seq_B"})
    assert seen["seq_A"]["end"] <= seen["seq_B"]["start"]  # A before B, never both at once
    assert {seen[n]["device"] for n in seen} == {"cuda:0"}
    for run in runs:
        with open_lora(run.output_path()) as lora:  # a real LoRA our reader accepts
            assert len(lora) > 0


def test_two_gpus_train_a_and_b_side_by_side(spec, folders, tmp_path):
    runs = pair(folders, tmp_path / "out", backend_config={"step_delay_s": 0.05}, name="par")
    job = PairJob.prepare(spec, runs, devices=["cpu", "cuda:0", "cuda:1"])
    assert job.parallel
    requests = job.requests()
    assert [(r.lane, r.device, r.resumable) for r in requests] == [
        ("device", "cuda:0", True),
        ("device", "cuda:1", True),
    ]
    outcomes = run_pair_in_terminal(job, quiet=True, scheduler=lanes("cpu", "cuda:0", "cuda:1"))
    assert [o.state for o in outcomes] == ["done", "done"]
    seen = runs_of({"par_A", "par_B"})
    assert seen["par_A"]["device"] == "cuda:0" and seen["par_B"]["device"] == "cuda:1"
    # they overlapped in time: B started before A ended
    assert seen["par_B"]["start"] < seen["par_A"]["end"] and seen["par_A"]["start"] < seen["par_B"]["end"]


def test_an_error_in_b_stops_the_pair_before_a_starts(spec, folders, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    runs = pair(folders, out, name="taken")
    runs[1].output_path().write_bytes(b"the user's file")
    with pytest.raises(UserError, match=r"taken_B cannot start: .*already exists"):
        PairJob.prepare(spec, runs, devices=["cpu"])
    assert not (out / "taken_A.safetensors").exists()
    assert runs[1].output_path().read_bytes() == b"the user's file"


def test_backend_errors_and_warnings_come_before_launch(spec, folders, tmp_path):
    runs = pair(folders, tmp_path / "out", backend_config={"model": str(tmp_path / "no model")})
    with pytest.raises(UserError, match="concept_A cannot start: model not found"):
        PairJob.prepare(spec, runs, devices=["cpu"])
    runs = pair(folders, tmp_path / "out", config=quick(network_dim=128))
    job = PairJob.prepare(spec, runs, devices=["cpu"])
    # the same warning of A and B is shown once
    assert [w.text for w in job.warnings] == ["concept_A: a rank above 64 is rarely needed for a concept"]


def test_submit_through_any_submit_callable(spec, folders, tmp_path):
    """The GUI passes services.submit: the pair job only needs a submit(request) callable."""
    runs = pair(folders, tmp_path / "out")
    job = PairJob.prepare(spec, runs, devices=["cpu"])
    submitted = []
    assert job.submit(lambda request: submitted.append(request) or len(submitted)) == [1, 2]
    assert [r.params.name for r in submitted] == ["concept_A", "concept_B"]
    assert all(r.run == spec.run and r.lane_key == "device:cpu" for r in submitted)


# --- records ------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, folders):
    folder = tmp_path / "projekt ä"
    folder.mkdir()
    project = Project("p")
    project.add_record(DatasetRecord(name="pairs", sources=[str(folders[0]), str(folders[1])], pair_count=3))
    project.save(folder / "p.difflora")
    return project


def test_records_follow_the_runs_and_the_config_is_stored_once(spec, folders, tmp_path, project):
    runs = pair(folders, tmp_path / "out", name="rec")
    job = PairJob.prepare(spec, runs, devices=["cpu"])
    outcomes = run_pair_in_terminal(job, project=project, quiet=True, scheduler=lanes("cpu"))
    assert [o.state for o in outcomes] == ["done", "done"]
    reloaded = Project.load(project.path)  # saved at every change
    records = reloaded.records(RunRecord)
    assert [r.name for r in records] == ["rec_A", "rec_B"]
    dataset = reloaded.records(DatasetRecord)[0]
    for record, run in zip(records, runs, strict=True):
        assert record.id == run.run_id and record.pair_id == runs[0].pair_id
        assert record.status == "finished" and record.steps_done == record.total_steps == 6
        assert record.output == str(run.output_path())
        assert [Path(p).name for p in record.checkpoints] == [f"{run.name}-step00000003.safetensors"]
        assert Path(record.state).name == f"{run.name}-step00000003-state"
        assert record.dataset_id == dataset.id  # lineage: the folder came from the dataset record
        assert record.dataset_dir == run.dataset and record.side == run.side
        assert Path(record.event_log) == reloaded.workspace.events_path("run", record.id)
        assert Path(record.event_log).is_file()
        assert reloaded.lineage(record.id)[-1].id == dataset.id
    train = reloaded.section("train")["pairs"]
    assert list(train) == [runs[0].pair_id]
    assert train[runs[0].pair_id]["config"] == runs[0].config
    assert train[runs[0].pair_id]["runs"] == [r.id for r in records]
    assert run_records.pair_config(reloaded, runs[0].pair_id) == runs[0].config


def _stop_when(ctx_check, scheduler, keep=True):
    """Cancel every running job once ``ctx_check()`` holds (from a helper thread)."""

    def watch():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ctx_check():
            time.sleep(0.01)
        for job in scheduler.running():
            scheduler.cancel(job, keep=keep)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_stop_and_keep_then_resume_ends_at_the_original_total(spec, folders, tmp_path, project):
    config = quick(max_train_steps=40, save_every_n_steps=10)
    runs = pair(folders, tmp_path / "out", config=config, backend_config={"step_delay_s": 0.02}, name="stop")
    job = PairJob.prepare(spec, runs, devices=["cpu"])
    scheduler = lanes("cpu")
    first_state = runs[0].output_path().parent / "stop_A-step00000010-state"
    watcher = _stop_when(first_state.exists, scheduler)
    outcomes = run_pair_in_terminal(job, project=project, quiet=True, scheduler=scheduler)
    watcher.join()
    assert outcomes[0].state == "cancelled"
    record = run_records.run_record(project, runs[0].run_id)
    assert record.status == "stopped" and record.state and Path(record.state).is_dir()
    kept_step = run_records.step_of(record.state)
    assert kept_step is not None and kept_step >= 10 and record.steps_done >= kept_step
    assert not runs[0].output_path().exists()

    resumed = run_records.resume_run(record)
    assert resumed.run_id == record.id and resumed.resume == record.state
    assert resumed.steps_done == kept_step and resumed.total_steps == 40
    assert resumed.config == runs[0].config and resumed.pair_dataset == str(folders[1])
    job = PairJob.prepare(spec, [resumed], devices=["cpu"])
    outcomes = run_pair_in_terminal(job, project=project, quiet=True, scheduler=lanes("cpu"))
    assert outcomes[0].state == "done" and outcomes[0].result.steps_done == 40
    record = run_records.run_record(project, runs[0].run_id)
    assert record.status == "finished" and record.output == str(runs[0].output_path())
    from difflora_gui.jobs.eventlog import read_events
    from difflora_gui.jobs.events import ProgressEvent

    done = [e.done for e in read_events(record.event_log) if isinstance(e, ProgressEvent)]
    assert done[-1] == 40 and kept_step + 1 in done  # the resumed run counted on from its state


def test_continue_pair_resumes_the_stopped_and_starts_the_unstarted(spec, folders, tmp_path, project):
    runs = pair(folders, tmp_path / "out", name="cont")
    run_records.record_runs(project, runs)
    state = Path(runs[0].output_dir) / "cont_A-step00000003-state"
    state.mkdir(parents=True)
    run_records.set_status(project, runs[0].run_id, "stopped")
    record = run_records.run_record(project, runs[0].run_id)
    record.state = str(state)
    project.add_record(record)
    to_train, everything = run_records.continue_pair(project, record)
    assert [r.name for r in everything] == ["cont_A", "cont_B"]
    assert [(r.name, r.resume, r.steps_done) for r in to_train] == [
        ("cont_A", str(state), 3),
        ("cont_B", None, 0),
    ]
    assert run_records.record_with_state(project, state).id == record.id


def test_resume_refuses_what_cannot_resume(folders, tmp_path, project):
    runs = pair(folders, tmp_path / "out")
    run_records.record_runs(project, runs)
    record = run_records.run_record(project, runs[0].run_id)
    with pytest.raises(UserError, match="kept no resumable state"):
        run_records.resume_run(record)
    record.state = str(tmp_path / "gone-step00000003-state")
    with pytest.raises(UserError, match="is gone"):
        run_records.resume_run(record)


# --- the merge offer -----------------------------------------------------------------------------


def merge_params(offer):
    from difflora_gui.cli import build_parser
    from difflora_gui.commands.merge_cmd import params_from_args

    argv = shlex.split(offer.command(windows=False))
    assert argv[:3] == ["python", "main.py", "merge"]
    return params_from_args(build_parser().parse_args(argv[2:]))


def test_merge_offer_is_a_valid_merge_command(folders, tmp_path):
    runs = pair(folders, tmp_path / "out dir", name="anime")
    offer = merge_offer(runs)
    params = merge_params(offer)
    assert params.lora_a == str(runs[0].output_path()) and params.lora_b == str(runs[1].output_path())
    assert params.output == str(tmp_path / "out dir" / "anime_A-minus-anime_B.safetensors")
    # an earlier merge of that name is never replaced
    Path(params.output).parent.mkdir(parents=True)
    Path(params.output).write_bytes(b"earlier merge")
    assert merge_params(merge_offer(runs)).output.endswith("anime_A-minus-anime_B_00002.safetensors")


def test_merge_offer_for_wan22_experts_gives_the_four_inputs(folders, tmp_path):
    runs = pair(folders, tmp_path / "out", config=quick(task="t2v-A14B", expert_mode="per_expert"), name="w")
    params = merge_params(merge_offer(runs))
    by_name = {r.name: str(r.output_path()) for r in runs}
    assert params.lora_a_high == by_name["w_A_high_noise"] and params.lora_a_low == by_name["w_A_low_noise"]
    assert params.lora_b_high == by_name["w_B_high_noise"] and params.lora_b_low == by_name["w_B_low_noise"]
    assert params.output.endswith("w_A-minus-w_B.safetensors")


def test_slider_and_single_runs_need_no_merge(folders, tmp_path):
    slider = pair(folders, tmp_path / "out", config=quick(pair_mode="slider"), name="s")
    offer = merge_offer(slider)
    assert offer.argv == [] and "no merge is needed" in offer.note and "main.py inspect" in offer.note
    single = plan_single(quick(), folders[0], tmp_path / "out", "one", backend=BACKEND)
    assert merge_offer(single).argv == []


def test_commands_are_quoted_for_the_users_shell():
    from difflora_gui.train.pair_job import shell_join

    argv = [
        "C:\\Program Files\\Python\\python.exe",
        "wan_train_network.py",
        "--output_name",
        'a "b" c',
        "plain",
    ]
    assert (
        shell_join(argv, windows=True)
        == '"C:\\Program Files\\Python\\python.exe" wan_train_network.py --output_name "a \\"b\\" c" plain'
    )
    assert shlex.split(shell_join(argv, windows=False)) == argv
