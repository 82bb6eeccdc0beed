"""The Preview panel's jobs: render requests per view (newest first), the A/B render, Export.

A mixin of :class:`~difflora_gui.qt.preview.panel.PreviewPanel`. A render is a job of the chosen
backend (``PreviewBackendSpec.run``) with a :class:`~difflora_gui.preview.backend.PreviewJob` as
its params, on the device lane. Each *view* (the player's ``main`` view, the A/B view's ``zero``
view) keeps its own queue: submitting a request cancels the view's requests still waiting (they
are dequeued and never run); one already running finishes (the backend caches its result) but is
not shown, as a newer one was asked for. Results of this session are remembered by request, so
going back to a setting shown before (a slider moved back) shows it at once, without a job; the
backend's render cache replays older ones from the workspace.

Export bakes the selected entry (strength, block weights, layer filter) into a new LoRA file
through :func:`difflora_gui.preview.bake.run_bake` on the light lane.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent

from difflora_gui.errors import UserError
from difflora_gui.jobs.context import format_duration
from difflora_gui.jobs.events import Frame, Status
from difflora_gui.jobs.job import JobRequest
from difflora_gui.preview.backend import PreviewJob, PreviewResult, preview_backends
from difflora_gui.preview.request import PreviewRequest
from difflora_gui.qt.jobs import QUEUED
from difflora_gui.qt.preview.ab_view import ZERO_CHOICE, strengths_text
from difflora_gui.qt.preview.backend_options import gate_render, render_lane, request_problem
from difflora_gui.qt.preview.lora_stack import items_from_json
from difflora_gui.qt.preview.render_form import RENDER_KEYS
from difflora_gui.specs import resolve_callable

SECTION = "preview"
MAIN, ZERO = "main", "zero"
#: renders of this session remembered for the history and replay (the backend's cache keeps more)
HISTORY = 12
#: renders from the project's render cache offered as A/B references (earlier sessions, grid cells)
CACHED_REFERENCES = 20
#: results of this session remembered for an instant replay
KEEP_RESULTS = 256


@dataclass
class ViewQueue:
    """One view's jobs: those still queued or running (oldest first) and the newest one's id."""

    handles: list = field(default_factory=list)
    latest: int | None = None
    #: the request whose result the view shows
    shown: PreviewRequest | None = None

    def running(self) -> bool:
        return any(not h.is_finished for h in self.handles)


def backend_options(spec, settings) -> dict[str, Any]:
    """The backend's options: its declared defaults, then the app's Settings."""
    values = dict(spec.params.defaults()) if spec.params is not None else {}
    if spec.settings_defaults is not None:
        values.update(resolve_callable(spec.settings_defaults)(settings) or {})
    return values


def zero_request(request: PreviewRequest, index: int) -> PreviewRequest:
    """``request`` with entry ``index`` at strength 0 on every expert (the A/B reference)."""
    loras = list(request.loras)
    if 0 <= index < len(loras):
        loras[index] = dataclasses.replace(loras[index], strength=0.0, strength_high=None, strength_low=None)
    return request.replace(loras=tuple(loras))


def _file_stamp(path: str) -> list:
    try:
        stat = Path(path).stat()
    except OSError:
        return [path, None]
    return [path, stat.st_size, stat.st_mtime_ns]


def signature(request: PreviewRequest, options: Mapping[str, Any], backend: str) -> str:
    """What makes a result reusable within the session: the request, the backend and its options,
    each LoRA file's size and time (a file replaced is a new request)."""
    data = {
        "backend": backend,
        "request": request.to_json(),
        "options": dict(options),
        "files": [_file_stamp(entry.file) for entry in request.loras],
    }
    return json.dumps(data, sort_keys=True, default=str)


def as_result(result: Any) -> PreviewResult:
    """A backend's return value as a :class:`PreviewResult` (a backend may return its JSON)."""
    if isinstance(result, PreviewResult):
        return result
    if isinstance(result, Mapping):
        names = {f.name for f in dataclasses.fields(PreviewResult)}
        values = {k: v for k, v in result.items() if k in names}
        if isinstance(values.get("request"), Mapping):
            values["request"] = PreviewRequest.from_json(values["request"])
        return PreviewResult(**values)
    raise UserError(f"the preview backend returned {type(result).__name__}, not a PreviewResult")


