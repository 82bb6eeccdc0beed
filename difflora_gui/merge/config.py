"""The merge recipe's one declaration: every field of ``MergeParams``, its flag, form and help.

``python main.py merge``'s flags (``commands/merge_cmd.py``), the Merge workbench's rank, strength
and output forms, the stored recipe and "Copy command" all come from :data:`MERGE_CONFIG`;
``MergeParams`` is checked against it when imported. Qt-free and import-light (no torch).
"""

from __future__ import annotations

from typing import Any

from difflora_gui.config import ConfigDeclaration, Param, when
from difflora_gui.merge.rank import RANK_MODES

COMPUTE_DTYPES = ("float32", "float64")
SAVE_DTYPES = ("float32", "float16", "bfloat16")
OUTPUT_FORMATS = ("comfy", "musubi", "diffusers")
TARGET_NORMS = ("a", "b", "mean")
#: what ``--expert`` may pick: both experts of a Wan2.2 A14B pair, or one of them
EXPERT_CHOICES = ("both", "high", "low", "none")
#: the per-expert input fields (``lora_a_high`` …), each an optional path
EXPERT_INPUTS = ("lora_a_high", "lora_a_low", "lora_b_high", "lora_b_low")
DEFAULT_STRATEGY = "full_svd"
DTYPE_ALIASES = {"float": "float32", "fp32": "float32", "double": "float64", "fp64": "float64"}
SAVE_DTYPE_ALIASES = {
    "float": "float32",
    "fp32": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
}
#: the output dtype entry meaning "the inputs' dtype" (``save_dtype=None``)
SAME_AS_INPUTS = "same as inputs"

GROUPS = (
    ("inputs", "inputs and output"),
    ("targets", "what to merge"),
    ("strength", "strength"),
    ("rank", "rank"),
    ("strategy", "strategy"),
    ("output", "output file"),
    ("running", "running"),
)

