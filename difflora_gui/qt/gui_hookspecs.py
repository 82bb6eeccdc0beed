"""GUI-only hooks, added to the plugin manager when the window starts.

This module must not import Qt: plugins reference their widgets by ``"module:Class"`` strings,
so a plugin's own module stays importable headless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from difflora_gui.hookspecs import hookspec

if TYPE_CHECKING:
    from difflora_gui.specs import PanelSpec


@hookspec
def difflora_gui_register_panels() -> list[PanelSpec]:
    """Return panels for the window's sections (Dataset, Train, Merge, Preview, Compare)."""


GUI_REGISTER_HOOKS = ("difflora_gui_register_panels",)
