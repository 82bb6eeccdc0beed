"""``python main.py merge``: the differential merge, ΔW_out = alpha·(w_a·ΔW_a − w_b·ΔW_b) at low rank.

The model card's command works as written (with ``python main.py merge`` in place of the script)::

    python main.py merge --lora_a A.safetensors --lora_b B.safetensors --target_blocks attn \\
        --output out.safetensors --rank 4 --dtype float32 --alpha 1.0 --device cuda \\
        --analyze_blocks --exclude_non_targeted

The recipe's flags (aliases such as ``--target_blocks`` for ``targets`` and the dashed spellings
included) come from the merge declaration, ``difflora_gui.merge.config.MERGE_CONFIG``; this module
adds the command's own options. Import-light: the engine (and torch) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from difflora_gui.config import ConfigDeclaration, add_arguments, values_from_args
from difflora_gui.params import Param
from difflora_gui.specs import CliCommandSpec

DESCRIPTION = """\
Subtract LoRA B (concept absent) from LoRA A (concept present) and re-factor the difference to a
low rank: ΔW_out = alpha · (w_a·ΔW_a − w_b·ΔW_b) for every targeted module.

The default strategy, full_svd, is the exact truncated SVD of the difference, computed from the
LoRA factors without ever forming the dense matrix: a 14B rank-16 pair merges in seconds on a CPU.
Modules outside --target_blocks are written as zeros (nullified), or left out with
--exclude_non_targeted. The output loads in ComfyUI, WanVideoWrapper and diffusers; at strength 1
it applies exactly ΔW_out (alpha is stored as the rank of each module).
"""

EPILOG = """\
target selectors: attn, self_attn, cross_attn, ffn, other, all; blocks as 0-10,20 or blocks=0-10;
include=REGEX / exclude=REGEX on module names (blocks.3.cross_attn.k). Example: "attn 0-19".

auto alpha: the difference of two LoRAs trained on near-identical data is much weaker than either
LoRA (what they share cancels), so at strength 1 it can do little. --auto_alpha sets alpha so that
the mean Frobenius norm of the merged modules in the OUTPUT (after truncation, i.e. what is
written) equals the target: the mean ‖ΔW‖ of LoRA A (a) or B (b) over the same modules, their
average (mean), or a number. Zeros written for nullified modules are not counted, so excluding or
nullifying modules does not weaken the result. The chosen alpha is printed and stored in the file.

strategies: --strategy NAME picks any registered strategy (--list_strategies shows them and their
parameters, third-party ones included); --param KEY=VALUE sets one of its parameters (repeatable;
NAME.KEY=VALUE for the compressor used by a filter). Shortcuts: --fast_svd (randomized_svd),
--oversample/--niter (its parameters), --threshold/--threshold_percentile/--top_k_layers
(magnitude_filter).

Wan2.2 A14B experts: the high-noise and low-noise experts are merged separately, ΔH = A_H − B_H and
ΔL = A_L − B_L, into <output stem>_high_noise.safetensors and <output stem>_low_noise.safetensors.
Each side's files say what they hold: a split file (<name>_high_noise / _low_noise, or its
metadata) gives its expert, an ai-toolkit combo file (transformer_1 / transformer_2 keys) both, a
joint or one-model file is used for both experts; --lora_a_high/--lora_a_low/--lora_b_high/
--lora_b_low give an expert's file explicitly and override that. --expert high|low writes one
of the two. Each expert is a merge of its own: auto alpha picks one alpha per expert. Both files
are written or neither. When neither side is for one expert, the merge is the one-model merge.

