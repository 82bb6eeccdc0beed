"""Preview backend ``comfyui``: a Wan preview rendered by a running ComfyUI server of the pool.

:func:`run_comfy_preview` behaves as the diffusers backend's job does (same cache entries, same
``out`` / ``frames_dir`` handling, same artifacts and result), with the render done elsewhere: the
LoRA stack is copied into the server's LoRA folder under names unique to the bytes (ComfyUI
caches by file name), the names the server then lists go into the workflow, the workflow is
checked against the server's ``/object_info`` before it is sent (ComfyUI's own checks miss
misspelt inputs and unchecked choices), and the server's saved video is downloaded and decoded.
A server that fails mid-render has the render run again on another healthy server of the pool.
A cache hit never contacts a server.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.preview.backend import ModelFacts, PreviewJob, PreviewResult

DEFAULT_BUILDER = "difflora_gui.comfy.workflows:build_preview_workflow"
#: the shipped video templates (``resources/comfy_workflows/``); :func:`video_templates` reads
#: them from :mod:`difflora_gui.comfy.workflows`, this is what it finds there
PREVIEW_TEMPLATES = ("wan21_t2v", "wan22_t2v_a14b", "wanvideo_t2v")
TWO_EXPERT_TEMPLATES = ("wan22_t2v_a14b",)
#: Wan2.2 A14B T2V hands over to the low-noise expert at this timestep fraction
A14B_BOUNDARY = 0.875
_VIDEO_SUFFIXES = (".mp4", ".webm", ".webp", ".gif", ".mkv", ".mov", ".png")


@dataclass(frozen=True)
class ComfyOptions:
    """The backend's options (``PreviewJob.options``)."""

    template: str = "wan21_t2v"
    #: a server name (or URL) to render on; blank: the job's lane, else any healthy server
    server: str = ""
    #: the servers from Settings, filled in by :func:`settings_defaults`: name → {url, lora_dir}
    #: (a list of ``ComfyServer`` JSON records is read too)
    servers: tuple[Mapping[str, Any], ...] = ()
    #: file names as the server lists them (its diffusion_models, text_encoders and vae folders)
    unet: str = ""
    unet_high: str = ""
    clip: str = ""
    vae: str = ""
    #: 0: from the model name (40 for 14B, 30 for 1.3B and 5B)
    num_blocks: int = 0
    timeout_s: float = 1800.0
    #: ``module:function`` building the API-format workflow (the shipped templates by default)
    builder: str = DEFAULT_BUILDER
    #: the user's own API-format workflow (used instead of the template), and its bindings file
    #: (blank: the app's suggested bindings)
    workflow_file: str = ""
    bindings_file: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ComfyOptions:
        data = dict(data or {})
        names = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in names}
        values["servers"] = _server_records(values.get("servers"))
        for name in ("workflow_file", "bindings_file"):  # a path parameter may arrive as a Path
            values[name] = str(values.get(name) or "")
        try:
            values["num_blocks"] = int(values.get("num_blocks") or 0)
            values["timeout_s"] = float(values.get("timeout_s") or 1800.0)
        except (TypeError, ValueError) as error:
            raise UserError(f"ComfyUI backend options: {error}") from None
        if values["timeout_s"] <= 0:
            raise UserError("ComfyUI backend options: the timeout must be above 0 seconds")
        return cls(**values, extra={k: v for k, v in data.items() if k not in names})

    def models(self) -> dict[str, str]:
        # the two-expert template names its low-noise DiT unet_low; the others name it unet
        return {
            "unet": self.unet,
            "unet_low": self.unet,
            "unet_high": self.unet_high,
            "clip": self.clip,
            "vae": self.vae,
        }

    def fingerprint(self, server: str) -> str:
        """What decides the pixels besides the request: the server, its workflow and model names."""
        if self.workflow_file:
            # the files' bytes decide the pixels, not their names: an edited file renders anew
            data = {"server": server, "workflow": _content_hash(self.workflow_file, "workflow")}
            data["bindings"] = (
                _content_hash(self.bindings_file, "bindings") if self.bindings_file else "suggested"
            )
        else:
            data = {
                "server": server,
                "template": self.template,
                "models": self.models(),
                "builder": self.builder,
            }
        return "comfyui:" + json.dumps(data, sort_keys=True, separators=(",", ":"))


