"""The ComfyUI preview backend against stand-in servers (tests/fixtures/comfy_standin.py, not
ComfyUI): a render's video, progress and frames; the LoRA under its hashed name; cache hits that
never contact a server; validation before sending; cancel; a server dying mid-render."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from difflora_gui.comfy.names import unique_lora_name
from difflora_gui.comfy.pool import DOWN, shared_pool
from difflora_gui.comfy.preview_backend import (
    DEFAULT_BUILDER,
    model_facts,
    run_comfy_preview,
    settings_defaults,
)
from difflora_gui.comfy.workflows import lora_format_problem
from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact, Frame
from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.preview.backend import PreviewJob
from difflora_gui.preview.render_cache import RenderCache
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.video_io import VideoReader
from difflora_gui.settings import AppSettings, ComfyServer
from tests.fixtures.comfy_standin import StandinComfy

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_comfy_pools")]

BUILDER = "tests.test_comfy_preview_backend:tiny_workflow"
COLOR = (40, 120, 200)


def tiny_workflow(template, request, *, lora_names, models, filename_prefix, num_blocks=None):
    """A stand-in for the shipped templates that the stand-in server can execute: a flat clip of
    the request's size and length, its frames sent as binary previews, saved as an mp4 (SaveVideo,
    or VHS_VideoCombine for ``vhs``); the LoRA chain and the model loader are validated but (as no
    output needs them) not run."""
    color = (COLOR[0] << 16) | (COLOR[1] << 8) | COLOR[2]
    image = ["1", 0]
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {
                "width": request.width,
                "height": request.height,
                "batch_size": request.frames,
                "color": color,
            },
        },
    }
    if template == "slow":
        workflow["5"] = {
            "class_type": "ImageBlur",
            "inputs": {"image": image, "blur_radius": 1, "sigma": 1.0},
        }
        image = ["5", 0]
    workflow["2"] = {"class_type": "SaveImageWebsocket", "inputs": {"images": image}}
    if template == "vhs":  # VideoHelperSuite lists its file under "gifs"
        workflow["3"] = {
            "class_type": "VHS_VideoCombine",
            "inputs": {
                "images": image,
                "frame_rate": request.fps,
                "loop_count": 0,
                "filename_prefix": filename_prefix,
                "format": "video/h264-mp4",
                "pingpong": False,
                "save_output": True,
            },
        }
    else:  # the shipped templates' CreateVideo → SaveVideo ("images" with "animated")
        workflow["3"] = {"class_type": "CreateVideo", "inputs": {"images": image, "fps": float(request.fps)}}
        workflow["4"] = {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["3", 0],
                "filename_prefix": filename_prefix,
                "format": "mp4",
                "codec": "h264",
            },
        }
    previous = None
    for index, entry in enumerate(request.loras):
        inputs = {"lora": lora_names[entry.file], "strength": entry.strength}
        if previous:
            inputs["prev_lora"] = [previous, 0]
        previous = f"l{index}"
        workflow[previous] = {"class_type": "WanVideoLoraSelect", "inputs": inputs}
    if models.get("unet"):
        workflow["u"] = {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": models["unet"], "weight_dtype": "default"},
        }
    return workflow


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name, **kwargs):
        server = StandinComfy(tmp_path / name, **kwargs).start()
        server.name = name
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora") / "slider v2.safetensors"
    make_wan_lora("tiny", path=path, rank=4, seed=5)
    return path


def server_json(server):
    return {"name": server.name, "url": server.url, "lora_dir": str(server.base / "models/loras")}


def job(tmp_path, servers_, lora, *, template="tiny", **changes):
    request = PreviewRequest(
        prompt="a cat", seed=3, width=48, height=32, frames=5, fps=8, steps=4,
        loras=(LoraEntry(str(lora), strength=1.5),),
    )  # fmt: skip
    options = {"template": template, "servers": [server_json(s) for s in servers_], "builder": BUILDER}
    options.update(changes.pop("options", {}))
    values = {"cache_dir": str(tmp_path / "cache"), **changes}
    return PreviewJob(request, options, **values)


@pytest.mark.parametrize("template", ["tiny", "vhs"])
def test_a_render_through_the_server(tmp_path, servers, lora, template):
    server = servers("box")
    out, frames_dir = tmp_path / "out.mp4", tmp_path / "frames"
    ctx = RecordingContext(progress_interval_s=0)
    preview = job(tmp_path, [server], lora, template=template, out=str(out), frames_dir=str(frames_dir))
    result = run_comfy_preview(preview.to_json(), ctx)

    assert (result.frames, result.width, result.height, result.cache_hit) == (5, 48, 32, False)
    reader = VideoReader(out)
    decoded = reader.frames()
    reader.close()
    assert decoded.shape == (5, 32, 48, 3)
    assert np.abs(decoded.astype(float).mean(axis=(0, 1, 2)) - COLOR).max() < 8  # H.264 of a flat colour
    assert len(list(frames_dir.glob("frame_*.png"))) == 5
    # the LoRA lies in the server's folder under its content-hashed name, and the workflow names it
    name = unique_lora_name(lora)
    assert (server.base / "models/loras" / name).read_bytes() == lora.read_bytes()
    sent = server.posted[-1]["prompt"]
    assert [n["inputs"]["lora"] for n in sent.values() if n["class_type"] == "WanVideoLoraSelect"] == [name]
    # progress per step and the server's binary previews as frames
    texts = [p.text for p in ctx.progress_reports]
    assert "step 0 of 4" in texts and any(t == "step 4 of 5" for t in texts)
    previews = [e for e in ctx.events if isinstance(e, Frame)]
    assert len(previews) == 5 and previews[0].image.shape == (32, 48, 3)
    artifacts = {e.kind: e for e in ctx.events if isinstance(e, Artifact)}
    assert set(artifacts) == {"video", "image"} and Path(artifacts["video"].path) == out
    assert result.key in RenderCache(tmp_path / "cache", 64)


def test_the_same_request_again_is_a_cache_hit_without_the_server(tmp_path, servers, lora):
    server = servers("box")
    first = run_comfy_preview(job(tmp_path, [server], lora), RecordingContext())
    posted = len(server.posted)
    server.stop()  # a hit must not ask the server anything
    ctx = RecordingContext()
    again = run_comfy_preview(job(tmp_path, [server], lora, out=str(tmp_path / "again.mp4")), ctx)
    assert again.cache_hit and again.key == first.key and len(server.posted) == posted
    assert (again.frames, again.width, again.height) == (5, 48, 32)
    assert Path(again.video) == tmp_path / "again.mp4" and Path(again.video).stat().st_size > 0


def test_a_workflow_that_does_not_fit_the_server_is_one_error_and_nothing_is_sent(tmp_path, servers, lora):
    server = servers("box")
    bad = job(tmp_path, [server], lora, options={"unet": "wan_14B_missing.safetensors"})
    outcome = run_sync(run_comfy_preview, bad, RecordingContext())
    assert outcome.status == "failed" and isinstance(outcome.error, UserError)
    message = str(outcome.error)
    assert "does not fit ComfyUI at box" in message and "unet_name" in message
    assert "Set Diffusion model in the ComfyUI backend's options" in message and "\n" not in message
    # an unknown shipped template is refused before any server is asked
    unknown = job(tmp_path, [server], lora, template="wan99", options={"builder": DEFAULT_BUILDER})
    outcome = run_sync(run_comfy_preview, unknown, RecordingContext())
    assert outcome.status == "failed" and "unknown ComfyUI preview template 'wan99'" in str(outcome.error)
    assert server.posted == []


def test_cancel_stops_the_prompt_on_the_server(tmp_path, servers, lora):
    server = servers("box", node_delay_s=3.0)
    ctx = RecordingContext()

    def cancel_when_running():
        end = time.monotonic() + 10
        while server.running is None and time.monotonic() < end:
            time.sleep(0.02)
        ctx.cancel()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    started = time.monotonic()
    outcome = run_sync(run_comfy_preview, job(tmp_path, [server], lora, template="slow"), ctx)
    assert outcome.status == "cancelled"
    assert time.monotonic() - started < 8
    deadline = time.monotonic() + 5
    while server.running is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.running is None  # interrupted at its next check
    assert RenderCache(tmp_path / "cache", 64).keys() == []


def test_a_server_that_dies_mid_render_has_the_render_finish_on_another(tmp_path, servers, lora):
    slow, spare = servers("slow", node_delay_s=30.0), servers("spare")
    ctx = RecordingContext()
    ctx.lane_key = "comfy:slow"  # the scheduler placed the job on the slow server's lane

    def kill_when_running():
        end = time.monotonic() + 10
        while slow.running is None and time.monotonic() < end:
            time.sleep(0.02)
        slow.stop()

    threading.Thread(target=kill_when_running, daemon=True).start()
    result = run_comfy_preview(job(tmp_path, [slow, spare], lora, template="slow"), ctx)
    assert result.frames == 5 and not result.cache_hit
    assert spare.posted and (spare.base / "models/loras" / unique_lora_name(lora)).is_file()
    pool = shared_pool([server_json(slow), server_json(spare)])
    assert pool.health("slow").state == DOWN and "slow" not in pool.healthy_names()
    assert any("trying another server" in line for line in ctx.logs)


def test_model_facts_and_settings_defaults():
    assert model_facts({"unet": "wan2.1_t2v_14B_bf16.safetensors"}).num_blocks == 40
    assert model_facts({"unet": "wan2.1_t2v_1.3B_fp16.safetensors"}).num_blocks == 30
    assert model_facts({"unet": "wan2.2_ti2v_5B_fp16.safetensors"}).variant == "5B"
    facts = model_facts({"template": "wan22_t2v_a14b", "unet": "low.safetensors"})
    assert facts.two_experts and facts.num_blocks == 40 and facts.boundary_ratio == 0.875
    assert model_facts({"unet": "mine.safetensors", "num_blocks": 30}).num_blocks == 30
    settings = AppSettings(
        comfyui_servers=[
            ComfyServer("gpu box", "http://10.0.0.2:8188", "/mnt/loras"),
            ComfyServer("off", "http://10.0.0.3:8188", enabled=False),
        ],
        wan_dit="/models/wan2.1_t2v_14B_bf16.safetensors",
    )
    defaults = settings_defaults(settings)
    assert defaults["servers"] == {
        "gpu box": {"url": "http://10.0.0.2:8188", "lora_dir": "/mnt/loras", "enabled": True}
    }
    assert defaults["unet"] == "wan2.1_t2v_14B_bf16.safetensors"


def test_the_plugin_registers_the_backend_without_importing_httpx():
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('p', 'plugins/comfyui_preview.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "(s,) = m.difflora_register_preview_backends()\n"
        "assert s.name == 'comfyui' and s.lane == 'comfy', s\n"
        "assert 'httpx' not in sys.modules and 'numpy' not in sys.modules\n"
        "from difflora_gui.specs import resolve_callable\n"
        "assert resolve_callable(s.run).__name__ == 'run_comfy_preview'\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=30)


def test_a_preview_job_on_the_comfy_lane_renders_on_the_healthy_server(tmp_path, servers, lora):
    from difflora_gui.jobs.job import JobRequest
    from difflora_gui.jobs.scheduler import Scheduler

    down = {"name": "down", "url": "http://127.0.0.1:9", "lora_dir": str(tmp_path)}
    box = servers("box")
    preview = job(tmp_path, [box], lora)
    options = {**preview.options, "servers": [down, server_json(box)]}
    preview = PreviewJob(preview.request, options, cache_dir=preview.cache_dir)
    scheduler = Scheduler(health_poll_s=0.1)
    shared_pool(options["servers"]).register(scheduler)
    run = "difflora_gui.comfy.preview_backend:run_comfy_preview"
    placed = scheduler.submit(
        JobRequest("preview", run, params=preview.to_json(), lane="comfy"), RecordingContext()
    )
    assert placed.wait(30), "the job was never placed"
    assert placed.state == "done", placed.traceback
    assert placed.lane == "comfy:box" and placed.result.frames == 5 and box.posted


def test_the_command_line_renders_through_the_backend(tmp_path, servers, lora):
    import json

    from tests.app_process import run_main

    box = servers("box")
    table = {"box": {"url": box.url, "lora_dir": str(box.base / "models/loras")}}
    out = tmp_path / "cli.mp4"
    done = run_main(
        "preview", "--backend", "comfyui", "--backend-param", f"servers={json.dumps(table)}",
        "--server", "box", "--backend-param", f"builder={BUILDER}",
        "--lora", f"{lora}:0.5", "--prompt", "a cat", "--frames", "5", "--size", "48x32", "--steps", "2",
        "--out", out, "--cache", tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    reader = VideoReader(out)
    assert (reader.frame_count, reader.width, reader.height) == (5, 48, 32)
    reader.close()
    assert box.posted


def test_animated_webp_and_image_outputs_decode_to_frames():
    import io

    from PIL import Image

    from difflora_gui.comfy.preview_backend import _decode_outputs
    from difflora_gui.comfy.protocol import ComfyError, ComfyOutputs, OutputFile

    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    pictures = [Image.new("RGB", (24, 16), c) for c in colors]
    webp = io.BytesIO()
    pictures[0].save(webp, "WEBP", save_all=True, append_images=pictures[1:], lossless=True, duration=125)
    animated = OutputFile("9", "clip_00001_.webp", "", "output", "images", True, data=webp.getvalue())
    frames = _decode_outputs(ComfyOutputs("p", [animated]), "box")
    assert frames.shape == (3, 16, 24, 3) and [tuple(f[0, 0]) for f in frames] == colors
    pngs = []
    for picture in pictures:
        data = io.BytesIO()
        picture.save(data, "PNG")
        pngs.append(OutputFile("7", "f.png", "", "output", "images", data=data.getvalue()))
    frames = _decode_outputs(ComfyOutputs("p", pngs), "box")
    assert frames.shape == (3, 16, 24, 3) and tuple(frames[2, 0, 0]) == colors[2]
    with pytest.raises(ComfyError, match="saved no video or image"):
        _decode_outputs(ComfyOutputs("p", []), "box")


def test_a_shipped_template_names_the_placed_lora_and_the_node_error_is_the_job_error(
    tmp_path, servers, lora
):
    """The real wan21_t2v template: checked against the server's model lists, sent with the LoRA
    chain naming the placed file; the stand-in cannot run a diffusion model, so the run ends in
    the execution error of its first model node, which is the job's one-line error."""
    server = servers("box")
    for folder, name in (
        ("diffusion_models", "wan2.1_t2v_1.3B_fp16.safetensors"),
        ("text_encoders", "umt5_xxl_fp8.safetensors"),
        ("vae", "wan_2.1_vae.safetensors"),
    ):
        (server.base / "models" / folder).mkdir(parents=True, exist_ok=True)
        (server.base / "models" / folder / name).write_bytes(b"a model file name the stand-in lists")
    models = {"unet": "wan2.1_t2v_1.3B_fp16.safetensors", "clip": "umt5_xxl_fp8.safetensors",
              "vae": "wan_2.1_vae.safetensors"}  # fmt: skip
    wrong = job(
        tmp_path,
        [server],
        lora,
        template="wan21_t2v",
        options={"builder": DEFAULT_BUILDER, **models, "unet": "nope"},
    )
    outcome = run_sync(run_comfy_preview, wrong, RecordingContext())
    assert outcome.status == "failed" and "Set Diffusion model in the ComfyUI backend's options" in str(
        outcome.error
    )
    assert server.posted == []
    right = job(
        tmp_path, [server], lora, template="wan21_t2v", options={"builder": DEFAULT_BUILDER, **models}
    )
    outcome = run_sync(run_comfy_preview, right, RecordingContext())
    assert outcome.status == "failed" and "ComfyUI at http://127.0.0.1:" in str(outcome.error)
    assert "(UNETLoader) failed" in str(outcome.error) and "\n" not in str(outcome.error)
    sent = server.posted[-1]["prompt"]
    chain = [n["inputs"] for n in sent.values() if n["class_type"] == "LoraLoaderModelOnly"]
    assert [(c["lora_name"], c["strength_model"]) for c in chain] == [(unique_lora_name(lora), 1.5)]
    assert RenderCache(tmp_path / "cache", 64).keys() == []