exit codes: 0 done, 2 bad input (nothing written), 130 cancelled (nothing written).
"""


#: the command's own options: shortcuts for strategy parameters and how to run (not recipe fields)
COMMAND_OPTIONS = ConfigDeclaration(
    name="merge command",
    groups=(("strategy", "strategy"), ("running", "running")),
    params=(
        Param(
            "param",
            "list",
            [],
            "a strategy parameter (repeatable); NAME.KEY=VALUE for a filter's compressor",
            group="strategy",
            repeat=True,
            metavar="KEY=VALUE",
        ),
        Param("fast_svd", "bool", False, "use randomized_svd (fast approximate SVD)", group="strategy"),
        Param(
            "oversample",
            "int",
            None,
            "randomized_svd: extra sample vectors (default 8)",
            group="strategy",
            optional=True,
        ),
        Param(
            "niter",
            "int",
            None,
            "randomized_svd: power iterations (default 2)",
            group="strategy",
            optional=True,
        ),
        Param(
            "threshold",
            "float",
            None,
            "magnitude_filter: keep modules with ‖A−B‖ ≥ X",
            group="strategy",
            optional=True,
        ),
        Param(
            "threshold_percentile",
            "float",
            None,
            "magnitude_filter: keep modules at or above the P-th percentile of ‖A−B‖",
            group="strategy",
            optional=True,
            metavar="P",
        ),
        Param(
            "top_k_layers",
            "int",
            None,
            "magnitude_filter: keep the K most distinct modules",
            group="strategy",
            optional=True,
            metavar="K",
        ),
        Param(
            "list_strategies",
            "bool",
            False,
            "list the registered strategies and their parameters, then exit",
            group="strategy",
        ),
        Param("analyze_only", "bool", False, "print the analysis without writing anything", group="running"),
        Param("json", "bool", False, "print the result as JSON on stdout", group="running"),
        Param("quiet", "bool", False, "no progress bar", group="running"),
    ),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """The recipe's flags come from its declaration (``MERGE_CONFIG``), then the command's own."""
    from difflora_gui.merge.config import MERGE_CONFIG

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    add_arguments(parser, MERGE_CONFIG.with_fields(*COMMAND_OPTIONS.params))


def params_from_args(args: argparse.Namespace, host=None):
    """The :class:`MergeParams` an argument namespace describes (seed shortcuts resolved)."""
    from difflora_gui.errors import UserError
    from difflora_gui.merge.params import MERGE_CONFIG, MergeParams
    from difflora_gui.merge.strategies import assign_cli_params, available_strategies
    from difflora_gui.params import parse_key_values

    values = values_from_args(MERGE_CONFIG, args)
    options = values_from_args(COMMAND_OPTIONS, args)
    strategy = values.get("strategy")
    filter_values = {
        k: options[k] for k in ("threshold", "threshold_percentile", "top_k_layers") if k in options
    }
    random_values = {k: options[k] for k in ("oversample", "niter") if k in options}
    if strategy is None and filter_values:
        strategy = "magnitude_filter"
    if options.get("fast_svd"):
        if strategy in (None, "full_svd", "randomized_svd"):
            strategy = "randomized_svd"
        else:
            spec = available_strategies(host).get(strategy)
            if spec is None or spec.is_compressor or "compressor" not in spec.params:
                raise UserError(
                    f"--fast_svd cannot be combined with --strategy {strategy} (it has its own compressor)"
                )
            filter_values = {**filter_values, "compressor": "randomized_svd"}
    strategy = strategy or "full_svd"
    values["strategy"] = strategy
    strategy_params: dict[str, dict] = {}
    if filter_values:
        strategy_params["magnitude_filter"] = dict(filter_values)
    if random_values:
        strategy_params["randomized_svd"] = dict(random_values)
    pairs = parse_key_values(options.get("param") or [])
    strategy_params = assign_cli_params(strategy, pairs, strategy_params, host=host)
    if random_values:
        uses_random = (
            strategy == "randomized_svd"
            or strategy_params.get(strategy, {}).get("compressor") == "randomized_svd"
        )
        if not uses_random:
            raise UserError(
                "--oversample and --niter set the randomized SVD; add --fast_svd (or --strategy randomized_svd)"
            )
    values["strategy_params"] = strategy_params
    return MergeParams(**values)


def _list_strategies() -> int:
    from difflora_gui.plugin_host import get_plugin_host

    host = get_plugin_host()
    for plugin_name, spec in host.call_register("difflora_register_merge_strategies"):
        roles = " + ".join(
            r for r, on in (("filter", spec.is_filter), ("compressor", spec.is_compressor)) if on
        )
        print(f"{spec.name}  ({roles}; plugin {plugin_name})")
        print(f"    {spec.description}")
        for p in spec.params:
            default = "" if p.default is None else f" (default {p.default})"
            print(f"    --param {p.name}=<{p.type}>{default}: {p.help}")
    return 0


def _analysis_text(analysis) -> str:
    """The analysis table; a two-expert analysis prints one table per expert, headed by it."""
    if not analysis.by_expert:
        return analysis.table()
    titles = {"high": "high-noise expert", "low": "low-noise expert"}
    return "\n\n".join(f"== {titles[e]} ==\n{analysis.by_expert[e].table()}" for e in analysis.experts)


def run(args: argparse.Namespace) -> int:
    from difflora_gui.errors import UserError

    options = COMMAND_OPTIONS.resolve(values_from_args(COMMAND_OPTIONS, args))
    if options["list_strategies"]:
        return _list_strategies()
    given_a = args.lora_a or args.lora_a_high or args.lora_a_low
    given_b = args.lora_b or args.lora_b_high or args.lora_b_low
    if not given_a or not given_b:
        raise UserError(
            "merge needs --lora_a and --lora_b (for Wan2.2 A14B experts also --lora_a_high … "
            "--lora_b_low; see python main.py merge --help)"
        )
    params = params_from_args(args)
    from difflora_gui.console_output import print_to_pipe  # `merge ... | head` ends quietly
    from difflora_gui.jobs.cli import run_in_terminal
    from difflora_gui.merge.engine import run_analysis, run_merge

    if options["analyze_only"]:
        analysis = run_in_terminal(run_analysis, params, description="analyze", quiet=options["quiet"])
        return print_to_pipe(
            json.dumps(analysis.to_json(), indent=1) if options["json"] else _analysis_text(analysis)
        )
    if not params.output:
        raise UserError("merge needs --output FILE (or --analyze_only)")
    result = run_in_terminal(run_merge, params, description="merge", quiet=options["quiet"])
    if options["quiet"]:  # the log (and its warnings) was not shown; a warning still is
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if options["json"]:
        return print_to_pipe(json.dumps(result.to_json(), indent=1, ensure_ascii=False))
    text = result.summary()
    if result.analysis is not None:
        text = f"{_analysis_text(result.analysis)}\n\n{text}"
    return print_to_pipe(text)


COMMAND = CliCommandSpec(
    name="merge",
    help="subtract LoRA B from LoRA A and re-factor the difference to low rank (the differential LoRA)",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
