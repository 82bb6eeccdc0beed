"""A preview rendered through the user's own API-format workflow and its bindings.

The ``comfyui`` backend's ``workflow_file`` option names a workflow exported from ComfyUI with
Export (API); ``bindings_file`` names the bindings the bindings editor saves (blank: the app's
suggestions). The request's values go into the bound inputs; what is not bound stays as the
workflow has it, so the user's sampler, scheduler and models are theirs to choose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from difflora_gui.comfy.binding import (
    PARAMS,
    Binding,
    apply_bindings,
    check_bindings,
    from_json,
    load_api_workflow,
    suggest_bindings,
)
from difflora_gui.errors import UserError
from difflora_gui.lora.selector import parse_selector


def load_bindings(bindings_file: str | Path) -> list[Binding]:
    path = Path(bindings_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the bindings: {error}", path=path) from error
    try:
        return from_json(data)
    except UserError as error:
        raise UserError(str(error), path=path) from None


def _lora_values(request, bound: set[str], lora_names: Mapping[str, str]) -> dict[str, Any]:
    """The one LoRA's name, strength and (when its selector names blocks) block switches."""
    entries = list(request.loras)
    if "lora_name" not in bound:
        if entries:
            raise UserError(
                f"your workflow binds no LoRA (lora_name); the stack has {len(entries)} on — "
                "bind lora_name in the bindings or switch them off"
            )
        return {}
    if len(entries) != 1:
        told = (
            "none on — switch one on"
            if not entries
            else f"{len(entries)} — switch the others off or bind more"
        )
        raise UserError(f"your workflow binds one LoRA; the stack has {told}")
    entry = entries[0]
    values: dict[str, Any] = {"lora_name": lora_names[entry.file], "strength": entry.strength_for(None)}
    # a selector without blocks leaves the workflow's own block edit (if any) as it is
    if parse_selector(entry.selector).blocks is not None:
        values["block_weights"] = entry.selector
    return values


def build_bound_workflow(
    workflow_file: str | Path,
    bindings_file: str | Path | None,
    request,
    *,
    lora_names: Mapping[str, str],
    object_info: Mapping[str, Any],
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The workflow of ``workflow_file`` with the request's values in its bound inputs.

    ``request.loras`` are the entries that change anything (strength not 0); ``lora_names`` maps
    each entry's file to its name as the server lists it."""
    workflow = load_api_workflow(workflow_file)
    if bindings_file:
        bindings = load_bindings(bindings_file)
    else:
        bindings = suggest_bindings(workflow, object_info)
    problems = check_bindings(workflow, bindings, object_info)
    if problems:
        where = f"the bindings {Path(bindings_file).name}" if bindings_file else "the suggested bindings"
        raise UserError(
            f"{where} do not fit the workflow {Path(workflow_file).name}: {'; '.join(problems)}. "
            "Fix them in Tools ▸ ComfyUI workflow bindings…"
        )
    bound = {b.param for b in bindings}
    values: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "steps": request.steps,
        "guidance": request.guidance,
        "shift": request.flow_shift,
        "width": request.width,
        "height": request.height,
        "frames": request.frames,
        "fps": request.fps,
    }
    values.update(_lora_values(request, bound, lora_names))
    unbound = [p for p in PARAMS if p not in bound]
    if unbound and log is not None:
        log(f"{Path(workflow_file).name}: not bound, left as the workflow has them: {', '.join(unbound)}")
    return apply_bindings(workflow, bindings, values, object_info)
