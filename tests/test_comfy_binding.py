"""Bindings of a user's own API-format workflow to preview parameters: suggested from the node
classes, checked against /object_info (tests/fixtures/comfy_object_info.json), applied with the
input's type, stored as JSON; UI-format files are refused."""

from __future__ import annotations

import json
import os

import pytest

from difflora_gui.comfy.binding import (
    BLOCKS_INPUT,
    Binding,
    apply_bindings,
    check_bindings,
    from_json,
    load_api_workflow,
    suggest_bindings,
    to_json,
)
from difflora_gui.comfy.validate import validate_workflow
from difflora_gui.comfy.workflows import build_kontext_workflow, roles
from difflora_gui.errors import UserError
from difflora_gui.preview.request import LoraEntry
from tests.test_comfy_workflows import INFO, MODELS, build, entries, request_with


def native():
    return build("wan21_t2v", request_with(entries(1)))


def lora_ids(workflow, class_type):
    return [k for k, n in workflow.items() if n["class_type"] == class_type]


def test_suggested_bindings_of_the_native_template_are_the_intended_ones():
    workflow = native()
    at = roles(workflow)
    (lora,) = lora_ids(workflow, "LoraLoaderModelOnly")
    assert suggest_bindings(workflow, INFO) == [
        Binding("prompt", at["positive"], "text"),
        Binding("negative_prompt", at["negative"], "text"),
        Binding("seed", at["sampler"], "seed"),
        Binding("steps", at["sampler"], "steps"),
        Binding("guidance", at["sampler"], "cfg"),
        Binding("shift", at["shift"], "shift"),
        Binding("strength", lora, "strength_model"),
        Binding("lora_name", lora, "lora_name"),
        Binding("width", at["latent"], "width"),
        Binding("height", at["latent"], "height"),
        Binding("frames", at["latent"], "length"),
        Binding("fps", at["video"], "fps"),
    ]
    assert check_bindings(workflow, suggest_bindings(workflow, INFO), INFO) == []


def test_the_prompt_is_the_text_linked_to_the_samplers_positive_not_the_first_encoder():
    workflow = native()
    at = roles(workflow)
    sampler = workflow[at["sampler"]]["inputs"]
    sampler["positive"], sampler["negative"] = sampler["negative"], sampler["positive"]
    suggested = {b.param: b.node_id for b in suggest_bindings(workflow, INFO)}
    assert suggested["prompt"] == at["negative"] and suggested["negative_prompt"] == at["positive"]


def test_the_lora_binding_goes_to_the_end_of_the_chain():
    workflow = build("wan21_t2v", request_with(entries(3)))
    at = roles(workflow)
    last = workflow[at["shift"]]["inputs"]["model"][0]
    suggested = {b.param: b for b in suggest_bindings(workflow, INFO)}
    assert suggested["lora_name"] == Binding("lora_name", last, "lora_name")
    assert workflow[last]["inputs"]["lora_name"] == "slider-ba9876543210.safetensors"


def test_wan22_binds_the_seed_of_the_noising_sampler_and_leaves_split_settings_alone():
    workflow = build("wan22_t2v_a14b", request_with(entries(1)))
    at = roles(workflow)
    suggested = {b.param: b for b in suggest_bindings(workflow, INFO)}
    assert suggested["seed"] == Binding("seed", at["sampler_high"], "noise_seed")
    # two samplers, two shifts, two chains: one binding could change only half of each
    assert not {"steps", "guidance", "shift", "lora_name", "strength"} & set(suggested)
    assert suggested["prompt"].node_id == at["positive"]


