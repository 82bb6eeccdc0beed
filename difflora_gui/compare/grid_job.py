"""The grid job: every cell of a :class:`~difflora_gui.compare.grid_spec.GridSpec` through a
preview backend, cached, spread over the lanes the backend offers, then exported.

``run_grid(job, ctx)`` runs on the light lane as a coordinator. It asks the backend's ``cached``
lookup (when it has one) for every cell first — a re-run renders only what is missing, and a
resumed grid is a re-run — then queues each missing cell as its own job (:func:`run_cell`) on the
backend's lanes of the scheduler: ``device:cuda:*`` puts cells on every GPU, ``comfy:*`` on every
healthy ComfyUI server. Cells are queued in render order (the expensive axis outermost), so one
lane works through one LoRA file before the next. Cancel stops the queued cells and the running
ones between steps; every finished cell stays in the render cache and nothing is exported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.compare.grid_types import CellResult, GridJob, GridResult
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.jobs.context import JobContext

GRID_TASK = "difflora_gui.compare.grid_job:run_grid_task"
CELL_TASK = "difflora_gui.compare.grid_job:run_cell"
_POLL_S = 0.1


class _CellContext(JobContext):
    """A cell's context: stops when the grid stops, logs under the cell's labels, and keeps its
    step progress for the grid's ``cell k of N`` report."""

    def __init__(self, grid_ctx, label: str):
        super().__init__()
        self._grid = grid_ctx
        self._label = label

    @property
    def cancelled(self) -> bool:
        return super().cancelled or self._grid.cancelled

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled()

    def fraction(self) -> float:
        report = self.last_progress
        return float(report.fraction or 0.0) if report is not None else 0.0

    def _emit_log(self, text: str) -> None:
        self._grid.log(f"[{self._label}] {text}")


def cell_lane(spec, job: GridJob) -> tuple[str, str]:
    """``(lane, device)`` for a cell's JobRequest: the job's own lane if it names one, else the
    backend's (the diffusers backend: the device; ComfyUI: any healthy server, or the one the
    options name)."""
    if job.lane:
        return job.lane, job.device
    if spec.lane == "comfy":
        server = str(job.options.get("server") or "").strip()
        if server and not server.startswith(("http://", "https://")):
            return f"comfy:{server}", job.device
        return "comfy", job.device
    return spec.lane, job.device


def run_cell(params: Mapping[str, Any], ctx) -> dict:
    """One cell as a job: the backend's run on the lane the scheduler gave it (a ``device:X`` lane
    sets the device when the options leave it to the job)."""
    from difflora_gui.preview.backend import PreviewJob
    from difflora_gui.specs import resolve_callable

    job = PreviewJob.from_json(params["job"])
    lane = getattr(ctx, "lane_key", None) or ""
    if lane.startswith("device:") and str(job.options.get("device", "")).strip().lower() in ("", "auto"):
        job = PreviewJob.from_json({**job.to_json(), "options": {**job.options, "device": lane[7:]}})
    result = resolve_callable(params["run"])(job, ctx)
    return result.to_json() if hasattr(result, "to_json") else dict(result)


def _cell_result(cell, preview: Mapping[str, Any], rendered: bool) -> CellResult:
    request = preview["request"]
    return CellResult(
        index=cell.index,
        row=cell.row,
        col=cell.col,
        labels=cell.labels,
        video=str(preview["video"]),
        first_frame=str(preview["first_frame"]),
        key=str(preview["key"]),
        rendered=rendered,
        frames=int(preview["frames"]),
        width=int(preview["width"]),
        height=int(preview["height"]),
        fps=int(request.get("fps", 16) if isinstance(request, Mapping) else request.fps),
        request=request if isinstance(request, Mapping) else request.to_json(),
    )


def _scheduler_for(job: GridJob, spec, lane: str, scheduler):
    """The scheduler the cells go to, with the lanes they need registered (the GUI's already has
    them; a command line's gets the detected devices or the pool's servers)."""
    from difflora_gui.jobs.job import normalize_lane

    if scheduler is None:
        from difflora_gui.jobs.cli import terminal_scheduler

        scheduler = terminal_scheduler()
    key = normalize_lane(lane, job.device)
    known = scheduler.lane_keys()
    if key.startswith("device:") and key.endswith("*") and not any(k.startswith("device:") for k in known):
        from difflora_gui.jobs.devices import detect_devices

        scheduler.register_devices(d.id for d in detect_devices())
    if key.startswith("comfy:") and not any(k.startswith("comfy:") for k in known):
        from difflora_gui.comfy.preview_backend import ComfyOptions, _pool_for

        _pool_for(ComfyOptions.from_json(job.options)).register(scheduler)
    return scheduler


def _check_model(spec, options) -> None:
    if spec.model_facts is not None:
        from difflora_gui.specs import resolve_callable

        resolve_callable(spec.model_facts)(options)  # a missing model is bad input before any cell


