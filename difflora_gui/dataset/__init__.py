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

Each ``*_cli`` module of a ``dataset`` subcommand (see :mod:`difflora_gui.commands.dataset_cmd`)
stays import-light: argparse at import, cv2/PyAV/torch only when it runs.
"""
