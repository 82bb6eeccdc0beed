"""Dataset tool ``comfyui_kontext``: set B from set A with Flux Kontext on the ComfyUI servers.

The same counterparts as ``kontext_counterparts`` (same names, sizes, seeds, manifest, resumable,
skip-existing), rendered by the running ComfyUI servers of Settings ▸ ComfyUI servers instead of a
diffusers pipeline in this app; the work is :func:`difflora_gui.comfy.kontext_job.run_comfy_kontext`.

Lane ``light``: the job only uploads, waits and downloads (the GPUs are the servers'), and it
spreads the images over every healthy server itself, so it must not hold one server's
``comfy:<name>`` lane while it uses the others; the servers' own queues order its prompts
among the preview jobs'.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.comfy.kontext_job import PARAMS
from difflora_gui.specs import DatasetToolSpec


@hookimpl
def difflora_register_dataset_tools():
    return [
        DatasetToolSpec(
            name="comfyui_kontext",
            title="Counterparts with Kontext (ComfyUI servers)",
            description=(
                "Make set B from set A with FLUX.1 Kontext [dev] on your running ComfyUI servers: "
                "one instruction for every image, same size as its source, resumable; several "
                "servers share the images."
            ),
            params=PARAMS,
            run="difflora_gui.comfy.kontext_job:run_comfy_kontext",
            lane="light",
        )
    ]
