"""A user's own API-format workflow, with its inputs bound to preview parameters.

A :class:`Binding` says "this preview parameter goes into that input of that node". The app
suggests bindings from the node classes it knows (the prompt is the text that reaches the
sampler's ``positive``, not just any CLIPTextEncode), checks them against the server's
``/object_info`` in the user's terms, and writes values into a copy of the workflow with the
types ComfyUI expects: ComfyUI itself would turn ``1.7`` into 1 and ``"false"`` into true
(reference §0.5), so a value of the wrong type is refused here instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.comfy.protocol import node_label
from difflora_gui.comfy.validate import is_link, node_inputs
from difflora_gui.errors import UserError
from difflora_gui.lora.selector import parse_selector

#: preview parameter → the input types it may be bound to
PARAM_TYPES: dict[str, tuple[str, ...]] = {
    "prompt": ("STRING",),
    "negative_prompt": ("STRING",),
    "seed": ("INT",),
    "steps": ("INT",),
    "guidance": ("FLOAT",),
    "shift": ("FLOAT",),
    "strength": ("FLOAT",),
    # WanVideoLoraSelectByName takes the name as text
    "lora_name": ("COMBO", "STRING"),
    "block_weights": ("BLOCKS",),
    "width": ("INT",),
    "height": ("INT",),
    "frames": ("INT",),
    "fps": ("FLOAT", "INT"),
}
PARAMS = tuple(PARAM_TYPES)
REQUIRED_PARAMS = ("prompt", "seed")
#: the input name of a block_weights binding: every ``blocks.N.`` input of the node
BLOCKS_INPUT = "blocks.*"
UI_FORMAT_HINT = "this is a UI-format workflow: save it in ComfyUI with Export (API) and import that file"

_SAMPLER_SEEDS = ("seed", "noise_seed")
# (class_type, input, param), most specific first; a param takes the first match
_KNOWN_INPUTS = (
    ("WanVideoTextEncode", "positive_prompt", "prompt"),
    ("WanVideoTextEncode", "negative_prompt", "negative_prompt"),
    ("FluxGuidance", "guidance", "guidance"),
    ("ModelSamplingSD3", "shift", "shift"),
    ("WanVideoSampler", "shift", "shift"),
    ("EmptyHunyuanLatentVideo", "width", "width"),
    ("EmptyHunyuanLatentVideo", "height", "height"),
    ("EmptyHunyuanLatentVideo", "length", "frames"),
    ("WanVideoEmptyEmbeds", "width", "width"),
    ("WanVideoEmptyEmbeds", "height", "height"),
    ("WanVideoEmptyEmbeds", "num_frames", "frames"),
    ("EmptySD3LatentImage", "width", "width"),
    ("EmptySD3LatentImage", "height", "height"),
    ("EmptyLatentImage", "width", "width"),
    ("EmptyLatentImage", "height", "height"),
    ("CreateVideo", "fps", "fps"),
    ("SaveAnimatedWEBP", "fps", "fps"),
    ("VHS_VideoCombine", "frame_rate", "fps"),
)
_LORA_NODES = {  # class → (name input, strength input)
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "LoraLoader": ("lora_name", "strength_model"),
    "WanVideoLoraSelect": ("lora", "strength"),
}


@dataclass(frozen=True)
class Binding:
    param: str
    node_id: str
    input_name: str

    def to_json(self) -> dict[str, str]:
        return {"param": self.param, "node_id": self.node_id, "input_name": self.input_name}


def to_json(bindings: Iterable[Binding]) -> list[dict[str, str]]:
    return [b.to_json() for b in bindings]


def from_json(data: Any) -> list[Binding]:
    if not isinstance(data, list):
        raise UserError("a binding set must be a JSON list of {param, node_id, input_name}")
    bindings = []
    for item in data:
        if not isinstance(item, Mapping) or set(item) != {"param", "node_id", "input_name"}:
            raise UserError(f"not a binding (param, node_id, input_name): {item!r}")
        if item["param"] not in PARAM_TYPES:
            raise UserError(f"unknown preview parameter {item['param']!r} (known: {', '.join(PARAMS)})")
        bindings.append(Binding(str(item["param"]), str(item["node_id"]), str(item["input_name"])))
    return bindings


def is_ui_format(workflow: Any) -> bool:
    return isinstance(workflow, Mapping) and "nodes" in workflow and "links" in workflow


def load_api_workflow(path: str | Path) -> dict[str, Any]:
    """A workflow file exported from ComfyUI with Export (API); the UI format is refused (its
    widgets are positional lists without input names, which cannot be bound or sent)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the workflow: {error}", path=path) from error
    if is_ui_format(data):
        raise UserError(UI_FORMAT_HINT, path=path)
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(n, Mapping) and isinstance(n.get("class_type"), str) for n in data.values())
    ):
        raise UserError("not an API-format ComfyUI workflow (node id → class_type and inputs)", path=path)
    return data


# --- suggestions -----------------------------------------------------------------------------------


def _linked_source(workflow: Mapping[str, Any], value: Any) -> str | None:
    return str(value[0]) if is_link(value) and str(value[0]) in workflow else None


