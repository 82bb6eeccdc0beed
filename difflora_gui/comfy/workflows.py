"""The shipped ComfyUI workflow templates and how a preview request becomes one of them.

The templates (``resources/comfy_workflows/*.json``) are API-format workflows without LoRA nodes:
each node carries ``_meta.difflora``, a role (``unet``, ``positive``, ``sampler`` ...) that says
what the builder fills in, so a node id can change in a template without touching this code.
The LoRA stack becomes a chain of loaders per request (N entries → N loader nodes), built
between the model loader and the node that consumes the model.

What a chain cannot express is refused, never rendered approximately: ComfyUI's
``LoraLoaderModelOnly`` applies the whole file at one strength, and WanVideoWrapper's
``WanVideoLoraBlockEdit`` can only switch blocks on or off (reference §7.1/7.2). A block-weighted
or layer-filtered entry then gets a message that suggests Export (a baked file), which carries
any weights into the file itself.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import ALL_GROUPS, parse_selector
from difflora_gui.paths import resources_dir
from difflora_gui.preview.request import LoraEntry, PreviewRequest

#: the sampler names of a preview request → ComfyUI's KSampler ``sampler_name``
KSAMPLER_NAMES = {"unipc": "uni_pc", "euler": "euler"}
#: WanVideoLoraBlockEdit declares 40 block inputs whatever the model (reference §7.1)
BLOCK_EDIT_INPUTS = 40
#: Wan2.2 A14B T2V hands over to the low-noise expert below this fraction of the timesteps
WAN22_T2V_BOUNDARY = 0.875
EXPORT_HINT = "use Export (a baked file) and render that file instead"


@dataclass(frozen=True)
class TemplateInfo:
    name: str  # the file name without .json
    title: str
    description: str
    kind: str  # "video" (a preview) or "image" (a Kontext edit)
    #: the model files the caller names (keys of ``models``)
    models: tuple[str, ...]


TEMPLATES = (
    TemplateInfo(
        "wan21_t2v",
        "Wan2.1 T2V (ComfyUI core nodes)",
        "One diffusion model; the LoRA stack as a chain of LoraLoaderModelOnly (style, accelerator, "
        "differential) at whole-file strengths.",
        "video",
        ("unet", "clip", "vae"),
    ),
    TemplateInfo(
        "wan22_t2v_a14b",
        "Wan2.2 A14B T2V, two experts (ComfyUI core nodes)",
        "High- and low-noise experts, each with its own LoRA chain; two KSamplerAdvanced split the "
        "steps where the high-noise expert hands over.",
        "video",
        ("unet_high", "unet_low", "clip", "vae"),
    ),
    TemplateInfo(
        "wanvideo_t2v",
        "Wan T2V through WanVideoWrapper",
        "kijai's WanVideoWrapper: WanVideoLoraSelect chained by prev_lora, with WanVideoLoraBlockEdit "
        "switching blocks on and off per LoRA.",
        "video",
        ("unet", "clip", "vae"),
    ),
    TemplateInfo(
        "flux_kontext_edit",
        "Flux Kontext image edit",
        "Edits an uploaded image by an instruction (a dataset's counterpart image).",
        "image",
        ("unet", "clip_l", "clip", "vae"),
    ),
)
_BY_NAME = {t.name: t for t in TEMPLATES}


def template_info(name: str) -> TemplateInfo:
    if name not in _BY_NAME:
        raise UserError(f"no ComfyUI workflow template {name!r} (known: {', '.join(_BY_NAME)})")
    return _BY_NAME[name]


def templates_dir() -> Path:
    return resources_dir() / "comfy_workflows"


def load_template(name: str) -> dict[str, Any]:
    """A fresh copy of the template (callers change it freely)."""
    template_info(name)
    path = templates_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the shipped workflow template: {error}", path=path) from error


def template_classes(name: str) -> set[str]:
    """The node classes a template needs, LoRA nodes included (they are added per request)."""
    classes = {node["class_type"] for node in load_template(name).values()}
    if name == "wanvideo_t2v":
        classes |= {"WanVideoLoraSelect", "WanVideoLoraBlockEdit"}
    elif name != "flux_kontext_edit":
        classes.add("LoraLoaderModelOnly")
    return classes


def missing_nodes(name: str, object_info: Mapping[str, Any]) -> list[str]:
    """The node classes of template ``name`` the server lacks (e.g. WanVideoWrapper not installed)."""
    return sorted(c for c in template_classes(name) if c not in object_info)


def roles(workflow: Mapping[str, Any]) -> dict[str, str]:
    """Role → node id, from the templates' ``_meta.difflora`` marks."""
    found = {}
    for node_id, node in workflow.items():
        role = ((node.get("_meta") or {}) if isinstance(node, Mapping) else {}).get("difflora")
        if role:
            found[role] = str(node_id)
    return found


