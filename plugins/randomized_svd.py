"""Built-in merge strategy ``randomized_svd`` (``--fast_svd``): a randomized low-rank SVD.

``torch.svd_lowrank`` (Halko, Martinsson & Tropp) with ``q = rank + oversample`` sample vectors and
``niter`` power iterations. It is the fast path for dense differences (``.diff``, LoHa, LoKr,
full-model differences), where an exact SVD of a 5120×5120 matrix takes minutes. On low-rank
inputs the same algorithm runs on the factored operator (the difference is never formed), but
there ``full_svd`` is exact and as fast. Seeded per module: a re-run gives the same bits.
The merge summary and analysis report its measured residual against the exact one.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.params import Param
from difflora_gui.specs import MergeStrategySpec


def compress(delta, rank_cap, params, ctx):
    from difflora_gui.merge import linalg

    return linalg.randomized_svd(
        delta, rank_cap, oversample=params["oversample"], niter=params["niter"], seed=params["seed"]
    )


@hookimpl
def difflora_register_merge_strategies():
    return [
        MergeStrategySpec(
            name="randomized_svd",
            title="Randomized SVD (fast)",
            description=(
                "Approximate SVD by random projections (torch.svd_lowrank): the fast path for dense "
                "differences; on low-rank inputs the exact full_svd is as fast."
            ),
            params=(
                Param(
                    "oversample",
                    "int",
                    8,
                    "extra random sample vectors beyond the rank (more = more accurate)",
                    minimum=0,
                    maximum=1024,
                ),
                Param(
                    "niter",
                    "int",
                    2,
                    "power iterations (more = more accurate for slowly decaying spectra)",
                    minimum=0,
                    maximum=64,
                ),
                Param(
                    "seed",
                    "int",
                    0,
                    "random seed (each module derives its own from it)",
                    minimum=0,
                    advanced=True,
                ),
            ),
            compress="difflora_builtin_plugins.randomized_svd:compress",
        )
    ]
