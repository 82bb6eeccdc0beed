"""``python main.py comfy status|validate|run`` against stand-in servers (tests/fixtures/comfy_standin.py,
not ComfyUI), through :func:`difflora_gui.cli.main` and, for one command, a real subprocess."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from difflora_gui.cli import main
from difflora_gui.comfy.binding import UI_FORMAT_HINT
from difflora_gui.comfy.workflows import load_template
from difflora_gui.settings import AppSettings, ComfyServer
from tests.fixtures.comfy_standin import OBJECT_INFO, StandinComfy

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
WRAPPER_NODES = {k for k in OBJECT_INFO if k.startswith(("WanVideo", "LoadWanVideo"))}


class NoWrapperComfy(StandinComfy):
    """A server without the WanVideoWrapper custom nodes."""

    def object_info(self) -> dict:
        return {k: v for k, v in super().object_info().items() if k not in WRAPPER_NODES}


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name, cls=StandinComfy, **kwargs):
        server = cls(tmp_path / name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def dead_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def save_settings(*servers: ComfyServer) -> None:
    settings = AppSettings.load()
    settings.comfyui_servers = list(servers)
    settings.save()


def image_workflow(prefix="cli/img", width=32):
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": 16, "batch_size": 1, "color": 255},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def write_json(path: Path, data) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_status_lists_an_up_and_a_down_server_and_the_missing_nodes(servers, capsys):
    up = servers("up", cls=NoWrapperComfy)
    save_settings(
        ComfyServer(name="box", url=up.url),
        ComfyServer(name="gone", url=dead_url()),
        ComfyServer(name="off", url=dead_url(), enabled=False),
    )
    assert main(["comfy", "status"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["server", "url", "state", "comfyui"]
    box = next(line for line in lines if line.startswith("box ") and up.url in line)
    assert " up " in box and "0.3.64" in box and "cpu 8.0/16.0 GiB free" in box
    gone = next(line for line in lines if line.startswith("gone "))
    assert " down " in gone and "does not answer" in gone
    assert not any(line.startswith("off ") for line in lines)  # disabled: not asked
    templates = {
        tuple(line.split()[:2]): line for line in lines if line.startswith("box ") and up.url not in line
    }
    assert "ready" in templates[("box", "wan21_t2v")]
    assert "missing: LoadWanVideoT5TextEncoder, WanVideoDecode" in templates[("box", "wanvideo_t2v")]

    assert main(["comfy", "status", "--json", "--server", "off", "--server", up.url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["state"] for e in report] == ["down", "up"]
    missing = report[1]["templates"]["wanvideo_t2v"]
    assert missing == sorted(missing) and {"WanVideoSampler", "WanVideoLoraBlockEdit"} <= set(missing)
    assert report[1]["templates"]["wan21_t2v"] == []
    assert report[1]["devices"][0]["vram_free"] == 1 << 33

    assert main(["comfy", "status", "--server", "nobody"]) == 2
    assert "no server of that name" in capsys.readouterr().err


def test_validate_passes_a_valid_workflow_and_lists_each_problem(servers, tmp_path, capsys):
    server = servers("one")
    save_settings(ComfyServer(name="box", url=server.url))
    good = write_json(tmp_path / "good.json", image_workflow())
    assert main(["comfy", "validate", good]) == 0
    assert f"valid against {server.url}" in capsys.readouterr().out

    broken = image_workflow(width=0)
    broken["3"] = {"class_type": "NoSuchNode", "inputs": {}}
    bad = write_json(tmp_path / "bad.json", broken)
    assert main(["comfy", "validate", bad, "--server", "box"]) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("node 1 (EmptyImage): width") and "0" in lines[0]
    assert lines[1].startswith("node 3 (NoSuchNode): the server has no node 'NoSuchNode'")
    assert "2 problem(s); nothing was queued" in captured.err

    # --set through a saved binding set: the value is typed, checked and written
    bindings = write_json(tmp_path / "b.json", [{"param": "width", "node_id": "1", "input_name": "width"}])
    assert main(["comfy", "validate", good, "--bindings", bindings, "--set", "width=0"]) == 2
    assert capsys.readouterr().out.startswith("node 1 (EmptyImage): width")
    assert main(["comfy", "validate", good, "--bindings", bindings, "--set", "width=64"]) == 0
    capsys.readouterr()
    assert main(["comfy", "validate", good, "--set", "seed=1", "--json"]) == 2  # no binding for seed
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and "no input of the workflow is bound to seed" in report["problems"][0]
    assert main(["comfy", "validate", good, "--bindings", bindings, "--set", "width=wide"]) == 2
    assert "a whole number is needed" in capsys.readouterr().err


def test_offline_validate_against_a_saved_object_info_with_suggested_bindings(tmp_path, capsys):
    info = copy.deepcopy(OBJECT_INFO)
    info["UNETLoader"]["input"]["required"]["unet_name"][0] = ["wan.safetensors"]
    info["CLIPLoader"]["input"]["required"]["clip_name"][0] = ["umt5.safetensors"]
    info["VAELoader"]["input"]["required"]["vae_name"][0] = ["wan_vae.safetensors"]
    saved = write_json(tmp_path / "object_info.json", info)
    workflow = load_template("wan21_t2v")
    workflow["1"]["inputs"]["unet_name"] = "wan.safetensors"
    workflow["2"]["inputs"]["clip_name"] = "umt5.safetensors"
    workflow["3"]["inputs"]["vae_name"] = "wan_vae.safetensors"
    path = write_json(tmp_path / "wan.json", workflow)
    args = ["comfy", "validate", path, "--object-info", saved, "--set", "prompt=123", "--set", "seed=7"]
    assert main(args) == 0, capsys.readouterr()
    assert "valid against the nodes of" in capsys.readouterr().out
    assert main([*args, "--set", "steps=0"]) == 2
    assert "steps" in capsys.readouterr().out
    # NODE.INPUT=VALUE goes straight into the node, typed as it declares the input
    assert main([*args, "--set", "8.steps=20", "--set", "4.text=42", "--json"]) == 0, capsys.readouterr()
    assert main([*args, "--set", "8.steps=many"]) == 2
    assert "--set 8.steps=many: a whole number is needed" in capsys.readouterr().out
    assert main([*args, "--set", "99.steps=1"]) == 2
    assert "the workflow has no node 99" in capsys.readouterr().out
    # the fixture itself (no model files listed): the empty model names are the problems
    fixture = str(ROOT / "tests" / "fixtures" / "comfy_object_info.json")
    assert main(["comfy", "validate", path, "--object-info", fixture]) == 2
    assert "node 1 (UNETLoader): unet_name" in capsys.readouterr().out


def test_a_ui_format_workflow_is_refused(tmp_path, capsys):
    ui = write_json(tmp_path / "ui.json", {"nodes": [], "links": [], "version": 0.4})
    fixture = str(ROOT / "tests" / "fixtures" / "comfy_object_info.json")
    assert main(["comfy", "validate", ui, "--object-info", fixture]) == 2
    err = capsys.readouterr().err
    assert UI_FORMAT_HINT in err and "Export (API)" in err


def test_run_downloads_the_outputs_and_never_overwrites(servers, tmp_path, capsys):
    server = servers("one")
    save_settings(ComfyServer(name="box", url=server.url))
    flow = write_json(tmp_path / "flow.json", image_workflow(prefix="cli/img"))
    bindings = write_json(tmp_path / "b.json", [{"param": "width", "node_id": "1", "input_name": "width"}])
    out = tmp_path / "renders"
    args = ["comfy", "run", flow, "--server", "box", "--out", str(out), "--bindings", bindings]
    assert main([*args, "--set", "width=40", "--quiet"]) == 0
    first = Path(capsys.readouterr().out.strip())
    assert first.parent == out / "cli" and first.suffix == ".png"
    import cv2

    assert cv2.imread(str(first)).shape[:2] == (16, 40)
    assert server.posted[-1]["prompt"]["1"]["inputs"]["width"] == 40
    # the same name again (a server restarted its counter): the earlier file is kept
    (out / "cli" / "img_00002_.png").write_bytes(b"mine")
    assert main([*args, "--set", "width=48", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    (second,) = result["files"]
    assert Path(second).name == "img_00002_ (1).png"
    assert (out / "cli" / "img_00002_.png").read_bytes() == b"mine"
    assert cv2.imread(second).shape[:2] == (16, 48)

    # valid, but the server's node fails on the file: exit 2 with the node's error
    (server.base / "input" / "bad.png").write_bytes(b"not an image")
    failing = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "bad.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cli/bad"}},
    }
    failing_file = write_json(tmp_path / "f.json", failing)
    assert main(["comfy", "run", failing_file, "--server", "box", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "node 1 (LoadImage) failed: UnidentifiedImageError" in err

    broken = write_json(tmp_path / "broken.json", {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    posted = len(server.posted)
    assert main(["comfy", "run", broken, "--server", "box", "--out", str(out)]) == 2
    assert len(server.posted) == posted  # nothing was queued


def test_run_in_a_real_process_with_progress_on_stderr(servers, tmp_path):
    server = servers("one")
    flow = write_json(tmp_path / "flow.json", image_workflow(prefix="sub/ü"))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [
            sys.executable,
            "main.py",
            "comfy",
            "run",
            flow,
            "--server",
            server.url,
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (written,) = result.stdout.splitlines()
    assert Path(written).is_file() and Path(written).name.startswith("ü_")
    assert "queued on" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_interrupts_the_prompt_on_the_server_and_downloads_nothing(servers, tmp_path):
    import signal
    import time

    # the stand-in interrupts between nodes: Ctrl+C lands during the slow blur, before SaveImage
    server = servers("slow", node_delay_s=2.0)
    slow = image_workflow(prefix="slow/img")
    slow["3"] = {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}
    slow["2"]["inputs"]["images"] = ["3", 0]
    flow = write_json(tmp_path / "slow.json", slow)
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    process = subprocess.Popen(
        [sys.executable, "main.py", "comfy", "run", flow, "--server", server.url, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=env,
    )
    try:
        end = time.monotonic() + 30
        while server.current_node != "3" and time.monotonic() < end:
            time.sleep(0.02)
        assert server.current_node == "3", "the prompt never reached the blur"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr
    end = time.monotonic() + 10
    while server.running is not None and time.monotonic() < end:
        time.sleep(0.05)
    assert server.running is None and not server.pending
    assert not out.exists() or not any(out.rglob("*.png"))
    assert not any((server.base / "output").rglob("*.png"))  # interrupted before SaveImage ran
