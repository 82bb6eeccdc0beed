"""Which compute devices exist, found without slowing down start-up.

``cpu`` is always there. Finding CUDA devices needs torch, whose import takes seconds, so the
window never waits for it: if torch is already imported the answer is immediate, otherwise a
short ``python -c`` probe runs in a ``QProcess`` (its own process, so the UI thread and the GIL
are untouched) and :attr:`DeviceRegistry.detected` fires when it answers.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, Signal, Slot

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
PROBE_TIMEOUT_MS = 60_000


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


def _cuda_devices_in_process() -> list[DeviceInfo]:
    import torch  # only called when torch is already imported

    found = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append(DeviceInfo(f"cuda:{index}", props.name, round(props.total_memory / 2**30, 1)))
    return found


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


class DeviceRegistry(QObject):
    """The device list shown in Settings and the status bar, and the lanes jobs can ask for."""

    #: emitted once detection has an answer (the list may be just ``cpu``)
    detected = Signal(list)

    def __init__(self, parent: QObject | None = None, *, probe_command: list[str] | None = None):
        super().__init__(parent)
        self._devices: list[DeviceInfo] = [CPU]
        self._is_detected = False
        self._process: QProcess | None = None
        self._probe_command = probe_command or [sys.executable, "-c", PROBE_CODE]
        # torch already imported (a job ran): ask it directly instead of paying for a process
        self._may_ask_in_process = probe_command is None
        self.error = ""

    @property
    def is_detected(self) -> bool:
        return self._is_detected

    def devices(self) -> list[DeviceInfo]:
        return list(self._devices)

    def ids(self) -> list[str]:
        return [device.id for device in self._devices]

    def resolve(self, name: str) -> str | None:
        """``"auto"`` → the first CUDA device, else ``"cpu"``; ``None`` while detection is running."""
        if name != "auto":
            return name
        if not self._is_detected:
            return None
        cuda = [d.id for d in self._devices if d.id.startswith("cuda:")]
        return cuda[0] if cuda else "cpu"

    def detect(self) -> None:
        """Start detection (returns at once). Does nothing if it ran or is running."""
        if self._is_detected or self._process is not None:
            return
        if self._may_ask_in_process and "torch" in sys.modules:
            try:
                self._finish([CPU, *_cuda_devices_in_process()])
            except Exception as exc:  # a broken CUDA setup must not break the app
                self.error = f"device detection failed: {exc}"
                self._finish([CPU])
            return
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.finished.connect(self._on_probe_finished)
        process.errorOccurred.connect(self._on_probe_error)
        self._process = process
        process.start(self._probe_command[0], self._probe_command[1:])

    def set_devices(self, devices: list[DeviceInfo]) -> None:
        """Use this list instead of detecting (tests, or a user override)."""
        self.stop()
        self._finish([CPU, *[d for d in devices if d.id != "cpu"]])

    def stop(self) -> None:
        """Kill a running probe (the window is closing)."""
        process, self._process = self._process, None
        if process is not None and process.state() != QProcess.ProcessState.NotRunning:
            process.kill()
            process.waitForFinished(2000)

    @Slot(int, QProcess.ExitStatus)
    def _on_probe_finished(self, exit_code: int, _status: QProcess.ExitStatus) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        out = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(process.readAllStandardError()).decode("utf-8", "replace").strip()
        process.deleteLater()
        if exit_code != 0:
            last = err.splitlines()[-1] if err else f"exit code {exit_code}"
            self.error = f"device detection failed: {last}"
            self._finish([CPU])
            return
        try:
            found = parse_probe_output(out)
        except ValueError as exc:
            self.error = f"device detection failed: {exc}"
            found = []
        self._finish([CPU, *found])

    @Slot(QProcess.ProcessError)
    def _on_probe_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart:
            return  # crashes and timeouts also end in finished()
        process, self._process = self._process, None
        if process is not None:
            self.error = f"device detection failed: cannot start {self._probe_command[0]}"
            process.deleteLater()
            self._finish([CPU])

    def _finish(self, devices: list[DeviceInfo]) -> None:
        self._devices = devices
        self._is_detected = True
        self.detected.emit(self.devices())
