"""Dataset tool ``comfyui_kontext`` against stand-in servers (tests/fixtures/comfy_standin.py, not
ComfyUI; its Kontext "edit" is the inverted image): counterparts named as their sources, at their
sizes, with the server's pixels; finished ones skipped; one error and nothing sent for a workflow
that does not fit; cancel between images; a server dying mid-run leaves its image to the other."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from difflora_gui.comfy.kontext_job import DEFAULT_MODELS, PARAMS, run_comfy_kontext
from difflora_gui.comfy.pool import DOWN, shared_pool
from difflora_gui.jobs.events import Artifact
from difflora_gui.jobs.recording import RecordingContext, run_sync
from tests.fixtures.comfy_standin import STANDIN_MODEL, StandinComfy

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_comfy_pools")]

#: three sizes: one a multiple of 16, two that are padded for Kontext and cropped back
SIZES = {"a": (48, 32), "b": (33, 21), "c": (20, 40)}


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name):
        server = StandinComfy(tmp_path / name).start()
        server.name = name
        for folder, key in (("diffusion_models", "unet"), ("text_encoders", "clip_l"),
                            ("text_encoders", "t5"), ("vae", "vae")):  # fmt: skip
            (server.base / "models" / folder).mkdir(parents=True, exist_ok=True)
            (server.base / "models" / folder / DEFAULT_MODELS[key]).write_bytes(STANDIN_MODEL)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def set_a(tmp_path):
    folder = tmp_path / "A"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for stem, (w, h) in SIZES.items():
        cv2.imwrite(str(folder / f"{stem}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return folder


def params(set_a, out, servers_, **changes):
    table = {s.name: {"url": s.url, "lora_dir": ""} for s in servers_}
    return {"source_dir": str(set_a), "out_dir": str(out), "servers": table, "steps": 4, "seed": 7,
            "check_resolution": 0, **changes}  # fmt: skip


def assert_counterpart(set_a, out, stem):
    source = cv2.imread(str(set_a / f"{stem}.png"))
    made = cv2.imread(str(out / f"{stem}.png"))
    assert made is not None and made.shape == source.shape
    assert np.array_equal(made, 255 - source)  # the stand-in's edit, aligned pixel for pixel


def test_the_params_are_the_in_app_tools_plus_the_servers_model_names():
    names = [p.name for p in PARAMS]
    for shared in ("source_dir", "out_dir", "prompt", "seed", "steps", "guidance", "max_area"):
        assert shared in names
    assert {"unet", "clip_l", "t5", "vae", "server", "servers"} <= set(names)


def test_three_images_become_three_counterparts_with_the_servers_pixels(tmp_path, servers, set_a):
    server = servers("box")
    out = tmp_path / "B"
    ctx = RecordingContext()
    summary = run_comfy_kontext(params(set_a, out, [server]), ctx)
    assert sorted(summary["generated"]) == ["a.png", "b.png", "c.png"] and summary["skipped_existing"] == []
    for stem in SIZES:
        assert_counterpart(set_a, out, stem)
    sent = [body["prompt"] for body in server.posted]
    seeds = sorted(n["inputs"]["seed"] for p in sent for n in p.values() if n["class_type"] == "KSampler")
    assert seeds == [7, 8, 9]  # item i of the sorted set: seed + i
    assert not any(n["class_type"] == "FluxKontextImageScale" for p in sent for n in p.values())
    texts = [r.text for r in ctx.progress_reports]
    assert any(t.startswith("image 1 of 3") and "ETA" in t for t in texts)
    assert any(t.startswith("image 3 of 3 done") for t in texts)
    artifacts = [e for e in ctx.events if isinstance(e, Artifact)]
    assert sorted(a.meta["index"] for a in artifacts) == [0, 1, 2]
    assert (out / "kontext-manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "kontext-manifest.json"]


def test_an_existing_counterpart_is_skipped_and_counted(tmp_path, servers, set_a):
    server = servers("box")
    out = tmp_path / "B"
    out.mkdir()
    mine = np.full((21, 33, 3), 9, np.uint8)
    cv2.imwrite(str(out / "b.png"), mine)
    before = (out / "b.png").read_bytes()
    summary = run_comfy_kontext(params(set_a, out, [server]), RecordingContext())
    assert summary["skipped_existing"] == ["b.png"] and sorted(summary["generated"]) == ["a.png", "c.png"]
    assert (out / "b.png").read_bytes() == before  # never overwritten
    assert len(server.posted) == 2
    again = run_comfy_kontext(params(set_a, out, [server]), RecordingContext())
    assert again["generated"] == [] and len(again["skipped_existing"]) == 3 and len(server.posted) == 2


def test_a_workflow_that_does_not_fit_is_one_error_and_nothing_is_sent(tmp_path, servers, set_a):
    server = servers("box")
    out = tmp_path / "B"
    outcome = run_sync(run_comfy_kontext, params(set_a, out, [server], unet="nope.safetensors"))
    assert outcome.status == "failed"
    message = str(outcome.error)
    assert "nope.safetensors" in message and "Set Kontext model" in message and "\n" not in message
    assert server.posted == [] and list((server.base / "input").iterdir()) == []  # nothing uploaded either
    assert not list(out.glob("*.png"))


def test_cancel_stops_between_images_and_leaves_no_partial_file(tmp_path, servers, set_a):
    server = servers("box")
    server.sampler_step_s = 0.3
    out = tmp_path / "B"
    ctx = RecordingContext()

    def cancel_during_the_second_image():
        end = time.monotonic() + 20
        while len(server.history) < 1 and time.monotonic() < end:
            time.sleep(0.02)
        while server.running is None and time.monotonic() < end:
            time.sleep(0.02)
        ctx.cancel()

    threading.Thread(target=cancel_during_the_second_image, daemon=True).start()
    started = time.monotonic()
    outcome = run_sync(run_comfy_kontext, params(set_a, out, [server]), ctx)
    assert outcome.status == "cancelled" and time.monotonic() - started < 15
    files = sorted(p.name for p in out.iterdir())
    assert files == ["a.png", "kontext-manifest.json"]  # the first is whole, the second never written
    assert_counterpart(set_a, out, "a")
    deadline = time.monotonic() + 5
    while server.running is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.running is None and len(server.posted) == 2  # interrupted, the third never sent


def test_a_server_dying_mid_run_leaves_the_rest_to_the_other(tmp_path, servers, set_a):
    dying, spare = servers("dying"), servers("spare")
    dying.sampler_step_s = 5.0  # its first image is still rendering when it goes
    out = tmp_path / "B"
    ctx = RecordingContext()

    def kill_when_running():
        end = time.monotonic() + 20
        while dying.running is None and time.monotonic() < end:
            time.sleep(0.02)
        dying.stop()

    threading.Thread(target=kill_when_running, daemon=True).start()
    summary = run_comfy_kontext(params(set_a, out, [dying, spare]), ctx)
    assert sorted(summary["generated"]) == ["a.png", "b.png", "c.png"]
    for stem in SIZES:
        assert_counterpart(set_a, out, stem)
    assert len(spare.posted) == 3
    assert any("goes to another server" in line for line in ctx.logs)
    pool = shared_pool([{"name": s.name, "url": s.url, "lora_dir": ""} for s in (dying, spare)])
    assert pool.health("dying").state == DOWN


def test_a_nodes_error_is_the_jobs_one_line_error(tmp_path, servers, set_a):
    server = servers("box")
    (server.base / "models/vae" / DEFAULT_MODELS["vae"]).write_bytes(b"not a model")
    out = tmp_path / "B"
    outcome = run_sync(run_comfy_kontext, params(set_a, out, [server]))
    assert outcome.status == "failed" and "(VAELoader)" in str(outcome.error)
    assert "HeaderTooLarge" in str(outcome.error) and "\n" not in str(outcome.error)
    assert not list(out.glob("*.png"))


def test_the_plugin_registers_a_light_lane_dataset_tool():
    from difflora_gui.plugin_host import get_plugin_host

    spec = get_plugin_host().dataset_tools()["comfyui_kontext"]
    assert spec.lane == "light" and spec.run == "difflora_gui.comfy.kontext_job:run_comfy_kontext"
    assert (
        spec.params.defaults()["prompt"]
        == get_plugin_host().dataset_tools()["kontext_counterparts"].params.defaults()["prompt"]
    )


def test_one_server_by_name_or_by_url_only(tmp_path, servers, set_a):
    first, second = servers("first"), servers("second")
    summary = run_comfy_kontext(
        params(set_a, tmp_path / "B1", [first, second], server="second"), RecordingContext()
    )
    assert len(summary["generated"]) == 3 and first.posted == [] and len(second.posted) == 3
    # a URL that no Settings entry has (the command line's --server URL)
    by_url = params(set_a, tmp_path / "B2", [second], server=first.url)
    assert len(run_comfy_kontext(by_url, RecordingContext())["generated"]) == 3 and len(first.posted) == 3
    unknown = run_sync(run_comfy_kontext, params(set_a, tmp_path / "B3", [first], server="nowhere"))
    assert outcome_text(unknown) == "no enabled ComfyUI server named 'nowhere' (Settings ▸ ComfyUI servers)"


def outcome_text(outcome):
    assert outcome.status == "failed"
    return str(outcome.error)


def test_the_dataset_kontext_command_runs_on_a_server_by_url(tmp_path, servers, set_a, capsys):
    from difflora_gui.cli import main

    server = servers("box")
    out = tmp_path / "B"
    args = ["dataset", "kontext", str(set_a), "--out", str(out), "--backend", "comfyui", "--server", server.url,
            "--steps", "4", "--seed", "7", "--check-resolution", "0", "--quiet", "--json"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    for stem in SIZES:
        assert_counterpart(set_a, out, stem)
    assert main([*args[:-2], "--model", str(tmp_path)]) == 2  # a local folder means the in-app backend
    assert "--backend-param unet=" in capsys.readouterr().err
