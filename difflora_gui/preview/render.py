"""The diffusers Wan preview job: one :class:`~difflora_gui.preview.backend.PreviewJob` rendered.

:func:`run_preview` hashes the LoRA files (each once per size and modification time in this
process), asks the render cache for the request's key and replays a hit without touching the
model; a miss renders on the resident pipeline (:mod:`difflora_gui.preview.resident`: loaded once,
LoRA strengths and block weights re-configured in place) with progress and a cancel check at every
denoising step and a latent preview every few steps. The clip goes into the cache (or a temporary
folder without one), then to ``out`` and ``frames_dir`` when asked. Outputs are checked before
anything runs; a cancelled render leaves no file and no cache entry. Qt-free; torch is imported by
the resident pipeline only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.preview.backend import PreviewJob, PreviewResult
from difflora_gui.preview.render_outputs import check_outputs, deliver

_hash_lock = threading.Lock()
#: (absolute path, size, mtime ns) → sha256 hex
_hashes: dict[tuple[str, int, int], str] = {}


def hash_lora(path: str | os.PathLike) -> str:
    """The file's sha256, computed once per (path, size, modification time) in this process."""
    from difflora_gui.fileio import sha256_file

    absolute = os.path.abspath(path)
    try:
        stat = os.stat(absolute)
    except OSError:
        raise UserError("LoRA file not found", path=absolute) from None
    if not os.path.isfile(absolute):
        raise UserError("LoRA path is a folder, not a file", path=absolute)
    key = (absolute, stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        known = _hashes.get(key)
    if known is None:
        try:
            known = sha256_file(absolute)
        except OSError as exc:
            raise UserError(f"cannot read the LoRA file: {exc.strerror or exc}", path=absolute) from None
        with _hash_lock:
            _hashes[key] = known
    return known


def _model_settings(options: Mapping[str, Any] | Any, *, resolve_device: bool = True):
    from difflora_gui.preview.model_files import ModelSettings

    if isinstance(options, ModelSettings):
        return options
    values = dict(options or {})
    if str(values.get("device", "")).strip().lower() in ("", "auto"):
        # only a render needs the real device: asking torch costs its import (seconds) at startup
        values["device"] = _auto_device() if resolve_device else "cpu"
    return ModelSettings.from_json(values)


def _auto_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def model_facts_for(options: Mapping[str, Any] | Any):
    """The backend's ``model_facts``: blocks and experts of the model the options name, from its
    configs (no weights loaded); a UserError names a missing folder or file."""
    from difflora_gui.preview.model_files import model_facts

    return model_facts(_model_settings(options, resolve_device=False))


def settings_defaults(settings) -> dict[str, Any]:
    """The backend's ``settings_defaults``: the app's Settings (Wan folder, DiT files, preview
    dtype, offload, VAE tiling) as option defaults; the device stays the job's choice."""
    from difflora_gui.preview.model_files import ModelSettings

    values = ModelSettings.from_settings(settings).to_json()
    values.pop("device", None)
    return values


def _on_step(ctx, total: int):
    from difflora_gui.preview.latent_preview import latent_rgb, preview_every

    every = preview_every(total)
    state = {"previews": True}

    def on_step(step: int, steps: int, latents=None) -> None:
        ctx.raise_if_cancelled()
        steps = int(steps or total)
        ctx.progress(step, steps, f"step {step} of {steps}")
        if latents is not None and state["previews"] and (step % every == 0 or step == steps):
            picture = latent_rgb(latents)
            if picture is None:
                state["previews"] = False  # not a layout we can picture: stop trying
            else:
                ctx.frame(step, picture, kind="latent", step=step, total=steps)

    return on_step


def _render(job: PreviewJob, settings, ctx):
    """Run the pipeline: the frames as uint8 (F, H, W, 3)."""
    from difflora_gui.preview.resident import get_resident
    from difflora_gui.preview.video_io import to_uint8

    request = job.request
    ctx.status("loading model…")
    resident = get_resident(settings, ctx)
    ctx.raise_if_cancelled()
    ctx.status("rendering…")
    ctx.progress(0, request.steps, f"step 0 of {request.steps}")
    frames = resident.generate(request, on_step=_on_step(ctx, request.steps))
    ctx.raise_if_cancelled()
    return to_uint8(frames)


def run_preview(job: PreviewJob | Mapping[str, Any], ctx) -> PreviewResult:
    """Render (or replay from the cache) one preview; see the module docstring."""
    from difflora_gui.preview.model_files import check_model, check_size
    from difflora_gui.preview.render_cache import RenderCache
    from difflora_gui.preview.request import with_hashes

    job = job if isinstance(job, PreviewJob) else PreviewJob.from_json(job)
    settings = _model_settings(job.options)
    check_model(settings)
    check_size(job.request.width, job.request.height, settings)
    check_outputs(job)
    request = with_hashes(job.request, hash_lora)
    key = request.cache_key(settings.fingerprint())
    cache = RenderCache(job.cache_dir, job.cache_mb) if job.cache_dir else None
    # a cached clip is H.264: exact frames for frames_dir come only from a render
    hit = cache.get(key) if cache is not None and not job.frames_dir else None
    frames = None if hit is not None else _render(job, settings, ctx)
    return deliver(job, request, key, ctx, cache=cache, hit=hit, frames=frames)


def cached_preview(job: PreviewJob | Mapping[str, Any]) -> PreviewResult | None:
    """The backend's ``cached``: the render of ``job`` from its cache (written to ``out`` when
    it names one), or None without rendering — no cache folder, no entry, or ``frames_dir`` set
    (exact frames come only from a render)."""
    from difflora_gui.jobs.context import NullContext
    from difflora_gui.preview.render_cache import RenderCache
    from difflora_gui.preview.request import with_hashes

    job = job if isinstance(job, PreviewJob) else PreviewJob.from_json(job)
    if not job.cache_dir or job.frames_dir:
        return None
    settings = _model_settings(job.options, resolve_device=False)
    request = with_hashes(job.request, hash_lora)
    key = request.cache_key(settings.fingerprint())
    cache = RenderCache(job.cache_dir, job.cache_mb)
    hit = cache.get(key)
    if hit is None:
        return None
    check_outputs(job)
    return deliver(job, request, key, NullContext(), cache=cache, hit=hit)