MERGE_CONFIG = ConfigDeclaration(
    name="merge recipe",
    groups=GROUPS,
    params=(
        # --- inputs and output (the workbench's cards and output row) --------------------------
        Param(
            "lora_a",
            "path",
            "",
            "LoRA A: trained with the concept (.safetensors, any Wan LoRA format)",
            title="LoRA A",
            group="inputs",
            metavar="FILE",
            form=False,
        ),
        Param(
            "lora_b",
            "path",
            "",
            "LoRA B: trained without the concept (subtracted)",
            title="LoRA B",
            group="inputs",
            metavar="FILE",
            form=False,
        ),
        # Wan2.2 A14B: per-expert inputs. Each overrides, for its expert, what --lora_a / --lora_b
        # give (a split file by its name, a combo file's part, a joint file for both experts).
        *(
            Param(
                f"lora_{side}_{expert}",
                "path",
                None,
                f"Wan2.2 A14B: LoRA {side.upper()} for the {expert}-noise expert (overrides what --lora_{side} "
                f"gives for it; a combo file gives its {expert}-noise part)",
                title=f"LoRA {side.upper()}, {expert}-noise expert",
                group="inputs",
                metavar="FILE",
                optional=True,
                form=False,
            )
            for side in ("a", "b")
            for expert in ("high", "low")
        ),
        Param(
            "expert",
            "choice",
            "both",
            "Wan2.2 A14B: which expert's difference to write: both (<output stem>_high_noise and "
            "_low_noise files), high or low (that one file); none merges --lora_a and --lora_b as one "
            "model whatever their names say (Wan2.1 LoRAs named like x_high / x_low). A merge of "
            "one-model LoRAs ignores it",
            title="Experts",
            group="inputs",
            choices=EXPERT_CHOICES,
            form=False,
        ),
        Param(
            "output",
            "path",
            None,
            "the merged LoRA to write (.safetensors)",
            group="inputs",
            metavar="FILE",
            optional=True,
            form=False,
        ),
        # --- what to merge ---------------------------------------------------------------------
        Param(
            "targets",
            "str",
            "all",
            'modules to merge; e.g. attn, "cross_attn 0-19"',
            group="targets",
            flag="target_blocks",
            aliases=("targets",),
            metavar="SELECTOR",
            form=False,
        ),
        # --- strength --------------------------------------------------------------------------
        Param(
            "alpha",
            "float",
            1.0,
            "multiplies the difference: ΔW_out = alpha · (w_a·ΔW_a − w_b·ΔW_b); stored in the file, so the "
            "slider works at strength 1",
            title="Alpha",
            group="strength",
            metavar="X",
            visible_when=when(auto_alpha=False),
        ),
        Param(
            "auto_alpha",
            "bool",
            False,
            "choose alpha so that the mean ‖ΔW‖ of the merged modules in the output equals the target "
            "norm (the difference of two similar LoRAs is much weaker than either); a Wan2.2 two-expert "
            "merge chooses one alpha per expert, from that expert's modules",
            title="Auto alpha",
            group="strength",
        ),
        Param(
            "target_norm",
            "str",
            "a",
            "auto alpha target: the mean ‖ΔW‖ of LoRA A (a), of B (b), their mean (mean), or a number",
            title="Target norm",
            group="strength",
            metavar="a|b|mean|VALUE",
            # a str field with choices: the named targets are offered, a number may still be typed
            choices=("a", "b", "mean"),
            visible_when=when(auto_alpha=True),
        ),
        Param(
            "weight_a",
            "float",
            1.0,
            "weight of LoRA A (concept present)",
            title="Weight A",
            group="strength",
            metavar="W",
        ),
        Param(
            "weight_b",
            "float",
            1.0,
            "weight of LoRA B (concept absent), which is subtracted",
            title="Weight B",
            group="strength",
            metavar="W",
        ),
        # --- rank ------------------------------------------------------------------------------
        Param(
            "rank_mode",
            "choice",
            "fixed",
            "fixed: the same rank for every module; energy / sv_ratio / sv_cumulative: a rank per module "
            "chosen from its singular values (kohya resize_lora's dynamic methods)",
            title="Rank mode",
            group="rank",
            choices=RANK_MODES,
        ),
        Param(
            "rank",
            "int",
            4,
            "output rank of every module (fixed mode), or the most a dynamic mode may keep; 0 = no "
            "truncation: every non-zero singular value, the exact difference at rank r_a + r_b",
            title="Rank",
            group="rank",
            minimum=0,
            metavar="N",
        ),
        Param(
            "energy",
            "float",
            0.99,
            "keep the smallest rank whose singular values hold this fraction of the module's Frobenius "
            "energy (sum of squares)",
            title="Energy kept",
            group="rank",
            minimum=0.0,
            maximum=1.0,
            step=0.0001,
            metavar="F",
            visible_when=when(rank_mode="energy"),
        ),
        Param(
            "sv_ratio",
            "float",
            10.0,
            "keep the singular values larger than the largest one divided by this ratio",
            title="Singular value ratio",
            group="rank",
            minimum=1.0,
            metavar="R",
            visible_when=when(rank_mode="sv_ratio"),
        ),
        Param(
            "sv_cumulative",
            "float",
            0.9,
            "keep the smallest rank whose singular values add up to this fraction of their sum",
            title="Cumulative fraction",
            group="rank",
            minimum=0.0,
            maximum=1.0,
            step=0.0001,
            metavar="F",
            visible_when=when(rank_mode="sv_cumulative"),
        ),
        # --- strategy (the workbench's strategy chooser) ---------------------------------------
        Param(
            "strategy",
            "str",
            DEFAULT_STRATEGY,
            "merge strategy; see --list_strategies",
            group="strategy",
            metavar="NAME",
            form=False,
        ),
        Param(
            "strategy_params",
            "dict",
            {},
            'each strategy\'s own parameters by strategy name ({"randomized_svd": {"niter": 4}}); '
            "on the command line --param KEY=VALUE",
            group="strategy",
            cli=False,
            form=False,
        ),
        # --- output file -----------------------------------------------------------------------
        Param(
            "format",
            "choice",
            "comfy",
            "key format of the output: comfy loads in ComfyUI, WanVideoWrapper and diffusers; musubi and "
            "diffusers write those trainers' key names",
            title="Format",
            group="output",
            choices=OUTPUT_FORMATS,
        ),
        Param(
            "save_dtype",
            "choice",
            None,
            "dtype of the written tensors (default: the inputs')",
            title="Dtype",
            group="output",
            choices=SAVE_DTYPES,
            optional=True,
            none_label=SAME_AS_INPUTS,
            value_aliases=SAVE_DTYPE_ALIASES,
            metavar="DTYPE",
        ),
        Param(
            "overwrite",
            "bool",
            False,
            "replace the output file if it exists (otherwise an existing file is never touched)",
            title="Overwrite",
            group="output",
        ),
        Param(
            "analyze",
            "bool",
            False,
            "print the per block/group analysis; write it as JSON and CSV beside the output "
            "(<name>.analysis.json/.csv)",
            title="Analysis files",
            group="output",
            flag="analyze_blocks",
        ),
        Param(
            "exclude_non_targeted",
            "bool",
            False,
            "leave modules outside the targets (or dropped by a filter) out of the file instead of "
            "writing them as zeros",
            title="Leave out non-targets",
            group="output",
            # the model card recommends leaving them out; its script (and so the CLI) wrote zeros
            gui_default=True,
        ),
        Param(
            "title",
            "str",
            None,
            "title stored in the file's metadata (default: the output's name)",
            title="Title",
            group="output",
            optional=True,
            advanced=True,
            metavar="TEXT",
        ),
        Param(
            "dtype",
            "choice",
            "float32",
            "compute precision: float32 or float64. LoRA inputs are factored with float64 Gram matrices "
            "either way (that is what makes the result exact); this sets the precision of dense (.diff, "
            "LoHa, LoKr) differences and of the factors before they are saved",
            title="Compute dtype",
            group="output",
            choices=COMPUTE_DTYPES,
            value_aliases=DTYPE_ALIASES,
            advanced=True,
            metavar="DTYPE",
        ),
        # --- running ---------------------------------------------------------------------------
        Param(
            "device",
            "str",
            "cpu",
            "where to compute: cpu, cuda or cuda:N. LoRA inputs merge about as fast on the CPU; a GPU "
            "helps with dense inputs (.diff, LoHa, LoKr), whose full SVD it runs about ten times faster",
            group="running",
            metavar="cpu|cuda|cuda:N",
            form=False,
        ),
        Param(
            "created",
            "str",
            None,
            "creation time to record (re-running a recipe with it reproduces the file bit for bit)",
            group="running",
            optional=True,
            metavar="ISO_TIME",
            form=False,
        ),
    ),
)

#: the engine's own forms in the workbench (strategy parameters have their own, per strategy)
RANK_PARAMS = MERGE_CONFIG.group("rank")
STRENGTH_PARAMS = MERGE_CONFIG.group("strength")
OUTPUT_PARAMS = MERGE_CONFIG.group("output")
FORM_GROUPS = {"rank": RANK_PARAMS, "strength": STRENGTH_PARAMS, "output": OUTPUT_PARAMS}


def form_values(recipe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The engine forms' values (by group) of a recipe's JSON."""
    return {group: {p.name: recipe[p.name] for p in params} for group, params in FORM_GROUPS.items()}


def merge_fields(*forms: dict[str, Any]) -> dict[str, Any]:
    """``MergeParams`` keyword arguments from the engine forms' values."""
    fields: dict[str, Any] = {}
    for values in forms:
        fields.update(values)
    return fields
