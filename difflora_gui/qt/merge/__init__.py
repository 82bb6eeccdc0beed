"""The Merge workbench: the GUI of the differential merge (panel, input cards, targets, plots).

``plugins/merge_workbench.py`` contributes :class:`difflora_gui.qt.merge.panel.MergePanel` to the
Merge section. Modules here that do not need Qt (``checks``, ``options``, ``analysis_data``,
``tasks``) import none; ``analysis_view`` imports pyqtgraph and is loaded on first use.
"""
