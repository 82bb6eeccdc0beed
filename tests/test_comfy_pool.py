"""The ComfyUI server pool against stand-in servers (tests/fixtures/comfy_standin.py, not ComfyUI):
health states for the GUI, one scheduler lane per server, a job retried elsewhere when its server
dies mid-run, and the server used again once it answers."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from difflora_gui.comfy.pool import DOWN, UNKNOWN, UP, ComfyPool, shared_pool
from difflora_gui.comfy.protocol import ComfyError
from difflora_gui.errors import UserError
from difflora_gui.jobs.scheduler import Scheduler
from difflora_gui.settings import AppSettings, ComfyServer

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def wait_until(predicate, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def servers(standins):
    return standins


def slow_workflow(prefix):
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 255},
        },
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def test_health_states_devices_and_a_quick_lane_check(servers):
    up = servers("up")
    dead_url = f"http://127.0.0.1:{free_port()}"
    pool = ComfyPool(
        [
            ComfyServer("up", up.url),
            {"name": "dead", "url": dead_url},
            ComfyServer("off", up.url, enabled=False),
        ],
        ttl_s=0.3,
        timeout_s=1.0,
    )
    assert pool.names() == ["up", "dead"]  # disabled servers are not in the pool
    assert pool.health("up").state == UNKNOWN
    # the scheduler's check never waits on the network: unknown is "not yet", asked in the background
    started = time.monotonic()
    assert pool.is_healthy("up") is False
    assert time.monotonic() - started < 0.2
    assert wait_until(lambda: pool.is_healthy("up"))
    seen = []
    pool.add_listener(seen.append)
    states = {h.name: h for h in pool.check_all()}
    assert states["up"].state == UP and states["up"].version == "0.3.64"
    assert states["up"].devices[0]["vram_total"] == 1 << 34 and "GiB free" in states["up"].summary()
    assert states["dead"].state == DOWN and "does not answer" in states["dead"].error
    assert {h.name for h in seen} == {"up", "dead"}
    assert pool.healthy_names() == ["up"]
    assert pool.find(up.url).name == "up" and pool.find("nope") is None
    with pytest.raises(UserError, match="no ComfyUI server named 'nope'"):
        pool.server("nope")


def test_each_server_is_a_scheduler_lane_placed_only_while_healthy(servers):
    up = servers("up")
    pool = ComfyPool([ComfyServer("gpu box", up.url), ComfyServer("gone", f"http://127.0.0.1:{free_port()}")])
    scheduler = Scheduler(health_poll_s=0.1)
    pool.register(scheduler)  # asks every server at once, in the background
    assert wait_until(lambda: pool.health("gpu box").state == UP and pool.health("gone").state == DOWN)
    assert {k for k in scheduler.lane_keys() if k.startswith("comfy:")} == {"comfy:gpu box", "comfy:gone"}
    assert scheduler.lane("comfy:gpu box").is_healthy() and not scheduler.lane("comfy:gone").is_healthy()
    # the GUI's pool and the jobs' pool are one: the same servers give the same pool
    settings = AppSettings(comfyui_servers=[ComfyServer("gpu box", up.url)])
    assert shared_pool(settings.enabled_comfyui_servers()) is shared_pool(
        [{"name": "gpu box", "url": up.url}]
    )


def test_a_server_dying_mid_job_has_the_job_retried_and_is_used_again_after_restart(tmp_path, servers):
    first = servers("first", node_delay_s=30.0)
    second = servers("second")
    pool = ComfyPool([ComfyServer("first", first.url), ComfyServer("second", second.url)], ttl_s=0.3)
    pool.check_all()
    ran_on = []

    def job(name):
        ran_on.append(name)
        with pool.client_for(name, timeout_s=5) as client:
            return client.run(slow_workflow(f"job_{len(ran_on)}"), max_wait_s=20)

    def kill_when_running():
        assert wait_until(lambda: first.running is not None)
        first.stop()

    threading.Thread(target=kill_when_running, daemon=True).start()
    logs = []
    outputs = pool.run_with_retry(job, preferred="first", log=logs.append)
    assert ran_on == ["first", "second"] and outputs.files[0].data[:4] == b"\x89PNG"
    assert pool.health("first").state == DOWN and pool.healthy_names() == ["second"]
    assert "trying another server" in logs[0]
    # back on the same port: the next health check finds it and it is placed again
    port = int(first.url.rsplit(":", 1)[1])
    back = servers("first-again", port=port)
    assert wait_until(lambda: pool.is_healthy("first"))
    ran_on.clear()
    pool.run_with_retry(job, preferred="first")
    assert ran_on == ["first"] and back.posted


def test_a_refused_workflow_is_not_retried_elsewhere(servers):
    first, second = servers("first"), servers("second")
    pool = ComfyPool([ComfyServer("first", first.url), ComfyServer("second", second.url)])

    def job(name):
        with pool.client_for(name, timeout_s=5) as client:
            return client.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})

    with pytest.raises(ComfyError, match="refused") as caught:
        pool.run_with_retry(job, preferred="first")
    assert not caught.value.retryable and second.posted == []
    assert pool.health("first").state != DOWN  # the server is fine; the workflow is not


def test_every_server_down_is_one_error_naming_them():
    pool = ComfyPool(
        [
            ComfyServer("a", f"http://127.0.0.1:{free_port()}"),
            ComfyServer("b", f"http://127.0.0.1:{free_port()}"),
        ],
        timeout_s=1.0,
    )

    def job(name):
        with pool.client_for(name, timeout_s=1) as client:
            return client.system_stats()

    with pytest.raises(UserError, match=r"no ComfyUI server could run the job: a: .*; b: "):
        pool.run_with_retry(job)
    with pytest.raises(UserError, match="no ComfyUI server is enabled"):
        ComfyPool([]).run_with_retry(job)
