"""The Dataset section: import, the pair grid, the pair view, edits, tools (the GUI of difflora_gui.dataset)."""
