"""Which compute devices exist, without Qt: the probe both the GUI and the command line use.

``cpu`` is always there. Finding CUDA devices needs torch, whose import takes seconds: the GUI runs
:data:`PROBE_CODE` in a child process and reads its answer with :func:`parse_probe_output`; the
command line (which imports torch for its job anyway) asks in-process with :func:`detect_devices`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: prints a JSON list of the CUDA devices torch can see
PROBE_CODE = (
    "import json, torch\n"
    "found = []\n"
    "if torch.cuda.is_available():\n"
    "    for i in range(torch.cuda.device_count()):\n"
    "        p = torch.cuda.get_device_properties(i)\n"
    "        found.append({'id': f'cuda:{i}', 'name': p.name, 'memory_gb': round(p.total_memory / 2**30, 1)})\n"
    "print(json.dumps(found))\n"
)


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # "cpu", "cuda:0", ...
    name: str
    memory_gb: float | None = None

    @property
    def label(self) -> str:
        if self.id == "cpu":
            return "cpu"
        memory = f", {self.memory_gb:g} GB" if self.memory_gb else ""
        return f"{self.id} ({self.name}{memory})"


CPU = DeviceInfo("cpu", "CPU")


def cuda_devices_in_process() -> list[DeviceInfo]:
    """The CUDA devices torch sees in this process (imports torch)."""
    import torch

    found = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append(DeviceInfo(f"cuda:{index}", props.name, round(props.total_memory / 2**30, 1)))
    return found


def detect_devices() -> list[DeviceInfo]:
    """``cpu`` and every CUDA device; a missing or broken torch/CUDA gives just ``cpu``."""
    try:
        return [CPU, *cuda_devices_in_process()]
    except Exception:  # a broken CUDA setup must not stop a CPU job
        return [CPU]


def parse_probe_output(text: str) -> list[DeviceInfo]:
    """The devices in the probe's output (its last line); raises ``ValueError`` if unreadable."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the device probe printed nothing")
    data = json.loads(lines[-1])
    if not isinstance(data, list):
        raise ValueError("the device probe did not print a list")
    devices = []
    for item in data:
        if not isinstance(item, dict) or not str(item.get("id", "")).startswith("cuda:"):
            raise ValueError(f"unexpected device entry {item!r}")
        memory = item.get("memory_gb")
        devices.append(
            DeviceInfo(str(item["id"]), str(item.get("name", "")), float(memory) if memory else None)
        )
    return devices