def boundary_step(steps: int, shift: float, boundary: float = WAN22_T2V_BOUNDARY) -> int:
    """How many of ``steps`` the high-noise expert takes.

    diffusers' Wan2.2 pipeline switches experts at the first timestep below ``boundary`` × 1000;
    ComfyUI's ``simple`` schedule with ModelSamplingSD3(shift) visits sigma = s·t / (1 + (s−1)·t)
    at t = 1 − i/steps, so the high expert takes the steps whose sigma is at or above the boundary
    (at least the first one, which is always at sigma 1)."""
    high = 0
    for i in range(steps):
        t = 1.0 - i / steps
        sigma = shift * t / (1.0 + (shift - 1.0) * t)
        if sigma >= boundary:
            high += 1
    return max(1, high)


# --- the LoRA stack → loader chains ----------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    entry: LoraEntry
    strength: float
    blocks: frozenset[int] | None  # None: every block (no BlockEdit)


def _plan(entry: LoraEntry, strength: float, *, block_edit: bool, num_blocks: int | None):
    """(plan or None when the entry changes nothing, problem text or "")."""
    if strength == 0:
        return None, ""
    label = Path(entry.file).name
    selector = parse_selector(entry.selector)
    if selector.groups != ALL_GROUPS or selector.include or selector.exclude:
        return None, (
            f"{label}: a layer filter ({selector.to_text()}) cannot be sent to ComfyUI, whose LoRA "
            f"loaders apply every layer of the file; {EXPORT_HINT}"
        )
    if selector.blocks is None:
        return _Planned(entry, strength, None), ""
    limit = min(num_blocks or BLOCK_EDIT_INPUTS, BLOCK_EDIT_INPUTS)
    chosen = frozenset(b for b in selector.blocks if b < limit)
    if not chosen:
        return None, ""  # it selects no block this model has: it renders as if absent
    weights = {selector.block_weight(b) for b in chosen}
    if len(weights) > 1:
        node = "WanVideoWrapper's block edit" if block_edit else "ComfyUI's LoraLoaderModelOnly"
        return None, (
            f"{label}: its blocks have different weights ({selector.to_text()}), but {node} can only "
            f"switch blocks on or off; {EXPORT_HINT}"
        )
    # one weight on every chosen block is the same as that much more strength
    strength *= weights.pop()
    if block_edit:
        return _Planned(entry, strength, chosen), ""
    if num_blocks is not None and chosen == frozenset(range(num_blocks)):
        return _Planned(entry, strength, None), ""
    return None, (
        f"{label}: it applies to some blocks only ({selector.to_text()}), but ComfyUI's "
        f"LoraLoaderModelOnly applies the whole file; use the WanVideoWrapper template, or {EXPORT_HINT}"
    )


def _experts(template: str) -> tuple[str | None, ...]:
    return ("high", "low") if template == "wan22_t2v_a14b" else (None,)


def plan_loras(template: str, request: PreviewRequest, *, num_blocks: int | None = None):
    """({expert: [_Planned ...]}, problems): the chain per expert (None for one-model templates)."""
    chains: dict[str | None, list[_Planned]] = {}
    problems: list[str] = []
    for expert in _experts(template):
        chain = chains.setdefault(expert, [])
        for entry in request.loras:
            plan, problem = _plan(
                entry,
                entry.strength_for(expert),
                block_edit=template == "wanvideo_t2v",
                num_blocks=num_blocks,
            )
            if problem and problem not in problems:
                problems.append(problem)
            if plan is not None:
                chain.append(plan)
    return chains, problems


def request_problems(template: str, request: PreviewRequest, *, num_blocks: int | None = None) -> list[str]:
    """Why ``request`` cannot be rendered faithfully with ``template`` (empty: it can)."""
    if template_info(template).kind != "video":
        return [f"{template} is not a video template"]
    return plan_loras(template, request, num_blocks=num_blocks)[1]


