"""Several ComfyUI servers as one pool: health, one job lane each, a retry elsewhere on failure.

Each server from Settings (name, URL, LoRA folder, enabled) gets a health check, the answer of
``GET /system_stats`` with a short timeout, kept for a few seconds: the scheduler asks
``is_healthy(name)`` whenever it places a job, and that must not wait on the network, so a stale
answer is renewed on a background thread while the last one is returned. A server that fails
mid-job (it went down, dropped the connection: a ``retryable`` :class:`ComfyError`) is marked down
at once and :meth:`ComfyPool.run_with_retry` runs the work again on another healthy server; the
next good health check brings it back into use. Qt-free; ``httpx`` is imported with the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from difflora_gui.errors import UserError
from difflora_gui.settings import ComfyServer

T = TypeVar("T")

UNKNOWN, UP, DOWN = "unknown", "up", "down"
#: how long a health answer is trusted before it is asked again
HEALTH_TTL_S = 5.0
#: a health check is a quick question: a server that takes longer counts as down
HEALTH_TIMEOUT_S = 3.0


@dataclass
class ServerHealth:
    """What the GUI shows for one server: up/down/unknown, why, and its devices."""

    name: str
    url: str
    state: str = UNKNOWN
    error: str = ""
    #: ``/system_stats`` devices: name, type, vram_total, vram_free ... (bytes)
    devices: list[dict[str, Any]] = field(default_factory=list)
    version: str = ""
    checked_at: float | None = None

    @property
    def healthy(self) -> bool:
        return self.state == UP

    def summary(self) -> str:
        if self.state == UP:
            parts = [f"ComfyUI {self.version}".strip()]
            for device in self.devices:
                total, free = device.get("vram_total"), device.get("vram_free")
                text = str(device.get("name") or device.get("type") or "device")
                if isinstance(total, int | float) and isinstance(free, int | float) and total:
                    text += f" {free / 2**30:.1f}/{total / 2**30:.1f} GiB free"
                parts.append(text)
            return ", ".join(parts)
        return self.error or self.state


def _server(entry: ComfyServer | Mapping[str, Any]) -> ComfyServer:
    if isinstance(entry, ComfyServer):
        return entry
    if isinstance(entry, Mapping):
        known = {"name", "url", "lora_dir", "enabled"}
        server = ComfyServer(**{k: v for k, v in entry.items() if k in known})
        if not server.name:
            from difflora_gui.settings import server_name_for

            server.name = server_name_for(server.url)
        return server
    raise UserError(f"a ComfyUI server must be a record (name, url, lora_dir, enabled), got {entry!r}")


class ComfyPool:
    """The enabled servers of ``servers`` (``ComfyServer`` records or their JSON mappings)."""

    def __init__(
        self,
        servers: Iterable[ComfyServer | Mapping[str, Any]],
        *,
        ttl_s: float = HEALTH_TTL_S,
        timeout_s: float = HEALTH_TIMEOUT_S,
        client_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._servers: dict[str, ComfyServer] = {}
        for entry in servers:
            server = _server(entry)
            if server.enabled and server.name not in self._servers:
                self._servers[server.name] = server
        self.ttl_s = float(ttl_s)
        self.timeout_s = float(timeout_s)
        self.client_timeout_s = float(client_timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._health = {n: ServerHealth(n, s.url) for n, s in self._servers.items()}
        self._checking: set[str] = set()
        self._listeners: list[Callable[[ServerHealth], None]] = []

    @classmethod
    def from_settings(cls, settings, **kwargs) -> ComfyPool:
        return cls(settings.enabled_comfyui_servers(), **kwargs)

    # --- the servers ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._servers)

    def server(self, name: str) -> ComfyServer:
        try:
            return self._servers[name]
        except KeyError:
            known = ", ".join(self._servers) or "none is enabled"
            raise UserError(
                f"no ComfyUI server named {name!r} in Settings ▸ ComfyUI servers ({known})"
            ) from None

    def find(self, name_or_url: str) -> ComfyServer | None:
        """The server of that name, or of that URL (the CLI's ``--server NAME|URL``)."""
        text = str(name_or_url).strip()
        if text in self._servers:
            return self._servers[text]
        for server in self._servers.values():
            if server.url.rstrip("/") == text.rstrip("/"):
                return server
        return None

    def client_for(self, name: str, *, timeout_s: float | None = None):
        from difflora_gui.comfy.client import ComfyClient

        return ComfyClient(self.server(name).url, timeout_s=timeout_s or self.client_timeout_s)

    # --- health --------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[ServerHealth], None]) -> None:
        """``listener(health)`` after every check (on the checking thread: a GUI must hop threads)."""
        self._listeners.append(listener)

    def health(self, name: str) -> ServerHealth:
        """The last answer, without asking the server."""
        self.server(name)
        with self._lock:
            return self._health[name]

    def check(self, name: str, *, force: bool = False) -> ServerHealth:
        """Ask the server now (unless the last answer is fresh and ``force`` is false)."""
        health = self.health(name)
        if not force and self._fresh(health):
            return health
        server = self.server(name)
        try:
            client = self.client_for(name, timeout_s=self.timeout_s)
        except UserError as error:  # a bad URL: down for good until Settings change
            return self._record(ServerHealth(name, server.url, DOWN, str(error), checked_at=self._clock()))
        try:
            stats = client.system_stats()
        except UserError as error:
            result = ServerHealth(name, server.url, DOWN, str(error), checked_at=self._clock())
        else:
            stats = stats if isinstance(stats, Mapping) else {}
            devices = [dict(d) for d in stats.get("devices") or [] if isinstance(d, Mapping)]
            system = stats.get("system") if isinstance(stats.get("system"), Mapping) else {}
            version = str(system.get("comfyui_version") or "")
            result = ServerHealth(name, server.url, UP, "", devices, version, self._clock())
        finally:
            client.close()
        return self._record(result)

    def check_all(self, *, force: bool = True) -> list[ServerHealth]:
        """Every server, asked in parallel (a dead one costs its timeout, not the sum)."""
        threads = [
            threading.Thread(target=self.check, args=(n,), kwargs={"force": force}) for n in self._servers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout_s + 5)
        return [self.health(n) for n in self._servers]

    def is_healthy(self, name: str) -> bool:
        """Quick (the scheduler's lane check): the last answer; a stale one is renewed in the
        background and the next call sees the new answer."""
        if name not in self._servers:
            return False
        health = self.health(name)
        if not self._fresh(health):
            self._check_in_background(name)
        return health.state == UP

    def healthy_names(self) -> list[str]:
        return [n for n in self._servers if self.is_healthy(n)]

    def mark_unhealthy(self, name: str, error: str) -> None:
        """A job saw the server fail: down now, until a health check finds it answering again
        (the answer is recorded as just made, so it is asked again after the usual interval)."""
        server = self.server(name)
        previous = self.health(name)
        self._record(
            ServerHealth(name, server.url, DOWN, error, previous.devices, previous.version, self._clock())
        )

    def _fresh(self, health: ServerHealth) -> bool:
        return health.checked_at is not None and self._clock() - health.checked_at < self.ttl_s

    def _record(self, health: ServerHealth) -> ServerHealth:
        with self._lock:
            self._health[health.name] = health
        for listener in list(self._listeners):
            listener(health)
        return health

    def _check_in_background(self, name: str) -> None:
        with self._lock:
            if name in self._checking:
                return
            self._checking.add(name)

        def work():
            try:
                self.check(name, force=True)
            finally:
                with self._lock:
                    self._checking.discard(name)

        threading.Thread(target=work, name=f"comfy-health-{name}", daemon=True).start()

    # --- jobs ----------------------------------------------------------------------------------

    def register(self, scheduler) -> None:
        """One ``comfy:<name>`` lane per enabled server, placed only while it is healthy.
        ``scheduler``: a :class:`~difflora_gui.jobs.scheduler.Scheduler` or anything with its
        ``register_comfy_servers`` (the job services)."""
        scheduler.register_comfy_servers(self.names(), healthy=self.is_healthy)
        for name in self.names():  # first answers now, so a first job need not wait a poll interval
            self._check_in_background(name)

    def order(self, preferred: str | None = None) -> list[str]:
        """The servers to try: ``preferred`` first, then the healthy ones, then the rest (a server
        never asked yet may well be up)."""
        names = self.names()
        ranked = sorted(names, key=lambda n: {UP: 0, UNKNOWN: 1, DOWN: 2}[self.health(n).state])
        if preferred in names:
            ranked.remove(preferred)
            ranked.insert(0, preferred)
        return ranked

    def run_with_retry(
        self,
        work: Callable[[str], T],
        *,
        preferred: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> T:
        """``work(server_name)`` on ``preferred`` (or the first healthy server); a retryable
        failure marks that server down and tries the next one that answers a health check. A
        failure that is not retryable (a refused workflow, a node's error, a cancel) is raised
        at once: it would fail anywhere."""
        from difflora_gui.comfy.protocol import ComfyError

        if not self._servers:
            raise UserError("no ComfyUI server is enabled (Settings ▸ ComfyUI servers)")
        failures: list[str] = []
        for index, name in enumerate(self.order(preferred)):
            if index > 0 and not self.check(name, force=True).healthy:
                failures.append(f"{name}: {self.health(name).error}")
                continue
            try:
                return work(name)
            except ComfyError as error:
                if not error.retryable:
                    raise
                self.mark_unhealthy(name, str(error))
                failures.append(f"{name}: {error}")
                if log is not None:
                    log(f"ComfyUI server {name} failed ({error}); trying another server")
        raise UserError("no ComfyUI server could run the job: " + "; ".join(failures))


_shared_lock = threading.Lock()
_shared: dict[tuple, ComfyPool] = {}


def shared_pool(servers: Iterable[ComfyServer | Mapping[str, Any]]) -> ComfyPool:
    """The process-wide pool of these servers: the GUI's lanes and the jobs see one health state
    (a server a job found dead is skipped by the scheduler too)."""
    records = [_server(s) for s in servers]
    key = tuple((s.name, s.url, s.lora_dir, s.enabled) for s in records)
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None:
            pool = _shared[key] = ComfyPool(records)
        return pool


def forget_shared_pools() -> None:
    """Drop every shared pool and its remembered health (new servers in a test, or a Settings
    reset): the next :func:`shared_pool` asks the servers afresh."""
    with _shared_lock:
        _shared.clear()
