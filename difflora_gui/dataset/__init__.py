"""Paired datasets (Qt-free): the pair set, pairing rules, media reading, pair checks, tools, export.

* :mod:`~difflora_gui.dataset.model` — ``PairSet``/``Pair``/``MediaItem``, JSON, edits for undo.
"""