def lora_format_problem(path: str | Path, *, block_edit: bool = False) -> str:
    """Why ComfyUI would not apply this LoRA file as meant ('' when it is fine), from its keys.

    ComfyUI's loader reads ``diffusion_model.X`` and ``lora_unet_X`` keys, not diffusers' or bare
    ``blocks.`` ones (reference §8: 0 keys consumed). WanVideoWrapper's block edit looks for
    ``diffusion_model.blocks.N.`` (§7.2): it silently drops ``lora_unet_`` keys (the LoRA does
    nothing) and crashes on bare ones. The app's comfy-format writer gives the keys both expect."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            keys = [k for k in json.loads(handle.read(length)) if k != "__metadata__"]
    except (OSError, ValueError, struct.error) as error:
        return f"{path.name}: not a readable safetensors file ({error})"
    if block_edit and any(k.startswith("lora_unet_") for k in keys):
        return (
            f"{path.name}: kohya/Musubi key names (lora_unet_…), which WanVideoWrapper's block edit drops; "
            "export it in comfy format"
        )
    for prefix, kind in (("transformer.", "diffusers"), ("blocks.", "bare blocks.…")):
        if any(k.startswith(prefix) for k in keys):
            return f"{path.name}: {kind} key names, which ComfyUI does not apply; export it in comfy format"
    return ""


# --- building -----------------------------------------------------------------------------------------


def _new_id(workflow: Mapping[str, Any]) -> str:
    numbers = [int(k) for k in workflow if str(k).isdigit()]
    return str(max(numbers, default=0) + 1)


def _server_name(entry: LoraEntry, lora_names: Mapping[str, str]) -> str:
    name = lora_names.get(entry.file)
    if not name:
        raise UserError(
            "the server does not list this LoRA (copy it to the server's LoRA folder first)", path=entry.file
        )
    return name


def _check_models(template: str, models: Mapping[str, str]) -> None:
    missing = [key for key in template_info(template).models if not models.get(key)]
    if missing:
        raise UserError(
            f"the {template} workflow needs the server's file name for: {', '.join(missing)} (set them in the comfyui preview backend's options, or the Kontext tool's fields)"
        )


def _native_chain(workflow, chain, *, source: str, consumer: str, lora_names, expert) -> None:
    """Insert LoraLoaderModelOnly × len(chain) between the model loader and its consumer."""
    upstream = [source, 0]
    for index, plan in enumerate(chain, start=1):
        node_id = _new_id(workflow)
        where = f"{expert}-noise " if expert else ""
        workflow[node_id] = {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {
                "model": upstream,
                "lora_name": _server_name(plan.entry, lora_names),
                "strength_model": float(plan.strength),
            },
            "_meta": {"title": f"{where}LoRA {index}: {Path(plan.entry.file).name}"},
        }
        upstream = [node_id, 0]
    workflow[consumer]["inputs"]["model"] = upstream


def block_edit_inputs(blocks: frozenset[int]) -> dict[str, bool]:
    """The 40 ``blocks.N.`` booleans of WanVideoLoraBlockEdit for the chosen blocks.

    Blocks a 30-block model lacks are set false: they match no key either way, and false keeps
    the node saying what is applied."""
    return {f"blocks.{i}.": i in blocks for i in range(BLOCK_EDIT_INPUTS)}


def _wrapper_chain(workflow, chain, *, model_loader: str, lora_names) -> None:
    """WanVideoLoraSelect chained by prev_lora into the model loader's ``lora`` input; a
    WanVideoLoraBlockEdit per entry that names blocks. An empty selection never reaches the
    wrapper: it reads an empty block set as "no filter" and would apply the whole file."""
    previous = None
    for index, plan in enumerate(chain, start=1):
        label = Path(plan.entry.file).name
        inputs: dict[str, Any] = {
            "lora": _server_name(plan.entry, lora_names),
            "strength": float(plan.strength),
        }
        if previous is not None:
            inputs["prev_lora"] = [previous, 0]
        if plan.blocks is not None:
            edit_id = _new_id(workflow)
            workflow[edit_id] = {
                "class_type": "WanVideoLoraBlockEdit",
                "inputs": block_edit_inputs(plan.blocks),
                "_meta": {"title": f"Blocks of LoRA {index}: {label}"},
            }
            inputs["blocks"] = [edit_id, 0]
        select_id = _new_id(workflow)
        workflow[select_id] = {
            "class_type": "WanVideoLoraSelect",
            "inputs": inputs,
            "_meta": {"title": f"LoRA {index}: {label}"},
        }
        previous = select_id
    if previous is not None:
        workflow[model_loader]["inputs"]["lora"] = [previous, 0]


def build_preview_workflow(
    template: str,
    request: PreviewRequest,
    *,
    lora_names: Mapping[str, str],
    models: Mapping[str, str],
    filename_prefix: str,
    num_blocks: int | None = None,
    boundary: float = WAN22_T2V_BOUNDARY,
) -> dict[str, Any]:
    """The API-format workflow that renders ``request`` with ``template``.

    ``lora_names``: entry.file → the name the server lists (after placing the file);
    ``models``: the server's file names for the template's ``models`` keys; ``filename_prefix``:
    one per render, since the server numbers files per prefix (reference §6); ``num_blocks``:
    the model's block count (block selections are checked against it)."""
    info = template_info(template)
    if info.kind != "video":
        raise UserError(f"{template} is not a video template")
    chains, problems = plan_loras(template, request, num_blocks=num_blocks)
    if problems:
        raise UserError("this LoRA stack cannot be rendered through ComfyUI: " + "; ".join(problems))
    _check_models(template, models)
    workflow = load_template(template)
    at = roles(workflow)

    def put(role: str, **values: Any) -> None:
        workflow[at[role]]["inputs"].update(values)

    sampler = KSAMPLER_NAMES[request.sampler]
    # the wrapper's loaders name their file input model_name
    clip_input, vae_input = ("model_name",) * 2 if template == "wanvideo_t2v" else ("clip_name", "vae_name")
    put("clip", **{clip_input: models["clip"]})
    put("vae", **{vae_input: models["vae"]})
    put("video", fps=float(request.fps))
    put("save", filename_prefix=filename_prefix)
    if template == "wanvideo_t2v":
        put("unet", model=models["unet"])
        put("prompts", positive_prompt=request.prompt, negative_prompt=request.negative_prompt)
        put("latent", width=request.width, height=request.height, num_frames=request.frames)
        # the wrapper's own sampler takes our scheduler names as they are
        put(
            "sampler",
            seed=request.seed,
            steps=request.steps,
            cfg=float(request.guidance),
            shift=float(request.flow_shift),
            scheduler=request.sampler,
        )
        _wrapper_chain(workflow, chains[None], model_loader=at["unet"], lora_names=lora_names)
        return workflow
    put("positive", text=request.prompt)
    put("negative", text=request.negative_prompt)
    put("latent", width=request.width, height=request.height, length=request.frames)
    common = {
        "steps": request.steps,
        "cfg": float(request.guidance),
        "sampler_name": sampler,
        "scheduler": "simple",
    }
    if template == "wan21_t2v":
        put("unet", unet_name=models["unet"])
        put("shift", shift=float(request.flow_shift))
        put("sampler", seed=request.seed, **common)
        _native_chain(
            workflow,
            chains[None],
            source=at["unet"],
            consumer=at["shift"],
            lora_names=lora_names,
            expert=None,
        )
        return workflow
    split = boundary_step(request.steps, request.flow_shift, boundary)
    for expert in ("high", "low"):
        put(f"unet_{expert}", unet_name=models[f"unet_{expert}"])
        put(f"shift_{expert}", shift=float(request.flow_shift))
        _native_chain(
            workflow,
            chains[expert],
            source=at[f"unet_{expert}"],
            consumer=at[f"shift_{expert}"],
            lora_names=lora_names,
            expert=expert,
        )
    # the high expert adds the noise and hands its half-denoised latent on; the low one finishes
    put(
        "sampler_high",
        noise_seed=request.seed,
        start_at_step=0,
        end_at_step=split,
        add_noise="enable",
        return_with_leftover_noise="enable",
        **common,
    )
    put(
        "sampler_low",
        noise_seed=request.seed,
        start_at_step=split,
        end_at_step=request.steps,
        add_noise="disable",
        return_with_leftover_noise="disable",
        **common,
    )
    return workflow


def build_kontext_workflow(
    image_name: str,
    prompt: str,
    *,
    models: Mapping[str, str],
    seed: int = 0,
    steps: int = 20,
    guidance: float = 2.5,
    filename_prefix: str,
) -> dict[str, Any]:
    """A Flux Kontext edit of the uploaded ``image_name`` (the name ``/upload/image`` returned,
    ``subfolder/name`` for a subfolder) by the instruction ``prompt``."""
    template = "flux_kontext_edit"
    _check_models(template, models)
    workflow = load_template(template)
    at = roles(workflow)
    node = lambda role: workflow[at[role]]["inputs"]  # noqa: E731
    node("unet")["unet_name"] = models["unet"]
    node("clip").update(clip_name1=models["clip_l"], clip_name2=models["clip"])
    node("vae")["vae_name"] = models["vae"]
    node("image")["image"] = image_name
    node("positive")["text"] = prompt
    # Kontext is guidance-distilled: the guidance goes to FluxGuidance and the sampler runs at cfg 1
    node("guidance")["guidance"] = float(guidance)
    node("sampler").update(seed=int(seed), steps=int(steps))
    node("save")["filename_prefix"] = filename_prefix
    return workflow
