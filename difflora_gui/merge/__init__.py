"""The differential merge engine: ΔW_out = alpha·(w_a·ΔW_a − w_b·ΔW_b), re-factored to low rank.

* :mod:`~difflora_gui.merge.params` — ``MergeParams``, the recipe (JSON, ``to_cli_args()``); light.
* :mod:`~difflora_gui.merge.engine` — the job functions ``run_merge(params, ctx)`` and
  ``run_analysis(params, ctx)``.
* :mod:`~difflora_gui.merge.result` — ``MergeResult`` (summary, JSON) and ``analysis_paths``.
* :mod:`~difflora_gui.merge.runtime` — the torch device (``--device``) and thread limits.
* :mod:`~difflora_gui.merge.factors` — NaN/Inf checks from the Grams, ``√S`` split of a decomposition.
* :mod:`~difflora_gui.merge.analysis` — ``AnalysisResult`` (per module, per block × group, most
  distinct), JSON/CSV/table; light.
* :mod:`~difflora_gui.merge.api` — what strategies receive and return (``ModuleDelta``,
  ``Decomposition``, ``ModuleStats``); see ``docs/merge-strategies.md``.
* :mod:`~difflora_gui.merge.linalg` — the exact factored SVD, dense and randomized SVD.
* :mod:`~difflora_gui.merge.rank` — the shared rank policy (fixed, energy, sv_ratio, sv_cumulative).
* :mod:`~difflora_gui.merge.strategies` — resolving ``--strategy`` into a filter and a compressor.

Nothing here imports torch at import time; the GUI may import ``params`` and ``analysis`` freely.
"""
