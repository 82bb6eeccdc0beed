"""Our own workflow validation against real-shaped /object_info entries (tests/fixtures/comfy_object_info.json,
trimmed from the reference's observed answers: legacy and V3 combos, WanVideoWrapper, VideoHelperSuite)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from difflora_gui.comfy.validate import combo_choices, node_inputs, validate_workflow

INFO = json.loads((Path(__file__).parent / "fixtures" / "comfy_object_info.json").read_text(encoding="utf-8"))
INFO = copy.deepcopy(INFO)
INFO["UNETLoader"]["input"]["required"]["unet_name"] = [["wan2.1_t2v_1.3B_fp16.safetensors"]]
INFO["LoraLoaderModelOnly"]["input"]["required"]["lora_name"] = [
    ["style.safetensors", "slider-0123456789ab.safetensors"]
]
INFO["WanVideoLoraSelect"]["input"]["required"]["lora"] = [["slider-0123456789ab.safetensors"]]


def video_workflow():
    """UNETLoader → LoraLoaderModelOnly → KSampler …, EmptyImage → CreateVideo → SaveVideo (valid)."""
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"},
        },
        "2": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {
                "model": ["1", 0],
                "lora_name": "slider-0123456789ab.safetensors",
                "strength_model": -2.0,
            },
        },
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": 0}},
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 16.0}},
        "5": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["4", 0], "filename_prefix": "video/cell", "format": "mp4", "codec": "h264"},
        },
        "6": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["3", 0],
                "filename_prefix": "p",
                "fps": 6.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        },
    }


def wrapper_workflow():
    blocks = {f"blocks.{i}.": 10 <= i < 20 for i in range(40)}
    return {
        "1": {"class_type": "WanVideoLoraBlockEdit", "inputs": blocks},
        "2": {
            "class_type": "WanVideoLoraSelect",
            "inputs": {"lora": "slider-0123456789ab.safetensors", "strength": -2.0, "blocks": ["1", 0]},
        },
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": 0}},
        "4": {
            "class_type": "VHS_VideoCombine",
            "inputs": {
                "images": ["3", 0],
                "frame_rate": 8,
                "loop_count": 0,
                "filename_prefix": "vhs",
                "format": "video/h264-mp4",
                "pingpong": False,
                "save_output": True,
                "pix_fmt": "yuv420p",
                "crf": 19,
                "save_metadata": True,
                "trim_to_audio": False,
            },
        },
    }


def test_valid_workflows_have_no_problems():
    assert validate_workflow(video_workflow(), INFO) == []
    assert validate_workflow(wrapper_workflow(), INFO) == []


def broken(change, make=video_workflow):
    workflow = make()
    change(workflow)
    return validate_workflow(workflow, INFO)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda w: w["3"].update(class_type="EmptyImageX"),
            "node 3 (EmptyImageX): the server has no node 'EmptyImageX' (a custom node that is not installed, or a misspelt name)",
        ),
        (lambda w: w["3"]["inputs"].pop("color"), "node 3 (EmptyImage): required input 'color' is missing"),
        (
            lambda w: w["3"]["inputs"].update(colour=3),
            "node 3 (EmptyImage): 'colour' is not an input of EmptyImage (ComfyUI would ignore it); did you mean 'color'?",
        ),
        (lambda w: w["3"]["inputs"].update(width=0), "node 3 (EmptyImage): width 0 is below the minimum 1"),
        (
            lambda w: w["3"]["inputs"].update(width=20000),
            "node 3 (EmptyImage): width 20000 is above the maximum 16384",
        ),
        (
            lambda w: w["3"]["inputs"].update(width="64"),
            "node 3 (EmptyImage): width '64' is not a whole number",
        ),
        (
            lambda w: w["3"]["inputs"].update(width=64.5),
            "node 3 (EmptyImage): width 64.5 is not a whole number (ComfyUI would cut it to 64)",
        ),
        (
            lambda w: w["3"]["inputs"].update(width=True),
            "node 3 (EmptyImage): width True is not a whole number",
        ),
        (
            lambda w: w["2"]["inputs"].update(strength_model=-101.0),
            "node 2 (LoraLoaderModelOnly): strength_model -101 is below the minimum -100",
        ),
        (
            lambda w: w["2"]["inputs"].update(strength_model="strong"),
            "node 2 (LoraLoaderModelOnly): strength_model 'strong' is not a number",
        ),
        (
            lambda w: w["6"]["inputs"].update(lossless="false"),
            "node 6 (SaveAnimatedWEBP): lossless 'false' is not true or false (ComfyUI would read any non-empty text as true)",
        ),
        (
            lambda w: w["5"]["inputs"].update(filename_prefix=7),
            "node 5 (SaveVideo): filename_prefix 7 is not text",
        ),
        (
            lambda w: w["6"]["inputs"].update(method="ultra"),
            "node 6 (SaveAnimatedWEBP): method 'ultra' is not one of the server's choices ('default', 'fastest', 'slowest')",
        ),
        (
            lambda w: w["5"]["inputs"].update(format="avi"),  # a V3 COMBO: ComfyUI itself does not check it
            "node 5 (SaveVideo): format 'avi' is not one of the server's choices ('auto', 'mp4')",
        ),
        (
            lambda w: w["2"]["inputs"].update(lora_name="old.safetensors"),
            "node 2 (LoraLoaderModelOnly): lora_name 'old.safetensors' is not one of the server's choices "
            "('style.safetensors', 'slider-0123456789ab.safetensors')",
        ),
        (
            lambda w: w["4"]["inputs"].update(images=["9", 0]),
            "node 4 (CreateVideo): images links to node 9, which is not in the workflow",
        ),
        (
            lambda w: w["4"]["inputs"].update(images=["3", 1]),
            "node 4 (CreateVideo): images links to output 1 of node 3 (EmptyImage), which has 1",
        ),
        (
            lambda w: w["4"]["inputs"].update(images=["1", 0]),
            "node 4 (CreateVideo): images needs IMAGE, but output 0 of node 1 (UNETLoader) gives MODEL",
        ),
        (
            lambda w: w["2"]["inputs"].update(model="wan.safetensors"),
            "node 2 (LoraLoaderModelOnly): model needs a link from a node's MODEL output, not the value 'wan.safetensors'",
        ),
    ],
)
def test_each_hole_is_found_and_named(change, problem):
    assert broken(change) == [problem]


def test_an_empty_model_folder_is_named():
    info = copy.deepcopy(INFO)
    info["UNETLoader"]["input"]["required"]["unet_name"] = [[]]
    problems = validate_workflow(video_workflow(), info)
    assert problems == [
        "node 1 (UNETLoader): unet_name 'wan2.1_t2v_1.3B_fp16.safetensors': the server offers no "
        "choices (no files in its model folder?)"
    ]


def test_an_empty_vae_folder_is_named_though_the_server_lists_pixel_space():
    # ComfyUI 0.8.0's VAELoader lists "pixel_space" with no VAE file in models/vae (a real server)
    info = copy.deepcopy(INFO)
    info["VAELoader"]["input"]["required"]["vae_name"] = [["pixel_space"]]
    workflow = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": ""}}}
    assert validate_workflow(workflow, info)[0] == (
        "node 1 (VAELoader): vae_name '': the server offers no choices (no files in its model folder?)"
    )


def test_wrapper_block_keys_without_the_dot_and_a_misspelt_input():
    def change(w):
        w["1"]["inputs"] = {f"blocks.{i}": True for i in range(40)}
        w["2"]["inputs"]["strenght"] = w["2"]["inputs"].pop("strength")

    problems = broken(change, wrapper_workflow)
    assert "node 1 (WanVideoLoraBlockEdit): required input 'blocks.0.' is missing" in problems
    assert (
        "node 1 (WanVideoLoraBlockEdit): 'blocks.7' is not an input of WanVideoLoraBlockEdit (ComfyUI would ignore it); did you mean 'blocks.7.'?"
        in problems
    )
    assert "node 2 (WanVideoLoraSelect): required input 'strength' is missing" in problems
    assert len(problems) == 40 + 40 + 2


def test_video_helper_suite_format_widgets_depend_on_the_format():
    problems = broken(lambda w: w["4"]["inputs"].update(crf=101), wrapper_workflow)
    assert problems == ["node 4 (VHS_VideoCombine): crf 101 is above the maximum 100"]
    problems = broken(lambda w: w["4"]["inputs"].update(format="image/gif"), wrapper_workflow)
    assert (
        "node 4 (VHS_VideoCombine): 'crf' is not an input of VHS_VideoCombine (ComfyUI would ignore it)"
        in problems
    )


def test_shapes_that_are_no_api_workflow():
    assert validate_workflow({}, INFO)[0].startswith("the workflow is empty")
    assert validate_workflow({"nodes": [], "links": []}, INFO) == [
        "this is a UI-format workflow: save it in ComfyUI with Export (API) and import that file"
    ]
    assert (
        validate_workflow({"1": {"inputs": {}}}, INFO)[0]
        == "node 1: has no class_type (not an API-format node)"
    )
    no_output = {"3": video_workflow()["3"]}
    assert validate_workflow(no_output, INFO) == [
        "the workflow has no output node (SaveImage, SaveVideo, VHS_VideoCombine ...)"
    ]


def test_input_specs_read_both_spellings():
    specs = node_inputs(INFO["SaveVideo"])
    assert specs["format"].type == "COMBO" and specs["format"].choices == ("auto", "mp4")
    assert "prompt" not in specs  # hidden: the server fills it in
    assert node_inputs(INFO["KSampler"])["steps"].minimum == 1
    assert combo_choices(INFO, "LoraLoaderModelOnly", "lora_name") == [
        "style.safetensors",
        "slider-0123456789ab.safetensors",
    ]
    assert combo_choices(INFO, "KSampler", "steps") is None
    assert combo_choices(INFO, "Nope", "x") is None
