"""Which compute devices exist, found without slowing down start-up.

``cpu`` is always there. Finding CUDA devices needs torch, whose import takes seconds, so the
window never waits for it: if torch is already imported the answer is immediate, otherwise a
short ``python -c`` probe runs in a ``QProcess`` (its own process, so the UI thread and the GIL
are untouched) and :attr:`DeviceRegistry.detected` fires when it answers.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QProcess, Signal, Slot

# the probe itself is Qt-free (the command line uses it too); re-exported for the GUI
from difflora_gui.jobs.devices import (  # noqa: F401
    CPU,
    PROBE_CODE,
    DeviceInfo,
    parse_probe_output,
)
from difflora_gui.jobs.devices import cuda_devices_in_process as _cuda_devices_in_process

PROBE_TIMEOUT_MS = 60_000


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
