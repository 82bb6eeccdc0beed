"""The ComfyUI preview backend rendering the user's own API-format workflow through its bindings,
against the stand-in server (tests/fixtures/comfy_standin.py, not ComfyUI): the request's values
in the bound inputs, one clear error (and nothing sent) for a bad binding or a stack the workflow
cannot take, and a cache key that follows the workflow file's bytes."""

from __future__ import annotations

import json

import pytest

from difflora_gui.comfy.binding import Binding, to_json
from difflora_gui.comfy.names import unique_lora_name
from difflora_gui.comfy.preview_backend import ComfyOptions, run_comfy_preview
from difflora_gui.errors import UserError
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview.backend import PreviewJob
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from tests.fixtures.comfy_standin import StandinComfy

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_comfy_pools")]

MODELS = {"diffusion_models": "wan_1.3B.safetensors", "text_encoders": "umt5.safetensors"}


def user_workflow():
    """A user's export the stand-in can run: a flat clip saved as an mp4; the sampler, its text
    encoders and the LoRA are validated but (no output needs them) not run."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 255}},
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24.0}},
        "4": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["3", 0], "filename_prefix": "mine", "format": "mp4", "codec": "h264"},
        },
        "10": {"class_type": "UNETLoader", "inputs": {"unet_name": MODELS["diffusion_models"], "weight_dtype": "default"}},
        "11": {"class_type": "CLIPLoader", "inputs": {"clip_name": MODELS["text_encoders"], "type": "wan"}},
        "12": {"class_type": "CLIPTextEncode", "inputs": {"text": "the export's prompt", "clip": ["11", 0]}},
        "13": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["11", 0]}},
        "14": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}},
        "15": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["10", 0], "seed": 99, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc",
                "scheduler": "simple", "positive": ["12", 0], "negative": ["13", 0],
                "latent_image": ["14", 0], "denoise": 1.0,
            },
        },
        "20": {"class_type": "WanVideoLoraSelect", "inputs": {"lora": "old.safetensors", "strength": 1.0}},
    }  # fmt: skip


BINDINGS = [
    Binding("prompt", "12", "text"),
    Binding("seed", "15", "seed"),
    Binding("width", "1", "width"),
    Binding("height", "1", "height"),
    Binding("frames", "1", "batch_size"),
    Binding("fps", "3", "fps"),
    Binding("lora_name", "20", "lora"),
    Binding("strength", "20", "strength"),
]


@pytest.fixture
def server(tmp_path):
    box = StandinComfy(tmp_path / "box").start()
    for folder, name in MODELS.items():
        (box.base / "models" / folder).mkdir(parents=True, exist_ok=True)
        (box.base / "models" / folder / name).write_bytes(b"a model file name the stand-in lists")
    (box.base / "models/loras/old.safetensors").write_bytes(b"a model file name the stand-in lists")
    yield box
    box.stop()


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    paths = [folder / "slider.safetensors", folder / "style.safetensors"]
    for seed, path in enumerate(paths):
        make_wan_lora("tiny", path=path, rank=4, seed=seed)
    return paths


def files(tmp_path, workflow=None, bindings=BINDINGS):
    workflow_file, bindings_file = tmp_path / "mine_api.json", tmp_path / "mine.bindings.json"
    workflow_file.write_text(json.dumps(workflow or user_workflow()), encoding="utf-8")
    bindings_file.write_text(json.dumps(to_json(bindings)), encoding="utf-8")
    return workflow_file, bindings_file


def job(tmp_path, box, loras, workflow_file, bindings_file):
    request = PreviewRequest(
        prompt="a cat in the rain", seed=1234, width=48, height=32, frames=5, fps=8, steps=4,
        loras=tuple(LoraEntry(str(p), strength=s) for p, s in loras),
    )  # fmt: skip
    options = {
        "servers": [{"name": "box", "url": box.url, "lora_dir": str(box.base / "models/loras")}],
        "workflow_file": str(workflow_file),
        "bindings_file": str(bindings_file),
    }
    return PreviewJob(request, options, cache_dir=str(tmp_path / "cache"))


def test_the_users_workflow_is_sent_with_the_requests_values(tmp_path, server, loras):
    workflow_file, bindings_file = files(tmp_path)
    ctx = RecordingContext()
    stack = [(loras[0], 0.75), (loras[1], 0.0)]  # a LoRA switched off does not count
    result = run_comfy_preview(job(tmp_path, server, stack, workflow_file, bindings_file).to_json(), ctx)
    assert (result.frames, result.width, result.height, result.cache_hit) == (5, 48, 32, False)
    sent = server.posted[-1]["prompt"]
    assert sent["12"]["inputs"]["text"] == "a cat in the rain" and sent["15"]["inputs"]["seed"] == 1234
    assert sent["20"]["inputs"] == {"lora": unique_lora_name(loras[0]), "strength": 0.75}
    # what is not bound stays as the export has it, and the log says which those are
    assert sent["13"]["inputs"]["text"] == "blurry" and sent["15"]["inputs"]["steps"] == 20
    assert sent["4"]["inputs"]["filename_prefix"] == "mine" and sent["3"]["inputs"]["fps"] == 8.0
    unbound = [line for line in ctx.logs if "not bound" in line]
    assert len(unbound) == 1 and "negative_prompt, steps, guidance" in unbound[0]


def test_a_bad_binding_is_one_error_and_nothing_is_sent(tmp_path, server, loras):
    wrong = [b for b in BINDINGS if b.param != "seed"] + [Binding("seed", "15", "cfg")]
    workflow_file, bindings_file = files(tmp_path, bindings=wrong)
    outcome = run_sync(
        run_comfy_preview,
        job(tmp_path, server, [(loras[0], 1.0)], workflow_file, bindings_file),
        RecordingContext(),
    )
    assert outcome.status == "failed" and isinstance(outcome.error, UserError)
    message = str(outcome.error)
    assert "mine.bindings.json do not fit the workflow mine_api.json" in message
    assert "seed → node 15 (KSampler): cfg is FLOAT, but seed needs INT" in message and "\n" not in message
    assert server.posted == []


def test_two_loras_on_for_a_workflow_that_binds_one_is_refused(tmp_path, server, loras):
    workflow_file, bindings_file = files(tmp_path)
    stack = [(loras[0], 1.0), (loras[1], 0.5)]
    outcome = run_sync(
        run_comfy_preview, job(tmp_path, server, stack, workflow_file, bindings_file), RecordingContext()
    )
    assert outcome.status == "failed"
    assert "your workflow binds one LoRA; the stack has 2 — switch the others off or bind more" in str(
        outcome.error
    )
    assert server.posted == []


def test_the_cache_key_follows_the_workflow_files_bytes(tmp_path, server, loras):
    workflow_file, bindings_file = files(tmp_path)
    preview = job(tmp_path, server, [(loras[0], 1.0)], workflow_file, bindings_file)
    first = run_comfy_preview(preview, RecordingContext())
    assert run_comfy_preview(preview, RecordingContext()).cache_hit
    opts = ComfyOptions.from_json(preview.options)
    before = opts.fingerprint("box")
    edited = user_workflow()
    edited["15"]["inputs"]["steps"] = 8  # an unbound input: only the file's bytes tell
    workflow_file.write_text(json.dumps(edited), encoding="utf-8")
    edited_key = opts.fingerprint("box")
    assert edited_key != before
    again = run_comfy_preview(preview, RecordingContext())
    assert not again.cache_hit and again.key != first.key
    assert server.posted[-1]["prompt"]["15"]["inputs"]["steps"] == 8
    bindings_file.write_text(json.dumps(to_json(BINDINGS[:-1])), encoding="utf-8")
    assert opts.fingerprint("box") not in (before, edited_key)


def test_without_a_bindings_file_the_suggested_bindings_are_used(tmp_path, server, loras):
    workflow_file, _ = files(tmp_path)
    preview = job(tmp_path, server, [(loras[0], 1.0)], workflow_file, "")
    result = run_comfy_preview(preview, RecordingContext())
    sent = server.posted[-1]["prompt"]
    # the prompt whose text reaches the sampler's positive, the sampler's seed and steps, the LoRA
    assert sent["12"]["inputs"]["text"] == "a cat in the rain" and sent["13"]["inputs"]["text"] == ""
    assert (sent["15"]["inputs"]["seed"], sent["15"]["inputs"]["steps"]) == (1234, 4)
    assert sent["20"]["inputs"]["lora"] == unique_lora_name(loras[0])
    # the suggestions size the latent, not the export's EmptyImage: the clip keeps its own size
    assert sent["14"]["inputs"]["width"] == 48 and (result.width, result.frames) == (64, 2)


def test_block_weights_are_bound_only_when_the_selector_names_blocks(tmp_path, loras):
    from difflora_gui.comfy.bound_workflow import build_bound_workflow
    from tests.fixtures.comfy_standin import OBJECT_INFO

    workflow = user_workflow()
    workflow["21"] = {
        "class_type": "WanVideoLoraBlockEdit",
        "inputs": {f"blocks.{i}.": i < 2 for i in range(40)},
    }
    workflow["20"]["inputs"]["blocks"] = ["21", 0]
    workflow_file, bindings_file = files(
        tmp_path, workflow, [*BINDINGS, Binding("block_weights", "21", "blocks.*")]
    )
    names = {str(loras[0]): "slider.safetensors"}

    def built(selector):
        request = PreviewRequest(prompt="p", loras=(LoraEntry(str(loras[0]), selector=selector),))
        return build_bound_workflow(
            workflow_file, bindings_file, request, lora_names=names, object_info=OBJECT_INFO
        )["21"]["inputs"]

    assert built("all") == workflow["21"]["inputs"]  # no blocks named: the export's own switches
    switches = built("blocks=5-7")
    assert [n for n, on in switches.items() if on] == ["blocks.5.", "blocks.6.", "blocks.7."]
    with pytest.raises(UserError, match="can only switch blocks on or off"):
        built("blocks=5-7@0.5")
