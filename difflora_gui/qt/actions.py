"""The window's action table: every menu entry, its shortcut and its slot, declared in one place.

:data:`ACTIONS` names each action once (text, shortcut, tip, the window method it calls);
:data:`MENUS` lays them out; :func:`install_actions` creates the ``QAction`` objects as
``window.action_*`` attributes and builds the menu bar; :func:`shortcut_rows` is what Help ▸
Keyboard shortcuts lists, read from the same table so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from difflora_gui import APP_NAME
from difflora_gui.qt.sections import SECTION_INFO
from difflora_gui.qt.theme import icon
from difflora_gui.specs import SECTIONS

StandardKey = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionDef:
    """One window action: ``window.<attr>``, calling ``window.<slot>()`` when triggered.

    ``shortcut`` is a platform standard key or a key text; ``fallback`` applies where the platform
    has no binding for the standard key (Save As and Quit on Windows).
    """

    attr: str
    text: str
    slot: str
    shortcut: StandardKey | str | None = None
    fallback: str | None = None
    tip: str = ""
    object_name: str = ""
    #: further key texts that trigger it too (Ctrl+Y for Redo)
    more_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DockToggle:
    """The show/hide action of the dock ``window.<dock>``, as ``window.<attr>``."""

    attr: str
    dock: str
    shortcut: str


ACTIONS: tuple[ActionDef, ...] = (
    ActionDef("action_new", "&New project", "new_project", StandardKey.New, tip="Start an empty project",
              object_name="actionNew"),
    ActionDef("action_open", "&Open project…", "open_project_dialog", StandardKey.Open,
              tip="Open a .difflora file", object_name="actionOpen"),
    ActionDef("action_save", "&Save", "save_project", StandardKey.Save, tip="Save the project",
              object_name="actionSave"),
    ActionDef("action_save_as", "Save &as…", "save_project_as_dialog", StandardKey.SaveAs, "Ctrl+Shift+S",
              tip="Save the project to a new file", object_name="actionSaveAs"),
    ActionDef("action_project_settings", "&Project settings…", "edit_project_settings",
              tip="Project name and output folder", object_name="actionProject"),
    ActionDef("action_settings", "Se&ttings…", "edit_settings", "Ctrl+,",
              tip="Model folders, Musubi Tuner, ComfyUI, device, output", object_name="actionSettings"),
    ActionDef("action_quit", "&Quit", "close", StandardKey.Quit, "Ctrl+Q", tip="Close the window",
              object_name="actionQuit"),
    ActionDef("action_undo", "&Undo", "undo", StandardKey.Undo, "Ctrl+Z",
              tip="Undo the last change of targets, block weights, forms or the output name",
              object_name="actionUndo"),
    ActionDef("action_redo", "&Redo", "redo", StandardKey.Redo, "Ctrl+Shift+Z", more_keys=("Ctrl+Shift+Z", "Ctrl+Y"),
              tip="Redo the change undone last", object_name="actionRedo"),
    ActionDef("action_plugins", "&Plugins…", "show_plugins", "Ctrl+Shift+P",
              tip="Loaded plugins, their errors; enable or disable", object_name="actionPlugins"),
    ActionDef("action_comfy_bindings", "ComfyUI workflow &bindings…", "show_comfy_bindings",
              tip="Bind an API-format ComfyUI workflow's inputs to preview parameters; the file "
                  "comfy validate/run --bindings read", object_name="actionComfyBindings"),
    ActionDef("action_reset_layout", "Reset &layout", "reset_layout", tip="Put the docks back",
              object_name="actionResetLayout"),
    ActionDef("action_shortcuts", "&Keyboard shortcuts", "show_shortcuts", object_name="actionShortcuts"),
    ActionDef("action_about", f"&About {APP_NAME}", "show_about", object_name="actionAbout"),
)  # fmt: skip

DOCK_TOGGLES: tuple[DockToggle, ...] = (
    DockToggle("action_toggle_jobs", "jobs_dock", "Ctrl+J"),
    DockToggle("action_toggle_log", "log_dock", "Ctrl+L"),
)

#: where the menus place the recent-projects submenu, the section actions and separators
RECENT, SECTION_ACTIONS, SEPARATOR = "<recent projects>", "<sections>", "-"

MENUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "&File",
        (
            "action_new", "action_open", RECENT, SEPARATOR,
            "action_save", "action_save_as", "action_project_settings", SEPARATOR,
            "action_settings", SEPARATOR,
            "action_quit",
        ),
    ),
    ("&Edit", ("action_undo", "action_redo")),
    ("&View", (SECTION_ACTIONS, SEPARATOR, "action_toggle_jobs", "action_toggle_log", "action_reset_layout")),
    ("&Tools", ("action_plugins", "action_comfy_bindings")),
    ("&Help", ("action_shortcuts", "action_about")),
)  # fmt: skip


def section_shortcut(key: str) -> str:
    """Ctrl+1 … Ctrl+5 go to the sections in their order."""
    return f"Ctrl+{SECTIONS.index(key) + 1}"


def _make_action(window: QMainWindow, definition: ActionDef) -> QAction:
    action = QAction(definition.text, window)
    if definition.shortcut is not None:
        action.setShortcut(QKeySequence(definition.shortcut))
    if definition.fallback and action.shortcut().isEmpty():
        action.setShortcut(QKeySequence(definition.fallback))
    if definition.more_keys:
        keys = [action.shortcut()] if not action.shortcut().isEmpty() else []
        keys += [QKeySequence(text) for text in definition.more_keys if QKeySequence(text) not in keys]
        action.setShortcuts(keys)
    if definition.tip:
        action.setStatusTip(definition.tip)
        action.setToolTip(definition.tip)
    if definition.object_name:
        action.setObjectName(definition.object_name)
    action.triggered.connect(lambda _checked=False, slot=definition.slot: getattr(window, slot)())
    window.addAction(action)  # shortcuts work even when the menu bar is hidden
    return action


def install_actions(window: QMainWindow, recent_menu: QMenu) -> None:
    """Create every action on ``window`` (``window.action_*``, ``window.section_actions``) and the menus."""
    for definition in ACTIONS:
        setattr(window, definition.attr, _make_action(window, definition))
    window.section_actions = {}
    for key in SECTIONS:
        title = SECTION_INFO[key].title
        action = QAction(icon(key), title, window)
        action.setShortcut(QKeySequence(section_shortcut(key)))
        action.setStatusTip(f"Go to {title}")
        action.setToolTip(f"Go to {title}")
        action.setObjectName(f"actionSection_{key}")
        action.triggered.connect(lambda _checked=False, key=key: window.show_section(key))
        window.addAction(action)
        window.section_actions[key] = action
    for toggle in DOCK_TOGGLES:
        action = getattr(window, toggle.dock).toggleViewAction()
        action.setShortcut(QKeySequence(toggle.shortcut))
        window.addAction(action)
        setattr(window, toggle.attr, action)

    menu_bar = window.menuBar()
    for title, entries in MENUS:
        menu = menu_bar.addMenu(title)
        for entry in entries:
            if entry == SEPARATOR:
                menu.addSeparator()
            elif entry == RECENT:
                menu.addMenu(recent_menu)
            elif entry == SECTION_ACTIONS:
                menu.addActions(list(window.section_actions.values()))
            else:
                menu.addAction(getattr(window, entry))


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str]]:
    """``(keys, what)`` for every action with a shortcut, as the platform writes the keys."""
    native = QKeySequence.SequenceFormat.NativeText
    rows = []
    for definition in ACTIONS:
        keys = ", ".join(key.toString(native) for key in getattr(window, definition.attr).shortcuts())
        if keys:
            rows.append((keys, definition.text.replace("&", "").rstrip("…")))
    first, last = SECTIONS[0], SECTIONS[-1]
    rows.append(
        (
            f"{section_shortcut(first)} … {section_shortcut(last)}",
            ", ".join(SECTION_INFO[key].title for key in SECTIONS),
        )
    )
    for toggle in DOCK_TOGGLES:
        rows.append((toggle.shortcut, f"show or hide the {getattr(window, toggle.dock).windowTitle()} dock"))
    return rows