def _text_upstream(workflow: Mapping[str, Any], start: str | None) -> str | None:
    """The CLIPTextEncode a conditioning link comes from, followed through FluxGuidance,
    ReferenceLatent and the like (their ``conditioning`` input); None through ConditioningZeroOut
    (its text is not a negative prompt)."""
    seen = set()
    node_id = start
    while node_id is not None and node_id not in seen:
        seen.add(node_id)
        node = workflow[node_id]
        inputs = node.get("inputs") or {}
        if node.get("class_type") == "ConditioningZeroOut":
            return None
        if isinstance(inputs.get("text"), str):
            return node_id
        node_id = _linked_source(workflow, inputs.get("conditioning"))
    return None


def _samplers(workflow: Mapping[str, Any]) -> list[str]:
    found = []
    for node_id, node in workflow.items():
        inputs = node.get("inputs") or {}
        if any(
            isinstance(inputs.get(k), int) and not isinstance(inputs.get(k), bool) for k in _SAMPLER_SEEDS
        ):
            found.append(str(node_id))
    return found


def _lora_chain_end(workflow: Mapping[str, Any]) -> str | None:
    """The LoRA loader nearest the sampler: a chain grows at its end, where the LoRA under test
    usually goes (no other loader takes its output as its model or prev_lora)."""
    loras = [str(k) for k, n in workflow.items() if n.get("class_type") in _LORA_NODES]
    fed = {
        _linked_source(workflow, workflow[k]["inputs"].get(name))
        for k in loras
        for name in ("model", "prev_lora")
    }
    ends = [k for k in loras if k not in fed]
    # two chains (one per Wan2.2 expert) would both need the change: no suggestion then
    return ends[0] if len(ends) == 1 else None


