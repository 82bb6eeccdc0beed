"""The Preview section driven like a user drives it, on a tiny Wan model rendered for real: the
strength slider and block controls make the request, Render plays the result, auto-render drops
superseded requests, the A/B view gets the strength-0 render, Export writes a loadable LoRA,
and the panel's state survives a project save and reload."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from difflora_gui.jobs.job import JobRequest
from difflora_gui.qt.jobs import CANCELLED, DONE, RUNNING
from difflora_gui.qt.replace_question import REPLACE_TITLE
from tests.preview_panel_helpers import PreviewWindow, make_model_and_loras


@pytest.fixture(scope="module")
def model_and_loras(tmp_path_factory):
    return make_model_and_loras(tmp_path_factory.mktemp("preview model"))


@pytest.fixture
def make_window(qtbot, monkeypatch, model_and_loras):
    made = []

    def build(*, with_model: bool = True):
        window = PreviewWindow(qtbot, monkeypatch, model_and_loras[0] if with_model else None)
        made.append(window)
        return window

    yield build
    for window in made:
        window.close()


def test_the_slider_and_block_controls_make_the_request_and_undo_takes_them_back(
    make_window, model_and_loras
):
    window = make_window()
    panel = window.panel
    _model, (slider, other) = model_and_loras
    routed = window.window.drops.route([other, slider])  # dropped on the window, Preview on show
    assert list(routed) == ["preview-player"]
    assert [Path(e.file).name for e in panel.current_request().loras] == [other.name, slider.name]
    assert panel.stack.selected_index() == 1  # the last added is the one the controls edit
    assert panel.blocks.num_blocks == 2  # from the tiny model's config
    assert "2 blocks" in panel.render_form.model_label.text()
    assert not panel.render_form.settings_button.isVisible()

    panel.strength.slider.setValue(30)  # 0.05 per tick: strength 1.5
    request = panel.current_request()
    assert request.loras[1].strength == pytest.approx(1.5)
    assert request.loras[0].strength == 1.0  # the other entry (an accelerator, say) is untouched
    panel.blocks.block_buttons[1].click()  # block 1 off
    request = panel.current_request()
    assert request.loras[1].selector == panel.blocks.selector() != "all"
    assert request.loras[0].selector == "all"
    stack = window.window.current_undo_stack()
    assert stack is panel.undo_stack and "Blocks" in window.window.action_undo.text()
    window.window.undo()
    assert panel.current_request().loras[1].selector == "all"
    window.window.undo()
    assert panel.current_request().loras[1].strength == 1.0
    assert panel.strength.value() == 1.0
    panel.undo_stack.redo()
    assert panel.current_request().loras[1].strength == pytest.approx(1.5)

    panel.stack.select(0)
    assert panel.strength.value() == 1.0 and panel.blocks.selector() == "all"
    panel.stack.remove_selected()
    assert [Path(e.file).name for e in panel.current_request().loras] == [slider.name]
    window.window.undo()  # the stack edit is a step too
    assert [Path(e.file).name for e in panel.current_request().loras] == [other.name, slider.name]
    panel.stack.select(0)
    panel.stack.table.item(0, 0).setCheckState(panel.stack.table.item(0, 0).checkState().Unchecked)
    assert [Path(e.file).name for e in panel.current_request().loras] == [slider.name]

    panel.render_form.frames_spin.setValue(7)
    panel.render_form.frames_spin.editingFinished.emit()  # a typed 7 is snapped to 4N+1
    assert panel.current_request().frames in (5, 9)
    panel.render_form.apply_accelerator_preset()
    request = panel.current_request()
    assert (request.steps, request.guidance, request.sampler) == (4, 1.0, "euler")


def test_render_plays_the_result_and_a_setting_shown_before_comes_back_at_once(
    make_window, model_and_loras, monkeypatch
):
    window = make_window()
    panel = window.panel
    panel.accept_files([str(model_and_loras[1][0])])
    window.quick_form()
    latents, progress = [], []
    show_latent, show_progress = panel.show_latent, panel.show_progress
    monkeypatch.setattr(panel, "show_latent", lambda event: (latents.append(event), show_latent(event)))
    monkeypatch.setattr(
        panel, "show_progress", lambda f, text: (progress.append(text), show_progress(f, text))
    )
    handle = panel.render()
    assert handle is not None and handle.request.lane_key == "device:cpu"
    window.wait_idle()
    assert handle.state == DONE, handle.error_text
    request = panel.current_request()
    assert panel.player.frame_count == request.frames == 5
    assert panel.player.frames().shape[1:3] == (64, 64)
    assert panel.stale_line.text() == ""
    assert "rendered" in panel.status_line.text()
    # while it rendered: latent previews in the player, progress per step with its ETA
    assert latents and latents[-1].image.ndim == 3 and latents[-1].meta["step"] == 2
    assert any(text.startswith("step 2 of 2") for text in progress)
    assert any("ETA" in text for text in progress)
    assert panel.progress.format() == "done"

    panel.strength.set_value(2.0)
    assert panel.stale_line.text() == "shown: strength 1 · current: strength 2 — Render"
    panel.strength.set_value(1.0)  # back to what is on show
    assert panel.stale_line.text() == ""
    submitted = panel.submitted
    assert panel.render() is None  # shown at once from this session's renders: no job
    assert panel.submitted == submitted
    assert "shown again" in panel.status_line.text()


def test_auto_render_runs_only_the_newest_request(make_window, model_and_loras, qtbot):
    window = make_window()
    panel = window.panel
    panel.accept_files([str(model_and_loras[1][0])])
    window.quick_form()
    panel.auto_check.setChecked(True)  # renders the inputs as they are (debounced)
    qtbot.waitUntil(lambda: panel.submitted == 1, timeout=5000)
    first = panel.views["main"].handles[0]
    for value in (1.25, 1.5, 1.75):  # three quick changes: one debounced request
        panel.strength.set_value(value)
    qtbot.waitUntil(lambda: panel.submitted == 2, timeout=5000)
    window.wait_idle()
    # three requests submitted while the lane is busy (a job that holds it until released):
    # the waiting ones are dropped before they start, the newest runs
    release = threading.Event()
    blocker = window.window.services.submit(
        JobRequest(
            "hold the lane",
            run=lambda params, ctx: release.wait(30),
            lane=first.request.lane,
            device=first.request.device,
        )
    )
    qtbot.waitUntil(lambda: blocker.state == RUNNING, timeout=5000)
    panel.auto_check.setChecked(False)  # Render by hand now, each at a new strength
    handles = []
    for value in (2.0, 2.25, 2.5):
        panel.strength.set_value(value)
        handles.append(panel.render())
    release.set()
    window.wait_idle()
    assert panel.submitted == 5
    assert first.state == DONE
    assert [h.state for h in handles] == [CANCELLED, CANCELLED, DONE]
    assert handles[0].started_at is None and handles[1].started_at is None
    qtbot.waitUntil(lambda: panel.player.frame_count == 5, timeout=10_000)
    assert panel.views["main"].shown == panel.current_request()  # the newest one is on show
    first_strength = first.request.params["request"]["loras"][0]["strength"]
    assert first_strength == 1.0  # superseded while it ran: kept (replayable), not shown
    assert any(r.request.loras[0].strength == first_strength for r in panel.history)
    assert panel.current_request().loras[0].strength == 2.5
    assert panel.stale_line.text() == ""


def test_the_ab_view_gets_the_render_at_strength_0(make_window, model_and_loras, qtbot):
    window = make_window()
    panel = window.panel
    panel.accept_files([str(model_and_loras[1][0])])
    window.quick_form()
    panel.strength.set_value(2.0)
    panel.render()
    window.wait_idle()
    panel.tabs.setCurrentWidget(panel.ab_view)  # asks for the same request at strength 0
    qtbot.waitUntil(lambda: panel._shown.get("zero") is not None, timeout=60_000)
    window.wait_idle()
    reference = panel._shown["zero"]
    assert reference.request.loras[0].strength == 0.0
    assert reference.request.seed == panel.current_request().seed
    left, right = panel.ab_view.swipe.frames_at(0)
    assert left.shape == right.shape == (64, 64, 3)
    assert (left != right).any()  # strength 2 changes the clip
    submitted = panel.submitted
    panel.tabs.setCurrentIndex(0)
    panel.tabs.setCurrentWidget(panel.ab_view)  # the same reference again: nothing new to render
    assert panel.submitted == submitted
    # any render of this session as the reference: strength 2 (left) beside strength 1 (right)
    panel.strength.set_value(1.0)
    panel.render()
    window.wait_idle()
    combo = panel.ab_view.reference_combo
    labels = [combo.itemText(i) for i in range(combo.count())]
    index = next(i for i, text in enumerate(labels) if "strength 2," in text)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    window.wait_idle()  # the two clips are decoded on a worker thread
    left_2, right_1 = panel.ab_view.swipe.frames_at(0)
    assert (left_2 == right).all() and (left_2 != right_1).any()
    assert "strength 2" in panel.ab_view.note.text()


def test_the_ab_view_offers_renders_of_an_earlier_session_from_the_cache(make_window, model_and_loras, qtbot):
    window = make_window()
    panel = window.panel
    panel.accept_files([str(model_and_loras[1][0])])
    window.quick_form()
    panel.strength.set_value(-1.5)
    panel.render()
    window.wait_idle()
    earlier = panel._shown["main"]
    panel.restore_from_project()  # a new session of the project: its renders are only in the cache
    assert panel.history == [] and panel.cached_refs == []
    panel.strength.set_value(1.0)
    panel.render()
    window.wait_idle()
    panel.tabs.setCurrentWidget(panel.ab_view)
    window.wait_idle()
    combo = panel.ab_view.reference_combo
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[1].startswith("Render 1: strength 1")  # this session's first, then the cache's
    index = next(i for i, text in enumerate(labels) if text.startswith("Cached: strength -1.5"))
    assert combo.itemData(index) == earlier.key and "64×64" in labels[index]
    assert not any(text.startswith("Cached: strength 1,") for text in labels)  # not twice
    submitted = panel.submitted
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    window.wait_idle()
    assert panel.submitted == submitted  # shown from the cache, not rendered again
    left, right = panel.ab_view.swipe.frames_at(0)
    assert (left != right).any() and "strength -1.5" in panel.ab_view.note.text()


def test_export_bakes_the_selected_entry_into_a_loadable_file(
    make_window, model_and_loras, monkeypatch, tmp_path
):
    from difflora_gui.lora.reader import open_lora

    window = make_window()
    panel = window.panel
    slider = model_and_loras[1][0]
    panel.accept_files([str(slider)])
    panel.strength.set_value(1.5)
    panel.blocks.block_buttons[1].click()  # block 1 dropped from the file
    out = tmp_path / "exports" / "baked.safetensors"
    out.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    assert panel.export_clicked()
    window.qtbot.waitUntil(lambda: panel.export_job is None, timeout=60_000)
    assert out.is_file(), panel.status_line.text()
    with open_lora(out) as lora:
        names = lora.names()
    assert names and all(".1." not in name for name in names)
    assert "Exported" in panel.status_line.text()
    # a second export to the same file asks first; No writes nothing
    window.dialogs.answers[REPLACE_TITLE] = QMessageBox.StandardButton.No
    before = out.stat().st_mtime_ns
    assert not panel.export_clicked()
    assert out.stat().st_mtime_ns == before
    assert REPLACE_TITLE in window.dialogs.titles("question")


def test_the_state_survives_a_project_save_and_reload(make_window, model_and_loras, tmp_path):
    window = make_window()
    panel = window.panel
    slider, other = model_and_loras[1]
    panel.accept_files([str(slider), str(other)])
    window.quick_form(prompt="a slow pan over hills", seed=1234)
    panel.stack.select(0)
    panel.strength.set_value(-2.5)
    panel.blocks.block_buttons[0].click()
    selector = panel.blocks.selector()
    wanted = panel.current_request()
    path = tmp_path / "project folder" / "preview.difflora"
    path.parent.mkdir()
    assert window.window.save_project_as(path)
    assert window.window.new_project()
    assert window.window.panels["preview-player"].widget.current_request().loras == ()
    assert window.window.open_project(path)
    panel = window.window.panels["preview-player"].widget
    assert panel.current_request() == wanted
    assert panel.stack.selected_index() == 0
    assert panel.strength.value() == -2.5 and panel.blocks.selector() == selector
    assert panel.render_form.values()["prompt"] == "a slow pan over hills"


def test_without_a_model_the_panel_says_what_to_set(make_window, model_and_loras):
    window = make_window(with_model=False)
    panel = window.panel
    assert not window.window.project.dirty  # building the panel writes nothing into a new project
    assert panel.stale_line.text().startswith("Nothing rendered yet")
    chain = panel.update_tab_order()  # Tab follows the layout: the form first, Render after the inputs
    assert chain.index(panel.render_form.prompt_edit) < chain.index(panel.strength.slider)
    assert chain.index(panel.strength.slider) < chain.index(panel.render_button)
    assert panel.render_form.settings_button.isVisible()
    assert panel.render_form.model_label.text()
    assert not panel.render_button.isEnabled()
    assert panel.render_button.toolTip() == f"Render is disabled: {panel.render_form.model_label.text()}"
    panel.accept_files([str(model_and_loras[1][0]), str(Path(model_and_loras[0]) / "model_index.json")])
    assert "not a .safetensors file" in panel.status_line.text()
    assert panel.render() is None
    assert panel.status_line.text().startswith("Cannot render:")
    assert panel.submitted == 0


def test_a_two_expert_model_gets_expert_routing_per_expert_strengths_and_two_exported_files(
    make_window, model_and_loras, monkeypatch, tmp_path
):
    from difflora_gui.lora.reader import open_lora
    from tests.wan_tiny import save_tiny_wan

    window = make_window()
    panel = window.panel
    assert panel.stack.table.isColumnHidden(3) and panel.expert_strengths.isHidden()
    two = save_tiny_wan(tmp_path / "tiny wan 2.2", two_experts=True)
    window.window.services.update_settings(wan_model_dir=str(two))  # Settings changed: the model follows
    assert not panel.stack.table.isColumnHidden(3) and not panel.expert_strengths.isHidden()
    panel.accept_files([str(model_and_loras[1][0])])
    panel.expert_strengths.check.setChecked(True)
    panel.expert_strengths.high_spin.setValue(2.0)
    panel.expert_strengths.low_spin.setValue(0.5)
    entry = panel.current_request().loras[0]
    assert (entry.strength_for("high"), entry.strength_for("low")) == (2.0, 0.5)
    assert not panel.strength.isEnabled()  # the shared strength no longer applies
    assert "H +2.00" in panel.stack.table.item(0, 2).text()
    combo = panel.stack.table.cellWidget(0, 3)
    combo.setCurrentIndex(combo.findData("low"))
    assert panel.current_request().loras[0].expert == "low"
    window.window.undo()
    assert panel.current_request().loras[0].expert == "both"
    out = tmp_path / "baked pair.safetensors"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    assert panel.export_clicked()
    window.qtbot.waitUntil(lambda: panel.export_job is None, timeout=60_000)
    written = sorted(p.name for p in tmp_path.glob("baked pair*.safetensors"))
    assert written == ["baked pair_high_noise.safetensors", "baked pair_low_noise.safetensors"], (
        panel.status_line.text()
    )
    for name in written:
        with open_lora(tmp_path / name) as lora:
            assert lora.names()


def test_the_stale_line_names_what_changed_since_the_render_on_show():
    from difflora_gui.preview.request import LoraEntry, PreviewRequest
    from difflora_gui.qt.preview.panel_jobs import zero_request
    from difflora_gui.qt.preview.render_form import difference_text

    shown = PreviewRequest(
        "hills", loras=(LoraEntry("/l/slider.safetensors", 1.5), LoraEntry("/l/fast.safetensors"))
    )
    assert difference_text(shown, shown, 0) == "" and difference_text(None, shown, 0) == ""
    now = shown.replace(
        loras=(LoraEntry("/l/slider.safetensors", 2.0, selector="blocks=0-3"), shown.loras[1])
    )
    assert difference_text(shown, now, 0) == (
        "shown: strength 1.5; selector all · current: strength 2; selector blocks=0-3 — Render"
    )
    assert difference_text(shown, shown.replace(seed=7), 0) == "shown: seed 0 · current: seed 7 — Render"
    assert (
        difference_text(shown, shown.replace(loras=shown.loras[:1]), 0)
        == "shown: 2 LoRAs · current: 1 LoRA — Render"
    )
    zero = zero_request(now, 0)
    assert (
        zero.loras[0].strength == 0
        and zero.loras[0].selector == "blocks=0-3"
        and zero.loras[1] == now.loras[1]
    )


def test_save_as_moves_the_workspace_and_the_stack_and_renders_follow(make_window, model_and_loras, tmp_path):
    import shutil

    window = make_window()
    panel = window.panel
    project = window.window.project
    inside = project.workspace.dir_for("merge", "m1") / "merged.safetensors"  # a LoRA made in the project
    inside.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_and_loras[1][0], inside)
    panel.accept_files([str(inside)])
    window.quick_form()
    panel.render()
    window.wait_idle()
    path = tmp_path / "saved" / "moved.difflora"
    path.parent.mkdir()
    assert window.window.save_project_as(path)
    moved = Path(panel.current_request().loras[0].file)
    assert moved.is_file() and path.parent in moved.parents
    assert not panel.undo_stack.canUndo()  # no step brings back a path into the removed workspace
    assert Path(panel._shown["main"].video).is_file()  # the render on show is in the moved cache
    assert panel.stale_line.text() == ""  # and it is still the render of what the inputs say
    panel.tabs.setCurrentWidget(panel.ab_view)  # the A/B view reads it from there
    window.qtbot.waitUntil(lambda: panel._shown.get("zero") is not None, timeout=60_000)
    window.wait_idle()
    assert panel.ab_view.swipe.frames_at(0) is not None


def test_a_rebuilt_panel_leaves_the_old_one_out_of_project_and_settings_changes(make_window, model_and_loras):
    window = make_window()
    old = window.panel
    old.accept_files([str(model_and_loras[1][0])])
    window.window.build_panels()  # a plugin switched on or off rebuilds every panel
    window.qtbot.wait(50)  # the old panel is deleted (deleteLater)
    panel = window.window.panels["preview-player"].widget
    assert panel is not old
    assert len(panel.current_request().loras) == 1  # the stack is the project's
    window.window.services.update_settings(preview_cache_mb=512)
    window.dialogs.answers["Unsaved changes"] = QMessageBox.StandardButton.Discard
    assert window.window.new_project()  # neither reaches the old panel (deleted meanwhile)
    assert panel.current_request().loras == ()