def _content_hash(path: str, what: str) -> str:
    from difflora_gui.fileio import sha256_file

    try:
        return sha256_file(path)
    except OSError as error:
        raise UserError(f"cannot read the {what} file: {error.strerror or error}", path=Path(path)) from None


def _server_records(value: Any) -> tuple[dict[str, Any], ...]:
    # a table (the option as Settings fill it in: a JSON-able ``dict`` parameter) or a list of records
    if isinstance(value, Mapping):
        return tuple({**dict(record or {}), "name": name} for name, record in value.items())
    if not all(isinstance(s, Mapping) for s in value or ()):
        raise UserError("ComfyUI backend options: servers must be records with a url")
    return tuple(dict(s) for s in value or ())


# --- the plugin's model_facts and settings_defaults -----------------------------------------------


def video_templates() -> tuple[str, ...]:
    """The shipped templates that render a video (the form's choices)."""
    try:
        from difflora_gui.comfy.workflows import TEMPLATES
    except ImportError:
        return PREVIEW_TEMPLATES
    return tuple(t.name for t in TEMPLATES if t.kind == "video")


def _two_experts(template: str) -> bool:
    try:
        from difflora_gui.comfy.workflows import template_info

        return "unet_high" in template_info(template).models
    except (ImportError, UserError):
        return template in TWO_EXPERT_TEMPLATES


def model_facts(options: Mapping[str, Any] | ComfyOptions) -> ModelFacts:
    """Blocks and experts of the model the options name, from the template and the file name
    (the weights are on the server; nothing is asked of it)."""
    opts = options if isinstance(options, ComfyOptions) else ComfyOptions.from_json(options)
    two = _two_experts(opts.template)
    name = (opts.unet or opts.unet_high).lower().replace("_", ".").replace("-", ".")
    if "1.3b" in name or "5b" in name.replace("1.5b", ""):
        variant, blocks = ("5B" if "5b" in name and "1.3b" not in name else "1.3B"), 30
    elif "14b" in name or two:
        variant, blocks = "14B", 40
    else:
        variant, blocks = "unknown", 40  # most ComfyUI Wan setups run 14B; the option overrides it
    if opts.num_blocks > 0:
        blocks = opts.num_blocks
    label = f"ComfyUI {opts.template}: {opts.unet or 'no model named'}"
    if variant == "unknown" and opts.num_blocks <= 0:
        label += " (40 blocks assumed: set Blocks for a 1.3B or 5B model)"
    return ModelFacts(blocks, two, "14B" if two else variant, A14B_BOUNDARY if two else None, label)


def settings_defaults(settings) -> dict[str, Any]:
    """The app's Settings as option defaults: the enabled servers, and the Wan files' names (a
    ComfyUI server lists its model files by name, often the same files)."""
    servers = {
        s.name: {"url": s.url, "lora_dir": s.lora_dir, "enabled": s.enabled}
        for s in settings.enabled_comfyui_servers()
    }

    def name_of(path: str) -> str:
        return Path(path).name if path else ""

    return {
        "servers": servers,
        "unet": name_of(settings.wan_dit),
        "unet_high": name_of(settings.wan_dit_high_noise),
        "clip": name_of(settings.wan_t5),
        "vae": name_of(settings.wan_vae),
    }


# --- the job ----------------------------------------------------------------------------------------


def _pool_for(opts: ComfyOptions):
    from difflora_gui.comfy.pool import ComfyPool, shared_pool

    by_url = opts.server.startswith(("http://", "https://"))
    if by_url and not any(str(s.get("url", "")).rstrip("/") == opts.server.rstrip("/") for s in opts.servers):
        return ComfyPool([{"url": opts.server}])  # a server named by URL only (the CLI's --server URL)
    return shared_pool(opts.servers)


