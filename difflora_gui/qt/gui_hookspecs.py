"""GUI-only hooks, added to the plugin manager when the window starts.

This module must not import Qt: plugins reference their widgets by ``"module:Class"`` strings,
so a plugin's own module stays importable headless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from difflora_gui.hookspecs import hookspec
from difflora_gui.specs import register_hook_names

if TYPE_CHECKING:
    from difflora_gui.specs import PanelSpec


@hookspec
def difflora_gui_register_panels() -> list[PanelSpec]:
    """Return panels for the window's sections (Dataset, Train, Merge, Preview, Compare).

    Each ``PanelSpec.widget`` is called as ``widget(services)`` with the running
    :class:`difflora_gui.qt.services.AppServices` and returns a ``QWidget``. If it fails, an error
    card stands in its place and the rest of the window works. A panel that lists suffixes in
    ``PanelSpec.accepts`` receives dropped files of those types through its widget's
    ``accept_files(paths: list[pathlib.Path])`` method. Panels keep their state in the project
    (``services.project.section(key)`` / ``update_section``) and reload it on
    ``services.project_replaced``.
    """


#: the GUI-only register hooks; their spec types are in :data:`difflora_gui.specs.REGISTER_HOOKS`
GUI_REGISTER_HOOKS = register_hook_names(gui=True)
