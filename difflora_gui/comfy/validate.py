"""Check an API-format workflow against a server's ``/object_info`` before it is sent.

ComfyUI's own validation has holes (reference §0.5): unknown input names are ignored, V3
``COMBO`` values are not checked, ``"false"`` is read as true, ``1.7`` becomes ``1``, and nodes
that no output depends on are not validated at all. Every one of those would surface much later
as a wrong render or a run-time error, so the app checks every node itself and says what is wrong
in the user's terms, one line per problem.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from difflora_gui.comfy.protocol import node_label

_SCALARS = ("INT", "FLOAT", "STRING", "BOOLEAN")
_MAX_CHOICES_SHOWN = 6


@dataclass(frozen=True)
class InputSpec:
    """One input of a node as ``/object_info`` declares it, either spelling."""

    name: str
    #: ``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO``, or a link type (``MODEL``, ``LATENT`` ...)
    type: str
    required: bool
    choices: tuple[Any, ...] | None = None
    extra: Mapping[str, Any] | None = None

    @property
    def minimum(self):
        return (self.extra or {}).get("min")

    @property
    def maximum(self):
        return (self.extra or {}).get("max")


def parse_input(name: str, spec: Any, *, required: bool) -> InputSpec:
    """``["INT", {...}]``, a legacy combo ``[["a","b"], {...}]`` or a V3 ``["COMBO", {"options": [...]}]``."""
    spec = list(spec) if isinstance(spec, list | tuple) else [spec]
    first = spec[0] if spec else "*"
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if isinstance(first, list | tuple):
        return InputSpec(name, "COMBO", required, tuple(first), extra)
    if first == "COMBO":
        return InputSpec(name, "COMBO", required, tuple(extra.get("options") or ()), extra)
    return InputSpec(name, str(first), required, None, extra)


def node_inputs(info: Mapping[str, Any]) -> dict[str, InputSpec]:
    """The inputs a client may set (hidden ones are filled in by the server)."""
    declared = info.get("input") or {}
    specs = {}
    for section, required in (("required", True), ("optional", False)):
        for name, spec in (declared.get(section) or {}).items():
            specs[name] = parse_input(name, spec, required=required)
    return specs


def combo_choices(object_info: Mapping[str, Any], class_type: str, input_name: str) -> list[Any] | None:
    """The choices a combo input offers (a model folder's files), or ``None`` if it is no combo."""
    info = object_info.get(class_type)
    spec = node_inputs(info).get(input_name) if isinstance(info, Mapping) else None
    return list(spec.choices) if spec is not None and spec.choices is not None else None


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def validate_workflow(workflow: Any, object_info: Mapping[str, Any]) -> list[str]:
    """Every problem of ``workflow`` (API format: node id → ``{"class_type", "inputs"}``) against
    the nodes ``object_info`` describes, one line each; an empty list means it may be sent."""
    if not isinstance(workflow, Mapping) or not workflow:
        return ["the workflow is empty or not an API-format workflow (node id → class_type and inputs)"]
    if "nodes" in workflow and "links" in workflow:
        return ["this is a UI-format workflow: save it in ComfyUI with Export (API) and import that file"]
    problems: list[str] = []
    has_output = False
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            problems.append(f"node {node_id}: has no class_type (not an API-format node)")
            continue
        class_type = node["class_type"]
        info = object_info.get(class_type)
        if not isinstance(info, Mapping):
            problems.append(
                f"{node_label(node_id, class_type)}: the server has no node {class_type!r} "
                "(a custom node that is not installed, or a misspelt name)"
            )
            continue
        has_output = has_output or bool(info.get("output_node"))
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            problems.append(f"{node_label(node_id, class_type)}: its inputs are not a mapping")
            continue
        problems.extend(_check_node(str(node_id), class_type, inputs, info, workflow, object_info))
    if not has_output and not any("server has no node" in p for p in problems):
        problems.append("the workflow has no output node (SaveImage, SaveVideo, VHS_VideoCombine ...)")
    return problems


def _check_node(node_id, class_type, inputs, info, workflow, object_info) -> list[str]:
    label = node_label(node_id, class_type)
    specs = node_inputs(info)
    problems = []
    # VideoHelperSuite declares format-dependent widgets inside a combo's extra info; the chosen
    # format's widgets are ordinary inputs of the node
    for spec in list(specs.values()):
        formats = (spec.extra or {}).get("formats")
        chosen = inputs.get(spec.name)
        if isinstance(formats, Mapping) and isinstance(chosen, str):
            for widget in formats.get(chosen) or []:
                if isinstance(widget, list | tuple) and widget and isinstance(widget[0], str):
                    specs.setdefault(widget[0], parse_input(widget[0], list(widget[1:]), required=False))
    for name, spec in specs.items():
        if spec.required and name not in inputs:
            problems.append(f"{label}: required input {name!r} is missing")
    for name, value in inputs.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(f"{label}: {_undeclared(name, class_type, specs)}")
        elif is_link(value):
            problems.extend(_check_link(label, spec, value, workflow, object_info))
        else:
            problem = check_value(spec, value)
            if problem:
                problems.append(f"{label}: {problem}")
    return problems


def _undeclared(name: str, class_type: str, specs: Mapping[str, InputSpec]) -> str:
    text = f"{name!r} is not an input of {class_type} (ComfyUI would ignore it)"
    close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.6)
    return text + (f"; did you mean {close[0]!r}?" if close else "")


