"""The merge engine's own options as parameter schemas, so the panel builds their forms generically.

These are not strategy parameters: the rank policy, the strength (alpha, weights) and the output
options apply to every strategy (``MergeParams`` fields). Qt-free; help texts follow the
``merge`` command's ``--help``.
"""

from __future__ import annotations

from typing import Any

from difflora_gui.merge.params import COMPUTE_DTYPES, OUTPUT_FORMATS, SAVE_DTYPES, MergeParams
from difflora_gui.merge.rank import RANK_MODES
from difflora_gui.params import Param, ParamSchema

#: the output dtype choice meaning "the inputs' dtype" (``save_dtype=None``)
SAME_AS_INPUTS = "same as inputs"

RANK_PARAMS = ParamSchema(
    (
        Param(
            "rank_mode",
            "choice",
            "fixed",
            "fixed: the same rank for every module; energy / sv_ratio / sv_cumulative: a rank per module "
            "chosen from its singular values (kohya resize_lora's dynamic methods)",
            title="Rank mode",
            choices=RANK_MODES,
        ),
        Param(
            "rank",
            "int",
            4,
            "output rank of every module (fixed mode), or the most a dynamic mode may keep; 0 = no "
            "truncation: every non-zero singular value, the exact difference at rank r_a + r_b",
            title="Rank",
            minimum=0,
        ),
        Param(
            "energy",
            "float",
            0.99,
            "keep the smallest rank whose singular values hold this fraction of the module's Frobenius "
            "energy (sum of squares)",
            title="Energy kept",
            minimum=0.0,
            maximum=1.0,
            step=0.0001,
        ),
        Param(
            "sv_ratio",
            "float",
            10.0,
            "keep the singular values larger than the largest one divided by this ratio",
            title="Singular value ratio",
            minimum=1.0,
        ),
        Param(
            "sv_cumulative",
            "float",
            0.9,
            "keep the smallest rank whose singular values add up to this fraction of their sum",
            title="Cumulative fraction",
            minimum=0.0,
            maximum=1.0,
            step=0.0001,
        ),
    )
)
#: the rank-policy parameter each dynamic mode uses (the others are hidden in that mode)
MODE_PARAMS = {"energy": "energy", "sv_ratio": "sv_ratio", "sv_cumulative": "sv_cumulative"}

STRENGTH_PARAMS = ParamSchema(
    (
        Param(
            "alpha",
            "float",
            1.0,
            "multiplies the difference: ΔW_out = alpha · (w_a·ΔW_a − w_b·ΔW_b); stored in the file, so the "
            "slider works at strength 1",
            title="Alpha",
        ),
        Param(
            "auto_alpha",
            "bool",
            False,
            "choose alpha so that the mean ‖ΔW‖ of the merged modules in the output equals the target "
            "norm (the difference of two similar LoRAs is much weaker than either)",
            title="Auto alpha",
        ),
        Param(
            "target_norm",
            "str",
            "a",
            "auto alpha target: the mean ‖ΔW‖ of LoRA A (a), of B (b), their mean (mean), or a number",
            title="Target norm",
        ),
        Param("weight_a", "float", 1.0, "weight of LoRA A (concept present)", title="Weight A"),
        Param(
            "weight_b",
            "float",
            1.0,
            "weight of LoRA B (concept absent), which is subtracted",
            title="Weight B",
        ),
    )
)

OUTPUT_PARAMS = ParamSchema(
    (
        Param(
            "format",
            "choice",
            "comfy",
            "key format of the output: comfy loads in ComfyUI, WanVideoWrapper and diffusers; musubi and "
            "diffusers write those trainers' key names",
            title="Format",
            choices=OUTPUT_FORMATS,
        ),
        Param(
            "save_dtype",
            "choice",
            SAME_AS_INPUTS,
            "dtype of the written tensors (default: the inputs')",
            title="Dtype",
            choices=(SAME_AS_INPUTS, *SAVE_DTYPES),
        ),
        Param(
            "overwrite",
            "bool",
            False,
            "replace the output file if it exists (otherwise an existing file is never touched)",
            title="Overwrite",
        ),
        Param(
            "analyze",
            "bool",
            False,
            "also write the analysis as JSON and CSV beside the output (<name>.analysis.json/.csv)",
            title="Analysis files",
        ),
        Param(
            "exclude_non_targeted",
            "bool",
            False,
            "leave modules outside the targets (or dropped by a filter) out of the file instead of "
            "writing them as zeros",
            title="Leave out non-targets",
        ),
        Param(
            "title",
            "str",
            None,
            "title stored in the file's metadata (default: the output's name)",
            title="Title",
            optional=True,
            advanced=True,
        ),
        Param(
            "dtype",
            "choice",
            "float32",
            "compute precision of the merge (Gram matrices are always float64)",
            title="Compute dtype",
            choices=COMPUTE_DTYPES,
            advanced=True,
        ),
    )
)


def form_values(params: MergeParams) -> dict[str, dict[str, Any]]:
    """The three engine forms' values for a recipe."""
    data = params.to_json()
    output = {p.name: data[p.name] for p in OUTPUT_PARAMS}
    if output["save_dtype"] in (None, ""):
        output["save_dtype"] = SAME_AS_INPUTS
    return {
        "rank": {p.name: data[p.name] for p in RANK_PARAMS},
        "strength": {p.name: data[p.name] for p in STRENGTH_PARAMS},
        "output": output,
    }


def merge_fields(rank: dict[str, Any], strength: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """``MergeParams`` keyword arguments from the three forms' values."""
    fields = {**rank, **strength, **output}
    if fields.get("save_dtype") == SAME_AS_INPUTS:
        fields["save_dtype"] = None
    return fields
