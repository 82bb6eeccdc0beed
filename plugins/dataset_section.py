"""Built-in plugin ``dataset_section``: the Dataset section's panel (GUI only).

Written like a third-party plugin: the module imports no Qt; the panel is named by a
``"module:Class"`` string and imported only when the window builds it. It takes dropped folders
(``FOLDER_ACCEPTS``: two folders are set A and set B), images and videos. Without this plugin the
dataset commands still work from the command line (``python main.py dataset``).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.dataset.model import MEDIA_SUFFIXES
from difflora_gui.specs import FOLDER_ACCEPTS, PanelSpec


@hookimpl
def difflora_gui_register_panels():
    return [
        PanelSpec(
            name="dataset-pairs",
            title="Pairs",
            section="dataset",
            widget="difflora_gui.qt.dataset.panel:DatasetPanel",
            order=10,
            accepts=(FOLDER_ACCEPTS, *MEDIA_SUFFIXES),
        )
    ]
