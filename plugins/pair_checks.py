"""Built-in dataset tool ``check_pairs``: score every pair (SSIM, alignment, colour drift, sizes).

The job is :func:`difflora_gui.dataset.check_job.run_check_tool` (``run_check`` returning a
summary dict); its form is :data:`difflora_gui.dataset.check_config.CHECK_CONFIG` (resolution and
every threshold, with tooltips). The Dataset section fills in where the pairs come from:
``pairs`` (the open pair set, as a ``PairSet`` or its JSON) and ``dataset_folder`` (where
``scores-<resolution>.json`` is cached; with no ``pairs``, its ``pairs.json`` is checked). After
the job, the panel reads the scores with ``load_scores(dataset_folder, resolution)``. The same
check on the command line: ``python main.py dataset check A_DIR B_DIR``.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.dataset.check_config import CHECK_CONFIG
from difflora_gui.params import Param
from difflora_gui.specs import DatasetToolSpec

PARAMS = (
    *CHECK_CONFIG.params,
    Param(
        "dataset_folder", "path", "", "the dataset's folder (filled in by the Dataset section)", form=False
    ),
)


@hookimpl
def difflora_register_dataset_tools():
    return [
        DatasetToolSpec(
            name="check_pairs",
            title="Check pairs",
            description=(
                "Score every pair at the training resolution: SSIM, shift (phase correlation), colour "
                "drift (Lab, histograms), size and video mismatches; flags and a set summary, cached."
            ),
            params=PARAMS,
            run="difflora_gui.dataset.check_job:run_check_tool",
            lane="light",
        )
    ]
