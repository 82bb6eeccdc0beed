"""Paired datasets (Qt-free): the pair set, pairing rules, media reading, pair checks, tools, export.

* :mod:`~difflora_gui.dataset.model` — ``PairSet``/``Pair``/``MediaItem``, JSON, edits for undo.
* :mod:`~difflora_gui.dataset.media` — ``probe`` (kind, size, frames, fps, duration from headers;
  bad files as ``BadFileError``), ``read_image``/``load_image`` and ``read_frame``/``load_frame``
  (uint8 BGR, fast reduced decode to a short side, with the resize method).
* :mod:`~difflora_gui.dataset.image_header` — PNG/JPEG/WebP sizes and truncation from the bytes.
* :mod:`~difflora_gui.dataset.pairing` — ``PairingRule`` (stem, suffix, regex), ``pair_folders``,
  ``import_single``, ``probe_many``; the job ``run_pairing``.
* :mod:`~difflora_gui.dataset.store` — ``pairs.json`` (``save_pair_set``/``load_pair_set``), the
  dataset record and folder (``create_dataset``, ``dataset_folder``), ``copy_into_workspace``.
* :mod:`~difflora_gui.dataset.pairing_cli` — ``python main.py dataset pair``.
* Checks: :mod:`~difflora_gui.dataset.checks` (``check_pair`` → ``PairScores`` with flags),
  :mod:`~difflora_gui.dataset.check_metrics` (SSIM, phase correlation, Lab, histograms),
  :mod:`~difflora_gui.dataset.check_config` (``CHECK_CONFIG`` thresholds),
  :mod:`~difflora_gui.dataset.check_summary` (``summarize`` → ``SetSummary``),
  :mod:`~difflora_gui.dataset.check_job` (``run_check``, cached ``scores-<res>.json``),
  :mod:`~difflora_gui.dataset.check_cli` (``dataset check``).
* Tools: :mod:`~difflora_gui.dataset.frames` / ``frame_filters`` / ``frame_options`` / ``frames_cli``
  (frame extraction at scene cuts or intervals), :mod:`~difflora_gui.dataset.kontext` /
  ``kontext_params`` / ``kontext_pipeline`` / ``kontext_cli`` (counterparts with FLUX.1 Kontext),
  :mod:`~difflora_gui.dataset.musubi_export` / ``folder_export`` / ``export_job`` / ``export_cli``
  (Musubi Tuner TOMLs, plain folder pairs).
* Behind the Dataset section: :mod:`~difflora_gui.dataset.import_job`,
  :mod:`~difflora_gui.dataset.thumbnails`, :mod:`~difflora_gui.dataset.grid_filter`,
  :mod:`~difflora_gui.dataset.pair_preview`, :mod:`~difflora_gui.dataset.buckets` (Musubi's aspect
  buckets), :mod:`~difflora_gui.dataset.diff_image` (the difference heatmap).

Each ``*_cli`` module of a ``dataset`` subcommand (see :mod:`difflora_gui.commands.dataset_cmd`)
stays import-light: argparse at import, cv2/PyAV/torch only when it runs.
"""
