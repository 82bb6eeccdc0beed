"""The Train section driven like a user drives it: presets, backends, checks, a real pair run on a
tiny Wan model, the runs list, Merge these, resume, the project round trip and the wheel guard."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QWheelEvent
from PySide6.QtWidgets import QApplication

from difflora_gui.project.records import RunRecord
from difflora_gui.qt.testing import close_window, make_main_window
from difflora_gui.qt.wheel_guard import install_wheel_guard
from difflora_gui.train import run_records
from difflora_gui.train.presets import preset_values
from tests.train_helpers import BACKEND, backend_specs, make_pair_folders

PANEL = "train-runs"
JOB_TIMEOUT_MS = 120_000


def backends_plugin():
    """The test-only backends (``tests/train_helpers.py``) as a plugin module."""
    import types

    from difflora_gui import hookimpl

    @hookimpl
    def difflora_register_trainer_backends():
        return backend_specs()

    module = types.ModuleType("tiny_trainers_test_plugin")
    module.difflora_register_trainer_backends = difflora_register_trainer_backends
    return module


class TrainWindow:
    """A main window built like ``python main.py`` builds it (plus the test backends), on Train."""

    def __init__(self, qtbot, monkeypatch, tmp_path: Path):
        self.qtbot = qtbot
        plugins = [("tiny_trainers", backends_plugin())]
        self.window, self.dialogs = make_main_window(qtbot, monkeypatch, plugins=plugins)
        self.window.devices.set_devices([])  # detection done: the CPU only (jobs wait for this)
        self.window.resize(1400, 900)
        self.window.show_section("train")
        self.out = tmp_path / "out folder ü"
        self.window.project.output_dir = str(self.out)
        entry = self.window.panels[PANEL]
        assert entry.ok, entry.error
        self.panel = entry.widget

    def settle(self):
        """Until the debounced checks have run."""
        self.qtbot.waitUntil(lambda: not self.panel.checks.pending, timeout=5000)
        return self.panel.checks.outcome

    def set_inputs(self, a_dir, b_dir, *, backend: str, preset: str = "quick-test", **config):
        panel = self.panel
        panel.config_box.set_backend(backend, record=True)
        panel.config_box.apply_preset(preset)
        if config:
            panel.config_box.form.set_values(config)
        panel.datasets.set_folders(str(a_dir), str(b_dir) if b_dir else "")
        return self.settle()

    def wait_runs(self):
        self.qtbot.waitUntil(lambda: not self.panel.handles, timeout=JOB_TIMEOUT_MS)
        self.panel.refresh_runs()

    def close(self):
        close_window(self.window, self.dialogs)


@pytest.fixture
def make_window(qtbot, monkeypatch, tmp_path):
    made = []

    def build():
        window = TrainWindow(qtbot, monkeypatch, tmp_path)
        made.append(window)
        return window

    yield build
    for window in made:
        window.close()


@pytest.fixture
def folders(tmp_path):
    return make_pair_folders(tmp_path / "sets with space", 3)


def test_the_model_card_preset_fills_the_form_in_one_undoable_step(make_window):
    panel = make_window().panel
    box = panel.config_box
    box.apply_preset("quick-test")
    assert box.form.values()["max_train_steps"] == 30
    box.apply_preset("model-card")
    values = box.form.values()
    # the model card's settings: Lion, 2e-5, constant_with_warmup with 50 warm-up steps, rank 16,
    # 5000 steps, batch size 1, 192p images, empty captions
    assert values["optimizer"] == "lion"
    assert values["learning_rate"] == pytest.approx(2e-5)
    assert values["lr_scheduler"] == "constant_with_warmup"
    assert values["lr_warmup_steps"] == 50
    assert (values["network_dim"], values["network_alpha"]) == (16, 16.0)
    assert (values["max_train_steps"], values["batch_size"]) == (5000, 1)
    assert values["resolution"] == "336x192" and values["captions"] == "empty"
    assert box.config() == {
        **box.config(),
        **{k: v for k, v in preset_values("model-card").items() if k != "pair_mode"},
    }
    window = panel.services.window
    assert window.current_undo_stack() is panel.undo_stack
    assert "Preset" in window.action_undo.text()
    window.undo()  # Edit ▸ Undo: the whole preset is one step
    assert box.form.values()["max_train_steps"] == 30
    assert box.form.values()["optimizer"] == "adamw"
    panel.undo_stack.redo()
    assert box.form.values()["optimizer"] == "lion"


def test_switching_the_backend_changes_its_settings_form_and_the_pair_modes(make_window, tmp_path):
    window = make_window()
    window.window.services.update_settings(wan_model_dir=str(tmp_path / "wan model"))
    box = window.panel.config_box
    box.set_backend("builtin")
    assert set(box.backend_form.editors) >= {"model", "device"}
    assert box.backend_form.values()["model"] == str(tmp_path / "wan model")  # the default from Settings
    assert box.form.values()["pair_mode"] == "synchronised"
    box.set_backend("musubi", record=True)
    assert "musubi_dir" in box.backend_form.editors and "model" not in box.backend_form.editors
    combo = box.form.editors["pair_mode"].editor
    enabled = {combo.itemText(i): combo.model().item(i).isEnabled() for i in range(combo.count())}
    assert enabled == {"synchronised": False, "independent": True, "slider": False}
    assert box.form.values()["pair_mode"] == "independent"  # Musubi cannot train synchronised pairs
    window.panel.undo_stack.undo()
    window.panel.undo_stack.undo()
    assert box.backend_name() == "builtin"


def test_the_musubi_commands_are_shown_and_copyable_before_launch(make_window, folders, tmp_path):
    window = make_window()
    a_dir, b_dir = folders
    musubi = tmp_path / "musubi tuner"
    files = {}
    for name in ("dit", "vae", "t5"):
        files[name] = tmp_path / f"{name} file.safetensors"
        files[name].write_bytes(b"x")
    (musubi / "src" / "musubi_tuner").mkdir(parents=True)
    window.set_inputs(a_dir, b_dir, backend="musubi", preset="model-card")
    window.panel.config_box.backend_form.set_values(
        {"musubi_dir": str(musubi), "python": "python3", **{k: str(v) for k, v in files.items()}}
    )
    window.panel.datasets.name_edit.setText("my slider")
    dialog = window.panel.show_commands()
    assert dialog is not None and dialog.isVisible()
    text = dialog.text()
    assert "wan_cache_latents.py" in text and "wan_train_network.py" in text
    train_line = next(
        line for line in text.splitlines() if "wan_train_network.py" in line and "my slider_A" in line
    )
    argv = shlex.split(train_line)
    assert argv[argv.index("--optimizer_type") + 1] == "lion_pytorch.Lion"
    assert argv[argv.index("--network_alpha") + 1] in ("16", "16.0")
    assert any("my slider_B" in line for line in text.splitlines())
    dialog.copy()
    assert QGuiApplication.clipboard().text() == text
    assert not window.panel.handles  # nothing started


def test_errors_disable_train_and_say_why(make_window, folders):
    window = make_window()
    panel = window.panel
    outcome = window.settle()
    assert not panel.train_button.isEnabled()
    assert "choose set A" in panel.reason_label.text()
    a_dir, b_dir = folders
    window.set_inputs(a_dir, b_dir, backend="builtin")
    assert not panel.train_button.isEnabled()
    assert "diffusers Wan folder" in panel.reason_label.text()
    window.set_inputs(a_dir, b_dir, backend=BACKEND)
    assert panel.train_button.isEnabled(), panel.reason_label.text()
    panel.datasets.name_edit.setText("taken")
    panel.datasets.name_edit.editingFinished.emit()
    window.out.mkdir(parents=True, exist_ok=True)
    (window.out / "taken_B.safetensors").write_bytes(b"not ours")
    panel.checks.schedule()
    outcome = window.settle()
    assert not panel.train_button.isEnabled()
    assert "already exists" in panel.reason_label.text() and "nothing is overwritten" in outcome.reason()
    assert "'taken 2' is free" in outcome.hint and "taken 2" in panel.checks.list_label.text()
    assert not panel.start_training()  # even called directly, Train refuses
    assert (window.out / "taken_B.safetensors").read_bytes() == b"not ours"


def test_a_pair_trains_on_the_tiny_model_and_merge_these_fills_the_merge_panel(
    make_window, folders, tmp_path
):
    import torch

    from tests.wan_tiny import save_tiny_wan

    torch.set_num_threads(1)
    model = save_tiny_wan(tmp_path / "tiny wan")
    window = make_window()
    panel = window.panel
    a_dir, b_dir = folders
    window.set_inputs(
        a_dir, b_dir, backend="builtin", max_train_steps=4, save_every_n_steps=2, resolution="32"
    )
    panel.config_box.backend_form.set_values({"model": str(model), "device": "cpu"})
    window.settle()
    assert panel.train_button.isEnabled(), panel.reason_label.text()
    panel.datasets.name_edit.setText("tiny pair")
    panel.datasets.name_edit.editingFinished.emit()
    window.settle()
    panel.train_button.click()
    assert set(panel.monitor.run_ids()) == set(panel.handles)  # both runs are followed live
    window.wait_runs()
    records = window.window.project.records(RunRecord)
    assert [(r.name, r.side, r.status) for r in records] == [
        ("tiny pair_A", "a", "finished"),
        ("tiny pair_B", "b", "finished"),
    ]
    for record in records:
        assert Path(record.output).is_file() and record.steps_done == record.total_steps == 4
        assert record.checkpoints  # step 2's checkpoint
    assert panel.runs_list.tree.topLevelItemCount() == 1
    top = panel.runs_list.tree.topLevelItem(0)
    assert [top.child(i).text(2) for i in range(top.childCount())] == ["finished", "finished"]
    assert panel.runs_list.merge_button.isEnabled()
    panel.runs_list.merge_button.click()
    assert window.window.current_section() == "merge"
    merge = window.window.panels["merge-workbench"].widget
    assert merge.paths["a"] == Path(records[0].output)
    assert merge.paths["b"] == Path(records[1].output)
    window.qtbot.waitUntil(
        lambda: merge.summaries["a"] is not None and merge.summaries["b"] is not None, timeout=JOB_TIMEOUT_MS
    )
    # the pair's config is stored once, and the form is in the project
    pairs = window.window.project.section("train")["pairs"]
    assert list(pairs) == [records[0].pair_id]
    assert pairs[records[0].pair_id]["config"]["max_train_steps"] == 4


def test_a_stopped_run_resumes_from_its_state_to_the_original_total(make_window, folders):
    window = make_window()
    panel = window.panel
    a_dir, _ = folders
    window.set_inputs(a_dir, "", backend=BACKEND, max_train_steps=40, save_every_n_steps=20)
    panel.config_box.backend_form.set_values({"step_delay_s": 0.1})
    window.settle()
    assert panel.start_training()
    (run_id,) = list(panel.handles)
    handle = panel.handles[run_id]
    project = window.window.project
    # the record follows the steps between checkpoints too (progress, at most once a second)
    window.qtbot.waitUntil(
        lambda: 0 < run_records.run_record(project, run_id).steps_done < 20, timeout=JOB_TIMEOUT_MS
    )
    window.qtbot.waitUntil(lambda: handle.progress.done >= 22, timeout=JOB_TIMEOUT_MS)
    handle.cancel(keep=True)
    window.wait_runs()
    record = run_records.run_record(window.window.project, run_id)
    assert record.status == "stopped" and record.state and Path(record.state).is_dir()
    stopped_at = record.steps_done
    assert 22 <= stopped_at < 40
    assert "stopped" in panel.status_label.text() and "Resume" in panel.status_label.text()
    panel.runs_list.select_run(run_id)
    assert panel.runs_list.resume_button.isEnabled()
    panel.config_box.backend_form.set_values({"step_delay_s": 0.0})  # the resumed run keeps its own settings
    panel.runs_list.resume_button.click()
    assert run_id in panel.handles
    window.wait_runs()
    record = run_records.run_record(window.window.project, run_id)
    assert record.status == "finished" and record.steps_done == 40 and Path(record.output).is_file()
    assert len(window.window.project.records(RunRecord)) == 1  # the same record continued


def test_the_form_and_the_runs_come_back_when_the_project_is_opened_again(make_window, folders, tmp_path):
    window = make_window()
    panel = window.panel
    a_dir, b_dir = folders
    window.set_inputs(a_dir, b_dir, backend=BACKEND, max_train_steps=3, save_every_n_steps=0, network_dim=8)
    panel.datasets.name_edit.setText("kept")
    panel.datasets.name_edit.editingFinished.emit()
    window.settle()
    assert panel.start_training()
    window.wait_runs()
    panel.save_state()
    path = tmp_path / "project folder" / "train test.difflora"
    path.parent.mkdir()
    assert window.window.save_project_as(path)
    window.window.new_project()
    assert panel.datasets.folders() == ("", "")
    assert panel.runs_list.tree.topLevelItemCount() == 0
    assert window.window.open_project(path)
    assert panel.datasets.folders() == (str(a_dir), str(b_dir))
    assert panel.datasets.name() == "kept"
    assert panel.config_box.backend_name() == BACKEND
    assert panel.config_box.form.values()["network_dim"] == 8
    assert panel.config_box.form.values()["max_train_steps"] == 3
    assert panel.runs_list.tree.topLevelItemCount() == 1
    top = panel.runs_list.tree.topLevelItem(0)
    assert [top.child(i).text(0) for i in range(top.childCount())] == ["kept_A", "kept_B"]
    panel.runs_list.select_run(top.child(0).data(0, Qt.ItemDataRole.UserRole))
    assert panel.runs_list.show_button.isEnabled()
    panel.runs_list.show_button.click()  # the monitor replays the finished run from its event log
    assert top.child(0).data(0, Qt.ItemDataRole.UserRole) in panel.monitor.run_ids()


def test_two_dropped_folders_become_set_a_and_set_b(make_window, folders):
    window = make_window()
    a_dir, b_dir = folders
    routed = window.window.route_files([a_dir, b_dir])
    assert routed == {PANEL: [a_dir, b_dir]}
    assert window.panel.datasets.folders() == (str(a_dir), str(b_dir))
    window.settle()
    assert "3 matched pairs" in window.panel.datasets.counts_label.text()


def test_the_wheel_does_not_change_an_unfocused_field(make_window, qapp):
    window = make_window()
    install_wheel_guard(QApplication.instance())
    spin = window.panel.config_box.form.editors["max_train_steps"].editor
    before = spin.value()
    window.panel.config_box.backend_combo.setFocus()
    centre = QPointF(spin.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(spin.mapToGlobal(QPoint(int(centre.x()), int(centre.y())))),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(spin, event)
    assert spin.value() == before


def test_from_the_projects_dataset_exports_plain_folders_and_uses_them(make_window, folders):
    from difflora_gui.dataset import store
    from difflora_gui.dataset.pairing import pair_folders

    window = make_window()
    panel = window.panel
    project = window.window.project
    a_dir, b_dir = folders
    record = store.create_dataset(project, pair_folders(a_dir, b_dir), name="my pairs")
    project.update_section("dataset", dataset_id=record.id)
    window.qtbot.waitUntil(panel.datasets.project_button.isEnabled, timeout=5000)  # the project has one now
    assert "my pairs" in panel.datasets.project_button.toolTip()
    panel.datasets.project_button.click()
    window.qtbot.waitUntil(lambda: panel.export_job is None, timeout=JOB_TIMEOUT_MS)
    new_a, new_b = map(Path, panel.datasets.folders())
    assert new_a.parent == new_b.parent
    assert project.workspace.root in new_a.parents  # in the project's workspace
    assert (new_a.name, new_b.name) == ("A", "B")
    assert sorted(p.name for p in new_a.glob("*.png")) == ["item0.png", "item1.png", "item2.png"]
    assert sorted(p.stem for p in new_b.glob("*.png")) == ["item0", "item1", "item2"]
    window.settle()
    assert "3 matched pairs" in panel.datasets.counts_label.text()
    assert sorted(p.name for p in a_dir.iterdir()) == [
        "item0.png",
        "item1.png",
        "item2.png",
    ]  # sources untouched
    # saved, the unsaved workspace moves beside the file: the folders follow it
    panel.save_state()
    path = folders[0].parent.parent / "saved project" / "with export.difflora"
    path.parent.mkdir()
    assert window.window.save_project_as(path)
    moved_a, moved_b = map(Path, panel.datasets.folders())
    assert moved_a.is_dir() and moved_b.is_dir() and path.parent in moved_a.parents
    stored = json.loads(path.read_text(encoding="utf-8"))["sections"]["train"]["form"]
    assert not Path(stored["a_dir"]).is_absolute()  # relative to the project file
    # exporting again replaces only its own previous export
    panel.datasets.project_button.click()
    window.qtbot.waitUntil(lambda: panel.export_job is None, timeout=JOB_TIMEOUT_MS)
    assert "Using the project's dataset" in panel.status_label.text()


SLOW_CHECK_S = 0.6
CHECK_THREADS: list[str] = []


def slow_validate(run):
    """A backend check that takes its time (a big folder, a model config on a slow drive)."""
    import threading
    import time

    CHECK_THREADS.append(threading.current_thread().name)
    time.sleep(SLOW_CHECK_S)
    return []


def test_slow_backend_checks_run_off_the_gui_thread(qtbot, monkeypatch, folders):
    import threading
    import time
    import types

    from difflora_gui import hookimpl
    from difflora_gui.specs import TrainerBackendSpec

    @hookimpl
    def difflora_register_trainer_backends():
        return [
            TrainerBackendSpec(
                name="slow-checks",
                title="Slow checks",
                description="test-only: its validate sleeps",
                run="tests.train_helpers:run_tiny",
                validate=slow_validate,
                pair_modes=("synchronised", "independent"),
            )
        ]

    module = types.ModuleType("slow_checks_plugin")
    module.difflora_register_trainer_backends = difflora_register_trainer_backends
    window, dialogs = make_main_window(qtbot, monkeypatch, plugins=[("slow_checks", module)])
    try:
        window.show_section("train")
        panel = window.panels[PANEL].widget
        a_dir, b_dir = folders
        panel.config_box.set_backend("slow-checks")
        panel.datasets.set_folders(str(a_dir), str(b_dir))
        CHECK_THREADS.clear()
        started = time.perf_counter()
        panel.checks.check_now()
        assert time.perf_counter() - started < SLOW_CHECK_S / 2  # the window did not wait
        assert panel.checks.pending and not panel.train_button.isEnabled()
        qtbot.waitUntil(lambda: not panel.checks.pending, timeout=10_000)
        assert CHECK_THREADS and threading.main_thread().name not in CHECK_THREADS
        assert panel.train_button.isEnabled(), panel.reason_label.text()
    finally:
        close_window(window, dialogs)


def test_tab_follows_the_layout_also_after_the_backend_form_is_rebuilt(make_window):
    window = make_window()
    panel = window.panel
    panel.config_box.set_backend("musubi", record=True)  # a new settings form, made after the others
    chain = panel.update_tab_order()
    datasets, box = panel.datasets, panel.config_box
    expected_start = [
        datasets.edits["a"],
        datasets.browse_buttons["a"],
        datasets.edits["b"],
        datasets.browse_buttons["b"],
        datasets.name_edit,
        datasets.output_edit,
        datasets.output_browse,
        datasets.project_button,
        box.backend_combo,
    ]
    assert chain[: len(expected_start)] == expected_start
    first_setting = box.backend_form.editors["musubi_dir"]
    assert first_setting.isAncestorOf(chain[len(expected_start)])  # the backend's own settings come next
    assert chain.index(box.command_button) < chain.index(box.preset_combo) < chain.index(panel.train_button)
    assert chain.index(panel.train_button) < chain.index(panel.runs_list.tree)
    members = set(chain)
    for first, second in zip(chain, chain[1:], strict=False):  # Tab from each lands on the next
        following = first.nextInFocusChain()
        while following not in members:
            following = following.nextInFocusChain()
        assert following is second, (first.objectName(), following.objectName(), second.objectName())


def test_a_wan22_per_expert_pair_fills_the_four_expert_inputs_of_the_merge(make_window, folders):
    window = make_window()
    panel = window.panel
    a_dir, b_dir = folders
    window.set_inputs(
        a_dir,
        b_dir,
        backend=BACKEND,
        preset="wan22-a14b-per-expert",
        max_train_steps=2,
        save_every_n_steps=0,
    )
    panel.datasets.name_edit.setText("experts")
    window.settle()
    assert panel.checks.outcome.runs == 4 and panel.start_training()
    window.wait_runs()
    records = window.window.project.records(RunRecord)
    assert sorted((r.side, r.expert) for r in records) == [
        ("a", "high"),
        ("a", "low"),
        ("b", "high"),
        ("b", "low"),
    ]
    top = panel.runs_list.tree.topLevelItem(0)
    assert sorted(top.child(i).text(1) for i in range(top.childCount())) == [
        "A · high noise",
        "A · low noise",
        "B · high noise",
        "B · low noise",
    ]
    assert panel.merge_pair(records[0].pair_id)
    merge = window.window.panels["merge-workbench"].widget
    slots = merge.inputs.slots
    for record in records:
        assert slots[f"{record.side}_{record.expert}"] == Path(record.output)


def test_a_run_left_running_by_a_closed_app_is_stopped_and_can_resume(make_window, folders, tmp_path):
    from difflora_gui.project import Project

    window = make_window()
    a_dir, _ = folders
    state = tmp_path / "out" / "lost_A-step00000010-state"
    state.mkdir(parents=True)
    project = Project("crashed")
    project.add_record(
        RunRecord(
            name="lost_A",
            side="a",
            status="running",
            backend=BACKEND,
            config=preset_values("quick-test"),
            dataset_dir=str(a_dir),
            output_dir=str(tmp_path / "out"),
            state=str(state),
            steps_done=10,
            total_steps=30,
        )
    )
    window.window.services.set_project(project)
    (record,) = project.records(RunRecord)
    assert record.status == "stopped"
    window.panel.runs_list.select_run(record.id)
    assert window.panel.runs_list.resume_button.isEnabled()


def test_an_open_commands_dialog_follows_the_inputs(make_window, folders):
    window = make_window()
    a_dir, b_dir = folders
    window.set_inputs(a_dir, b_dir, backend="tiny-cmd")
    dialog = window.panel.show_commands()
    assert "set A_A" in dialog.text()
    window.panel.datasets.name_edit.setText("renamed")
    window.settle()
    assert "renamed_A" in dialog.text() and "set A_A" not in dialog.text()


def test_panels_rebuilt_while_a_run_trains_follow_it_again(make_window, folders):
    window = make_window()
    a_dir, _ = folders
    window.set_inputs(a_dir, "", backend=BACKEND, max_train_steps=30, save_every_n_steps=10)
    window.panel.config_box.backend_form.set_values({"step_delay_s": 0.05})
    window.settle()
    assert window.panel.start_training()
    (run_id,) = list(window.panel.handles)
    window.window.build_panels()  # a plugin switched on or off rebuilds every panel
    panel = window.window.panels[PANEL].widget
    assert panel is not window.panel and run_id in panel.handles
    assert run_id in panel.monitor.run_ids()
    assert run_records.run_record(window.window.project, run_id).status in ("", "running")
    window.panel = panel
    window.wait_runs()
    assert run_records.run_record(window.window.project, run_id).status == "finished"


def test_building_the_panel_changes_nothing_in_a_new_project(qtbot, monkeypatch):
    window, dialogs = make_main_window(qtbot, monkeypatch, plugins=[("tiny_trainers", backends_plugin())])
    try:
        window.show_section("train")
        panel = window.panels[PANEL].widget
        qtbot.waitUntil(lambda: not panel.checks.pending, timeout=5000)
        qtbot.wait(600)  # longer than the save delay
        assert window.project.section("train") == {}
        assert not window.project.dirty
        assert "choose set A" in panel.reason_label.text()
    finally:
        close_window(window, dialogs)


def test_a_slider_run_needs_no_merge_and_says_so(make_window, folders):
    window = make_window()
    panel = window.panel
    a_dir, b_dir = folders
    assert not panel.datasets.project_button.isEnabled()  # no dataset in the project yet
    window.set_inputs(
        a_dir, b_dir, backend=BACKEND, pair_mode="slider", max_train_steps=2, save_every_n_steps=0
    )
    panel.datasets.name_edit.setText("direct")
    window.settle()
    assert panel.checks.outcome.runs == 1 and panel.start_training()
    window.wait_runs()
    (record,) = window.window.project.records(RunRecord)
    assert (record.name, record.side, record.status) == ("direct_slider", "slider", "finished")
    panel.runs_list.select_run(record.id)
    assert not panel.runs_list.merge_button.isEnabled()
    assert "no merge is needed" in panel.runs_list.merge_button.toolTip()


def test_opening_a_project_or_changing_settings_leaves_the_project_clean(qtbot, monkeypatch, tmp_path):
    from difflora_gui.project import Project

    path = tmp_path / "clean project.difflora"
    Project("clean").save(path)
    window, dialogs = make_main_window(qtbot, monkeypatch, plugins=[("tiny_trainers", backends_plugin())])
    try:
        assert window.open_project(path)  # remembers it in the recent files: the Settings change
        window.services.update_settings(wan_model_dir=str(tmp_path / "models"))
        qtbot.wait(100)
        assert not window.project.dirty and window.project.section("train") == {}
        panel = window.panels[PANEL].widget
        assert panel.config_box.backend_form.values()["model"] == str(tmp_path / "models")
    finally:
        close_window(window, dialogs)
