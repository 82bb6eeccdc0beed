"""ComfyUI server health in the GUI: a line per server and a status-bar count, never waiting.

The health answers live in :mod:`difflora_gui.comfy.pool` (``shared_pool``: the scheduler's lanes
and the GUI see the same answers). Asking a server is a network call with a timeout of seconds, so
the GUI never asks itself: a check runs on a worker thread and a :class:`QTimer` reads the pool's
last answers (a dictionary read under a lock) and tells the widgets when a line changed. The LoRA
folder is a path that may be a network share, so it is looked at on the worker thread too.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel

from difflora_gui.comfy.pool import DOWN, UP, ComfyPool, ServerHealth, shared_pool
from difflora_gui.settings import ComfyServer, url_problem

CHECKING = "checking"
DISABLED = "disabled"
#: how often the GUI looks at the pool's answers (cheap: no network)
POLL_MS = 400


def health_line(health: ServerHealth | None, *, checking: bool = False) -> str:
    """``up · ComfyUI 0.8.0 · cuda:0 RTX 4090 18.2/24.0 GiB free``, ``down: <why> — …`` or
    ``checking…``."""
    if checking or health is None or health.state not in (UP, DOWN):
        return "checking…"
    if health.state == DOWN:
        error = health.error or "no answer"
        # the client's "does not answer" already asks whether it runs; other errors do not
        hint = "" if "is it running" in error else " — is it running? check the URL"
        return f"down: {error}{hint}"
    parts = ["up", f"ComfyUI {health.version}" if health.version else "ComfyUI"]
    for device in health.devices:
        text = str(device.get("name") or device.get("type") or "device")
        total, free = device.get("vram_total"), device.get("vram_free")
        if isinstance(total, int | float) and isinstance(free, int | float) and total:
            text += f" {free / 2**30:.1f}/{total / 2**30:.1f} GiB free"
        parts.append(text)
    return " · ".join(parts)


def lora_dir_problem(folder: str) -> str:
    """What is wrong with a server's shared LoRA folder, as the user can fix it ("" if fine).
    It touches the disk (maybe a network share): call it off the UI thread."""
    if not folder.strip():
        return "no shared LoRA folder: set one (LoRA folder…) so previews can hand LoRA files to the server"
    path = Path(folder).expanduser()
    if not path.exists():
        return f"LoRA folder not found: {path} — mount the share or choose the folder again (LoRA folder…)"
    if not path.is_dir():
        return f"LoRA folder is a file, not a folder: {path} — choose the folder (LoRA folder…)"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"LoRA folder is not writable: {path} — give this user write access, or choose another"
    return ""


class HealthWatcher(QObject):
    """The health of some servers for the GUI; ``changed`` when any line changed (GUI thread).

    Enabled servers are read from the pool the job lanes use; disabled ones get a pool of their
    own, so a server can be checked before it is switched on.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None, *, poll_ms: int = POLL_MS):
        super().__init__(parent)
        self._servers: list[ComfyServer] = []
        self._pools: dict[str, ComfyPool] = {}
        #: (server name, folder) → its problem: an edited folder is looked at afresh
        self._lora: dict[tuple[str, str], str] = {}
        self._folder_checks: set[tuple[str, str]] = set()
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._shown: dict[str, tuple] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)
        self._timer.start()

    # --- the servers -------------------------------------------------------------------------

    def set_servers(self, servers: list[ComfyServer]) -> None:
        """Watch these servers (the Settings rows); their folders are looked at again."""
        self._servers = [s for s in servers if s.name]
        usable = [s for s in self._servers if not url_problem(s.url)]
        enabled = [s for s in usable if s.enabled]
        disabled = [dataclasses.replace(s, enabled=True) for s in usable if not s.enabled]
        self._pools = {}
        for group in (enabled, disabled):
            if group:
                pool = shared_pool(group)
                for name in pool.names():
                    self._pools.setdefault(name, pool)
        with self._lock:
            current = {(s.name, s.lora_dir) for s in self._servers}
            self._lora = {k: v for k, v in self._lora.items() if k in current}
        for server in self._servers:
            self._start(server, force=False)
            self._look_at_folder(server)
        self.poll()

    def servers(self) -> list[ComfyServer]:
        return list(self._servers)

    @Slot()
    def check_now(self) -> None:
        """Ask every server again, and look at its LoRA folder (on worker threads)."""
        for server in self._servers:
            self._start(server, force=True)
            self._look_at_folder(server)
        self.poll()

    def _start(self, server: ComfyServer, *, force: bool) -> None:
        with self._lock:
            worker = self._workers.get(server.name)
            if worker is not None and worker.is_alive():
                return
        pool = self._pools.get(server.name)

        def work():
            if pool is not None:
                try:
                    pool.check(server.name, force=force)
                except Exception:  # noqa: BLE001 - a check must never kill its thread loudly
                    pool.mark_unhealthy(server.name, "the health check failed unexpectedly")

        thread = threading.Thread(target=work, name=f"comfy-health-gui-{server.name}", daemon=True)
        with self._lock:
            self._workers[server.name] = thread
        thread.start()

    def _look_at_folder(self, server: ComfyServer) -> None:
        key = (server.name, server.lora_dir)
        with self._lock:
            if key in self._folder_checks:
                return  # a share that hangs is asked once at a time
            self._folder_checks.add(key)

        def work():
            try:
                problem = lora_dir_problem(server.lora_dir)
            except OSError as error:
                problem = f"LoRA folder cannot be read: {server.lora_dir} ({error})"
            with self._lock:
                self._lora[key] = problem
                self._folder_checks.discard(key)

        threading.Thread(target=work, name=f"comfy-folder-{server.name}", daemon=True).start()

    # --- the answers -------------------------------------------------------------------------

    def state(self, name: str) -> str:
        """``up``, ``down``, ``checking`` or ``disabled`` (a bad URL is ``down``)."""
        server = self._server(name)
        if server is None:
            return DOWN
        if url_problem(server.url):
            return DOWN
        with self._lock:
            worker = self._workers.get(name)
        if worker is not None and worker.is_alive():
            return CHECKING
        pool = self._pools.get(name)
        if pool is None:
            return CHECKING
        pool.is_healthy(name)  # a stale answer is renewed in the background
        state = pool.health(name).state
        if state not in (UP, DOWN):
            return CHECKING
        return state if server.enabled else (DISABLED if state == UP else DOWN)

    def line(self, name: str) -> str:
        """The health line of the server ``name``, with its LoRA folder's problem, if any."""
        server = self._server(name)
        if server is None:
            return ""
        problem = url_problem(server.url)
        if problem:
            text = f"down: {problem}"
        else:
            pool = self._pools.get(name)
            state = self.state(name)
            text = health_line(pool.health(name) if pool else None, checking=state == CHECKING)
            if not server.enabled and state != CHECKING:
                text += " (disabled: gets no jobs)"
        with self._lock:
            lora = self._lora.get((name, server.lora_dir))
        if lora:
            text += f"\n    {lora}"
        return text

    def lora_problem(self, name: str) -> str | None:
        """The LoRA folder's problem ("" if fine), or None until it was looked at."""
        server = self._server(name)
        with self._lock:
            return self._lora.get((name, server.lora_dir)) if server is not None else None

    def counts(self) -> tuple[int, int]:
        """(servers up, servers enabled)."""
        enabled = [s.name for s in self._servers if s.enabled]
        return sum(self.state(n) == UP for n in enabled), len(enabled)

    @Slot()
    def poll(self) -> None:
        shown = {s.name: (self.state(s.name), self.line(s.name)) for s in self._servers}
        if shown != self._shown:
            self._shown = shown
            self.changed.emit()

    def _server(self, name: str) -> ComfyServer | None:
        return next((s for s in self._servers if s.name == name), None)


class ComfyStatusLabel(QLabel):
    """The status bar's ``ComfyUI: 1 of 2 up`` (hidden while no server is enabled); the tooltip
    has each server's line. It follows ``services.settings_changed``."""

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self.setObjectName("comfyStatus")
        self.watcher = HealthWatcher(self, poll_ms=2000)
        self.watcher.changed.connect(self._show)
        services.settings_changed.connect(self._on_settings)
        self._on_settings(services.settings)

    @Slot(object)
    def _on_settings(self, settings) -> None:
        self.watcher.set_servers(settings.enabled_comfyui_servers())
        self._show()

    @Slot()
    def _show(self) -> None:
        up, total = self.watcher.counts()
        self.setVisible(total > 0)
        self.setText(f"ComfyUI: {up} of {total} up")
        lines = [f"{s.name}: {self.watcher.line(s.name)}" for s in self.watcher.servers()]
        self.setToolTip("\n".join(lines) + "\n(Settings ▸ ComfyUI servers ▸ Check now)")