def test_wrapper_suggestions_include_the_prompts_and_the_block_switches():
    stack = [LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=0-9")]
    workflow = build("wanvideo_t2v", request_with(stack))
    at = roles(workflow)
    (edit,) = lora_ids(workflow, "WanVideoLoraBlockEdit")
    (select,) = lora_ids(workflow, "WanVideoLoraSelect")
    suggested = {b.param: b for b in suggest_bindings(workflow, INFO)}
    assert suggested["prompt"] == Binding("prompt", at["prompts"], "positive_prompt")
    assert suggested["negative_prompt"] == Binding("negative_prompt", at["prompts"], "negative_prompt")
    assert suggested["block_weights"] == Binding("block_weights", edit, BLOCKS_INPUT)
    assert suggested["lora_name"] == Binding("lora_name", select, "lora")
    assert suggested["frames"] == Binding("frames", at["latent"], "num_frames")
    assert suggested["shift"] == Binding("shift", at["sampler"], "shift")
    assert check_bindings(workflow, list(suggested.values()), INFO) == []


def test_kontext_binds_flux_guidance_and_no_negative_prompt():
    workflow = build_kontext_workflow(
        "difflora/kontext_src.png",
        "x",
        models=dict(MODELS, unet="flux1-dev-kontext.safetensors"),
        filename_prefix="k",
    )
    at = roles(workflow)
    suggested = {b.param: b for b in suggest_bindings(workflow, INFO)}
    assert suggested["prompt"] == Binding("prompt", at["positive"], "text")
    assert suggested["guidance"] == Binding("guidance", at["guidance"], "guidance")
    assert "negative_prompt" not in suggested  # ConditioningZeroOut has no text of its own


def test_check_bindings_names_each_problem_on_one_line():
    workflow = native()
    at = roles(workflow)
    good = suggest_bindings(workflow, INFO)
    cases = [
        (Binding("fps", "99", "fps"), "fps: node 99 is not in the workflow"),
        (Binding("width", at["latent"], "widht"), "EmptyHunyuanLatentVideo has no input 'widht'"),
        (Binding("fps", at["latent"], "batch_size"), None),  # INT is fine for fps
        (Binding("guidance", at["sampler"], "seed"), "seed is INT, but guidance needs FLOAT"),
        (Binding("prompt", at["sampler"], "positive"), "positive is CONDITIONING, but prompt needs STRING"),
        (Binding("shift", at["shift"], "model"), "model is MODEL, but shift needs FLOAT"),
        (Binding("block_weights", at["sampler"], BLOCKS_INPUT), "needs a node with blocks.N. switches"),
        (Binding("volume", at["sampler"], "cfg"), "'volume' is not a preview parameter"),
    ]
    for extra, expected in cases:
        others = [b for b in good if b.param != extra.param]
        problems = check_bindings(workflow, [*others, extra], INFO)
        if expected is None:
            assert not [p for p in problems if extra.param in p]
        else:
            assert len(problems) == 1 and expected in problems[0], problems
    twice = check_bindings(workflow, [*good, Binding("seed", at["sampler"], "steps")], INFO)
    assert twice == [f"seed is bound twice (node {at['sampler']} and node {at['sampler']})"]
    same_input = [b for b in good if b.param != "steps"] + [Binding("steps", at["sampler"], "seed")]
    (problem,) = check_bindings(workflow, same_input, INFO)
    assert "steps and seed are both bound to seed" in problem
    missing = check_bindings(workflow, [b for b in good if b.param not in ("prompt", "seed")], INFO)
    assert missing == [
        "prompt is not bound to any input (every preview sets it)",
        "seed is not bound to any input (every preview sets it)",
    ]
    workflow[at["latent"]]["inputs"]["width"] = ["1", 0]
    (problem,) = check_bindings(workflow, good, INFO)
    assert "width is connected to node 1; bind a widget value instead" in problem


def test_a_node_the_server_lacks_is_reported():
    workflow = native()
    at = roles(workflow)
    info = {k: v for k, v in INFO.items() if k != "ModelSamplingSD3"}
    problems = check_bindings(workflow, suggest_bindings(workflow, INFO), info)
    assert problems == [
        f"shift → node {at['shift']} (ModelSamplingSD3): the server has no node 'ModelSamplingSD3'"
    ]


def test_apply_bindings_writes_type_correct_values_into_a_copy_that_validates():
    workflow = native()
    at = roles(workflow)
    bindings = suggest_bindings(workflow, INFO)
    values = {
        "prompt": "a heron",
        "negative_prompt": "",
        "seed": 42.0,  # a whole float from a JSON form becomes the int the INT input needs
        "steps": 6,
        "guidance": 3,  # an int for a FLOAT input becomes a float
        "shift": 8,
        "strength": -1,
        "lora_name": "style.safetensors",
        "width": 640,
        "height": 352,
        "frames": 21,
        "fps": 24,
    }
    applied = apply_bindings(workflow, bindings, values, INFO)
    assert workflow[at["positive"]]["inputs"]["text"] == "a red fox in snow"  # the original is untouched
    assert applied[at["positive"]]["inputs"]["text"] == "a heron"
    sampler = applied[at["sampler"]]["inputs"]
    assert sampler["seed"] == 42 and type(sampler["seed"]) is int
    assert sampler["cfg"] == 3.0 and type(sampler["cfg"]) is float
    assert type(applied[at["video"]]["inputs"]["fps"]) is float  # CreateVideo.fps is FLOAT
    assert applied[at["latent"]]["inputs"]["length"] == 21
    assert validate_workflow(applied, INFO) == []
    # without object_info the value already there decides
    assert type(apply_bindings(workflow, bindings, {"guidance": 7})[at["sampler"]]["inputs"]["cfg"]) is float
    with pytest.raises(UserError, match="seed must be a whole number, got 1.5"):
        apply_bindings(workflow, bindings, {"seed": 1.5}, INFO)
    with pytest.raises(UserError, match="prompt must be text"):
        apply_bindings(workflow, bindings, {"prompt": 3}, INFO)
    with pytest.raises(UserError, match="steps must be a whole number"):
        apply_bindings(workflow, bindings, {"steps": True}, INFO)


def test_block_weights_become_the_switches_and_weights_are_refused():
    workflow = build(
        "wanvideo_t2v", request_with([LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=0-9")])
    )
    bindings = suggest_bindings(workflow, INFO)
    (edit,) = lora_ids(workflow, "WanVideoLoraBlockEdit")
    applied = apply_bindings(workflow, bindings, {"block_weights": "blocks=20-29"}, INFO)
    assert [i for i in range(40) if applied[edit]["inputs"][f"blocks.{i}."]] == list(range(20, 30))
    assert validate_workflow(applied, INFO) == []
    grid = apply_bindings(workflow, bindings, {"block_weights": {0: 1, 1: 0, 2: 1.0}})
    assert [i for i in range(40) if grid[edit]["inputs"][f"blocks.{i}."]] == [0, 2]
    with pytest.raises(UserError, match="can only switch blocks on or off"):
        apply_bindings(workflow, bindings, {"block_weights": "blocks=0-9@0.5,10-19"}, INFO)
    with pytest.raises(UserError, match="no block is switched on"):
        apply_bindings(workflow, bindings, {"block_weights": {3: 0}}, INFO)


def test_binding_sets_round_trip_through_json():
    bindings = suggest_bindings(native(), INFO)
    text = json.dumps(to_json(bindings))
    assert from_json(json.loads(text)) == bindings
    with pytest.raises(UserError, match="unknown preview parameter 'volume'"):
        from_json([{"param": "volume", "node_id": "1", "input_name": "x"}])
    with pytest.raises(UserError, match="not a binding"):
        from_json([{"param": "seed"}])
    with pytest.raises(UserError, match="JSON list"):
        from_json({"seed": "1"})


def test_a_ui_format_file_is_refused_with_the_way_to_export_it(tmp_path):
    ui = {
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [{"id": 1, "type": "EmptyImage", "widgets_values": [512, 512, 1, 0]}],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "version": 0.4,
    }
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(ui), encoding="utf-8")
    with pytest.raises(
        UserError, match=r"UI-format workflow: save it in ComfyUI with Export \(API\)"
    ) as caught:
        load_api_workflow(path)
    assert "ui.json" in str(caught.value)
    assert suggest_bindings(ui, INFO) == []
    assert "Export (API)" in check_bindings(ui, [], INFO)[0]
    api = tmp_path / "api.json"
    api.write_text(json.dumps(native()), encoding="utf-8")
    assert load_api_workflow(api) == native()
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read the workflow"):
        load_api_workflow(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(UserError, match="not an API-format"):
        load_api_workflow(tmp_path / "list.json")


@pytest.mark.skipif(not os.environ.get("COMFYUI_URL"), reason="set COMFYUI_URL to run against a real ComfyUI")
def test_a_real_server_accepts_a_workflow_with_bound_values():
    from difflora_gui.comfy.client import ComfyClient
    from difflora_gui.comfy.validate import combo_choices
    from difflora_gui.comfy.workflows import build_preview_workflow, missing_nodes
    from tests.test_comfy_workflows import _SERVER_FILES, _first, _judged_by

    with ComfyClient(os.environ["COMFYUI_URL"], timeout_s=30) as comfy:
        info = comfy.object_info()
        if missing_nodes("wan21_t2v", info):
            pytest.skip("the server lacks the core Wan nodes")
        models = {key: _first(combo_choices(info, *where)) for key, *where in _SERVER_FILES["wan21_t2v"]}
        lora = _first(combo_choices(info, "LoraLoaderModelOnly", "lora_name"))
        request = request_with([LoraEntry("/x/a.safetensors", 1.0)])
        workflow = build_preview_workflow(
            "wan21_t2v",
            request,
            lora_names={"/x/a.safetensors": lora},
            models=models,
            filename_prefix="difflora_probe/b",
        )
        bindings = suggest_bindings(workflow, info)
        assert check_bindings(workflow, bindings, info) == []
        values = {"prompt": "a heron", "seed": 7.0, "steps": 3, "guidance": 2, "strength": -1, "fps": 8}
        applied = apply_bindings(workflow, bindings, values, info)
        assert validate_workflow(applied, info) == []
        _judged_by(comfy, applied)
