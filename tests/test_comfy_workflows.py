"""The shipped ComfyUI templates and the workflows built from preview requests.

Every built workflow is checked by our own validator against tests/fixtures/comfy_object_info.json
(entries as a real ComfyUI 0.8.0 with WanVideoWrapper 721cd65 answered /object_info, with the
server's file lists filled in here). With COMFYUI_URL set, the built workflows are also posted to
that server for validation only (reference §5) and taken off its queue before they run.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from pathlib import Path

import pytest

from difflora_gui.comfy.validate import validate_workflow
from difflora_gui.comfy.workflows import (
    BLOCK_EDIT_INPUTS,
    TEMPLATES,
    block_edit_inputs,
    boundary_step,
    build_kontext_workflow,
    build_preview_workflow,
    load_template,
    lora_format_problem,
    missing_nodes,
    request_problems,
    roles,
    templates_dir,
)
from difflora_gui.errors import UserError
from difflora_gui.preview.request import LoraEntry, PreviewRequest

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "comfy_object_info.json").read_text(encoding="utf-8")
)
LORAS = ["style.safetensors", "lightx2v-0123456789ab.safetensors", "slider-ba9876543210.safetensors"]
MODELS = {
    "unet": "wan2.1_t2v_1.3B_fp16.safetensors",
    "unet_high": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
    "unet_low": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
    "clip": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "clip_l": "clip_l.safetensors",
    "vae": "wan_2.1_vae.safetensors",
}
FILE_INPUTS = {
    ("UNETLoader", "unet_name"): [
        MODELS["unet"],
        MODELS["unet_high"],
        MODELS["unet_low"],
        "flux1-dev-kontext.safetensors",
    ],
    ("WanVideoModelLoader", "model"): [MODELS["unet"]],
    ("CLIPLoader", "clip_name"): [MODELS["clip"]],
    ("DualCLIPLoader", "clip_name1"): [MODELS["clip_l"], MODELS["clip"]],
    ("DualCLIPLoader", "clip_name2"): [MODELS["clip_l"], MODELS["clip"]],
    ("LoadWanVideoT5TextEncoder", "model_name"): [MODELS["clip"]],
    ("VAELoader", "vae_name"): [MODELS["vae"], "ae.safetensors", "pixel_space"],
    ("WanVideoVAELoader", "model_name"): [MODELS["vae"]],
    ("LoraLoaderModelOnly", "lora_name"): LORAS,
    ("WanVideoLoraSelect", "lora"): LORAS,
    ("LoadImage", "image"): ["difflora/kontext_src.png"],
}


def server_info(files=FILE_INPUTS):
    """The fixture as a server with these model files would answer."""
    info = copy.deepcopy(FIXTURE)
    for (class_type, name), choices in files.items():
        sections = info[class_type]["input"]
        section = "required" if name in sections["required"] else "optional"
        sections[section][name][0] = list(choices)
    return info


INFO = server_info()
VIDEO_TEMPLATES = [t.name for t in TEMPLATES if t.kind == "video"]


def entries(count):
    files = [f"/loras/{n}" for n in LORAS]
    return [LoraEntry(files[0], 0.8), LoraEntry(files[1], 1.0), LoraEntry(files[2], -2.0)][:count]


def names_for(request):
    return {e.file: Path(e.file).name for e in request.loras}


def request_with(loras, **changes):
    base = dict(
        prompt="a red fox in snow",
        negative_prompt="blurry",
        seed=1234,
        width=480,
        height=320,
        frames=17,
        fps=12,
        steps=8,
        guidance=4.5,
        flow_shift=5.0,
        sampler="unipc",
    )
    base.update(changes)
    return PreviewRequest(loras=tuple(loras), **base)


def build(template, request, **kwargs):
    kwargs.setdefault("num_blocks", 30)
    return build_preview_workflow(
        template,
        request,
        lora_names=names_for(request),
        models=MODELS,
        filename_prefix="difflora/cell-3",
        **kwargs,
    )


def of_class(workflow, class_type):
    return {k: n for k, n in workflow.items() if n["class_type"] == class_type}


def chain_from(workflow, loader_id, consumer_id, link="model"):
    """The LoRA loaders between ``loader_id`` and ``consumer_id``, in order, following ``link``."""
    chain = []
    node_id = workflow[consumer_id]["inputs"][link][0]
    while node_id != loader_id:
        chain.append(node_id)
        node_id = workflow[node_id]["inputs"][link][0]
    return chain[::-1]


def test_every_shipped_template_is_listed_and_loads_as_a_fresh_copy():
    shipped = sorted(p.stem for p in templates_dir().glob("*.json"))
    assert shipped == sorted(t.name for t in TEMPLATES)
    for info in TEMPLATES:
        first = load_template(info.name)
        assert all({"class_type", "inputs"} <= set(node) for node in first.values())
        first["1"]["inputs"].clear()
        assert load_template(info.name)["1"]["inputs"]  # the caller's change did not stick
        assert missing_nodes(info.name, INFO) == []
        assert info.description and info.models


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("template", VIDEO_TEMPLATES)
def test_each_video_template_builds_and_validates(template, count):
    workflow = build(template, request_with(entries(count)))
    assert validate_workflow(workflow, INFO) == []
    loras = of_class(workflow, "LoraLoaderModelOnly") or of_class(workflow, "WanVideoLoraSelect")
    experts = 2 if template == "wan22_t2v_a14b" else 1
    assert len(loras) == count * experts
    saver = of_class(workflow, "SaveVideo")
    assert [n["inputs"]["filename_prefix"] for n in saver.values()] == ["difflora/cell-3"]
    assert [n["inputs"]["fps"] for n in of_class(workflow, "CreateVideo").values()] == [12.0]


def test_native_wan21_fills_the_request_and_chains_the_loras_in_stack_order():
    request = request_with(entries(3))
    workflow = build("wan21_t2v", request)
    at = roles(workflow)
    assert workflow[at["positive"]]["inputs"]["text"] == "a red fox in snow"
    assert workflow[at["negative"]]["inputs"]["text"] == "blurry"
    sampler = workflow[at["sampler"]]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (1234, 8, 4.5)
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("uni_pc", "simple")
    assert sampler["positive"] == [at["positive"], 0] and sampler["negative"] == [at["negative"], 0]
    assert workflow[at["shift"]]["inputs"]["shift"] == 5.0
    latent = workflow[at["latent"]]["inputs"]
    assert (latent["width"], latent["height"], latent["length"], latent["batch_size"]) == (480, 320, 17, 1)
    assert workflow[at["unet"]]["inputs"]["unet_name"] == MODELS["unet"]
    chain = chain_from(workflow, at["unet"], at["shift"])
    assert [workflow[i]["inputs"]["lora_name"] for i in chain] == LORAS
    assert [workflow[i]["inputs"]["strength_model"] for i in chain] == [0.8, 1.0, -2.0]
    euler = build("wan21_t2v", request.replace(sampler="euler"))
    assert workflow_sampler(euler)["sampler_name"] == "euler"


def workflow_sampler(workflow):
    return workflow[roles(workflow)["sampler"]]["inputs"]


def test_a_lora_at_strength_zero_adds_no_loader():
    workflow = build("wan21_t2v", request_with([LoraEntry("/loras/style.safetensors", 0.0), *entries(3)[1:]]))
    assert len(of_class(workflow, "LoraLoaderModelOnly")) == 2
    no_loras = build("wan21_t2v", request_with([]))
    at = roles(no_loras)
    assert no_loras[at["shift"]]["inputs"]["model"] == [at["unet"], 0]
    assert validate_workflow(no_loras, INFO) == []


def test_wan22_splits_the_steps_between_the_experts():
    workflow = build("wan22_t2v_a14b", request_with(entries(1), steps=20, flow_shift=8.0))
    at = roles(workflow)
    high, low = workflow[at["sampler_high"]]["inputs"], workflow[at["sampler_low"]]["inputs"]
    split = boundary_step(20, 8.0)
    assert 0 < split < 20
    assert (high["start_at_step"], high["end_at_step"], high["steps"]) == (0, split, 20)
    assert (low["start_at_step"], low["end_at_step"], low["steps"]) == (split, 20, 20)
    assert (high["add_noise"], high["return_with_leftover_noise"]) == ("enable", "enable")
    assert (low["add_noise"], low["return_with_leftover_noise"]) == ("disable", "disable")
    assert low["latent_image"] == [at["sampler_high"], 0]
    assert high["noise_seed"] == low["noise_seed"] == 1234
    assert workflow[at["unet_high"]]["inputs"]["unet_name"] == MODELS["unet_high"]
    assert workflow[at["unet_low"]]["inputs"]["unet_name"] == MODELS["unet_low"]
    assert high["model"] == [at["shift_high"], 0] and low["model"] == [at["shift_low"], 0]


def test_boundary_step_counts_the_steps_at_or_above_the_boundary_sigma():
    for steps, shift in [(20, 8.0), (30, 3.0), (4, 5.0), (8, 1.0)]:
        split = boundary_step(steps, shift, 0.875)
        sigmas = [shift * t / (1 + (shift - 1) * t) for t in (1 - i / steps for i in range(steps))]
        assert all(s >= 0.875 for s in sigmas[:split])
        assert split == steps or sigmas[split] < 0.875
    assert boundary_step(1, 5.0) == 1  # the first step is always the high-noise expert's


def test_wan22_gives_each_expert_only_its_own_loras():
    stack = [
        LoraEntry("/loras/style.safetensors", 1.0),  # both experts
        LoraEntry("/loras/lightx2v-0123456789ab.safetensors", 0.8, expert="high"),
        LoraEntry("/loras/slider-ba9876543210.safetensors", 0.5, strength_high=0.0, strength_low=1.5),
    ]
    workflow = build("wan22_t2v_a14b", request_with(stack))
    assert validate_workflow(workflow, INFO) == []
    at = roles(workflow)
    for expert, expected in [
        ("high", [(LORAS[0], 1.0), (LORAS[1], 0.8)]),
        ("low", [(LORAS[0], 1.0), (LORAS[2], 1.5)]),
    ]:
        chain = chain_from(workflow, at[f"unet_{expert}"], at[f"shift_{expert}"])
        got = [(workflow[i]["inputs"]["lora_name"], workflow[i]["inputs"]["strength_model"]) for i in chain]
        assert got == expected
        assert all(workflow[i]["_meta"]["title"].startswith(f"{expert}-noise") for i in chain)


def wrapper_chain(workflow):
    """The WanVideoLoraSelect ids from the first to the one the model loader takes."""
    at = roles(workflow)
    link = workflow[at["unet"]]["inputs"].get("lora")
    chain = []
    while link:
        chain.append(link[0])
        link = workflow[link[0]]["inputs"].get("prev_lora")
    return chain[::-1]


@pytest.mark.parametrize("num_blocks", [30, 40])
def test_wrapper_block_edit_has_40_switches_and_only_the_chosen_blocks_on(num_blocks):
    stack = [LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=0-9,35-39"), *entries(3)[1:]]
    workflow = build("wanvideo_t2v", request_with(stack), num_blocks=num_blocks)
    assert validate_workflow(workflow, INFO) == []
    chain = wrapper_chain(workflow)
    assert [workflow[i]["inputs"]["lora"] for i in chain] == LORAS
    assert [workflow[i]["inputs"]["strength"] for i in chain] == [1.0, 1.0, -2.0]
    edits = of_class(workflow, "WanVideoLoraBlockEdit")
    assert len(edits) == 1  # the entries without a block selection apply every block
    ((edit_id, edit),) = edits.items()
    assert workflow[chain[0]]["inputs"]["blocks"] == [edit_id, 0]
    switches = edit["inputs"]
    assert list(switches) == [f"blocks.{i}." for i in range(BLOCK_EDIT_INPUTS)]
    on = {i for i in range(BLOCK_EDIT_INPUTS) if switches[f"blocks.{i}."] is True}
    # a block the model lacks stays off: it matches no key of a 30-block model's LoRA
    assert on == set(range(10)) | (set(range(35, 40)) if num_blocks == 40 else set())
    assert all(isinstance(v, bool) for v in switches.values())


def test_wrapper_folds_one_block_weight_into_the_strength_and_refuses_different_ones():
    uniform = [LoraEntry("/loras/style.safetensors", 2.0, selector="blocks=10-19@0.5")]
    workflow = build("wanvideo_t2v", request_with(uniform))
    (select,) = of_class(workflow, "WanVideoLoraSelect").values()
    assert select["inputs"]["strength"] == 1.0
    (edit,) = of_class(workflow, "WanVideoLoraBlockEdit").values()
    assert [i for i in range(40) if edit["inputs"][f"blocks.{i}."]] == list(range(10, 20))

    weighted = request_with([LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=0-9@1,10-19@0.5")])
    problems = request_problems("wanvideo_t2v", weighted, num_blocks=30)
    assert len(problems) == 1
    assert "style.safetensors" in problems[0] and "on or off" in problems[0] and "Export" in problems[0]
    with pytest.raises(UserError, match="can only switch blocks on or off"):
        build("wanvideo_t2v", weighted)


def test_an_entry_whose_blocks_the_model_lacks_is_left_out_not_applied_whole():
    # the wrapper reads an empty block selection as "no filter", so it must not be sent at all
    stack = [LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=32-39"), *entries(2)[1:]]
    workflow = build("wanvideo_t2v", request_with(stack), num_blocks=30)
    assert [workflow[i]["inputs"]["lora"] for i in wrapper_chain(workflow)] == [LORAS[1]]
    assert not of_class(workflow, "WanVideoLoraBlockEdit")
    assert block_edit_inputs(frozenset({3}))["blocks.3."] is True


def test_native_templates_refuse_block_selections_and_layer_filters_with_a_way_out():
    partial = request_with([LoraEntry("/loras/style.safetensors", 1.0, selector="blocks=0-9")])
    for template in ("wan21_t2v", "wan22_t2v_a14b"):
        (problem,) = request_problems(template, partial, num_blocks=30)
        assert "LoraLoaderModelOnly applies the whole file" in problem and "WanVideoWrapper" in problem
    layers = request_with([LoraEntry("/loras/style.safetensors", 1.0, selector="attn")])
    for template in VIDEO_TEMPLATES:
        (problem,) = request_problems(template, layers, num_blocks=30)
        assert "layer filter" in problem and "Export" in problem
    # every block at one weight is just a strength
    whole = request_with([LoraEntry("/loras/style.safetensors", 2.0, selector="blocks=0-29@0.25")])
    workflow = build("wan21_t2v", whole, num_blocks=30)
    assert [n["inputs"]["strength_model"] for n in of_class(workflow, "LoraLoaderModelOnly").values()] == [
        0.5
    ]


def test_missing_names_are_user_errors_that_say_what_to_do():
    request = request_with(entries(1))
    with pytest.raises(UserError, match="copy it to the server's LoRA folder"):
        build_preview_workflow("wan21_t2v", request, lora_names={}, models=MODELS, filename_prefix="p")
    with pytest.raises(UserError, match="unet_high, unet_low, clip, vae"):
        build_preview_workflow(
            "wan22_t2v_a14b",
            request,
            lora_names=names_for(request),
            models={"unet": "x"},
            filename_prefix="p",
        )
    with pytest.raises(UserError, match="no ComfyUI workflow template"):
        load_template("sdxl")


def test_missing_nodes_names_the_wrapper_nodes_a_core_server_lacks():
    core = {k: v for k, v in INFO.items() if not k.startswith("WanVideo") and "WanVideo" not in k}
    assert missing_nodes("wan21_t2v", core) == []
    assert "WanVideoLoraBlockEdit" in missing_nodes("wanvideo_t2v", core)
    assert "LoadWanVideoT5TextEncoder" in missing_nodes("wanvideo_t2v", core)


def test_kontext_edit_builds_and_validates():
    models = dict(MODELS, unet="flux1-dev-kontext.safetensors", vae="ae.safetensors")
    workflow = build_kontext_workflow(
        "difflora/kontext_src.png",
        "make the jacket red",
        models=models,
        seed=7,
        steps=24,
        guidance=3.0,
        filename_prefix="difflora/kontext-1",
    )
    assert validate_workflow(workflow, INFO) == []
    at = roles(workflow)
    assert workflow[at["image"]]["inputs"]["image"] == "difflora/kontext_src.png"
    assert workflow[at["positive"]]["inputs"]["text"] == "make the jacket red"
    assert workflow[at["guidance"]]["inputs"]["guidance"] == 3.0
    sampler = workflow[at["sampler"]]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["sampler_name"]) == (
        7,
        24,
        1.0,
        "euler",
    )
    assert sampler["latent_image"] == [at["encode"], 0]
    clip = workflow[at["clip"]]["inputs"]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == (
        MODELS["clip_l"],
        MODELS["clip"],
        "flux",
    )
    assert workflow[at["save"]]["inputs"]["filename_prefix"] == "difflora/kontext-1"


def test_lora_format_problem_reads_the_key_names_of_real_files(tmp_path):
    from difflora_gui.lora.synthetic import make_wan_lora

    made = {fmt: tmp_path / f"{fmt}.safetensors" for fmt in ("comfy", "musubi", "diffusers")}
    for fmt, path in made.items():
        make_wan_lora("tiny", path=path, format=fmt, rank=4, seed=1)
    assert lora_format_problem(made["comfy"]) == lora_format_problem(made["comfy"], block_edit=True) == ""
    assert lora_format_problem(made["musubi"]) == ""  # ComfyUI's own loader reads lora_unet_ keys
    assert "lora_unet_" in lora_format_problem(made["musubi"], block_edit=True)
    assert "diffusers key names" in lora_format_problem(made["diffusers"])
    (tmp_path / "junk.safetensors").write_bytes(b"no")
    assert "not a readable safetensors file" in lora_format_problem(tmp_path / "junk.safetensors")


# --- a real ComfyUI (COMFYUI_URL), validation only -------------------------------------------------


def _blocker():
    """A core-only job that keeps the queue busy while the workflow under test is judged (§5)."""
    nodes = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": random.randrange(1 << 24)},
        }
    }
    for i in range(2, 202):
        nodes[str(i)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(i - 1), 0], "blur_radius": 31, "sigma": 10.0},
        }
    nodes["202"] = {"class_type": "PreviewImage", "inputs": {"images": ["201", 0]}}
    return nodes


def _first(choices):
    real = [c for c in choices or [] if c != "pixel_space"]
    if not real:
        pytest.skip("the server lists no model files for this template")
    return real[0]


# the server's file inputs per template: (model key, class_type, input)
_SERVER_FILES = {
    "wan21_t2v": [
        ("unet", "UNETLoader", "unet_name"),
        ("clip", "CLIPLoader", "clip_name"),
        ("vae", "VAELoader", "vae_name"),
    ],
    "wan22_t2v_a14b": [
        ("unet_high", "UNETLoader", "unet_name"),
        ("unet_low", "UNETLoader", "unet_name"),
        ("clip", "CLIPLoader", "clip_name"),
        ("vae", "VAELoader", "vae_name"),
    ],
    "wanvideo_t2v": [
        ("unet", "WanVideoModelLoader", "model"),
        ("clip", "LoadWanVideoT5TextEncoder", "model_name"),
        ("vae", "WanVideoVAELoader", "model_name"),
    ],
    "flux_kontext_edit": [
        ("unet", "UNETLoader", "unet_name"),
        ("clip_l", "DualCLIPLoader", "clip_name1"),
        ("clip", "DualCLIPLoader", "clip_name2"),
        ("vae", "VAELoader", "vae_name"),
    ],
}


def _judged_by(comfy, workflow):
    """Post ``workflow`` behind a busy blocker, keep the server's verdict, and take it off the
    queue before it can run (reference §5); raises the server's refusal."""
    blocker = comfy.submit(_blocker())
    try:
        deadline = time.monotonic() + 20
        while comfy._where(blocker) != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        prompt_id = comfy.submit(workflow)  # raises on node_errors or an HTTP 400
        assert comfy.cancel(prompt_id) == "pending"
    finally:
        comfy.cancel(blocker)
    assert not comfy.history(prompt_id)


