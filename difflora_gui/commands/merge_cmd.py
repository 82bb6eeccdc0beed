"""``python main.py merge``: the differential merge, ΔW_out = alpha·(w_a·ΔW_a − w_b·ΔW_b) at low rank.

The model card's command works as written (with ``python main.py merge`` in place of the script)::

    python main.py merge --lora_a A.safetensors --lora_b B.safetensors --target_blocks attn \\
        --output out.safetensors --rank 4 --dtype float32 --alpha 1.0 --device cuda \\
        --analyze_blocks --exclude_non_targeted

Import-light: the engine (and torch) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

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

exit codes: 0 done, 2 bad input (nothing written), 130 cancelled (nothing written).
"""


def _add(parser, name: str, **kwargs) -> None:
    """``--name`` with the dashed spelling ``--na-me`` accepted too."""
    flags = [f"--{name}"]
    if "_" in name:
        flags.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*flags, dest=name, **kwargs)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    io = parser.add_argument_group("inputs and output")
    _add(
        io,
        "lora_a",
        metavar="FILE",
        help="LoRA A: trained with the concept (.safetensors, any Wan LoRA format)",
    )
    _add(io, "lora_b", metavar="FILE", help="LoRA B: trained without the concept (subtracted)")
    _add(io, "output", metavar="FILE", help="the merged LoRA to write (.safetensors)")
    _add(
        io,
        "format",
        choices=("comfy", "musubi", "diffusers"),
        help="output key format (default comfy: loads everywhere)",
    )
    _add(
        io,
        "save_dtype",
        metavar="DTYPE",
        help="output dtype: float32, float16 or bfloat16 (default: the inputs')",
    )
    _add(io, "overwrite", action="store_true", default=None, help="replace an existing output file")
    _add(io, "title", metavar="TEXT", help="title stored in the file's metadata (default: the output's name)")
    _add(
        io,
        "created",
        metavar="ISO_TIME",
        help="creation time to record (re-running a recipe with it reproduces the file bit for bit)",
    )

    what = parser.add_argument_group("what to merge")
    _add(what, "weight_a", type=float, metavar="W", help="weight of A (default 1)")
    _add(what, "weight_b", type=float, metavar="W", help="weight of B, which is subtracted (default 1)")
    _add(
        what,
        "target_blocks",
        metavar="SELECTOR",
        help='modules to merge (default "all"); e.g. attn, "cross_attn 0-19"',
    )
    _add(
        what,
        "exclude_non_targeted",
        action="store_true",
        default=None,
        help="leave non-targeted (and filtered) modules out of the output instead of writing zeros",
    )
    _add(what, "alpha", type=float, metavar="X", help="multiplies the difference (default 1.0)")
    _add(
        what,
        "auto_alpha",
        action="store_true",
        default=None,
        help="choose alpha from --target_norm (see below)",
    )
    _add(
        what,
        "target_norm",
        metavar="a|b|mean|VALUE",
        help="auto alpha target: mean ‖ΔW‖ of A, of B, their mean, or a number (default a)",
    )

    rank = parser.add_argument_group("rank")
    _add(
        rank,
        "rank",
        type=int,
        metavar="N",
        help="output rank (default 4); 0 = no truncation (rank r_a+r_b, exact); cap of the dynamic modes",
    )
    _add(
        rank,
        "rank_mode",
        choices=("fixed", "energy", "sv_ratio", "sv_cumulative"),
        help="fixed (default) or per-module dynamic rank: energy = keep --energy of the Frobenius energy; "
        "sv_ratio = keep s > s_max/--sv_ratio; sv_cumulative = keep --sv_cumulative of the sum of s (kohya's resize_lora)",
    )
    _add(
        rank,
        "energy",
        type=float,
        metavar="F",
        help="fraction of the Frobenius energy to keep (default 0.99)",
    )
    _add(rank, "sv_ratio", type=float, metavar="R", help="keep singular values above s_max/R (default 10)")
    _add(
        rank,
        "sv_cumulative",
        type=float,
        metavar="F",
        help="fraction of the sum of singular values to keep (default 0.9)",
    )

    strategy = parser.add_argument_group("strategy")
    _add(
        strategy, "strategy", metavar="NAME", help="merge strategy (default full_svd); see --list_strategies"
    )
    _add(
        strategy,
        "param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy parameter (repeatable)",
    )
    _add(
        strategy,
        "fast_svd",
        action="store_true",
        default=None,
        help="use randomized_svd (fast approximate SVD)",
    )
    _add(
        strategy, "oversample", type=int, metavar="N", help="randomized_svd: extra sample vectors (default 8)"
    )
    _add(strategy, "niter", type=int, metavar="N", help="randomized_svd: power iterations (default 2)")
    _add(strategy, "threshold", type=float, metavar="X", help="magnitude_filter: keep modules with ‖A−B‖ ≥ X")
    _add(
        strategy,
        "threshold_percentile",
        type=float,
        metavar="P",
        help="magnitude_filter: keep modules at or above the P-th percentile of ‖A−B‖",
    )
    _add(
        strategy,
        "top_k_layers",
        type=int,
        metavar="K",
        help="magnitude_filter: keep the K most distinct modules",
    )
    _add(
        strategy,
        "list_strategies",
        action="store_true",
        help="list the registered strategies and their parameters, then exit",
    )

    run = parser.add_argument_group("running")
    _add(
        run,
        "device",
        metavar="cpu|cuda|cuda:N",
        help="where to compute (default cpu). LoRA inputs merge about as fast on the CPU; a GPU helps with "
        "dense inputs (.diff, LoHa, LoKr), whose full SVD it runs about ten times faster",
    )
    _add(
        run,
        "dtype",
        metavar="DTYPE",
        help="compute precision: float32 (default) or float64. LoRA inputs are factored with float64 "
        "Gram matrices either way (that is what makes the result exact); this sets the precision of "
        "dense (.diff, LoHa, LoKr) differences and of the factors before they are saved",
    )
    _add(
        run,
        "analyze_blocks",
        action="store_true",
        default=None,
        help="print per block/group analysis; write it as JSON and CSV beside the output",
    )
    _add(run, "analyze_only", action="store_true", help="print the analysis without writing anything")
    _add(run, "json", action="store_true", help="print the result as JSON on stdout")
    _add(run, "quiet", action="store_true", help="no progress bar")


