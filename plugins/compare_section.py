"""Built-in plugin ``compare_section``: the Compare section's panel (GUI only).

Written like a third-party plugin: the module imports no Qt; the panel is named by a
``"module:Class"`` string and imported only when the window builds it. It renders grids of
preview clips (strengths × seeds × LoRA variants, block presets, prompts) through any preview
backend (``difflora_register_preview_backends``), plays them in one grid player and exports them;
without this plugin ``python main.py grid`` still renders and exports grids headless. It takes
dropped ``.safetensors`` files (added to its LoRA stack).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.project.paths import register_section_paths
from difflora_gui.specs import PanelSpec

#: the stack's files are kept by index (``stack.0.file`` …), at most this many (the stack's limit)
MAX_STACK = 32
#: the LoRA-variant files of each axis row (``axes.0.files.3``), at most this many per row
MAX_VARIANTS = 32
AXIS_ROWS = 3

# the LoRA files of the stack and of the variant axes: relative to the project file when inside
# its folder, reported missing (with their place) when a project is opened without them
register_section_paths(
    "compare",
    files=(
        *(f"stack.{i}.file" for i in range(MAX_STACK)),
        *(f"axes.{a}.files.{j}" for a in range(AXIS_ROWS) for j in range(MAX_VARIANTS)),
    ),
)


@hookimpl
def difflora_gui_register_panels():
    return [
        PanelSpec(
            name="compare-grid",
            title="Compare",
            section="compare",
            widget="difflora_gui.qt.compare.panel:ComparePanel",
            order=10,
            accepts=(".safetensors",),
        )
    ]