@pytest.mark.skipif(not os.environ.get("COMFYUI_URL"), reason="set COMFYUI_URL to run against a real ComfyUI")
@pytest.mark.parametrize("template", [t.name for t in TEMPLATES])
def test_a_real_server_accepts_the_built_workflow(template, tmp_path):
    import cv2
    import numpy as np

    from difflora_gui.comfy.client import ComfyClient
    from difflora_gui.comfy.validate import combo_choices

    with ComfyClient(os.environ["COMFYUI_URL"], timeout_s=30) as comfy:
        info = comfy.object_info()
        if missing_nodes(template, info):
            pytest.skip(f"the server lacks {', '.join(missing_nodes(template, info))}")
        models = {key: _first(combo_choices(info, *where)) for key, *where in _SERVER_FILES[template]}
        if template == "flux_kontext_edit":
            image = tmp_path / "kontext_src.png"
            cv2.imwrite(str(image), np.full((64, 96, 3), 128, np.uint8))
            # LoadImage lists only the top of the input folder (ComfyUI 0.8.0), so no subfolder
            name = comfy.upload_image(image)
            info = comfy.object_info()  # LoadImage lists the upload only from now on
            workflow = build_kontext_workflow(
                name, "make it red", models=models, filename_prefix="difflora_probe/k"
            )
        else:
            wrapper = template == "wanvideo_t2v"
            loader = ("WanVideoLoraSelect", "lora") if wrapper else ("LoraLoaderModelOnly", "lora_name")
            lora = _first(combo_choices(info, *loader))
            request = request_with(
                [LoraEntry("/x/a.safetensors", 0.7, selector="blocks=0-9" if wrapper else "all")]
            )
            workflow = build_preview_workflow(
                template,
                request,
                lora_names={"/x/a.safetensors": lora},
                models=models,
                filename_prefix="difflora_probe/validate",
                num_blocks=30,
            )
        assert validate_workflow(workflow, info) == []
        _judged_by(comfy, workflow)
