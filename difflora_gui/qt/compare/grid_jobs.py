"""The Compare panel's jobs: the grid (its cells on every lane the backend offers) and Export.

A mixin of :class:`~difflora_gui.qt.compare.panel.ComparePanel`. Render grid submits one light
job, :func:`run_grid_params`, the grid's coordinator (:func:`difflora_gui.compare.grid_job.run_grid`
with the window's scheduler): it replays the cells the render cache has and queues each missing
one on the backend's lanes (every GPU with ``device:cuda:*``, every healthy ComfyUI server), so the
window never waits on a render. Its progress reads "cell k of N" with the ETA; Cancel stops the
queued and running cells, and the finished ones stay cached (the next Render grid replays them).

Export writes the grid on show through :func:`run_export_params` on the light lane
(:func:`~difflora_gui.compare.export.export_grid` and the JSON sidecar), never on the UI thread.
The backend, its options, the device and the model's facts are the Preview panel's
(:class:`~difflora_gui.qt.preview.panel_jobs.PanelJobs`), read from the same render form.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.compare.grid_types import ExportOptions, GridJob, GridResult
from difflora_gui.errors import UserError
from difflora_gui.jobs.context import format_duration
from difflora_gui.jobs.events import Status
from difflora_gui.jobs.job import JobRequest
from difflora_gui.qt.preview.panel_jobs import PanelJobs, disconnect_all

EXPORT_TASK = "difflora_gui.qt.compare.grid_jobs:run_export_params"


def run_grid_params(params: Mapping[str, Any], ctx, *, scheduler=None) -> dict:
    """``run(params, ctx)`` of the grid job: every cell of ``GridJob`` ``params`` on ``scheduler``."""
    from difflora_gui.compare.grid_job import run_grid

    return run_grid(GridJob.from_json(params), ctx, scheduler=scheduler).to_json()


def run_export_params(params: Mapping[str, Any], ctx) -> dict:
    """``run(params, ctx)`` of an export: the grid ``result`` of ``job`` into ``out`` with the
    export options, then (``options.sidecar``) ``NAME.json`` beside it. Refuses existing files
    unless ``overwrite``."""
    from difflora_gui.compare.export import export_grid
    from difflora_gui.compare.sidecar import sidecar_path_for, write_sidecar
    from difflora_gui.fileio import check_output_path

    out = Path(params["out"])
    options = ExportOptions.from_json(params["options"])
    overwrite = bool(params.get("overwrite"))
    result = GridResult.from_json(params["result"])
    job = dataclasses.replace(
        GridJob.from_json(params["job"]), out=str(out), overwrite=overwrite, export=options
    )
    sidecar = sidecar_path_for(out) if options.sidecar else None
    if sidecar is not None:  # checked before the video is written: a refusal writes nothing
        check_output_path(sidecar, overwrite=overwrite)
    exported = export_grid(result, job.spec, out, options, overwrite=overwrite, ctx=ctx)
    written = ""
    if sidecar is not None:
        ctx.status("writing the sidecar")
        written = str(write_sidecar(sidecar, job, result, overwrite=overwrite))
    ctx.artifact("video", exported.out, grid=True, sheet=exported.sheet, sidecar=written)
    return {
        "out": exported.out,
        "sheet": exported.sheet,
        "sidecar": written,
        "frames": exported.frames,
        "width": exported.width,
        "height": exported.height,
    }


def grid_lane(spec, wanted_device: str, device_ids: list[str]) -> tuple[str, str]:
    """``(lane, device)`` of the grid's cells: with the device left to the app ("auto") and GPUs
    found, every GPU (``device:cuda:*``); otherwise the backend's own lanes (the chosen device; a
    ComfyUI backend picks any healthy server, or the one its options name)."""
    if spec.lane == "device" and wanted_device in ("", "auto"):
        gpus = [d for d in device_ids if d.startswith("cuda:")]
        if gpus:
            return "device:cuda:*", gpus[0]
    return "", wanted_device


class GridJobs:
    """The grid and export jobs (mixed into the panel)."""

    # the backend, its options and the model: as the Preview panel reads them from its render form
    backend_spec = PanelJobs.backend_spec
    backend_options = PanelJobs.backend_options
    _device = PanelJobs._device
    model_facts = PanelJobs.model_facts

    def _init_jobs(self) -> None:
        from difflora_gui.preview.backend import preview_backends

        self.backends = preview_backends(self.services.host)
        self._facts_cache = None
        self.grid_handle = None
        self.export_handle = None
        #: what the last export wrote (``out``, ``sheet``, ``sidecar`` …)
        self.last_export: dict[str, Any] | None = None
        #: the GridJob of the grid running, and of the grid on show
        self.running_job: GridJob | None = None
        self.shown_job: GridJob | None = None
        self.shown_result: GridResult | None = None
        #: how many grid jobs this panel submitted (tests)
        self.submitted = 0
        #: every progress text the running grid reported (tests, and the log on failure)
        self.progress_texts: list[str] = []
        self._connections: list = []
        connections = self._connections
        self.destroyed.connect(lambda *_: disconnect_all(connections))

    # --- the grid ------------------------------------------------------------------------------

    def grid_job(self) -> GridJob:
        """The grid the inputs describe, as a job (``UserError``: what to fix first)."""
        from difflora_gui.preview.render_cache import cache_dir_for

        backend = self.backend_spec()
        if backend is None:
            raise UserError("no preview backend is installed; see Tools ▸ Plugins")
        spec = self.grid_spec()
        options = self.backend_options()
        registry = getattr(self.services, "devices", None)
        ids = registry.ids() if registry is not None else []
        lane, device = grid_lane(backend, self.services.default_device(), ids)
        if not lane:
            device = self._device()
        return GridJob(
            spec,
            backend=backend.name,
            options=options,
            cache_dir=str(cache_dir_for(self.services.project)),
            cache_mb=int(self.services.settings.preview_cache_mb),
            lane=lane,
            device=device,
        )

    def render_grid(self):
        """Queue the grid (cached cells replay, the rest render): its handle, or None (the reason shown)."""
        if self.grid_handle is not None:
            self.set_status("A grid is rendering: Cancel it first, or wait for it to end", "warning")
            return None
        try:
            self.model_facts()
            job = self.grid_job()
        except UserError as exc:
            self.set_status(f"Cannot render the grid: {exc}", "error")
            return None
        title = f"Grid {' × '.join(str(n) for n in job.spec.shape)} ({job.spec.count} cells)"
        run = functools.partial(run_grid_params, scheduler=self.services.jobs.scheduler)
        handle = self.services.submit(JobRequest(title, run, params=job.to_json(), lane="light"))
        self.submitted += 1
        self.grid_handle = handle
        self.running_job = job
        self.progress_texts = []
        project = self.services.project
        self._connections += [
            handle.progressed.connect(lambda p, h=handle: self._on_grid_progress(h, p)),
            handle.event_emitted.connect(lambda e, h=handle: self._on_grid_event(h, e)),
            handle.succeeded.connect(lambda r, h=handle, p=project: self._on_grid_done(h, p, r)),
            handle.failed.connect(lambda m, _t, h=handle: self._on_grid_failed(h, m)),
            handle.finished.connect(lambda s, h=handle: self._on_grid_finished(h, s)),
        ]
        self.show_progress(0.0, f"queued: {job.spec.count} cells")
        self.set_status(f"Rendering {job.spec.count} cells (cached ones replay)…", "info")
        self._update_buttons()
        return handle

    def cancel_grid(self) -> None:
        if self.grid_handle is not None:
            self.grid_handle.cancel()
            self.show_progress(self.progress.value() / 1000, "cancelling…")

    def _on_grid_progress(self, handle, progress) -> None:
        if handle is not self.grid_handle:
            return
        text = progress.text or "rendering"
        if not self.progress_texts or self.progress_texts[-1] != text:
            self.progress_texts.append(text)
        eta = f" · ETA {format_duration(progress.eta_s)}" if progress.eta_s is not None else ""
        self.show_progress(progress.fraction, text + eta)

    def _on_grid_event(self, handle, event) -> None:
        if handle is self.grid_handle and isinstance(event, Status):
            self.show_progress(self.progress.value() / 1000, event.text)

    def _on_grid_done(self, handle, project, data) -> None:
        job = self.running_job
        if handle is not self.grid_handle or project is not self.services.project or job is None:
            return
        try:
            result = data if isinstance(data, GridResult) else GridResult.from_json(data)
        except (TypeError, KeyError, ValueError, UserError) as exc:
            self.set_status(f"The grid job returned no grid ({exc})", "error")
            return
        self.show_progress(1.0, "done")
        self.show_grid(job, result)
        self.set_status(
            f"{job.spec.count} cells: {result.rendered} rendered, {result.cached} from the cache", "ok"
        )

    def _on_grid_failed(self, handle, message: str) -> None:
        if handle is self.grid_handle:
            self.set_status(
                f"The grid failed: {message} — finished cells are cached; fix it and Render grid again",
                "error",
            )

    def _on_grid_finished(self, handle, state: str) -> None:
        if handle is not self.grid_handle:
            return
        self.grid_handle = None
        self.running_job = None
        if state == "cancelled":
            self.show_progress(None, "cancelled")
            self.set_status(
                "Grid cancelled: the finished cells are cached; Render grid renders only the rest", "warning"
            )
        elif state != "done":
            self.show_progress(None, state)
        self._update_buttons()

    def show_progress(self, fraction: float | None, text: str) -> None:
        self.progress.setValue(int(round((fraction or 0.0) * 1000)))
        self.progress.setFormat(text)

    # --- export --------------------------------------------------------------------------------

    def export_grid(self, out: str | Path, options: ExportOptions, *, overwrite: bool = False):
        """Write the grid on show to ``out`` (and its sidecar) as a light job: the handle, or None."""
        if self.shown_job is None or self.shown_result is None:
            self.set_status("Nothing to export: Render grid first", "warning")
            return None
        if self.export_handle is not None:
            self.set_status("An export is running; wait for it to end", "warning")
            return None
        params = {
            "job": self.shown_job.to_json(),
            "result": self.shown_result.to_json(),
            "out": str(out),
            "options": options.to_json(),
            "overwrite": bool(overwrite),
        }
        handle = self.services.submit(
            JobRequest(f"Export {Path(out).name}", EXPORT_TASK, params=params, lane="light")
        )
        self.export_handle = handle
        self._connections += [
            handle.progressed.connect(lambda p, h=handle: self._on_export_progress(h, p)),
            handle.succeeded.connect(self._on_exported),
            handle.failed.connect(
                lambda message, _tb: self.set_status(
                    f"Export failed: {message} — nothing was written; choose another file or format", "error"
                )
            ),
            handle.finished.connect(self._on_export_finished),
        ]
        self.set_status(f"Exporting the grid to {out}…", "info")
        self._update_buttons()
        return handle

    def _on_export_progress(self, handle, progress) -> None:
        if handle is self.export_handle and self.grid_handle is None:
            eta = f" · ETA {format_duration(progress.eta_s)}" if progress.eta_s is not None else ""
            self.show_progress(progress.fraction, f"export: {progress.text or 'encoding'}{eta}")

    def _on_exported(self, data) -> None:
        files = [data.get(k) for k in ("out", "sheet", "sidecar")] if isinstance(data, Mapping) else [data]
        self.last_export = dict(data) if isinstance(data, Mapping) else {"out": str(data)}
        self.set_status("Exported: " + ", ".join(str(f) for f in files if f), "ok")
        if self.grid_handle is None:
            self.show_progress(1.0, "exported")

    def _on_export_finished(self, _state: str) -> None:
        self.export_handle = None
        self._update_buttons()
