"""Device detection: never blocks the UI; a probe process answers; failures fall back to the CPU."""

from __future__ import annotations

import json
import sys

import pytest

from difflora_gui.qt.devices import PROBE_CODE, DeviceInfo, DeviceRegistry, parse_probe_output

GPU_LIST = [{"id": "cuda:0", "name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.2}]


def registry(code: str) -> DeviceRegistry:
    return DeviceRegistry(probe_command=[sys.executable, "-c", code])


def test_a_probe_that_finds_a_gpu(qtbot):
    devices = registry(f"print({json.dumps(json.dumps(GPU_LIST))})")
    assert devices.ids() == ["cpu"] and devices.resolve("auto") is None
    with qtbot.waitSignal(devices.detected, timeout=30_000) as blocker:
        devices.detect()
    assert [d.id for d in blocker.args[0]] == ["cpu", "cuda:0"]
    assert devices.resolve("auto") == "cuda:0"
    assert devices.resolve("cpu") == "cpu"
    assert devices.devices()[1].label == "cuda:0 (NVIDIA H100 80GB HBM3, 79.2 GB)"
    assert devices.error == ""


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("import sys; sys.exit('ModuleNotFoundError: No module named torch')", "No module named torch"),
        ("print('garbage')", "device detection failed"),
    ],
)
def test_a_failing_probe_falls_back_to_the_cpu(qtbot, code, error):
    devices = registry(code)
    with qtbot.waitSignal(devices.detected, timeout=30_000):
        devices.detect()
    assert devices.ids() == ["cpu"]
    assert devices.resolve("auto") == "cpu"
    assert error in devices.error


def test_a_probe_that_cannot_start(qtbot, tmp_path):
    devices = DeviceRegistry(probe_command=[str(tmp_path / "no such python"), "-c", "pass"])
    with qtbot.waitSignal(devices.detected, timeout=30_000):
        devices.detect()
    assert devices.ids() == ["cpu"]
    assert "cannot start" in devices.error


def test_the_real_probe_runs_with_this_torch(qtbot):
    devices = DeviceRegistry()
    with qtbot.waitSignal(devices.detected, timeout=120_000):
        devices.detect()
    assert devices.error == ""
    assert devices.ids()[0] == "cpu"
    assert all(d.startswith("cuda:") for d in devices.ids()[1:])


def test_stop_kills_a_running_probe(qtbot):
    devices = registry("import time; time.sleep(30)")
    devices.detect()
    devices.stop()
    assert not devices.is_detected


def test_parse_probe_output():
    assert parse_probe_output("some warning\n[]\n") == []
    assert parse_probe_output(json.dumps(GPU_LIST)) == [DeviceInfo("cuda:0", "NVIDIA H100 80GB HBM3", 79.2)]
    for bad in ("", "{}", '[{"id": "tpu:0"}]', "not json"):
        with pytest.raises(ValueError):
            parse_probe_output(bad)


def test_probe_code_is_a_plain_script():
    compile(PROBE_CODE, "<probe>", "exec")
