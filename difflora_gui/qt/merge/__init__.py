"""The Merge workbench: the GUI of the differential merge (panel, input cards, targets, plots).

``plugins/merge_workbench.py`` contributes :class:`difflora_gui.qt.merge.panel.MergePanel` to the
Merge section. The panel (``panel``, ``panel_recipe``, ``panel_jobs``, ``output_box``, ``run_bar``,
``shortcuts``) composes the inputs (``inputs`` with its mixins ``input_placement``, ``input_reads``,
``input_undo``; ``input_card``, ``expert_inputs`` for the Wan2.2 experts), the strategy and forms
(``strategy``, ``rank_hint``), the targets (``targets``, ``block_grid``) and the analysis side
(``analysis_side``; ``analysis_view``, ``analysis_plots``, ``analysis_table``, ``analysis_overlay``
import pyqtgraph, which ``plotting`` loads on a background thread and the side uses on first need).
Their Qt-free logic lives in :mod:`difflora_gui.merge`.
"""