def suggest_bindings(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[Binding]:
    """A first guess at the bindings of ``workflow``, from the classes the app knows. Only widget
    values (unlinked inputs) of a type the parameter accepts are suggested."""
    if is_ui_format(workflow):
        return []
    bindings: dict[str, Binding] = {}

    def offer(param: str, node_id: str | None, input_name: str) -> None:
        if node_id is None or param in bindings:
            return
        node = workflow.get(node_id) or {}
        value = (node.get("inputs") or {}).get(input_name)
        if input_name != BLOCKS_INPUT and (value is None or is_link(value)):
            return
        if not _type_problem(param, node, input_name, object_info):
            bindings[param] = Binding(param, node_id, input_name)

    samplers = _samplers(workflow)
    for node_id in samplers:
        inputs = workflow[node_id]["inputs"]
        offer("prompt", _text_upstream(workflow, _linked_source(workflow, inputs.get("positive"))), "text")
        positive = bindings.get("prompt")
        negative = _text_upstream(workflow, _linked_source(workflow, inputs.get("negative")))
        if negative is not None and (positive is None or negative != positive.node_id):
            offer("negative_prompt", negative, "text")
        if inputs.get("add_noise", "enable") == "enable":  # a second stage without noise ignores its seed
            offer("seed", node_id, "seed" if "seed" in inputs else "noise_seed")
    for class_type, input_name, param in _KNOWN_INPUTS:
        matches = [str(k) for k, n in workflow.items() if n.get("class_type") == class_type]
        if len(matches) == 1:  # two of them (Wan2.2's per-expert shift) must change together
            offer(param, matches[0], input_name)
    # steps and cfg: a split over two samplers (Wan2.2) has to change in both, which one binding cannot
    if len(samplers) == 1:
        offer("steps", samplers[0], "steps")
        offer("guidance", samplers[0], "cfg")
    lora = _lora_chain_end(workflow)
    if lora is not None:
        name_input, strength_input = _LORA_NODES[workflow[lora]["class_type"]]
        offer("lora_name", lora, name_input)
        offer("strength", lora, strength_input)
        offer("block_weights", _linked_source(workflow, workflow[lora]["inputs"].get("blocks")), BLOCKS_INPUT)
    order = {p: i for i, p in enumerate(PARAMS)}
    return sorted(bindings.values(), key=lambda b: order[b.param])


# --- checks ------------------------------------------------------------------------------------------


def _block_inputs(node: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[str]:
    info = object_info.get(node.get("class_type"))
    specs = node_inputs(info) if isinstance(info, Mapping) else {}
    return [
        n for n, s in specs.items() if n.startswith("blocks.") and n.endswith(".") and s.type == "BOOLEAN"
    ]


def _type_problem(
    param: str, node: Mapping[str, Any], input_name: str, object_info: Mapping[str, Any]
) -> str:
    class_type = node.get("class_type")
    info = object_info.get(class_type)
    if not isinstance(info, Mapping):
        return f"the server has no node {class_type!r}"
    if PARAM_TYPES[param] == ("BLOCKS",):
        if input_name != BLOCKS_INPUT or not _block_inputs(node, object_info):
            return f"{param} needs a node with blocks.N. switches (WanVideoLoraBlockEdit), bound as {BLOCKS_INPUT!r}"
        return ""
    spec = node_inputs(info).get(input_name)
    if spec is None:
        return f"{class_type} has no input {input_name!r}"
    if spec.type not in PARAM_TYPES[param]:
        return f"{input_name} is {spec.type}, but {param} needs {' or '.join(PARAM_TYPES[param])}"
    return ""


def check_bindings(workflow: Any, bindings: Sequence[Binding], object_info: Mapping[str, Any]) -> list[str]:
    """Every problem of ``bindings`` on ``workflow``, one line each (empty: they can be used)."""
    if is_ui_format(workflow):
        return [UI_FORMAT_HINT]
    if not isinstance(workflow, Mapping):
        return ["not an API-format ComfyUI workflow (node id → class_type and inputs)"]
    problems = []
    seen: dict[str, Binding] = {}
    targets: dict[tuple[str, str], str] = {}
    for binding in bindings:
        if binding.param not in PARAM_TYPES:
            problems.append(f"{binding.param!r} is not a preview parameter (known: {', '.join(PARAMS)})")
            continue
        if binding.param in seen:
            problems.append(
                f"{binding.param} is bound twice (node {seen[binding.param].node_id} and node {binding.node_id})"
            )
            continue
        seen[binding.param] = binding
        node = workflow.get(binding.node_id)
        if not isinstance(node, Mapping):
            problems.append(f"{binding.param}: node {binding.node_id} is not in the workflow")
            continue
        label = node_label(binding.node_id, node.get("class_type"))
        problem = _type_problem(binding.param, node, binding.input_name, object_info)
        if problem:
            problems.append(f"{binding.param} → {label}: {problem}")
            continue
        value = (node.get("inputs") or {}).get(binding.input_name)
        if is_link(value):
            problems.append(
                f"{binding.param} → {label}: {binding.input_name} is connected to node {value[0]}; "
                "bind a widget value instead"
            )
        other = targets.setdefault((binding.node_id, binding.input_name), binding.param)
        if other != binding.param:
            problems.append(f"{binding.param} and {other} are both bound to {binding.input_name} of {label}")
    for param in REQUIRED_PARAMS:
        if param not in seen:
            problems.append(f"{param} is not bound to any input (every preview sets it)")
    return problems


# --- applying ----------------------------------------------------------------------------------------


def _typed(param: str, spec_type: str, value: Any) -> Any:
    if spec_type == "INT":
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise UserError(f"{param} must be a whole number, got {value!r}")
        return int(value)
    if spec_type == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{param} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UserError(f"{param} must be text, got {value!r}")
    return value


def block_switches(value: Any, names: Sequence[str]) -> dict[str, bool]:
    """``{block: weight}`` or selector text → the on/off inputs ``names`` (``blocks.N.``). Only 0
    and 1 can be switches; other weights need Export (a baked file)."""
    if isinstance(value, Mapping):
        weights = {int(b): float(w) for b, w in value.items()}
        weight = lambda b: weights.get(b, 0.0)  # noqa: E731
    else:
        selector = parse_selector(str(value))
        weight = selector.block_weight
    switches = {}
    for name in names:
        w = weight(int(name.split(".")[1]))
        if w not in (0, 1):
            raise UserError(
                f"block weight {w:g} for {name[:-1]}: the workflow's block edit can only switch blocks on or "
                "off; use Export (a baked file) for weighted blocks"
            )
        switches[name] = bool(w)
    if not any(switches.values()):
        # WanVideoWrapper reads an empty selection as "no filter" and applies every block
        raise UserError("no block is switched on; set the LoRA's strength to 0 to leave it out")
    return switches


def apply_bindings(
    workflow: Mapping[str, Any],
    bindings: Sequence[Binding],
    values: Mapping[str, Any],
    object_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``workflow`` with ``values`` (param → value) written into the bound inputs.

    Types follow the input: ``object_info`` when given, else the value already there (an INT
    input stays an int, a FLOAT becomes a float)."""
    result = copy.deepcopy(dict(workflow))
    for binding in bindings:
        if binding.param not in values:
            continue
        node = result.get(binding.node_id)
        if not isinstance(node, Mapping):
            raise UserError(f"{binding.param}: node {binding.node_id} is not in the workflow")
        inputs = node.setdefault("inputs", {})
        value = values[binding.param]
        if binding.input_name == BLOCKS_INPUT:
            names = _block_inputs(node, object_info) if object_info else []
            names = names or [n for n in inputs if n.startswith("blocks.") and n.endswith(".")]
            inputs.update(block_switches(value, names))
            continue
        spec = (
            node_inputs(object_info.get(node.get("class_type")) or {}).get(binding.input_name)
            if object_info
            else None
        )
        spec_type = spec.type if spec is not None else _type_of(inputs.get(binding.input_name), binding.param)
        inputs[binding.input_name] = _typed(binding.param, spec_type, value)
    return result


def _type_of(current: Any, param: str) -> str:
    kinds = PARAM_TYPES[param]
    if len(kinds) > 1 and "INT" in kinds:  # fps: whichever the node holds now
        return "INT" if isinstance(current, int) and not isinstance(current, bool) else "FLOAT"
    return kinds[0]