def test_a_server_named_by_url_renders_without_settings_and_says_when_it_has_no_lora_folder(
    tmp_path, servers, lora
):
    box = servers("box")
    plain = PreviewRequest(prompt="a cat", width=32, height=16, frames=1, steps=1)
    options = {"server": box.url, "builder": BUILDER, "template": "tiny"}
    result = run_comfy_preview(PreviewJob(plain, options), RecordingContext())
    assert (result.frames, result.width, result.height) == (1, 32, 16) and box.posted
    with_lora = plain.replace(loras=(LoraEntry(str(lora)),))
    outcome = run_sync(run_comfy_preview, PreviewJob(with_lora, options), RecordingContext())
    assert outcome.status == "failed" and "has no LoRA folder set" in str(outcome.error)


def test_the_command_line_refuses_a_kohya_lora_for_block_edit_and_the_converted_file_goes_through(
    tmp_path, servers
):
    """WanVideoWrapper's block edit drops ``lora_unet_`` keys without a word, so ``preview`` and
    ``grid --backend comfyui`` refuse such a file before the server is asked, naming it and the
    command that converts it; the converted file is then placed on the server."""
    import json

    from tests.app_process import run_main

    box = servers("box")
    musubi = tmp_path / "kohya slider.safetensors"
    make_wan_lora("tiny", path=musubi, rank=4, seed=5, format="musubi")
    before = musubi.read_bytes()
    table = {"box": {"url": box.url, "lora_dir": str(box.base / "models/loras")}}
    common = ["--backend", "comfyui", "--backend-param", f"servers={json.dumps(table)}", "--server", "box",
              "--backend-param", "template=wanvideo_t2v", "--prompt", "a cat", "--frames", "5",
              "--size", "64x64", "--steps", "2", "--cache", tmp_path / "cache"]  # fmt: skip
    for argv in (
        ["preview", *common, "--lora", f"{musubi}:0.5", "--out", tmp_path / "p.mp4"],
        ["grid", *common, "--lora", musubi, "--strengths", "0.5,1", "--out", tmp_path / "g.mp4", "--quiet"],
    ):
        done = run_main(*argv)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert str(musubi) in lines[0] and "lora_unet_" in lines[0] and "block edit drops" in lines[0]
        assert "python main.py convert" in lines[0] and "--format comfy" in lines[0]
        assert box.posted == [] and not list((box.base / "models/loras").glob("*"))
        assert not (tmp_path / "p.mp4").exists() and not (tmp_path / "g.mp4").exists()
    assert musubi.read_bytes() == before

    # the command the message gives writes a comfy-format copy beside the file
    converted = tmp_path / "kohya slider-comfy.safetensors"
    done = run_main("convert", musubi, converted, "--format", "comfy")
    assert done.returncode == 0, done.stderr
    assert lora_format_problem(converted, block_edit=True) == ""
    models = {"unet": "wan2.1_t2v_1.3B_fp16.safetensors", "clip": "umt5_xxl_fp8.safetensors",
              "vae": "wan_2.1_vae.safetensors"}  # fmt: skip
    for (option, name), folder in zip(models.items(), ("diffusion_models", "text_encoders", "vae"), strict=True):
        (box.base / "models" / folder).mkdir(parents=True, exist_ok=True)
        (box.base / "models" / folder / name).write_bytes(b"a model file name the stand-in lists")
        common += ["--backend-param", f"{option}={name}"]
    done = run_main("preview", *common, "--lora", f"{converted}:0.5", "--out", tmp_path / "p.mp4")
    # (64×64: WanVideoWrapper's smallest size) the stand-in cannot run WanVideoWrapper's model: the
    # prompt is sent and its loader fails
    assert done.returncode == 2 and "ComfyUI at" in done.stderr, done.stderr
    name = unique_lora_name(converted)
    assert (box.base / "models/loras" / name).read_bytes() == converted.read_bytes()
    sent = box.posted[-1]["prompt"]
    chain = [n["inputs"] for n in sent.values() if n["class_type"] == "WanVideoLoraSelect"]
    assert [(c["lora"], c["strength"]) for c in chain] == [(name, 0.5)]
    assert musubi.read_bytes() == before


