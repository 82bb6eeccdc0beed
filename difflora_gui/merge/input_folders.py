"""The folder each Merge input's file dialog last chose a file in (Qt-free; a small JSON file).

Kept beside the settings (``<config dir>/input_folders.json``), not in them: it changes on every
Open… and is no setting a user edits. A slot that never chose a file starts in the first existing
Settings model folder. A damaged or missing file only means no folder is remembered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from difflora_gui.fileio import atomic_write_json
from difflora_gui.settings import config_dir

FILE_NAME = "input_folders.json"


def folders_path() -> Path:
    return config_dir() / FILE_NAME


class LastFolders:
    """``start(slot, ...)`` for a dialog, ``remember(slot, folder)`` after it chose a file."""

    def __init__(self, path: Path | None = None):
        self.path = path or folders_path()
        self.folders: dict[str, str] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            self.folders = {str(k): str(v) for k, v in data.items() if isinstance(v, str) and v}

    def remember(self, slot: str, folder: str | Path) -> None:
        folder = str(folder)
        if self.folders.get(slot) == folder:
            return
        self.folders[slot] = folder
        try:
            atomic_write_json(self.path, self.folders)
        except OSError:
            pass  # only a convenience: the next dialog starts elsewhere

    def start(
        self, slot: str, *, current: str | Path | None = None, model_folders: Iterable[str] = ()
    ) -> str:
        """Where the dialog opens: the folder of the file the slot holds, else the slot's last folder,
        else the first Settings model folder that exists ("" when none: the dialog's own choice)."""
        candidates = [str(Path(current).parent)] if current else []
        candidates.append(self.folders.get(slot, ""))
        candidates += list(model_folders)
        for folder in candidates:
            if folder and Path(folder).is_dir():
                return folder
        return ""