def _preferred(opts: ComfyOptions, pool, ctx) -> str | None:
    """The server to try first: the one the user named, else the job's lane (``comfy:<name>``,
    the server the scheduler found free and healthy), else none (the pool's first healthy one)."""
    if opts.server:
        server = pool.find(opts.server)
        if server is None:
            raise UserError(f"no enabled ComfyUI server named {opts.server!r} (Settings ▸ ComfyUI servers)")
        return server.name
    lane = getattr(ctx, "lane_key", None) or ""
    if lane.startswith("comfy:") and not lane.endswith("*"):
        return lane[len("comfy:") :]
    return None


def _candidate_keys(request, opts: ComfyOptions, pool, preferred: str | None) -> list[tuple[str, str]]:
    names = [preferred] if preferred else pool.names()
    return [(name, request.cache_key(opts.fingerprint(name))) for name in names]


def _check_template(opts: ComfyOptions) -> None:
    # a custom builder (an imported workflow, a test's) knows its own template names
    if opts.workflow_file:  # the user's own workflow: its bindings are checked against the server
        return
    shipped = video_templates()
    if opts.builder == DEFAULT_BUILDER and opts.template not in shipped:
        raise UserError(f"unknown ComfyUI preview template {opts.template!r}; shipped: {', '.join(shipped)}")


#: the template whose LoRAs go through WanVideoWrapper's block edit, which drops lora_unet_ keys
BLOCK_EDIT_TEMPLATE = "wanvideo_t2v"


def _check_lora_formats(opts: ComfyOptions, request) -> None:
    """Refuse, before any server is asked, a LoRA whose key names ComfyUI would not apply: the
    server would render without it and say nothing (the Preview panel's Render gate, same rule)."""
    import shlex

    from difflora_gui.comfy.workflows import lora_format_problem
    from difflora_gui.preview.request import effective_loras

    block_edit = not opts.workflow_file and opts.template == BLOCK_EDIT_TEMPLATE
    problems = []
    for entry in effective_loras(request.loras):
        problem = lora_format_problem(entry.file, block_edit=block_edit)
        if not problem:
            continue
        # the check names the file only; the user needs the path to find it
        problem = problem.removeprefix(f"{Path(entry.file).name}: ")
        if "comfy format" in problem:
            source = Path(entry.file)
            target = source.with_name(f"{source.stem}-comfy.safetensors")
            command = f"python main.py convert {shlex.quote(str(source))} {shlex.quote(str(target))}"
            problem += f" ({command} --format comfy)"
        problems.append(f"{entry.file}: {problem}")
    if problems:
        label = Path(opts.workflow_file).name if opts.workflow_file else opts.template
        shown = "; ".join(problems)
        raise UserError(f"the {label} workflow cannot use this LoRA, nothing was sent: {shown}")


def _builder(opts: ComfyOptions) -> Callable[..., dict]:
    from difflora_gui.specs import resolve_callable

    try:
        return resolve_callable(opts.builder)
    except Exception as error:  # noqa: BLE001 - a missing builder is the user's setting, one line
        raise UserError(f"cannot load the ComfyUI workflow builder {opts.builder!r}: {error}") from None


def _place_loras(server, client, entries) -> list[str]:
    """Each LoRA in the server's folder under its unique name; the names as the server lists them."""
    from difflora_gui.comfy.names import listed_name, place_lora

    if not entries:
        return []
    if not server.lora_dir:
        raise UserError(
            f"ComfyUI server {server.name} has no LoRA folder set: set the folder of its models/loras "
            "that this app can write to (Settings ▸ ComfyUI servers)"
        )
    placed = [place_lora(entry.file, server.lora_dir, sha256=entry.sha256) for entry in entries]
    listing = client.models("loras")
    names = []
    for item in placed:
        name = listed_name(item.name, listing)
        if name is None:
            raise UserError(
                f"ComfyUI server {server.name} does not list {item.name} after it was copied to "
                f"{server.lora_dir}: that folder must be inside the server's models/loras (Settings ▸ ComfyUI servers)",
                path=item.path,
            )
        names.append(name)
    return names


