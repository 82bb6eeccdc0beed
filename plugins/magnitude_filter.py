"""Built-in merge strategy ``magnitude_filter``: keep only the targeted modules whose difference matters.

It measures each targeted module's difference ‖w_a·ΔW_a − w_b·ΔW_b‖_F (exactly, from Gram matrices
of the factors) or, with ``relative``, its cancellation ratio ‖w_a·ΔW_a − w_b·ΔW_b‖ / (‖w_a·ΔW_a‖ +
‖w_b·ΔW_b‖) (0: A and B agree, so the module carries no concept; 1: nothing in common). Criteria,
all of which must hold when several are set:

* ``threshold``: the measure is at least this value (0 = off);
* ``threshold_percentile``: the measure is at least the P-th percentile over the targeted modules;
* ``top_k_layers``: among the K largest.

The modules it drops are nullified or excluded like non-targeted ones; the kept ones are compressed
by ``compressor`` (``full_svd`` by default, any registered compressor).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.errors import UserError
from difflora_gui.params import Param
from difflora_gui.specs import MergeStrategySpec


def registered_compressors() -> list[str]:
    """The names of the compressors registered now (``full_svd`` first when it is there)."""
    from difflora_gui.plugin_host import get_plugin_host

    names = [name for name, spec in get_plugin_host().merge_strategies().items() if spec.is_compressor]
    return sorted(names, key=lambda name: (name != "full_svd", name))


def measure(stats, relative: bool) -> float:
    if relative:
        return stats.cancellation if stats.cancellation is not None else 0.0
    return stats.norm_diff


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolation percentile (numpy's default method)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * pct / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def select(stats, params, ctx):
    """``select(stats, params, ctx) -> names`` of the modules that take part."""
    relative = bool(params["relative"])
    values = {s.name: measure(s, relative) for s in stats}
    kept = set(values)
    what = "cancellation ratio" if relative else "‖ΔW‖"
    active = []
    if params["threshold"] > 0:
        kept &= {n for n, v in values.items() if v >= params["threshold"]}
        active.append(f"{what} ≥ {params['threshold']:g}")
    if params["threshold_percentile"] is not None:
        cut = percentile(list(values.values()), params["threshold_percentile"])
        kept &= {n for n, v in values.items() if v >= cut}
        active.append(f"{what} ≥ {cut:.6g} (percentile {params['threshold_percentile']:g})")
    if params["top_k_layers"] > 0:
        order = {s.name: s.index for s in stats}
        ranked = sorted(values, key=lambda n: (-values[n], order[n]))
        kept &= set(ranked[: params["top_k_layers"]])
        active.append(f"top {params['top_k_layers']} by {what}")
    if not active:
        raise UserError(
            "magnitude_filter needs a criterion: --threshold, --threshold_percentile or --top_k_layers "
            "(or --param threshold=... etc.)"
        )
    ctx.log(f"magnitude_filter: {'; '.join(active)}")
    return [s.name for s in stats if s.name in kept]


@hookimpl
def difflora_register_merge_strategies():
    return [
        MergeStrategySpec(
            name="magnitude_filter",
            title="Magnitude filter",
            description=(
                "Merge only the targeted modules whose A−B difference is large (absolute, percentile or "
                "top-k; optionally relative to the inputs' norms); the rest are nullified or excluded."
            ),
            params=(
                Param(
                    "threshold",
                    "float",
                    0.0,
                    "keep modules whose measure is at least this (0 = off)",
                    minimum=0.0,
                ),
                Param(
                    "threshold_percentile",
                    "float",
                    None,
                    "keep modules at or above this percentile of the measure (0-100; empty = off)",
                    minimum=0.0,
                    maximum=100.0,
                    optional=True,
                ),
                Param("top_k_layers", "int", 0, "keep the K most distinct modules (0 = off)", minimum=0),
                Param(
                    "relative",
                    "bool",
                    False,
                    "measure the cancellation ratio ‖A−B‖/(‖A‖+‖B‖) instead of ‖A−B‖",
                ),
                Param(
                    "compressor",
                    "choice",
                    "full_svd",
                    "the compressor for the kept modules (any registered one)",
                    # what is registered when a form or a parser is built (third-party ones too)
                    choices=registered_compressors,
                ),
            ),
            select="difflora_builtin_plugins.magnitude_filter:select",
        )
    ]