class PanelJobs:
    """Render, A/B and export jobs (mixed into the panel)."""

    def _init_jobs(self) -> None:
        self.backends = preview_backends(self.services.host)
        self.views = {MAIN: ViewQueue(), ZERO: ViewQueue()}
        #: signature -> PreviewResult of this session's renders
        self.results: dict[str, PreviewResult] = {}
        #: this session's renders, newest first (the A/B view's history)
        self.history: list[PreviewResult] = []
        #: the project's cached renders in the A/B view's list (read while the A/B tab is on show)
        self.cached_refs: list[PreviewResult] = []
        #: how many render jobs this panel submitted (tests)
        self.submitted = 0
        self.export_job = None
        self._workspace = self.services.project.workspace_root
        self._facts_cache: tuple[str, Any] | None = None
        #: job id -> (signature, request) of each render asked for
        self._asked: dict[int, tuple[str, PreviewRequest]] = {}
        self._connections: list = []
        connections = self._connections
        self.destroyed.connect(lambda *_: disconnect_all(connections))

    # --- backend, model and request ----------------------------------------------------------

    def backend_spec(self):
        return self.backends.get(self.render_form.backend_name())

    def backend_options(self) -> dict[str, Any]:
        spec = self.backend_spec()
        if spec is None:
            return {}
        options = self.render_form.options_box.options_for(
            spec.name, backend_options(spec, self.services.settings)
        )
        device = self._device()
        if "device" in options and device not in ("", "auto"):
            options["device"] = device
        return options

    def _device(self) -> str:
        """The Settings device, resolved once the window knows its devices; until then "auto"
        (the job waits for detection rather than landing on the CPU of a GPU machine)."""
        wanted = self.services.default_device()
        registry = getattr(self.services, "devices", None)
        resolved = registry.resolve(wanted) if registry is not None else None
        return resolved or wanted

    def model_facts(self):
        """The chosen backend's model (``ModelFacts``), or ``UserError`` saying what to set."""
        spec = self.backend_spec()
        if spec is None:
            raise UserError("no preview backend is installed; see Tools ▸ Plugins")
        if spec.model_facts is None:
            raise UserError(f"the {spec.title} backend cannot say which model it renders with")
        options = self.backend_options()
        key = json.dumps([spec.name, options], sort_keys=True, default=str)
        if self._facts_cache is not None and self._facts_cache[0] == key:
            facts = self._facts_cache[1]
        else:
            try:
                facts = resolve_callable(spec.model_facts)(options)
            except UserError as exc:
                facts = exc
            self._facts_cache = (key, facts)
        if isinstance(facts, UserError):
            raise facts
        return facts

    def current_request(self) -> PreviewRequest:
        """The request the inputs make now (the switched-on stack entries, in order)."""
        fields = self.render_form.request_fields()
        return self.refuse_problems(PreviewRequest(**fields, loras=tuple(self.stack.entries())))

    def refuse_problems(self, request: PreviewRequest) -> PreviewRequest:
        """``request``, or ``UserError`` saying why the backend cannot render it (Render is off till then)."""
        problem = request_problem(self.backend_spec(), self.backend_options(), request)
        gate_render(self.render_button, problem, f"Render the clip with these settings ({RENDER_KEYS})")
        if problem:
            raise UserError(problem)
        return request

    def selected_request_index(self) -> int:
        """The selected stack entry's index in :meth:`current_request`'s stack (-1: not in it)."""
        items = self.stack.items()
        index = self.stack.selected_index()
        if not 0 <= index < len(items) or not items[index].enabled:
            return -1
        return sum(1 for item in items[:index] if item.enabled)

    # --- rendering ---------------------------------------------------------------------------

    def render(self, view: str = MAIN, request: PreviewRequest | None = None):
        """Ask for a render of ``request`` (the inputs shown, by default) in ``view``: the handle,
        or None when it was shown at once (rendered before) or refused (the reason shown)."""
        try:
            spec = self.backend_spec()
            if spec is None:
                raise UserError("no preview backend is installed; see Tools ▸ Plugins")
            self.model_facts()
            request = self.refuse_problems(request) if request is not None else self.current_request()
        except UserError as exc:
            self.set_status(f"Cannot render: {exc}", "error")
            return None
        options = self.backend_options()
        queue = self.views[view]
        for handle in list(queue.handles):
            if handle.state == QUEUED:
                handle.cancel()  # a newer request replaces it before it starts
        key = signature(request, options, spec.name)
        known = self.results.get(key)
        if known is not None and Path(known.video).is_file():
            queue.latest = None
            self._show_result(view, known, replayed=True)
            return None
        from difflora_gui.preview.render_cache import cache_dir_for

        job = PreviewJob(
            request,
            options,
            cache_dir=str(cache_dir_for(self.services.project)),
            cache_mb=int(self.services.settings.preview_cache_mb),
        )
        title = "Preview" if view == MAIN else "Preview at strength 0 (A/B)"
        handle = self.services.submit(
            JobRequest(
                title, spec.run, params=job.to_json(), lane=render_lane(spec, options), device=self._device()
            )
        )
        self.submitted += 1
        self._asked[handle.id] = (key, request)
        queue.handles.append(handle)
        queue.latest = handle.id
        project = self.services.project
        self._connections += [
            handle.progressed.connect(lambda p, v=view, h=handle: self._on_progress(v, h, p)),
            handle.event_emitted.connect(lambda e, v=view, h=handle: self._on_event(v, h, e)),
            handle.succeeded.connect(lambda r, v=view, h=handle, p=project: self._on_rendered(v, h, p, r)),
            handle.failed.connect(lambda m, _t, v=view, h=handle: self._on_failed(v, h, m)),
            handle.finished.connect(lambda _s, v=view, h=handle: self._on_finished(v, h)),
        ]
        self.show_rendering(view, True)
        return handle

    def show_rendering(self, view: str, running: bool) -> None:
        busy = any(queue.running() for queue in self.views.values())
        self.cancel_button.setEnabled(busy)
        if view == MAIN and running:
            self.show_progress(0.0, "queued")
        elif not busy and self.progress.format() != "done":
            self.show_progress(None, "idle")

    def show_progress(self, fraction: float | None, text: str) -> None:
        self.progress.setValue(int(round((fraction or 0.0) * 1000)))
        self.progress.setFormat(text)

    def show_latent(self, event) -> None:
        image = getattr(event, "image", None)
        if image is not None and getattr(image, "ndim", 0) == 3:
            step = (event.meta or {}).get("step", event.index)
            self.player.set_frames(image[None], 1, f"denoising, step {step}")

    def cancel_render(self) -> None:
        for queue in self.views.values():
            for handle in list(queue.handles):
                handle.cancel()

    def _is_latest(self, view: str, handle) -> bool:
        return self.views[view].latest == handle.id

    def _on_progress(self, view: str, handle, progress) -> None:
        if view != MAIN or not self._is_latest(view, handle):
            return
        eta = f" · ETA {format_duration(progress.eta_s)}" if progress.eta_s is not None else ""
        text = (progress.text or "rendering") + eta
        self.show_progress(progress.fraction, text)

    def _on_event(self, view: str, handle, event) -> None:
        if view != MAIN or not self._is_latest(view, handle):
            return
        if isinstance(event, Frame):
            self.show_latent(event)
        elif isinstance(event, Status):  # loading the model, writing the video: no step to count
            self.show_progress(self.progress.value() / 1000, event.text)

    def _on_rendered(self, view: str, handle, project, result) -> None:
        key, request = self._asked.get(handle.id, (None, None))
        if project is not self.services.project or request is None:
            return
        try:
            # the request as asked for (the backend's copy has the files' hashes filled in)
            result = dataclasses.replace(as_result(result), request=request)
        except (UserError, TypeError) as exc:
            self.set_status(f"Render failed: {exc}", "error")
            return
        self.results[key] = result
        while len(self.results) > KEEP_RESULTS:
            self.results.pop(next(iter(self.results)))  # the oldest first (dicts keep their order)
        self.history = [result] + [r for r in self.history if r.key != result.key][: HISTORY - 1]
        if self._is_latest(view, handle):
            self._show_result(view, result, replayed=False)

    def _on_failed(self, view: str, handle, message: str) -> None:
        if self._is_latest(view, handle):
            self.set_status(f"Render failed: {message}", "error")

    def _on_finished(self, view: str, handle) -> None:
        queue = self.views[view]
        self._asked.pop(handle.id, None)
        if handle in queue.handles:
            queue.handles.remove(handle)
        if handle.state == "cancelled" and self._is_latest(view, handle):
            queue.latest = None
            self.set_status("Render cancelled", "warning")
        if not queue.running():
            self.show_rendering(view, False)

    # --- A/B ---------------------------------------------------------------------------------

    def refresh_references(self) -> None:
        """The A/B view's reference list: this session's renders, then the project's cached ones
        (read only while the A/B tab is on show: a large cache is many small files)."""
        from difflora_gui.preview.render_cache import cache_dir_for, cached_results

        cached = []
        if self.tabs.currentWidget() is self.ab_view:
            try:
                cached = cached_results(
                    cache_dir_for(self.services.project),
                    limit=CACHED_REFERENCES,
                    skip={result.key for result in self.history},
                )
            except OSError:  # the workspace's drive went away: this session's renders still show
                cached = []
        self.cached_refs = cached
        self.ab_view.set_history(self.history, cached)

    def _refresh_ab(self) -> None:
        """The A/B view on show: the reference (left) beside the render on show (right)."""
        main = self._shown.get(MAIN)
        if self.tabs.currentWidget() is not self.ab_view or main is None:
            return
        choice = self.ab_view.choice()
        if choice == ZERO_CHOICE:
            index = self.selected_request_index()
            wanted = zero_request(main.request, index if 0 <= index < len(main.request.loras) else 0)
            reference = self._shown.get(ZERO)
            if reference is None or reference.request != wanted:
                if self._zero_asked != wanted:  # asked once per render on show (no retry loop on failure)
                    self._zero_asked = wanted
                    self.ab_view.waiting("Rendering the same request at strength 0…")
                    self.render(ZERO, wanted)
                return
            label = "strength 0"
        else:
            reference = next((r for r in self.history + self.cached_refs if r.key == choice), None)
            if reference is None:
                return
            label = f"strength {strengths_text(reference.request)}"
        self.ab_view.show_pair(reference, main, label)

    def _on_dirty_changed(self, dirty: bool) -> None:
        """Saved: Save As may have moved the workspace (the render cache, LoRA files in it) beside
        the new file, and the project followed with its paths; the stack and the renders follow."""
        if dirty:
            return
        self.follow_workspace()
        stored, _ = items_from_json(self.services.project.section(SECTION).get("stack"))
        shown = self.stack.items()
        if len(stored) == len(shown) and [i.entry.file for i in stored] != [i.entry.file for i in shown]:
            self._restoring = True
            try:
                self.stack.set_items(stored, selected=self.stack.selected_index())
            finally:
                self._restoring = False
            self._snapshot = self.state()
            self.undo_stack.clear()  # its steps name the files where they were before the move

    def follow_workspace(self) -> None:
        """The project's workspace moved (Save As): this session's renders are in its new place."""
        from difflora_gui.project.paths import rebase

        old, new = self._workspace, self.services.project.workspace_root
        self._workspace = new
        if old == new:
            return

        def request_moved(request):
            loras = tuple(dataclasses.replace(e, file=rebase(e.file, old, new)) for e in request.loras)
            return request.replace(loras=loras)

        def moved(result):
            video, first = rebase(result.video, old, new), rebase(result.first_frame, old, new)
            return dataclasses.replace(
                result, video=video, first_frame=first, request=request_moved(result.request)
            )

        self.results = {}  # keyed by the files' old paths: replays go through the moved render cache
        self.history = [moved(r) for r in self.history]
        self._shown = {view: moved(r) for view, r in self._shown.items()}
        for queue in self.views.values():
            queue.shown = request_moved(queue.shown) if queue.shown is not None else None

    # --- teardown ----------------------------------------------------------------------------

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.DeferredDelete:
            self.release()
        return super().event(event)

    def release(self) -> None:
        """Let go of the jobs' handles (they outlive the panel) and stop the player."""
        self._auto_render.cancel()
        disconnect_all(self._connections)
        self.player.pause()


def disconnect_all(connections: list) -> None:
    from PySide6.QtCore import QObject

    for connection in connections:
        try:
            QObject.disconnect(connection)
        except (RuntimeError, TypeError):  # the handle is gone already
            pass
    connections.clear()
