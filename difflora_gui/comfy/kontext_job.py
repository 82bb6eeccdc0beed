"""Counterparts with Flux Kontext on the ComfyUI servers of the pool (dataset tool ``comfyui_kontext``).

The user sees what the in-app tool (:mod:`difflora_gui.dataset.kontext`) gives: one
``<out>/<same stem>.png`` per set-A image at the source's exact size, written through a temporary
file and one rename; finished outputs skipped and counted; item ``i`` seeded ``seed + i``; the
same ``kontext-manifest.json``, summary dict, ``image`` artifacts and pair-check scores. Only the
engine differs: each image is uploaded to a server, edited by the shipped ``flux_kontext_edit``
workflow and downloaded.

Geometry is the in-app tool's (scaled to the working area, padded to a multiple of 16, the padding
cropped off the result, scaled back): the template's ``FluxKontextImageScale`` is bypassed,
because it centre-crops to one of Kontext's preferred sizes, which would shift B against A.

Every fitting healthy server works at once (a thread each, pulling images from one queue). A server
that fails mid-image is marked down and its image goes back to the queue for the others; a refused
workflow or a node's error stops the job (it would fail anywhere). Every ``ctx`` call happens on the
job's own thread; the workers only talk to their server. Before anything is uploaded or queued the
workflow is checked against each server's ``/object_info``; if none fits, that is one error.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.dataset.kontext_params import KONTEXT_PARAMS
from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.params import Param, schema

#: the file names of ComfyUI's own Flux Kontext example workflow (a server set up by its guide)
DEFAULT_MODELS = {
    "unet": "flux1-dev-kontext_fp8_scaled.safetensors",
    "clip_l": "clip_l.safetensors",
    "t5": "t5xxl_fp8_e4m3fn_scaled.safetensors",
    "vae": "ae.safetensors",
}
TEMPLATE = "flux_kontext_edit"
#: what LoadImage is given while the workflow is checked, before any image is uploaded
_PROBE_IMAGE = "difflora_kontext_probe.png"
_SHARED = ("source_dir", "out_dir", "prompt", "seed", "steps", "guidance", "max_area", "check_resolution")
_BY_NAME = {p.name: p for p in KONTEXT_PARAMS}

PARAMS: tuple[Param, ...] = (
    *(_BY_NAME[name] for name in _SHARED),
    Param(
        "unet",
        "str",
        DEFAULT_MODELS["unet"],
        "the FLUX.1 Kontext [dev] file as the server lists it (models/diffusion_models)",
        title="Kontext model",
    ),
    Param(
        "clip_l", "str", DEFAULT_MODELS["clip_l"], "the CLIP-L file (models/text_encoders)", title="CLIP-L"
    ),
    Param("t5", "str", DEFAULT_MODELS["t5"], "the T5-XXL file (models/text_encoders)", title="T5-XXL"),
    Param("vae", "str", DEFAULT_MODELS["vae"], "the Flux VAE file (models/vae)", title="VAE"),
    Param(
        "server",
        "str",
        "",
        "one server to use, by name or URL; blank: every healthy server of Settings ▸ ComfyUI servers",
        title="Server",
    ),
    Param(
        "servers",
        "dict",
        {},
        "the servers: name → {url, lora_dir}; default: the enabled servers of Settings ▸ ComfyUI servers",
        title="Servers",
        form=False,
    ),
    Param(
        "timeout_s",
        "float",
        1800.0,
        "the longest one image may take on a server before the job gives up",
        minimum=1.0,
        title="Timeout per image (s)",
        advanced=True,
    ),
)
SCHEMA = schema(PARAMS)

#: a model loader in a problem line → the tool's field to change
_MODEL_FIELDS = (
    ("(UNETLoader)", "Kontext model"),
    ("(DualCLIPLoader)", "CLIP-L / T5-XXL"),
    ("(VAELoader)", "VAE"),
)


def _models(values: Mapping[str, Any]) -> dict[str, str]:
    return {"unet": values["unet"], "clip_l": values["clip_l"], "clip": values["t5"], "vae": values["vae"]}


def build_workflow(image_name: str, values: Mapping[str, Any], seed: int, prefix: str) -> dict[str, Any]:
    """The shipped Kontext edit for one uploaded image, its scale node bypassed (module docstring)."""
    from difflora_gui.comfy.workflows import build_kontext_workflow, roles

    workflow = build_kontext_workflow(
        image_name,
        values["prompt"],
        models=_models(values),
        seed=seed,
        steps=values["steps"],
        guidance=values["guidance"],
        filename_prefix=prefix,
    )
    at = roles(workflow)
    workflow[at["encode"]]["inputs"]["pixels"] = [at["image"], 0]
    del workflow[at["scale"]]
    return workflow


def _pool(values: Mapping[str, Any]):
    from difflora_gui.comfy.pool import ComfyPool, shared_pool

    servers = values.get("servers") or {}
    records = (
        [{**dict(r or {}), "name": n} for n, r in servers.items()] if isinstance(servers, Mapping) else []
    )
    if not records:
        from difflora_gui.settings import AppSettings

        records = [
            {"name": s.name, "url": s.url, "lora_dir": s.lora_dir, "enabled": s.enabled}
            for s in AppSettings.load().enabled_comfyui_servers()
        ]
    wanted = str(values.get("server") or "").strip()
    if wanted.startswith(("http://", "https://")) and not any(
        str(r.get("url") or "").rstrip("/") == wanted.rstrip("/") for r in records
    ):
        return ComfyPool([{"url": wanted}]), None  # a server named by URL only
    pool = shared_pool(records)
    if wanted:
        server = pool.find(wanted)
        if server is None:
            raise UserError(f"no enabled ComfyUI server named {wanted!r} (Settings ▸ ComfyUI servers)")
        return pool, server.name
    return pool, None


def _problems_error(problems: list[str], server: str) -> UserError:
    shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    fields_ = [title for mark, title in _MODEL_FIELDS if any(mark in p for p in problems)]
    hint = f" Set {', '.join(fields_)} to file names the server lists." if fields_ else ""
    return UserError(f"the Kontext workflow does not fit ComfyUI at {server}: {shown}.{hint}")


def _fitting_servers(pool, only: str | None, values, ctx) -> list[str]:
    """The healthy servers whose nodes and model files fit the workflow; one error if none does."""
    import copy

    from difflora_gui.comfy.protocol import ComfyError
    from difflora_gui.comfy.validate import validate_workflow

    if not pool.names():
        raise UserError("no ComfyUI server is enabled (Settings ▸ ComfyUI servers)")
    names = [only] if only else pool.names()
    ctx.status(f"asking {len(names)} ComfyUI server(s)…")
    health = {h.name: h for h in pool.check_all()} if not only else {only: pool.check(only, force=True)}
    down = [f"{n}: {health[n].error or health[n].state}" for n in names if not health[n].healthy]
    probe = build_workflow(_PROBE_IMAGE, values, 0, "difflora_kontext/probe")
    fitting, refusals = [], []
    for name in (n for n in names if health[n].healthy):
        client = pool.client_for(name)
        try:
            info = copy.deepcopy(client.object_info())
        except ComfyError as error:
            down.append(f"{name}: {error}")
            continue
        finally:
            client.close()
        load = ((info.get("LoadImage") or {}).get("input") or {}).get("required") or {}
        if isinstance(load.get("image"), list) and load["image"] and isinstance(load["image"][0], list):
            load["image"][0] = [*load["image"][0], _PROBE_IMAGE]  # it is uploaded right before its prompt
        problems = validate_workflow(probe, info)
        if problems:
            refusals.append(_problems_error(problems, name))
            ctx.log(f"ComfyUI server {name} is not used: {refusals[-1]}")
        else:
            fitting.append(name)
    if fitting:
        for line in down:
            ctx.log(f"ComfyUI server not used: {line}")
        return fitting
    if refusals:
        raise refusals[0]
    raise UserError("no ComfyUI server answers: " + "; ".join(down))


# --- one image on one server ------------------------------------------------------------------------


def _edit_one(client, server: str, item, values, events: queue.Queue, stop: threading.Event, ctx):
    """Upload, edit and download one image: its counterpart (uint8 BGR, the source's size)."""
    import cv2
    import numpy as np

    from difflora_gui.comfy.protocol import ComfyError, decode_image
    from difflora_gui.dataset.kontext import _decode
    from difflora_gui.dataset.kontext_params import working_size
    from difflora_gui.dataset.kontext_pipeline import pad_to

    work = working_size(*item.size, multiple=16, max_area=values["max_area"])
    image = _decode(item.source)
    (sw, sh), (pw, ph) = work.scaled, work.padded
    if (image.shape[1], image.shape[0]) != (sw, sh):
        image = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", pad_to(image, pw, ph))
    with tempfile.TemporaryDirectory(prefix="difflora-kontext-") as folder:
        upload = Path(folder) / f"difflora_kontext_{item.source.stem}.png"
        upload.write_bytes(png.tobytes())
        name = client.upload_image(upload)
    seed = values["seed"] + item.index
    workflow = build_workflow(name, values, seed, f"difflora_kontext/{item.source.stem}")

    def on_progress(done, total, text):
        if total:
            events.put(("step", server, item, int(done)))

    outputs = client.run(
        workflow,
        on_progress=on_progress,
        cancelled=lambda: stop.is_set() or ctx.cancelled,
        max_wait_s=values["timeout_s"],
    )
    decoded = [decode_image(f.data) for f in outputs.files if f.data and f.type == "output"]
    decoded = [d for d in decoded if d is not None]
    if not decoded:
        raise ComfyError(f"ComfyUI at {server}: the Kontext workflow saved no image", server=server)
    rgb = decoded[0][:sh, :sw]
    if rgb.shape[:2] != (sh, sw):
        raise ComfyError(
            f"ComfyUI at {server} returned {decoded[0].shape[1]}×{decoded[0].shape[0]} for a "
            f"{pw}×{ph} input (a changed workflow?)",
            server=server,
        )
    if (sw, sh) != item.size:
        rgb = cv2.resize(rgb, item.size, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), seed, work


def _worker(pool, server, todo: queue.Queue, shared, values, events: queue.Queue, stop, ctx) -> None:
    from difflora_gui.comfy.protocol import ComfyError
    from difflora_gui.errors import BadFileError

    client = pool.client_for(server)
    try:
        while not stop.is_set():
            try:
                item = todo.get(timeout=0.1)
            except queue.Empty:
                if shared["remaining"] <= 0:
                    return
                continue  # an image may yet come back from a server that failed
            began = time.monotonic()
            try:
                pixels, seed, work = _edit_one(client, server, item, values, events, stop, ctx)
            except BadFileError as error:
                events.put(("skip", server, item, error.problem))
                continue
            except ComfyError as error:
                if not error.retryable:
                    events.put(("error", server, item, error))
                    return
                todo.put(item)
                pool.mark_unhealthy(server, str(error))
                events.put(("down", server, item, str(error)))
                return
            except BaseException as error:  # noqa: BLE001 - JobCancelled, a bug: the job's thread decides
                events.put(("error", server, item, error))
                return
            events.put(("done", server, item, (pixels, seed, work, time.monotonic() - began)))
    finally:
        client.close()
        events.put(("exit", server, None, None))


# --- the job ---------------------------------------------------------------------------------------


def _prepare(values: Mapping[str, Any], sources, ctx):
    """(out folder, result, todo, manifest, params): the in-app tool's checks and plan, unchanged."""
    from difflora_gui.dataset.kontext import (
        KontextParams,
        KontextResult,
        _Manifest,
        _plan,
        _same_dir,
        list_sources,
    )

    skipped: list[dict[str, str]] = []
    if sources is None:
        sources, skipped = list_sources(values["source_dir"])
    if not values["out_dir"]:
        raise UserError("no output folder given")
    out = Path(values["out_dir"])
    sources = [Path(s) for s in sources]
    if out.exists() and not out.is_dir():
        raise UserError("output path is a file, not a folder", path=out)
    if out.exists() and any(s.parent.exists() and _same_dir(s.parent, out) for s in sources):
        raise UserError(
            "the output folder is the source folder; choose another (sources are never changed)", path=out
        )
    out.mkdir(parents=True, exist_ok=True)
    result = KontextResult(str(out), skipped=skipped)
    ctx.status(f"checking {len(sources)} source images")
    todo = _plan(sources, out, result, ctx)
    for item in result.skipped:
        ctx.log(f"skipped {item['path']}: {item['reason']}")
    if result.skipped_existing:
        ctx.log(f"{len(result.skipped_existing)} already done in {out}; skipped")
    params = KontextParams.from_values({**values, "model": ""})
    manifest = _Manifest(out, params, f"comfyui:{values['unet']}")
    if result.skipped_existing and (changed := manifest.differs()):
        ctx.log(
            f"note: the finished outputs were made with other settings ({', '.join(changed)}); they are kept"
        )
    return result, todo, manifest, params


def _eta_text(began: float, fraction: float) -> str:
    from difflora_gui.jobs.context import format_duration

    if fraction <= 0:
        return "ETA --"
    return f"ETA {format_duration((time.monotonic() - began) / fraction * (1 - fraction))}"


def run_comfy_kontext(params: Mapping[str, Any], ctx) -> dict[str, Any]:
    """The job (see the module docstring): ``params`` as :data:`PARAMS`, plus an optional ``sources``
    list that replaces listing ``source_dir``. Returns the in-app tool's summary dict."""
    from difflora_gui.dataset.kontext import _report_scores
    from difflora_gui.dataset.kontext_pipeline import write_png

    values = dict(params)
    sources = values.pop("sources", None)
    values = SCHEMA.resolve(values, owner="comfyui kontext")
    result, todo, manifest, kparams = _prepare(values, sources, ctx)
    if not todo:
        ctx.progress(1, 1, "nothing to generate")
        return result.to_json()
    pool, only = _pool(values)
    servers = _fitting_servers(pool, only, values, ctx)
    ctx.raise_if_cancelled()
    ctx.log(f"generating {len(todo)} image(s) on ComfyUI: {', '.join(servers)}")
    total, steps = len(todo), values["steps"]
    work_queue: queue.Queue = queue.Queue()
    for item in todo:
        work_queue.put(item)
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    shared = {"remaining": total}
    threads = [
        threading.Thread(
            target=_worker,
            args=(pool, name, work_queue, shared, values, events, stop, ctx),
            name=f"comfy-kontext-{name}",
            daemon=True,
        )
        for name in servers
    ]
    for thread in threads:
        thread.start()
    began, finished, spent = time.monotonic(), 0, []
    in_flight: dict[str, int] = {}  # output name -> steps done
    alive, failures = len(threads), []
    failure: BaseException | None = None
    ctx.progress(0, total * steps, f"image 1 of {total} {_eta_text(began, 0)}")
    try:
        while shared["remaining"] > 0 and failure is None:
            if ctx.cancelled:
                break
            if alive == 0:
                failure = UserError("no ComfyUI server could finish the images: " + "; ".join(failures))
                break
            try:
                kind, server, item, data = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "exit":
                alive -= 1
            elif kind == "step":
                in_flight[item.output.name] = data
            elif kind == "down":
                in_flight.pop(item.output.name, None)
                failures.append(f"{server}: {data}")
                ctx.log(f"ComfyUI server {server} failed ({data}); its image goes to another server")
            elif kind == "error":
                failure = data
            elif kind == "skip":
                in_flight.pop(item.output.name, None)
                shared["remaining"] -= 1
                result.skipped.append({"path": str(item.source), "reason": data})
                ctx.log(f"skipped {item.source}: {data}")
            elif kind == "done":
                if ctx.cancelled:
                    break
                pixels, seed, work, seconds = data
                write_png(item.output, pixels)
                in_flight.pop(item.output.name, None)
                shared["remaining"] -= 1
                finished += 1
                spent.append(seconds)
                result.generated.append(item.output.name)
                result.seconds_per_item = (time.monotonic() - began) / finished
                manifest.record(item, seed, seconds, work)
                ctx.artifact(
                    "image", item.output, source=str(item.source), seed=seed, index=item.index,
                    seconds=round(seconds, 3), server=server,
                )  # fmt: skip
                _report_scores(item, kparams, result, ctx)
            if kind in ("step", "done"):
                done_units = finished * steps + sum(in_flight.values())
                fraction = done_units / (total * steps)
                if kind == "done":
                    what = f"image {finished} of {total} done: {item.output.name}"
                else:
                    running = f" ({len(in_flight)} running)" if len(in_flight) > 1 else ""
                    what = f"image {min(total, finished + 1)} of {total}{running}"
                ctx.progress(done_units, total * steps, f"{what} {_eta_text(began, fraction)}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)  # a running prompt is interrupted first (the client's bounded wait)
    if isinstance(failure, JobCancelled) or ctx.cancelled:
        raise JobCancelled()
    if failure is not None:
        raise failure
    return result.to_json()
