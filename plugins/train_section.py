"""Built-in plugin ``train_section``: the Train section's panel (GUI only).

Written like a third-party plugin: the module imports no Qt; the panel is named by a
``"module:Class"`` string and imported only when the window builds it. It takes dropped folders
(``FOLDER_ACCEPTS``: two folders are set A and set B). Without this plugin training still works
from the command line (``python main.py train``).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.project.paths import register_section_paths
from difflora_gui.specs import FOLDER_ACCEPTS, PanelSpec

# the panel keeps its folders in the project's ``train`` section (``form``): stored relative to the
# project file when inside its folder, and moved with the workspace on Save As (the project's
# dataset exported for training lives there)
register_section_paths("train", files=("form.a_dir", "form.b_dir"), targets=("form.output_dir",))


@hookimpl
def difflora_gui_register_panels():
    return [
        PanelSpec(
            name="train-runs",
            title="Train",
            section="train",
            widget="difflora_gui.qt.train.panel:TrainPanel",
            order=10,
            accepts=(FOLDER_ACCEPTS,),
        )
    ]