_FIELDS = {
    "lora_a": "lora_a",
    "lora_b": "lora_b",
    "output": "output",
    "format": "format",
    "save_dtype": "save_dtype",
    "overwrite": "overwrite",
    "title": "title",
    "created": "created",
    "weight_a": "weight_a",
    "weight_b": "weight_b",
    "target_blocks": "targets",
    "exclude_non_targeted": "exclude_non_targeted",
    "alpha": "alpha",
    "auto_alpha": "auto_alpha",
    "target_norm": "target_norm",
    "rank": "rank",
    "rank_mode": "rank_mode",
    "energy": "energy",
    "sv_ratio": "sv_ratio",
    "sv_cumulative": "sv_cumulative",
    "strategy": "strategy",
    "device": "device",
    "dtype": "dtype",
    "analyze_blocks": "analyze",
}


def params_from_args(args: argparse.Namespace, host=None):
    """The :class:`MergeParams` an argument namespace describes (seed shortcuts resolved)."""
    from difflora_gui.errors import UserError
    from difflora_gui.merge.params import MergeParams
    from difflora_gui.merge.strategies import assign_cli_params, available_strategies
    from difflora_gui.params import parse_key_values

    values = {}
    for arg, field_name in _FIELDS.items():
        value = getattr(args, arg, None)
        if value is not None:
            values[field_name] = value
    strategy = values.get("strategy")
    filter_values = {
        k: getattr(args, k)
        for k in ("threshold", "threshold_percentile", "top_k_layers")
        if getattr(args, k, None) is not None
    }
    random_values = {
        k: getattr(args, k) for k in ("oversample", "niter") if getattr(args, k, None) is not None
    }
    if strategy is None and filter_values:
        strategy = "magnitude_filter"
    if args.fast_svd:
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
    pairs = parse_key_values(args.param or [])
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


def run(args: argparse.Namespace) -> int:
    from difflora_gui.errors import UserError

    if args.list_strategies:
        return _list_strategies()
    if not args.lora_a or not args.lora_b:
        raise UserError("merge needs --lora_a and --lora_b (see python main.py merge --help)")
    params = params_from_args(args)
    from difflora_gui.jobs.cli import run_in_terminal
    from difflora_gui.merge.engine import run_analysis, run_merge

    if args.analyze_only:
        analysis = run_in_terminal(run_analysis, params, description="analyze", quiet=args.quiet)
        print(json.dumps(analysis.to_json(), indent=1) if args.json else analysis.table())
        return 0
    if not params.output:
        raise UserError("merge needs --output FILE (or --analyze_only)")
    result = run_in_terminal(run_merge, params, description="merge", quiet=args.quiet)
    if args.json:
        print(json.dumps(result.to_json(), indent=1, ensure_ascii=False))
        return 0
    if result.analysis is not None:
        print(result.analysis.table())
        print()
    print(result.summary())
    sys.stdout.flush()
    return 0


COMMAND = CliCommandSpec(
    name="merge",
    help="subtract LoRA B from LoRA A and re-factor the difference to low rank (the differential LoRA)",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
