"""The differential merge engine: ΔW_out = alpha·(w_a·ΔW_a − w_b·ΔW_b), re-factored to low rank.

* :mod:`~difflora_gui.merge.params` — ``MergeParams``, the recipe (JSON, ``to_cli_args()``); light.
* :mod:`~difflora_gui.merge.config` — ``MERGE_CONFIG``, the one declaration of the merge's options
  (CLI flags, the workbench's forms, the recipe, the equivalent command).
* :mod:`~difflora_gui.merge.engine` — the job functions ``run_merge(params, ctx)`` and
  ``run_analysis(params, ctx)``: the passes over the modules, on the ordered worker pipeline
  (:mod:`difflora_gui.jobs.pipeline`).
* :mod:`~difflora_gui.merge.plan` — which modules, read how, with which strategy and rank policy.
* :mod:`~difflora_gui.merge.module_math` — one module's difference, statistics and compression.
* :mod:`~difflora_gui.merge.output` — output checks, input hashes, writing, the analysis files.
* :mod:`~difflora_gui.merge.experts` — which file is each Wan2.2 A14B expert's A and B
  (``plan_experts``: split, combo and joint files, the per-expert flags);
  :mod:`~difflora_gui.merge.expert_run` — one merge per expert, the files written as one set;
  :mod:`~difflora_gui.merge.output_names` — default, per-expert and numbered output names.
* :mod:`~difflora_gui.merge.input_checks`, :mod:`~difflora_gui.merge.input_slots`,
  :mod:`~difflora_gui.merge.input_roles`, :mod:`~difflora_gui.merge.input_folders`,
  :mod:`~difflora_gui.merge.plot_data`, :mod:`~difflora_gui.merge.rank_hint`,
  :mod:`~difflora_gui.merge.existing_output`, :mod:`~difflora_gui.merge.history`,
  :mod:`~difflora_gui.merge.workbench_jobs` — the Qt-free parts of the Merge workbench (input
  checks and expert slots, plot data, the rank hint, the replace question, the merge history).
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
