"""Built-in dataset tool ``kontext_counterparts``: set B from set A with FLUX.1 Kontext [dev].

Runs the job :func:`difflora_gui.dataset.kontext.run` on the device lane (one GPU job at a time
per card). Its parameters are :data:`difflora_gui.dataset.kontext_params.KONTEXT_PARAMS`: the model
folder (empty = Settings ▸ Kontext model folder), the instruction (default: the model card's
simplification prompt; the panel stores the edited text in the project), seed, steps, guidance,
the output folder, and advanced device, dtype, offload and working-area settings. The job reports
every finished image as an ``image`` artifact (meta ``source``, ``seed``, ``index``) and, with the
pair checks installed, an ``ssim`` metric per pair, so the panel can score pairs as they arrive.
Resumable: a rerun skips the images already written. Same command: ``python main.py dataset
kontext SRC_DIR --out DIR --model PATH``.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.dataset.kontext_params import KONTEXT_PARAMS
from difflora_gui.specs import DatasetToolSpec


@hookimpl
def difflora_register_dataset_tools():
    return [
        DatasetToolSpec(
            name="kontext_counterparts",
            title="Counterparts with Kontext",
            description=(
                "Make set B from set A with FLUX.1 Kontext [dev] (a local diffusers folder): one "
                "instruction for every image, same size as its source, resumable."
            ),
            params=KONTEXT_PARAMS,
            run="difflora_gui.dataset.kontext:run",
            lane="device",
        )
    ]
