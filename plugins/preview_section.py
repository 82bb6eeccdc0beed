"""Built-in plugin ``preview_section``: the Preview section's panel (GUI only).

Written like a third-party plugin: the module imports no Qt; the panel is named by a
``"module:Class"`` string and imported only when the window builds it. It takes dropped
``.safetensors`` files (added to the LoRA stack). Renders come from the preview backends
(``difflora_register_preview_backends``); without this plugin ``python main.py preview`` still
renders headless.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.project.paths import register_section_paths
from difflora_gui.specs import PanelSpec

#: the stack's files are kept by index (``stack.0.file`` …), at most this many (the stack's limit)
MAX_STACK = 32

# the LoRA files of the stack: relative to the project file when inside its folder, reported
# missing (with their place in the stack) when a project is opened without them
register_section_paths("preview", files=tuple(f"stack.{i}.file" for i in range(MAX_STACK)))


@hookimpl
def difflora_gui_register_panels():
    return [
        PanelSpec(
            name="preview-player",
            title="Preview",
            section="preview",
            widget="difflora_gui.qt.preview.panel:PreviewPanel",
            order=10,
            accepts=(".safetensors",),
        )
    ]
