"""Built-in merge strategy ``full_svd`` (the default): the exact SVD of the difference.

Low-rank inputs (the usual case) use the factored SVD — two small float64 Gram matrices of the
stacked factors and an SVD of an (r_a+r_b)² core — which equals the dense ``torch.linalg.svd``
truncation without ever forming the out×in difference. Dense inputs (``.diff``, LoHa, LoKr) get the
dense thin SVD, which is exact but slow for 14B-sized modules (see ``randomized_svd``).

Written exactly like a third-party plugin: ``docs/merge-strategies.md``.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.specs import MergeStrategySpec


def compress(delta, rank_cap, params, ctx):
    """``compress(delta, rank_cap, params, ctx) -> Decomposition`` (heavy imports happen here)."""
    from difflora_gui.merge import linalg

    if delta.is_factored:
        return linalg.factored_svd(delta, rank_cap)
    return linalg.dense_svd(delta, rank_cap)


@hookimpl
def difflora_register_merge_strategies():
    return [
        MergeStrategySpec(
            name="full_svd",
            title="Exact SVD",
            description=(
                "Exact truncated SVD of the difference. Low-rank inputs are factored exactly in seconds "
                "(QR-free Gram method on the stacked factors); dense inputs use a full SVD."
            ),
            params=(),
            compress="difflora_builtin_plugins.full_svd:compress",
        )
    ]