#: a model loader's file input → the backend option that names it (the form's titles)
_MODEL_OPTIONS = (
    (("(UNETLoader)", "(WanVideoModelLoader)"), "Diffusion model"),
    (("(CLIPLoader)", "T5TextEncoder)"), "Text encoder"),
    (("(VAELoader)", "(WanVideoVAELoader)"), "VAE"),
)


def _problems_error(problems: list[str], opts: ComfyOptions, server: str) -> UserError:
    """One error for the workflow's problems, saying which of the user's options to change."""
    shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    options = [title for marks, title in _MODEL_OPTIONS if any(m in p for p in problems for m in marks)]
    hint = ""
    if options:
        hint = f" Set {', '.join(options)} in the ComfyUI backend's options to file names the server lists."
    label = Path(opts.workflow_file).name if opts.workflow_file else opts.template
    return UserError(f"the {label} workflow does not fit ComfyUI at {server}: {shown}.{hint}")


def _render_on(name: str, pool, opts: ComfyOptions, build, request, key: str, ctx):
    """One attempt on server ``name``: the decoded frames (uint8 F×H×W×3)."""
    from difflora_gui.comfy.validate import validate_workflow
    from difflora_gui.preview.request import effective_loras

    server = pool.server(name)
    ctx.status(f"preparing ComfyUI at {name}…")
    client = pool.client_for(name)
    try:
        entries = effective_loras(request.loras)
        lora_names = _place_loras(server, client, entries)
        object_info = client.object_info()
        workflow = _build(opts, build, request, entries, lora_names, object_info, key, ctx)
        problems = validate_workflow(workflow, object_info)
        if problems:
            raise _problems_error(problems, opts, name)
        ctx.raise_if_cancelled()
        ctx.status(f"rendering on ComfyUI at {name}…")
        ctx.progress(0, request.steps, f"step 0 of {request.steps}")

        def on_progress(done, total, text):
            if total:
                ctx.progress(done, total, f"step {int(done)} of {int(total)}")
            else:
                ctx.status(text)

        def on_frame(index, image, **meta):
            ctx.frame(index, image, kind="preview", server=name, **meta)

        outputs = client.run(
            workflow,
            on_progress=on_progress,
            on_frame=on_frame,
            cancelled=lambda: ctx.cancelled,
            max_wait_s=opts.timeout_s,
        )
    finally:
        client.close()
    return _decode_outputs(outputs, name)


def _build(opts: ComfyOptions, build, request, entries, lora_names, object_info, key: str, ctx) -> dict:
    by_file = {entry.file: name for entry, name in zip(entries, lora_names, strict=True)}
    if opts.workflow_file:
        from difflora_gui.comfy.bound_workflow import build_bound_workflow

        return build_bound_workflow(
            opts.workflow_file,
            opts.bindings_file or None,
            request.replace(loras=tuple(entries)),
            lora_names=by_file,
            object_info=object_info,
            log=ctx.log,
        )
    return build(
        opts.template,
        request.replace(loras=tuple(entries)),
        lora_names=by_file,
        models=opts.models(),
        filename_prefix=f"difflora_preview/{key[:16]}",
        num_blocks=model_facts(opts).num_blocks,
    )


def _decode_outputs(outputs, server: str):
    """The frames of the saved video (an animated save), or of the saved images in order."""
    import numpy as np

    from difflora_gui.comfy.protocol import ComfyError, decode_image

    files = [f for f in outputs.files if f.data]
    videos = [f for f in files if f.animated]
    videos.sort(key=lambda f: f.type != "output")  # a saved file before a temp preview
    if videos:
        with tempfile.TemporaryDirectory(prefix="difflora-comfy-") as folder:
            suffix = Path(videos[0].filename).suffix.lower()
            path = Path(folder) / f"output{suffix if suffix in _VIDEO_SUFFIXES else '.mp4'}"
            path.write_bytes(videos[0].data)
            return _decode_video(path, server)
    images = [decode_image(f.data) for f in files]
    images = [image for image in images if image is not None]
    if not images:
        raise ComfyError(f"ComfyUI at {server}: the workflow saved no video or image", server=server)
    if len({image.shape for image in images}) > 1:
        raise ComfyError(f"ComfyUI at {server}: the saved images differ in size", server=server)
    return np.stack(images)


