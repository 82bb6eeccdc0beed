"""A client for one running ComfyUI server: queue a workflow, follow it, download what it saved.

HTTP goes through ``httpx`` and the message stream through ``websockets`` (both synchronous: a
job runs on its own thread). Every call has a timeout and every wait is bounded, so a server that
is down, slow or gone mid-run ends the job with a :class:`ComfyError` naming the server, never a
hang. The conversation follows ``shared/reference/comfyui-api.md``: the socket is opened before
the prompt is posted (the server sends a prompt's messages only to the socket of its
``client_id``), and the prompt id is ours, so messages cannot arrive before we know the id.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from difflora_gui.comfy.protocol import (
    ComfyError,
    ComfyInterrupted,
    ComfyOutputs,
    decode_binary,
    execution_failure,
    list_outputs,
    node_label,
    prompt_refusal,
)
from difflora_gui.comfy.validate import combo_choices
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.settings import url_problem

ProgressCallback = Callable[[float, float | None, str], None]
FrameCallback = Callable[..., None]

#: how long one wait on the socket lasts before the cancel flag and the deadlines are looked at
POLL_S = 0.25
#: reconnect attempts after a dropped socket, and the pause before each
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0)


@dataclass
class _Run:
    prompt_id: str
    workflow: Mapping[str, Any]
    started: bool = False
    done: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    frames: int = 0
    cancel_requested: bool = False
    #: the socket was replaced: ``executed`` messages may have been missed meanwhile
    reconnected: bool = False
    from_history: bool = False


class ComfyClient:
    """One server at ``base_url`` (``http://host:port``, optionally behind a path prefix)."""

    def __init__(self, base_url: str, *, client_id: str | None = None, timeout_s: float = 30.0):
        base_url = str(base_url).strip().rstrip("/")
        problem = url_problem(base_url)
        if problem:
            raise UserError(f"ComfyUI server address: {problem}")
        self.base_url = base_url
        parsed = urlparse(base_url)
        #: the address as messages show it: never a user name or password from the URL
        self.server = f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}{parsed.path}"
        self.client_id = client_id or f"difflora-{uuid.uuid4().hex[:12]}"
        self.timeout_s = float(timeout_s)
        # a ComfyUI server is local or on the LAN: a proxy from the environment would only break it
        self._http = httpx.Client(base_url=base_url, timeout=self.timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- HTTP --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, path, timeout=timeout or self.timeout_s, **kwargs)
        except httpx.TimeoutException as error:
            raise ComfyError(
                f"ComfyUI at {self.server} did not answer {method} {path} within {timeout or self.timeout_s:g} s",
                server=self.server,
                retryable=True,
            ) from error
        except httpx.TransportError as error:
            raise ComfyError(
                f"ComfyUI at {self.server} does not answer (is it running? Settings ▸ ComfyUI servers)",
                server=self.server,
                retryable=True,
            ) from error

    def _json(self, method: str, path: str, **kwargs) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ComfyError(
                f"ComfyUI at {self.server} answered {method} {path} with HTTP {response.status_code}",
                server=self.server,
                retryable=response.status_code >= 500,
            )
        return self._decode(response, f"{method} {path}")

    def _decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as error:
            raise ComfyError(
                f"ComfyUI at {self.server} answered {what} with something that is not JSON "
                "(is that address a ComfyUI server?)",
                server=self.server,
            ) from error

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/system_stats")

    def is_up(self, timeout_s: float = 3.0) -> bool:
        """A quick health check: the server answers ``/system_stats`` with JSON."""
        try:
            self._json("GET", "/system_stats", timeout=timeout_s)
        except ComfyError:
            return False
        return True

    def object_info(self, class_name: str | None = None) -> dict[str, Any]:
        """Node class → its inputs and outputs; with ``class_name`` only that node (``{}`` if the
        server has no such node, as the server answers)."""
        path = "/object_info" if class_name is None else f"/object_info/{quote(class_name, safe='')}"
        info = self._json("GET", path)
        if not isinstance(info, dict):
            raise ComfyError(f"ComfyUI at {self.server} sent a malformed {path}", server=self.server)
        return info

    def queue(self) -> dict[str, Any]:
        return self._json("GET", "/queue")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry, or ``None`` while it is queued or running (or was deleted)."""
        answer = self._json("GET", f"/history/{quote(prompt_id, safe='')}")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    def models(self, folder: str = "loras") -> list[str]:
        """The files the server lists in a model folder (it rescans on every call)."""
        response = self._request("GET", f"/models/{quote(folder, safe='')}")
        if response.status_code == 200:
            names = self._decode(response, f"GET /models/{folder}")
            if isinstance(names, list):
                return [str(n) for n in names]
        if folder != "loras":
            raise ComfyError(f"ComfyUI at {self.server} does not list a model folder {folder!r}")
        # older servers have no /models route: the LoRA loader's choices are the same list
        choices = combo_choices(self.object_info("LoraLoaderModelOnly"), "LoraLoaderModelOnly", "lora_name")
        return [str(c) for c in choices or []]

    def upload_image(
        self, path: str | Path, *, overwrite: bool = False, subfolder: str = "", type: str = "input"
    ) -> str:
        """Upload an image for ``LoadImage``; returns the name to use, which is the server's
        (other bytes under a taken name come back renamed ``name (1).png``), with its subfolder."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UserError(f"cannot read the image: {error.strerror}", path=path) from error
        fields = {"type": type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        answer = self._json("POST", "/upload/image", files={"image": (path.name, data)}, data=fields)
        if not isinstance(answer, dict) or not answer.get("name"):
            raise ComfyError(f"ComfyUI at {self.server} did not name the uploaded image", server=self.server)
        folder = str(answer.get("subfolder") or "")
        return f"{folder}/{answer['name']}" if folder else str(answer["name"])

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        response = self._request("GET", "/view", params=params)
        if response.status_code != 200:
            raise ComfyError(
                f"ComfyUI at {self.server} has no {type} file {filename!r} (HTTP {response.status_code})",
                server=self.server,
            )
        return response.content

    def free(self) -> None:
        """Drop the server's caches (a re-run then executes everything again)."""
        self._request("POST", "/free", json={"free_memory": True})

    def submit(self, workflow: Mapping[str, Any], prompt_id: str | None = None) -> str:
        """Queue ``workflow``; returns its prompt id. A partial refusal (HTTP 200 with
        ``node_errors``) is a failure too: it is taken off the queue, and the refusal raised."""
        prompt_id = prompt_id or str(uuid.uuid4())
        body = {"prompt": dict(workflow), "client_id": self.client_id, "prompt_id": prompt_id}
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            raise prompt_refusal(self._decode(response, "POST /prompt"), self.server)
        if response.status_code != 200:
            raise ComfyError(
                f"ComfyUI at {self.server} answered POST /prompt with HTTP {response.status_code}",
                server=self.server,
                retryable=response.status_code >= 500,
            )
        answer = self._decode(response, "POST /prompt")
        if not isinstance(answer, dict):
            raise ComfyError(f"ComfyUI at {self.server} sent a malformed /prompt answer", server=self.server)
        if answer.get("node_errors"):
            # the valid outputs were queued and would run: take them back before reporting
            self.cancel(str(answer.get("prompt_id") or prompt_id))
            raise prompt_refusal(answer, self.server)
        return str(answer.get("prompt_id") or prompt_id)

    def cancel(self, prompt_id: str) -> str:
        """Stop a prompt: deleted while pending, interrupted while running. Returns ``pending``,
        ``running`` or ``gone`` (neither: finished, or never queued here)."""
        where = self._where(prompt_id)
        if where == "pending":
            self._request("POST", "/queue", json={"delete": [prompt_id]})
            # it may have started between the look and the delete
            if self._where(prompt_id) != "running":
                return "pending"
            where = "running"
        if where == "running":
            self._request("POST", "/interrupt", json={"prompt_id": prompt_id})
        return where

    def _where(self, prompt_id: str) -> str:
        queue = self.queue()
        for state in ("running", "pending"):
            for entry in queue.get(f"queue_{state}") or []:
                if isinstance(entry, list | tuple) and len(entry) > 1 and entry[1] == prompt_id:
                    return state
        return "gone"

    # --- running a workflow --------------------------------------------------------------------

    def ws_url(self) -> str:
        parsed = urlparse(self.base_url)
        scheme = "wss" if parsed.scheme == "https" else "ws"
        return f"{scheme}://{parsed.netloc}{parsed.path}/ws?clientId={quote(self.client_id, safe='')}"

    def _connect(self, sockets: contextlib.ExitStack) -> ClientConnection:
        try:
            socket = sockets.enter_context(
                connect(
                    self.ws_url(),
                    open_timeout=self.timeout_s,
                    close_timeout=2,
                    proxy=None,
                    max_size=64 * 2**20,
                )
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            raise ComfyError(
                f"ComfyUI at {self.server} does not answer on its WebSocket (is it running? Settings ▸ ComfyUI servers)",
                server=self.server,
                retryable=True,
            ) from error
        # type-4 frames name their prompt, so a preview is never taken for another prompt's
        try:
            socket.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        except ConnectionClosed as error:
            raise ComfyError(
                f"ComfyUI at {self.server} closed its WebSocket at once", server=self.server, retryable=True
            ) from error
        return socket

    def run(
        self,
        workflow: Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        on_frame: FrameCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
        max_wait_s: float = 3600.0,
        stall_s: float = 20.0,
        cancel_wait_s: float = 30.0,
    ) -> ComfyOutputs:
        """Queue ``workflow``, follow it to its end and download its outputs.

        ``on_progress(done, total, text)`` and ``on_frame(index, rgb, **meta)`` take a job
        context's ``progress`` and ``frame``; ``cancelled()`` is asked between messages, and when
        it says yes the prompt is deleted or interrupted and :class:`JobCancelled` raised.
        ``stall_s``: after that long without a message the server is asked where the prompt is
        (a lost message cannot hang the run); ``max_wait_s`` bounds the whole run."""
        run = _Run(str(uuid.uuid4()), workflow)
        with contextlib.ExitStack() as sockets:
            socket = self._connect(sockets)
            self.submit(workflow, run.prompt_id)
            try:
                self._follow(
                    sockets, socket, run, on_progress, on_frame, cancelled, max_wait_s, stall_s, cancel_wait_s
                )
            except BaseException:
                # a callback that raised, an error of ours: the server must not go on rendering for no one
                if not run.done:
                    with contextlib.suppress(ComfyError):
                        self.cancel(run.prompt_id)
                raise
        if run.reconnected and not run.from_history:
            self._outputs_from_history(run)
        return self._download(run)

    def _follow(
        self, sockets, socket, run, on_progress, on_frame, cancelled, max_wait_s, stall_s, cancel_wait_s
    ):
        deadline = time.monotonic() + max_wait_s
        cancel_deadline = None
        last_message = time.monotonic()
        while not run.done:
            now = time.monotonic()
            if cancelled is not None and not run.cancel_requested and cancelled():
                run.cancel_requested = True
                try:
                    where = self.cancel(run.prompt_id)
                except ComfyError:
                    where = "gone"  # a server that cannot be told still must not keep the job alive
                if where != "running":
                    raise JobCancelled()
                cancel_deadline = now + cancel_wait_s
            if cancel_deadline is not None and now > cancel_deadline:
                raise JobCancelled()  # the interrupt acts at the next node; the job need not wait for it
            if now > deadline:
                with contextlib.suppress(ComfyError):
                    self.cancel(run.prompt_id)
                raise ComfyError(
                    f"ComfyUI at {self.server} did not finish the prompt within {max_wait_s:g} s",
                    server=self.server,
                    retryable=True,
                )
            try:
                message = socket.recv(timeout=POLL_S)
            except TimeoutError:
                if time.monotonic() - last_message > stall_s:
                    # a socket can fall silent without closing (another one took our client id)
                    if self._look_up(run) == "running":
                        socket = self._reconnect(sockets, run, delays=(0,))
                    last_message = time.monotonic()
                continue
            except ConnectionClosed:
                socket = self._reconnect(sockets, run)
                last_message = time.monotonic()
                continue
            last_message = time.monotonic()
            self._handle(message, run, on_progress, on_frame)
        if run.cancel_requested:
            raise JobCancelled()

    def _reconnect(
        self, sockets: contextlib.ExitStack, run: _Run, delays=RECONNECT_DELAYS_S
    ) -> ClientConnection:
        """A new socket under the same client id (the server then resends the running node);
        what was missed meanwhile comes from ``/history``."""
        for delay in delays:
            time.sleep(delay)
            try:
                socket = self._connect(sockets)
            except ComfyError:
                continue
            run.reconnected = True
            self._look_up(run)
            return socket
        raise ComfyError(
            f"ComfyUI at {self.server} dropped the connection during the run and does not take it back",
            server=self.server,
            retryable=True,
        )

    def _look_up(self, run: _Run) -> str:
        """Ask the server where the prompt is: finished (read its history: ``done``), ``pending``
        or ``running`` (keep waiting), or nowhere (deleted by someone else: an error)."""
        entry = self.history(run.prompt_id)
        if entry is not None:
            self._finish_from_history(run, entry)
            return "done"
        where = self._where(run.prompt_id)
        if where != "gone":
            return where
        entry = self.history(run.prompt_id)
        if entry is not None:  # it ended between the two looks
            self._finish_from_history(run, entry)
            return "done"
        if run.cancel_requested:
            run.done = True
            return "done"
        raise ComfyInterrupted(
            f"ComfyUI at {self.server}: the prompt is no longer queued and has no result "
            "(deleted from the queue by another client?)",
            server=self.server,
            retryable=True,
        )

    def _finish_from_history(self, run: _Run, entry: Mapping[str, Any]) -> None:
        status = entry.get("status") or {}
        for event, data in status.get("messages") or []:
            if event == "execution_cached" and isinstance(data, Mapping):
                run.cached = [str(n) for n in data.get("nodes") or []]
            self._on_end_message(event, data if isinstance(data, Mapping) else {}, run)
        if run.done:  # interrupted on our own request
            return
        if status.get("status_str") not in (None, "success"):
            raise ComfyError(f"ComfyUI at {self.server}: the prompt ended with an error", server=self.server)
        run.outputs = dict(entry.get("outputs") or {})
        run.done = run.from_history = True

    def _outputs_from_history(self, run: _Run, wait_s: float = 5.0) -> None:
        # execution_success comes just before the server writes the history entry
        end = time.monotonic() + wait_s
        while True:
            entry = self.history(run.prompt_id)
            if entry is not None:
                run.outputs.update(entry.get("outputs") or {})
                return
            if time.monotonic() > end:
                return
            time.sleep(POLL_S)

    def _on_end_message(self, event: str, data: Mapping[str, Any], run: _Run) -> None:
        if event == "execution_error":
            raise execution_failure(data, self.server)
        if event == "execution_interrupted":
            if run.cancel_requested:
                run.done = True
                return
            raise ComfyInterrupted(
                f"ComfyUI at {self.server}: the prompt was interrupted at "
                f"{node_label(data.get('node_id'), data.get('node_type'))} (by another client or the server's own UI)",
                server=self.server,
                retryable=True,
            )

    def _handle(self, message, run: _Run, on_progress, on_frame) -> None:
        if isinstance(message, bytes):
            frame = decode_binary(message)
            # type-1 frames name no prompt; the server sends them only to the running prompt's client
            ours = frame is not None and (
                frame.prompt_id == run.prompt_id or (frame.prompt_id is None and run.started)
            )
            if ours and on_frame is not None:
                on_frame(run.frames, frame.image, node=frame.node_id, format=frame.image_format)
                run.frames += 1
            return
        try:
            parsed = json.loads(message)
        except ValueError:
            return
        kind = parsed.get("type") if isinstance(parsed, dict) else None
        data = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(data, dict) or data.get("prompt_id") != run.prompt_id:
            return
        if kind == "execution_start":
            run.started = True
        elif kind == "execution_cached":
            run.cached = [str(n) for n in data.get("nodes") or []]
        elif kind == "executing":
            if data.get("node") is None:
                run.done = True
            elif on_progress is not None:
                on_progress(0, None, self._node_text(run, data.get("node")))
        elif kind == "progress" and on_progress is not None:
            value, total = data.get("value", 0), data.get("max")
            on_progress(value, total, f"{self._node_text(run, data.get('node'))}: step {value}/{total}")
        elif kind == "executed":
            run.outputs[str(data.get("node"))] = data.get("output") or {}
        elif kind == "execution_success":
            run.done = True
        else:
            self._on_end_message(str(kind), data, run)

    @staticmethod
    def _node_text(run: _Run, node_id: Any) -> str:
        node = run.workflow.get(str(node_id)) if node_id is not None else None
        return node_label(node_id, node.get("class_type") if isinstance(node, Mapping) else None)

    def _download(self, run: _Run) -> ComfyOutputs:
        files = []
        for item in list_outputs(run.outputs):
            item.relative_path  # noqa: B018 - refuses a name that would leave the output folder
            files.append(replace(item, data=self.view(item.filename, item.subfolder, item.type)))
        return ComfyOutputs(run.prompt_id, files, run.cached)
