"""The ComfyUI client against the stand-in server (tests/fixtures/comfy_standin.py, not ComfyUI)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import av
import numpy as np
import pytest

from difflora_gui.comfy.client import ComfyClient
from difflora_gui.comfy.protocol import ComfyError, ComfyInterrupted, decode_binary
from difflora_gui.errors import JobCancelled, UserError
from tests.fixtures.comfy_standin import StandinComfy

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(tmp_path):
    standin = StandinComfy(tmp_path / "comfy").start()
    yield standin
    standin.stop()


@pytest.fixture
def client(server):
    with ComfyClient(server.url, timeout_s=5) as comfy:
        yield comfy


def picture(width=64, height=32, batch=1, color=0xFF0000):
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": width, "height": height, "batch_size": batch, "color": color},
    }


def slow_workflow(blurs=4):
    workflow = {"1": picture()}
    for index in range(blurs):
        workflow[str(10 + index)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(10 + index - 1) if index else "1", 0], "blur_radius": 1, "sigma": 1.0},
        }
    workflow["99"] = {
        "class_type": "SaveImage",
        "inputs": {"images": [str(10 + blurs - 1), 0], "filename_prefix": "slow"},
    }
    return workflow


def wait_until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_progress_frames_and_outputs_arrive(client, server, tmp_path):
    workflow = {
        "1": picture(batch=3, color=0x00FF00),
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cell7/img"}},
        "4": {
            "class_type": "VHS_VideoCombine",
            "inputs": {
                "images": ["1", 0],
                "frame_rate": 8,
                "loop_count": 0,
                "filename_prefix": "cell7_vhs",
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
    progress, frames = [], []
    outputs = client.run(
        workflow,
        on_progress=lambda done, total, text: progress.append((done, total, text)),
        on_frame=lambda index, image, **meta: frames.append((index, image, meta)),
    )
    assert server.posted[0]["client_id"] == client.client_id
    assert server.posted[0]["prompt_id"] == outputs.prompt_id
    assert (0, 3, "node 2 (SaveImageWebsocket): step 0/3") in progress
    assert [f[0] for f in frames] == [0, 1, 2]
    assert frames[0][1].shape == (32, 64, 3) and frames[0][1].dtype == np.uint8
    assert tuple(frames[0][1][0, 0]) == (0, 255, 0)  # RGB, not OpenCV's BGR
    assert frames[0][2]["node"] == "2"
    kinds = {(f.key, f.animated, f.subfolder) for f in outputs.files}
    assert kinds == {("images", False, "cell7"), ("gifs", True, "")}
    saved = outputs.save(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in saved) == [
        "cell7/img_00001_.png",
        "cell7/img_00002_.png",
        "cell7/img_00003_.png",
        "cell7_vhs_00001_.mp4",
    ]
    with av.open(str(tmp_path / "out" / "cell7_vhs_00001_.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    with pytest.raises(UserError, match="already exists"):
        outputs.save(tmp_path / "out")


def test_type_1_frames_of_an_old_style_client_are_decoded():
    import struct

    import cv2

    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 2] = 200  # blue in RGB
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
    frame = decode_binary(struct.pack(">II", 1, 1) + jpeg)
    assert frame.image_format == "JPEG" and frame.prompt_id is None
    assert frame.image.shape == (4, 6, 3) and frame.image[0, 0, 2] > 180 and frame.image[0, 0, 0] < 20
    assert decode_binary(struct.pack(">II", 3, 1) + b"1hello") is None  # progress text, no image
    assert decode_binary(b"\0\0\0\1") is None


@pytest.fixture(params=["standin", "real"])
def target(request, tmp_path):
    """The stand-in, and a real ComfyUI too when COMFYUI_URL names one (core nodes only; the slow
    workflow is then really slow: ImageBlur with radius 31 on 768² takes seconds on a CPU)."""
    if request.param == "real":
        if not os.environ.get("COMFYUI_URL"):
            pytest.skip("set COMFYUI_URL to run against a real ComfyUI")
        yield os.environ["COMFYUI_URL"], None
        return
    standin = StandinComfy(tmp_path / "comfy", node_delay_s=0.3).start()
    yield standin.url, standin
    standin.stop()


@pytest.fixture
def any_client(target):
    with ComfyClient(target[0], timeout_s=10) as comfy:
        yield comfy


def heavy(blurs, color=None):
    """slow_workflow on a picture big enough to be slow on a real server, never served from its cache."""
    workflow = slow_workflow(blurs)
    workflow["1"] = picture(768, 768, 2, color if color is not None else int(uuid.uuid4().int % 0xFFFFFF))
    for index in range(blurs):
        workflow[str(10 + index)]["inputs"].update(blur_radius=31, sigma=5.0)
    return workflow


def test_a_partial_refusal_with_http_200_is_an_error_and_is_taken_off_the_queue(any_client):
    workflow = {
        "1": picture(color=int(uuid.uuid4().int % 0xFFFFFF)),
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "good"}},
        "3": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "bad",
                "fps": 6.0,
                "lossless": True,
                "quality": 80,
                "method": "ultra",
            },
        },
    }
    busy = any_client.submit(heavy(2))  # the good output would queue behind it
    with pytest.raises(
        ComfyError, match=r"node 3 \(SaveAnimatedWEBP\): Value not in list: method: 'ultra'"
    ) as caught:
        any_client.submit(workflow)
    assert caught.value.problems and not caught.value.retryable
    assert wait_until(lambda: any_client.history(busy) is not None, 30)
    time.sleep(0.3)  # the refused prompt's good output was queued behind it, and taken back
    assert not any_client.queue()["queue_pending"] and not any_client.queue()["queue_running"]


def test_a_400_refusal_names_each_node_and_input(any_client):
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": "tall", "batch_size": 1}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(ComfyError) as caught:
        any_client.run(workflow)
    assert sorted(caught.value.problems) == [
        "node 1 (EmptyImage): Failed to convert an input value to a INT value: height, tall, invalid literal for int() with base 10: 'tall'",
        "node 1 (EmptyImage): color: Required input is missing",
        "node 1 (EmptyImage): width: Value 0 smaller than min of 1",
    ]
    with pytest.raises(ComfyError, match="NoSuchNode does not exist"):
        any_client.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})


def test_an_execution_error_names_the_node_and_its_message(any_client, tmp_path):
    bad = tmp_path / f"not_an_image_{uuid.uuid4().hex[:8]}.png"
    bad.write_bytes(b"this is text")
    name = any_client.upload_image(bad)
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(
        ComfyError, match=r"node 1 \(LoadImage\) failed: UnidentifiedImageError: cannot identify"
    ) as caught:
        any_client.run(workflow)
    assert caught.value.node_id == "1" and not caught.value.retryable


def test_upload_uses_the_name_the_server_returns(any_client, tmp_path):
    stem = f"kontext_src_{uuid.uuid4().hex[:8]}"
    first, second = tmp_path / "a" / f"{stem}.png", tmp_path / "b" / f"{stem}.png"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    assert any_client.upload_image(first) == f"{stem}.png"
    assert any_client.upload_image(first) == f"{stem}.png"  # same bytes: reused
    assert any_client.upload_image(second) == f"{stem} (1).png"  # renamed by the server
    assert any_client.upload_image(second, overwrite=True) == f"{stem}.png"
    assert any_client.upload_image(first, subfolder="difflora") == f"difflora/{stem}.png"


def test_cancel_while_pending_deletes_and_while_running_interrupts(any_client):
    other = ComfyClient(any_client.base_url, timeout_s=10)
    running = other.submit(heavy(6))
    assert wait_until(lambda: any(e[1] == running for e in any_client.queue()["queue_running"]))
    pending = other.submit(heavy(2))
    assert any_client.cancel(pending) == "pending"
    assert all(item[1] != pending for item in any_client.queue()["queue_pending"])
    assert any_client.cancel(running) == "running"
    assert wait_until(lambda: any_client.history(running) is not None, 30)
    status = any_client.history(running)["status"]
    assert status["status_str"] == "error" and status["messages"][-1][0] == "execution_interrupted"
    time.sleep(0.3)
    assert any_client.history(pending) is None  # a deleted prompt never runs
    assert any_client.cancel("not-queued") == "gone"
    other.close()


def test_a_cancelled_run_raises_job_cancelled(any_client, target):
    flag = threading.Event()
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        any_client.run(
            heavy(8),
            cancelled=flag.is_set,
            on_progress=lambda done, total, text: flag.set() if "ImageBlur" in text else None,
        )
    # the interrupt acts at the next node: one node's time
    assert time.monotonic() - started < (2.0 if target[1] else 10.0)
    assert not any_client.queue()["queue_pending"]


def test_a_callback_that_raises_stops_the_prompt_on_the_server(client, server):
    server.node_delay_s = 0.3

    def on_progress(done, total, text):
        if "ImageBlur" in text:
            raise JobCancelled()  # what ctx.raise_if_cancelled() inside a callback does

    with pytest.raises(JobCancelled):
        client.run(slow_workflow(8), on_progress=on_progress)
    assert wait_until(lambda: len(server.history) == 1, 5)
    entry = next(iter(server.history.values()))
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_an_interrupt_from_another_client_is_an_error(any_client):
    other = ComfyClient(any_client.base_url)
    interrupter = threading.Timer(1.0, lambda: other._request("POST", "/interrupt", json={}))
    interrupter.start()
    with pytest.raises(ComfyInterrupted, match="interrupted at node 1[0-9] \\(ImageBlur\\)"):
        any_client.run(heavy(8))
    other.close()


def test_a_dropped_socket_is_recovered_from_history(client, server, tmp_path):
    server.node_delay_s = 0.3
    dropped = []

    def on_progress(done, total, text):
        if "ImageBlur" in text and not dropped:
            dropped.append(text)
            server.refuse_ws_until = time.monotonic() + 2.0  # down until after the prompt ended
            server.drop_sockets()

    outputs = client.run(slow_workflow(3), on_progress=on_progress)
    assert dropped
    assert [f.filename for f in outputs.files] == ["slow_00001_.png"]
    assert outputs.files[0].data.startswith(b"\x89PNG")


def test_a_dropped_socket_mid_run_picks_up_the_messages_again(client, server):
    server.node_delay_s = 0.3
    dropped, texts = [], []

    def on_progress(done, total, text):
        texts.append(text)
        if "node 10" in text and not dropped:
            dropped.append(text)
            server.drop_sockets()

    outputs = client.run(slow_workflow(4), on_progress=on_progress)
    assert [f.filename for f in outputs.files] == ["slow_00001_.png"]
    assert any("node 13" in t for t in texts)  # messages after the reconnect still arrive


def test_outputs_listed_while_the_socket_was_down_come_from_history(client, server):
    server.node_delay_s = 0.3
    early = {"2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "early"}}}
    workflow = early | slow_workflow(4)  # runs first; the blurs keep the prompt running after the drop
    server.drop_before_executed = "2"
    outputs = client.run(workflow)
    assert sorted(f.filename for f in outputs.files) == ["early_00001_.png", "slow_00001_.png"]


def test_a_socket_that_silently_stops_is_caught_by_asking_the_server(client, server):
    """Another socket under our client id takes the server's slot and closes: ours stays open but
    hears nothing more (server.py's behaviour); after ``stall_s`` the run asks the server and,
    the prompt still running, takes the slot back."""
    from websockets.sync.client import connect

    server.node_delay_s = 0.3
    stolen, texts = [], []

    def on_progress(done, total, text):
        texts.append(text)
        if "node 10" in text and not stolen:
            stolen.append(text)
            with connect(client.ws_url(), proxy=None):
                pass

    outputs = client.run(slow_workflow(8), on_progress=on_progress, stall_s=0.5)
    assert stolen and [f.filename for f in outputs.files] == ["slow_00001_.png"]
    assert any("node 17" in t for t in texts)  # progress is heard again after the slot is back


def test_a_malicious_output_name_is_refused(client, server):
    server.output_name_override = "../../etc/passwd"
    workflow = {
        "1": picture(),
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    with pytest.raises(ComfyError, match="refusing the output file name"):
        client.run(workflow)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_says_so():
    url = f"http://127.0.0.1:{free_port()}"
    with ComfyClient(url, timeout_s=2) as comfy:
        assert not comfy.is_up()
        with pytest.raises(ComfyError) as caught:
            comfy.system_stats()
        assert (
            str(caught.value)
            == f"ComfyUI at {url} does not answer (is it running? Settings ▸ ComfyUI servers)"
        )
        assert caught.value.retryable and isinstance(caught.value, UserError)
        with pytest.raises(ComfyError, match="does not answer on its WebSocket"):
            comfy.run({"1": picture()})
    with pytest.raises(UserError, match="expected a URL"):
        ComfyClient("ftp://example.com")


def test_a_server_that_is_not_comfyui_is_named(tmp_path):
    import http.server

    class NotJson(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with ComfyClient(url, timeout_s=2) as comfy, pytest.raises(ComfyError, match="not JSON"):
            comfy.queue()
    finally:
        httpd.shutdown()


def test_models_and_object_info(client, server):
    (server.base / "models/loras/sub").mkdir()
    (server.base / "models/loras/sub/slider-0123456789ab.safetensors").write_bytes(b"x")
    assert client.models("loras") == ["sub/slider-0123456789ab.safetensors"]
    assert client.object_info("NoSuchNode") == {}
    info = client.object_info("LoraLoaderModelOnly")
    assert info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"] == [
        ["sub/slider-0123456789ab.safetensors"]
    ]
    assert client.system_stats()["devices"][0]["type"] == "cpu"
    server.models_route = False  # an older server: the loader's choices are the same list
    assert client.models("loras") == ["sub/slider-0123456789ab.safetensors"]


def test_a_silent_server_times_out_and_credentials_stay_out_of_messages():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        url = f"http://user:secret@127.0.0.1:{listener.getsockname()[1]}"
        with ComfyClient(url, timeout_s=0.5) as comfy, pytest.raises(ComfyError) as caught:
            comfy.queue()
        message = str(caught.value)
        assert "did not answer GET /queue within 0.5 s" in message and caught.value.retryable
        assert "secret" not in message and "user" not in message
    finally:
        listener.close()


@pytest.mark.skipif(not os.environ.get("COMFYUI_URL"), reason="set COMFYUI_URL to run against a real ComfyUI")
def test_a_real_server_runs_empty_image_to_save_image(tmp_path):
    with ComfyClient(os.environ["COMFYUI_URL"], timeout_s=30) as comfy:
        outputs = comfy.run(
            {
                "1": picture(),
                "2": {
                    "class_type": "SaveImage",
                    "inputs": {"images": ["1", 0], "filename_prefix": "difflora_probe"},
                },
            }
        )
    assert outputs.files and outputs.files[0].data.startswith(b"\x89PNG")