def test_a_diffusers_keyed_lora_is_refused_on_every_template_and_a_kohya_one_only_for_block_edit(
    tmp_path, servers, lora
):
    box = servers("box")
    diffusers = tmp_path / "diffusers.safetensors"
    make_wan_lora("tiny", path=diffusers, rank=4, seed=5, format="diffusers")
    musubi = tmp_path / "musubi.safetensors"
    make_wan_lora("tiny", path=musubi, rank=4, seed=5, format="musubi")

    def outcome(path, **changes):
        preview = job(tmp_path, [box], lora, **changes)
        preview = PreviewJob(preview.request.replace(loras=(LoraEntry(str(path)),)), preview.options,
                             cache_dir=preview.cache_dir)  # fmt: skip
        return run_sync(run_comfy_preview, preview, RecordingContext())

    refused = outcome(diffusers)
    assert refused.status == "failed" and isinstance(refused.error, UserError)
    assert f"{diffusers}: diffusers key names" in str(refused.error) and box.posted == []
    # ComfyUI's own loaders read lora_unet_ keys: the tiny workflow (no block edit) renders it
    assert outcome(musubi).status == "done" and len(box.posted) == 1
    # a LoRA at strength 0 is not sent, so its keys do not matter
    off = job(tmp_path, [box], lora, template="wanvideo_t2v")
    off = PreviewJob(off.request.replace(loras=(LoraEntry(str(musubi), strength=0.0),)), off.options,
                     cache_dir=off.cache_dir)  # fmt: skip
    assert run_sync(run_comfy_preview, off, RecordingContext()).status == "done"