def _check_link(label, spec: InputSpec, value, workflow, object_info) -> list[str]:
    source_id = str(value[0])
    index = value[1]
    source = workflow.get(source_id)
    if source is None and isinstance(value[0], int):
        source = workflow.get(value[0])
    if not isinstance(source, Mapping):
        return [f"{label}: {spec.name} links to node {source_id}, which is not in the workflow"]
    source_info = object_info.get(source.get("class_type"))
    if not isinstance(source_info, Mapping):
        return []  # the unknown class is reported on its own node
    outputs = list(source_info.get("output") or [])
    source_label = node_label(source_id, source.get("class_type"))
    if not 0 <= index < len(outputs):
        return [f"{label}: {spec.name} links to output {index} of {source_label}, which has {len(outputs)}"]
    produced = outputs[index]
    if not _types_match(spec, produced):
        shown = "a choice" if isinstance(produced, list | tuple) else produced
        return [f"{label}: {spec.name} needs {spec.type}, but output {index} of {source_label} gives {shown}"]
    return []


def _types_match(spec: InputSpec, produced: Any) -> bool:
    if spec.type == "COMBO":  # a primitive or a node that outputs the choices
        return isinstance(produced, list | tuple) or produced in ("COMBO", "*") or produced in _SCALARS
    if isinstance(produced, list | tuple):
        return False
    wanted = {t.strip() for t in spec.type.split(",")}
    given = {t.strip() for t in str(produced).split(",")}
    return "*" in wanted or "*" in given or bool(wanted & given)


def check_value(spec: InputSpec, value: Any) -> str:
    """Why ``value`` is not acceptable for ``spec`` ('' if it is), as ``name value ...``."""
    name = spec.name
    if spec.type == "COMBO":
        return _check_choice(spec, value)
    if spec.type == "BOOLEAN":
        if isinstance(value, bool):
            return ""
        hint = " (ComfyUI would read any non-empty text as true)" if isinstance(value, str) else ""
        return f"{name} {value!r} is not true or false{hint}"
    if spec.type == "INT":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} {value!r} is not a whole number"
        if isinstance(value, float) and not value.is_integer():
            return f"{name} {value!r} is not a whole number (ComfyUI would cut it to {int(value)})"
        return _check_range(spec, value)
    if spec.type == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{name} {value!r} is not a number"
        return _check_range(spec, value)
    if spec.type == "STRING":
        return "" if isinstance(value, str) else f"{name} {value!r} is not text"
    return f"{name} needs a link from a node's {spec.type} output, not the value {_short(value)}"


def _check_range(spec: InputSpec, value) -> str:
    shown = _number(value)
    if spec.minimum is not None and value < spec.minimum:
        return f"{spec.name} {shown} is below the minimum {_number(spec.minimum)}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{spec.name} {shown} is above the maximum {_number(spec.maximum)}"
    return ""


#: choices a real server lists whatever its model folders hold (ComfyUI 0.8.0's VAELoader)
_BUILT_IN_CHOICES = frozenset({"pixel_space"})


def _check_choice(spec: InputSpec, value) -> str:
    choices = list(spec.choices or ())
    values = value if (spec.extra or {}).get("multiselect") and isinstance(value, list) else [value]
    for item in values:
        if item in choices:
            continue
        if not [c for c in choices if c not in _BUILT_IN_CHOICES]:
            # VAELoader always lists its built-in "pixel_space": only files say a folder is filled
            return f"{spec.name} {_short(item)}: the server offers no choices (no files in its model folder?)"
        shown = ", ".join(_short(c) for c in choices[:_MAX_CHOICES_SHOWN])
        more = f" and {len(choices) - _MAX_CHOICES_SHOWN} more" if len(choices) > _MAX_CHOICES_SHOWN else ""
        return f"{spec.name} {_short(item)} is not one of the server's choices ({shown}{more})"
    return ""


def _number(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
