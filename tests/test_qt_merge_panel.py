"""The Merge workbench driven like a user drives it: drop two LoRAs, choose targets, merge, re-run."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from merge_panel_helpers import PanelWindow
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QCheckBox, QMessageBox
from superqt import QCollapsible, QLabeledDoubleSlider, QLabeledSlider

from difflora_gui import hookimpl
from difflora_gui.errors import UserError
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.merge.demo_pair import make_demo_pair
from difflora_gui.merge.engine import run_merge
from difflora_gui.merge.params import MergeParams
from difflora_gui.params import Param
from difflora_gui.qt.merge.panel import script_path
from difflora_gui.specs import MergeStrategySpec

ROOT = Path(__file__).resolve().parent.parent
Button = QMessageBox.StandardButton


@pytest.fixture
def pair(tmp_path):
    folder = tmp_path / "component loras"
    folder.mkdir()
    return make_demo_pair(folder / "dense A.safetensors", folder / "sparse B.safetensors", seed=3)


@pytest.fixture
def make_window(qtbot, monkeypatch, tmp_path):
    made = []

    def build(*plugins):
        window = PanelWindow(qtbot, monkeypatch, tmp_path, plugins)
        made.append(window)
        return window

    yield build
    for window in made:
        window.close()


def deltas(path: Path) -> dict[str, torch.Tensor]:
    with open_lora(path) as lora:
        return {name: lora.load(name).delta(dtype=torch.float64) for name in lora.names()}


def test_a_clean_start_shows_the_real_panel_with_run_disabled_and_why(make_window):
    window = make_window()
    panel = window.panel
    assert window.window.pages["merge"].entries[0].spec.name == "merge-workbench"
    assert not panel.merge_button.isEnabled() and not panel.analyze_button.isEnabled()
    assert "choose LoRA A" in panel.reason_label.text()
    assert panel.targets.text() == "all"
    assert panel.strategy.strategy_name() == "full_svd"
    assert panel.analysis_view is None  # the plots (pyqtgraph) are built on first use
    window.qtbot.wait(2 * 250)
    assert window.window.project.section("merge") == {}  # building the panel changes nothing


def test_a_merge_driven_from_the_panel_writes_the_expected_file(make_window, pair, tmp_path):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    assert panel.targets.block_count == 2  # the tiny model's own block count
    # choose cross-attention of block 0 with the boxes, rank 0 = the exact difference
    panel.targets.group_boxes["self_attn"].click()
    panel.targets.block_buttons[1].click()
    assert panel.targets.text() == "cross_attn,ffn,other blocks=0"
    assert "Targets <b>4</b> of 16 modules" in panel.targets.status_label.text()
    panel.rank_form.editors["rank"].editor.setValue(0)
    expected_output = window.out / "dense A-minus-sparse B.safetensors"
    assert panel.output_edit.text() == str(expected_output)

    window.run("merge")
    assert "Wrote" in panel.status_label.text(), panel.status_label.text()
    assert expected_output.is_file()
    written, da, db = deltas(expected_output), deltas(a), deltas(b)
    for name, delta in written.items():
        if name.startswith("blocks.0.cross_attn."):
            torch.testing.assert_close(delta, da[name] - db[name], rtol=1e-5, atol=1e-6)
        else:
            assert float(delta.abs().max()) == 0.0, name  # nullified
    assert panel.last_result.merged == 4

    # the same recipe run headless (same file name, another folder) gives the same bytes
    recipe = MergeParams.from_json(window.window.project.section("merge")["recipe"])
    assert recipe.targets == "cross_attn,ffn,other blocks=0" and recipe.rank == 0 and recipe.created
    headless = tmp_path / "headless"
    headless.mkdir()
    recipe.output = str(headless / expected_output.name)
    run_merge(recipe)
    assert (headless / expected_output.name).read_bytes() == expected_output.read_bytes()
    # the output exists now: the field still names it, the next Merge takes the next free number
    assert panel.output_edit.text() == str(expected_output)
    assert panel.merge_button.isEnabled()


def test_rerun_recipe_and_copy_command_reproduce_the_file_bit_for_bit(make_window, pair, tmp_path):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    panel.rank_form.editors["rank"].editor.setValue(3)
    panel.strength_form.editors["auto_alpha"].editor.setChecked(True)
    window.run("merge")
    output = Path(panel.last_result.output)
    first = output.read_bytes()

    time.sleep(1.1)  # a fresh merge would record another creation time
    panel.output_form.editors["overwrite"].editor.setChecked(True)
    assert panel.rerun_button.isEnabled()
    window.dialogs.answers["Replace existing file?"] = Button.Yes  # the recipe's file exists: asked first
    panel.rerun_button.click()
    window.wait_job()
    assert "Wrote" in panel.status_label.text()
    assert output.read_bytes() == first
    assert window.dialogs.titles("question") == ["Replace existing file?"]
    assert not panel.output_form.value("overwrite")  # for that merge only

    panel.copy_button.click()
    command = QGuiApplication.clipboard().text()
    assert command == panel.command_line()
    argv = shlex.split(command)
    assert argv[:3] == [sys.executable, script_path(), "merge"]  # the running interpreter
    assert "--created" in argv and "--auto_alpha" in argv and "--overwrite" not in argv
    output.unlink()
    done = subprocess.run(
        [sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == first


def test_copy_command_quotes_paths_for_windows_too(make_window, pair):
    a, b = pair
    window = make_window()
    window.load(a, b)
    line = window.panel.command_line(windows=True)
    assert f'"{a}"' in line and f'"{b}"' in line  # paths with spaces, cmd/PowerShell quoting
    assert " merge --lora_a " in line


def test_the_recipe_is_stored_in_the_project_and_restored_when_it_is_opened(make_window, pair, tmp_path):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    panel.targets.set_text("attn blocks=1")
    panel.rank_form.editors["rank_mode"].editor.setCurrentText("energy")
    panel.rank_form.editors["energy"].editor.setValue(0.95)
    window.run("merge")
    stored = window.window.project.section("merge")
    assert stored["recipe"]["targets"] == "attn blocks=1"
    assert stored["recipe"]["rank_mode"] == "energy" and stored["recipe"]["energy"] == 0.95
    project_file = tmp_path / "my project.difflora"
    assert window.window.save_project_as(project_file)

    assert window.window.new_project()
    assert panel.paths == {"a": None, "b": None}
    assert panel.targets.text() == "all" and panel.rank_form.value("rank_mode") == "fixed"
    assert not panel.rerun_button.isEnabled()

    assert window.window.open_project(project_file)
    window.wait_inputs()
    assert panel.paths == {"a": a, "b": b}
    assert panel.targets.text() == "attn blocks=1"
    assert panel.rank_form.value("energy") == 0.95 and panel.rank_form.is_row_visible("energy")
    assert panel.output_edit.text() == stored["recipe"]["output"]
    assert panel.rerun_button.isEnabled()
    assert panel.build_params().created == stored["recipe"]["created"]  # the form shows that recipe
    assert not window.window.project.dirty


def test_analyze_fills_the_plots_and_writes_nothing(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    window.run("analyze")
    assert panel.analysis is not None and len(panel.analysis.rows) == 16
    assert panel.analysis_view is not None and panel.analysis_view.result is panel.analysis
    assert "nothing written" in panel.status_label.text()
    assert list(window.out.iterdir()) == []
    assert "recipe" not in window.window.project.section("merge")


def test_one_dropped_file_fills_the_first_empty_slot_and_swap_exchanges_them(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    panel.accept_files([a])
    panel.accept_files([b])
    window.wait_inputs()
    assert panel.paths == {"a": a, "b": b}
    panel.swap_button.click()
    assert panel.paths == {"a": b, "b": a}
    assert panel.cards["a"].file_label.text() == b.name
    assert panel.output_edit.text().endswith("sparse B-minus-dense A.safetensors")
    assert panel.build_params().lora_a == str(b)


def test_a_bad_file_shows_on_its_card_and_disables_run(make_window, pair, tmp_path):
    a, _b = pair
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 64)
    window = make_window()
    panel = window.panel
    window.load(a, bad)
    assert panel.errors["b"] and "broken.safetensors" in panel.cards["b"].body.text().replace("\u200b", "")
    assert not panel.merge_button.isEnabled()
    assert panel.reason_label.text().startswith("Merge is disabled: LoRA B:")


def test_loras_of_different_model_sizes_disable_run_with_the_reason(make_window, tmp_path):
    small = make_wan_lora("1.3B", rank=2, select="self_attn blocks=0", path=tmp_path / "small.safetensors")
    big = make_wan_lora("14B", rank=2, select="self_attn blocks=0", path=tmp_path / "big.safetensors")
    del small, big
    window = make_window()
    panel = window.panel
    window.load(tmp_path / "small.safetensors", tmp_path / "big.safetensors")
    assert not panel.merge_button.isEnabled() and not panel.analyze_button.isEnabled()
    assert "different model sizes" in panel.reason_label.text()
    assert "✖" in panel.issues_label.text()
    assert panel.targets.block_count == 40  # the larger of the two models' grids


def test_t2v_against_i2v_warns_but_runs(make_window, tmp_path):
    make_wan_lora("tiny", task="t2v", rank=2, select="cross_attn", path=tmp_path / "t2v.safetensors")
    make_wan_lora("tiny", task="i2v", rank=2, select="cross_attn", seed=1, path=tmp_path / "i2v.safetensors")
    window = make_window()
    panel = window.panel
    window.load(tmp_path / "t2v.safetensors", tmp_path / "i2v.safetensors")
    text = panel.issues_label.text()
    assert "A is T2V but B is I2V" in text and "⚠" in text
    assert panel.merge_button.isEnabled()


def test_targets_boxes_and_text_stay_in_sync(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    targets = panel.targets
    window.load(a, b)
    targets.text_edit.setText("")
    targets.text_edit.textEdited.emit("self_attn blocks=1")
    targets.text_edit.setText("self_attn blocks=1")
    assert targets.checked_blocks() == [1]
    assert [g for g, box in targets.group_boxes.items() if box.isChecked()] == ["self_attn"]
    assert not targets.is_custom()
    assert "Targets <b>4</b>" in targets.status_label.text()

    targets.set_text("attn exclude=k_img|v_img")
    assert targets.is_custom() and targets.checked_blocks() == [0, 1]
    targets.block_buttons[0].click()  # a click keeps the pattern
    assert targets.text() == "attn blocks=1 exclude=k_img|v_img"

    targets.set_text("attn blocks=")
    assert not panel.merge_button.isEnabled()
    assert "selector text is not valid" in panel.reason_label.text()

    targets.select_all()
    targets.select_none()
    assert targets.text() == "" and "no block is selected" in panel.reason_label.text()
    targets.invert()
    assert targets.text() == "attn exclude=k_img|v_img" and panel.merge_button.isEnabled()
    targets.range_edit.setText("1")
    targets.range_button.click()
    assert targets.checked_blocks() == [1]

    targets.set_text("ffn")  # the inputs have no FFN modules
    assert not panel.merge_button.isEnabled()
    assert "selects nothing" in panel.reason_label.text()


def test_cancel_stops_the_merge_and_writes_nothing(make_window, pair):
    class SlowPlugin:
        @hookimpl
        def difflora_register_merge_strategies(self):
            def compress(delta, rank_cap, params, ctx):
                from difflora_gui.merge import linalg

                for _ in range(40):
                    ctx.raise_if_cancelled()
                    time.sleep(0.01)
                return linalg.factored_svd(delta, rank_cap)

            return [MergeStrategySpec("slow_svd", "Slow SVD", "exact SVD, slowly", compress=compress)]

    a, b = pair
    window = make_window(("slow", SlowPlugin()))
    panel = window.panel
    window.load(a, b)
    panel.strategy.set_state("slow_svd")
    panel.merge_button.click()
    window.qtbot.waitUntil(lambda: panel.job is not None and panel.job.state == "running", timeout=30_000)
    assert panel.cancel_button.isEnabled()
    assert not panel.merge_button.isEnabled() and "merge is running" in panel.merge_button.toolTip()
    panel.cancel_button.click()
    window.wait_job()
    assert "cancelled; nothing was written" in panel.status_label.text()
    assert list(window.out.iterdir()) == []
    assert panel.merge_button.isEnabled()


def test_a_failed_merge_is_shown_and_writes_nothing(make_window, pair):
    class FailingPlugin:
        @hookimpl
        def difflora_register_merge_strategies(self):
            def compress(delta, rank_cap, params, ctx):
                raise UserError("this strategy always fails")

            return [MergeStrategySpec("failing", "Failing", "always fails", compress=compress)]

    a, b = pair
    window = make_window(("failing", FailingPlugin()))
    panel = window.panel
    window.load(a, b)
    panel.strategy.set_state("failing")
    window.run("merge")
    assert "Merge failed: this strategy always fails" in panel.status_label.text()
    assert list(window.out.iterdir()) == []
    assert "Failed: Merge" in window.window.log_dock.text()


class ScaledSvdPlugin:
    """A third-party compressor: the exact SVD times a factor, with a form-worthy schema."""

    @hookimpl
    def difflora_register_merge_strategies(self):
        def compress(delta, rank_cap, params, ctx):
            from difflora_gui.merge import linalg

            decomposition = linalg.factored_svd(delta, rank_cap)
            decomposition.S = decomposition.S * params["factor"]
            return decomposition

        return [
            MergeStrategySpec(
                "scaled_svd",
                "Scaled SVD",
                "the exact SVD, scaled",
                params=(
                    Param("factor", "float", 1.0, "multiplies the singular values", minimum=0.0, maximum=2.0),
                    Param("passes", "int", 1, "how many passes", minimum=1, maximum=8),
                    Param("flavour", "choice", "plain", "a choice", choices=("plain", "fancy")),
                    Param("verbose", "bool", False, "say more"),
                    Param("note", "str", "", "a free text", advanced=True),
                ),
                compress=compress,
            )
        ]


def test_a_third_party_strategy_appears_with_its_generated_form_and_runs(make_window, pair):
    a, b = pair
    window = make_window(("scaled", ScaledSvdPlugin()))
    panel = window.panel
    combo = panel.strategy.combo
    names = [combo.itemData(i) for i in range(combo.count())]
    assert {"full_svd", "randomized_svd", "magnitude_filter", "scaled_svd"} <= set(names)
    window.load(a, b)
    combo.setCurrentIndex(names.index("scaled_svd"))
    form = panel.strategy.form("scaled_svd")
    assert panel.strategy.stack.currentWidget() is form
    factor = form.editors["factor"].editor
    assert isinstance(factor, QLabeledDoubleSlider) and isinstance(
        form.editors["passes"].editor, QLabeledSlider
    )
    assert factor.toolTip() == "multiplies the singular values"
    assert isinstance(form.editors["verbose"].editor, QCheckBox)
    assert form.findChild(QCollapsible) is not None  # "note" is advanced
    factor.setValue(0.5)
    panel.rank_form.editors["rank"].editor.setValue(0)
    panel.targets.set_text("self_attn")
    window.run("merge")
    recipe = window.window.project.section("merge")["recipe"]
    assert recipe["strategy"] == "scaled_svd" and recipe["strategy_params"] == {"scaled_svd": {"factor": 0.5}}
    written, da, db = deltas(Path(panel.last_result.output)), deltas(a), deltas(b)
    for name in written:
        if ".self_attn." in name:
            torch.testing.assert_close(written[name], 0.5 * (da[name] - db[name]), rtol=1e-5, atol=1e-6)


def test_a_filter_strategy_says_it_hands_modules_to_a_compressor(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    panel.strategy.set_state("magnitude_filter")
    assert not panel.strategy.compressor_box.isHidden()
    assert "Exact SVD" in panel.strategy.compressor_label.text()
    assert "Module filter" in panel.strategy.description.text()
    form = panel.strategy.form("magnitude_filter")
    assert form.editors["threshold_percentile"].set_check is not None  # optional: unset = off
    form.editors["top_k_layers"].editor.setValue(3)
    window.run("merge")
    assert panel.last_result.merged == 3
    assert json.loads(json.dumps(window.window.project.section("merge")["recipe"]))["strategy_params"] == {
        "magnitude_filter": {"top_k_layers": 3}
    }


def test_analysis_files_are_written_beside_the_output_when_asked(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    panel.output_form.editors["analyze"].editor.setChecked(True)
    window.run("merge")
    output = Path(panel.last_result.output)
    stem = output.name.removesuffix(".safetensors")
    saved = json.loads((output.parent / f"{stem}.analysis.json").read_text(encoding="utf-8"))
    assert [m["name"] for m in saved["modules"]] == [r.name for r in panel.analysis.rows]
    assert (output.parent / f"{stem}.analysis.csv").read_text(encoding="utf-8") == panel.analysis.to_csv()


def test_a_file_dropped_on_a_card_goes_to_that_card(make_window, pair):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    a, b = pair
    window = make_window()
    panel = window.panel
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(b))])
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    panel.cards["b"].dropEvent(event)
    assert event.isAccepted()
    window.wait_inputs()
    assert panel.paths == {"a": None, "b": b} and panel.summaries["b"] is not None


def test_new_and_opened_projects_are_not_marked_changed_by_the_panel(make_window, pair, tmp_path):
    a, b = pair
    window = make_window()
    main = window.window
    window.load(a, b)
    window.qtbot.wait(400)  # the edit is written into the project after a short delay
    assert main.project.section("merge")["settings"]["lora_a"] == str(a)
    path = tmp_path / "p.difflora"
    assert main.save_project_as(path)
    assert main.new_project()
    window.qtbot.wait(400)
    assert not main.project.dirty and main.project.section("merge") == {}
    assert main.open_project(path)
    window.wait_inputs()
    window.qtbot.wait(400)
    assert not main.project.dirty


def test_copy_command_leaves_out_settings_the_form_hides(make_window, pair):
    a, b = pair
    window = make_window()
    panel = window.panel
    window.load(a, b)
    rank, strength = panel.rank_form, panel.strength_form
    rank.editors["rank_mode"].editor.setCurrentText("energy")
    assert rank.is_row_visible("energy") and not rank.is_row_visible("sv_ratio")
    rank.editors["energy"].editor.setValue(0.95)
    strength.editors["auto_alpha"].editor.setChecked(True)
    assert strength.is_row_visible("target_norm") and not strength.is_row_visible("alpha")
    strength.editors["target_norm"].editor.setCurrentText("b")
    argv = shlex.split(panel.command_line(windows=False))
    assert argv[argv.index("--energy") + 1] == "0.95" and argv[argv.index("--target_norm") + 1] == "b"
    # hidden again: the values stay in the form (and the project), not in the command
    rank.editors["rank_mode"].editor.setCurrentText("fixed")
    strength.editors["auto_alpha"].editor.setChecked(False)
    assert not rank.is_row_visible("energy") and not strength.is_row_visible("target_norm")
    argv = shlex.split(panel.command_line(windows=False))
    assert "--energy" not in argv and "--target_norm" not in argv and "--auto_alpha" not in argv
    assert panel.settings_json()["energy"] == 0.95 and panel.settings_json()["target_norm"] == "b"


def test_a_merge_leaves_a_record_and_an_event_log_in_the_project_workspace(make_window, pair, tmp_path):
    from difflora_gui.jobs.eventlog import read_events
    from difflora_gui.jobs.events import Artifact
    from difflora_gui.project import Project

    a, b = pair
    window = make_window()
    panel = window.panel
    project_file = tmp_path / "slider project.difflora"
    assert window.window.save_project_as(project_file)
    window.load(a, b)
    window.run("merge")
    project = window.window.project
    record_id = project.section("merge")["last_merge_id"]
    record = project.get_record(record_id)
    assert record.lora_a == str(a) and record.lora_b == str(b)
    assert record.output == panel.last_result.output
    events_file = project.workspace.events_path("merges", record_id)
    assert events_file.parent.parent.parent == tmp_path / "slider project.difflora.d"
    events = read_events(events_file)
    loras = [e for e in events if isinstance(e, Artifact) and e.kind == "lora"]
    assert [Path(e.path) for e in loras] == [Path(record.output)]
    assert any(e.EVENT == "progress" for e in events)

    assert window.window.save_project()
    reopened = Project.load(project_file)
    assert reopened.get_record(record_id).lora_a == str(a)
    assert reopened.lineage(record_id)[0].id == record_id
