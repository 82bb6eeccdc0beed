"""Built-in plugin ``merge_workbench``: the Merge section's panel (GUI only).

Written like a third-party plugin: the module itself imports no Qt; the panel is named by a
``"module:Class"`` string and imported only when the window builds it. Without this plugin the
merge still works from the command line (``python main.py merge``).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.specs import PanelSpec


@hookimpl
def difflora_gui_register_panels():
    return [
        PanelSpec(
            name="merge-workbench",
            title="Merge workbench",
            section="merge",
            widget="difflora_gui.qt.merge.panel:MergePanel",
            order=10,
            accepts=(".safetensors",),
        )
    ]