def run_grid(job: GridJob | Mapping[str, Any], ctx, *, scheduler=None, host=None) -> GridResult:
    """Render (or replay) every cell, then export when ``job.out`` is set; see the module docstring."""
    from difflora_gui.jobs.job import JobRequest
    from difflora_gui.preview.backend import PreviewJob, preview_backend
    from difflora_gui.specs import resolve_callable

    job = job if isinstance(job, GridJob) else GridJob.from_json(job)
    if host is None:
        from difflora_gui.plugin_host import get_plugin_host

        host = get_plugin_host()
    spec = preview_backend(host, job.backend)
    _check_model(spec, job.options)
    if job.out:
        from difflora_gui.fileio import check_output_path

        check_output_path(Path(job.out), overwrite=job.overwrite)
    cells = job.spec.cells()
    total = len(cells)
    results: dict[int, CellResult] = {}
    previews = [
        PreviewJob(c.request, job.options, cache_dir=job.cache_dir, cache_mb=job.cache_mb) for c in cells
    ]
    lookup = resolve_callable(spec.cached) if getattr(spec, "cached", None) else None
    ctx.status("looking for cached cells…")
    for number, (cell, preview) in enumerate(zip(cells, previews, strict=True)):
        ctx.raise_if_cancelled()
        hit = lookup(preview) if lookup is not None else None
        if hit is not None:
            results[number] = _cell_result(cell, hit.to_json(), rendered=False)
            ctx.progress(
                len(results), total, f"cell {len(results)} of {total}: {' · '.join(cell.labels)} (cached)"
            )
    missing = [n for n in range(total) if n not in results]
    if missing:
        ctx.status(f"rendering {len(missing)} of {total} cells…")
        _render_missing(job, spec, cells, previews, missing, results, ctx, scheduler, JobRequest)
    ordered = tuple(results[n] for n in range(total))
    rendered = sum(1 for c in ordered if c.rendered)
    summary = f"{total} cells: {rendered} rendered, {total - rendered} from the cache"
    ctx.log(summary)
    result = GridResult(ordered, rendered=rendered, cached=total - rendered)
    if job.out:
        result = _export(job, result, ctx)
    ctx.status(summary if not job.out else f"{summary}; exported {Path(result.out).name}")
    return result


def _render_missing(job, spec, cells, previews, missing, results, ctx, scheduler, job_request) -> None:
    lane, device = cell_lane(spec, job)
    lanes = _scheduler_for(job, spec, lane, scheduler)
    total = len(cells)
    running: dict[int, tuple[Any, _CellContext]] = {}
    for number in missing:
        cell = cells[number]
        label = " · ".join(cell.labels)
        cell_ctx = _CellContext(ctx, label)
        request = job_request(
            f"Grid cell {number + 1} of {total}: {label}",
            CELL_TASK,
            params={"run": spec.run, "job": previews[number].to_json()},
            lane=lane,
            device=device,
        )
        running[number] = (lanes.submit(request, cell_ctx), cell_ctx)
    try:
        while running:
            if ctx.cancelled:
                raise JobCancelled()
            for number, (child, _cell_ctx) in list(running.items()):
                if not child.is_finished:
                    continue
                del running[number]
                lanes.forget(child)
                cell = cells[number]
                label = " · ".join(cell.labels)
                if child.state == "failed":
                    error = child.error
                    message = str(error) if error is not None else "failed"
                    path = getattr(error, "path", None)
                    raise UserError(f"cell {label}: {message}", path=path) from error
                if child.state != "done":
                    raise JobCancelled()
                results[number] = _cell_result(cell, child.result, rendered=True)
                ctx.progress(len(results), total, f"cell {len(results)} of {total}: {label}")
            partial = sum(c.fraction() for _child, c in running.values())
            if running:
                ctx.progress(len(results) + partial, total, f"cell {len(results) + 1} of {total}")
                time.sleep(_POLL_S)
    finally:
        for child, _cell_ctx in running.values():
            lanes.cancel(child)
        for child, _cell_ctx in running.values():
            child.wait(60)
            lanes.forget(child)


def _export(job: GridJob, result: GridResult, ctx) -> GridResult:
    import dataclasses

    from difflora_gui.compare.export import export_grid

    ctx.status("exporting the grid…")
    exported = export_grid(result, job.spec, job.out, job.export, overwrite=job.overwrite, ctx=ctx)
    sidecar = ""
    if job.export.sidecar:
        from difflora_gui.compare.sidecar import write_sidecar

        sidecar = str(
            write_sidecar(Path(exported.out).with_suffix(".json"), job, result, overwrite=job.overwrite)
        )
    ctx.artifact("video", exported.out, grid=True, sheet=exported.sheet, sidecar=sidecar)
    return dataclasses.replace(
        result, out=str(exported.out), sheet=str(exported.sheet or ""), sidecar=sidecar
    )


def run_grid_task(params: Mapping[str, Any], ctx) -> dict:
    """``run(params, ctx)`` for a JobRequest (the command line): the terminal's scheduler."""
    return run_grid(GridJob.from_json(params), ctx).to_json()


def run_grid_with(scheduler):
    """A ``run(params, ctx)`` that queues cells on ``scheduler`` (the window's)."""

    def run(params: Mapping[str, Any], ctx) -> dict:
        return run_grid(GridJob.from_json(params), ctx, scheduler=scheduler).to_json()

    return run