def _decode_video(path: Path, server: str):
    import numpy as np

    from difflora_gui.comfy.protocol import ComfyError
    from difflora_gui.preview.video_io import VideoReader

    try:
        reader = VideoReader(path)
        try:
            return reader.frames()
        finally:
            reader.close()
    except Exception:  # noqa: BLE001 - animated WebP/GIF: FFmpeg builds may not decode them
        pass
    try:
        from PIL import Image, ImageSequence

        with Image.open(path) as image:
            return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)])
    except Exception as error:  # noqa: BLE001 - one line naming the server and the file type
        raise ComfyError(
            f"ComfyUI at {server}: cannot decode its {path.suffix} output ({error})", server=server
        ) from None


def run_comfy_preview(job: PreviewJob | Mapping[str, Any], ctx) -> PreviewResult:
    """Render (or replay from the cache) one preview on a ComfyUI server; see the module docstring."""
    from difflora_gui.preview.render import hash_lora
    from difflora_gui.preview.render_cache import RenderCache
    from difflora_gui.preview.render_outputs import check_outputs, deliver
    from difflora_gui.preview.request import with_hashes

    job = job if isinstance(job, PreviewJob) else PreviewJob.from_json(job)
    opts = ComfyOptions.from_json(job.options)
    _check_template(opts)
    _check_lora_formats(opts, job.request)
    check_outputs(job)
    request = with_hashes(job.request, hash_lora)
    pool = _pool_for(opts)
    preferred = _preferred(opts, pool, ctx)
    cache = RenderCache(job.cache_dir, job.cache_mb) if job.cache_dir else None
    hit, key = None, ""
    for _name, candidate in _candidate_keys(request, opts, pool, preferred):
        key = key or candidate
        # a cached clip is H.264: exact frames for frames_dir come only from a render
        hit = cache.get(candidate) if cache is not None and not job.frames_dir else None
        if hit is not None:
            key = candidate
            break
    frames = None
    if hit is None:
        ctx.raise_if_cancelled()
        build = _builder(opts)
        rendered_on: list[str] = []

        def attempt(name: str):
            rendered_on.append(name)
            return _render_on(
                name, pool, opts, build, request, request.cache_key(opts.fingerprint(name)), ctx
            )

        frames = pool.run_with_retry(attempt, preferred=preferred, log=ctx.log)
        key = request.cache_key(opts.fingerprint(rendered_on[-1]))
    return deliver(job, request, key, ctx, cache=cache, hit=hit, frames=frames)


def cached_comfy_preview(job: PreviewJob | Mapping[str, Any]) -> PreviewResult | None:
    """The backend's ``cached``: the render of ``job`` from the cache as made on any server of
    the pool (or on the one the options name), or None; never sends a prompt."""
    from difflora_gui.jobs.context import NullContext
    from difflora_gui.preview.render import hash_lora
    from difflora_gui.preview.render_cache import RenderCache
    from difflora_gui.preview.render_outputs import check_outputs, deliver
    from difflora_gui.preview.request import with_hashes

    job = job if isinstance(job, PreviewJob) else PreviewJob.from_json(job)
    if not job.cache_dir or job.frames_dir:
        return None
    opts = ComfyOptions.from_json(job.options)
    _check_template(opts)
    request = with_hashes(job.request, hash_lora)
    pool = _pool_for(opts)
    preferred = _preferred(opts, pool, NullContext())
    cache = RenderCache(job.cache_dir, job.cache_mb)
    for _name, key in _candidate_keys(request, opts, pool, preferred):
        hit = cache.get(key)
        if hit is not None:
            check_outputs(job)
            return deliver(job, request, key, NullContext(), cache=cache, hit=hit)
    return None
