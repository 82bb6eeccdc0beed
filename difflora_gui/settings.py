"""Per-user application settings (Qt-free), stored as JSON in the platform's config folder.

``DIFFLORA_CONFIG_DIR`` and ``DIFFLORA_DATA_DIR`` override the folders (tests use them). The GUI
keeps only window geometry in ``QSettings``; everything a job needs lives here so the CLI sees
the same configuration.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from difflora_gui import APP_NAME
from difflora_gui.fileio import atomic_write_json

SETTINGS_VERSION = 1
MAX_RECENT = 10


def config_dir() -> Path:
    override = os.environ.get("DIFFLORA_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    override = os.environ.get("DIFFLORA_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_plugins_dir() -> Path:
    """Folder scanned for the user's own plugin modules and packages."""
    return data_dir() / "plugins"


def default_output_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_documents_dir()) / APP_NAME


@dataclass
class AppSettings:
    """What the Settings dialog edits. Paths are stored as strings (JSON, any platform)."""

    model_folders: list[str] = field(default_factory=list)
    musubi_tuner_dir: str = ""
    comfyui_servers: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8188"])
    default_device: str = "auto"
    output_dir: str = ""
    disabled_plugins: list[str] = field(default_factory=list)
    recent_projects: list[str] = field(default_factory=list)
    load_warning: str = field(default="", compare=False, repr=False)

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> AppSettings:
        """Read the settings; a damaged file is set aside (never lost) and defaults are used."""
        path = cls.path()
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            backup = path.with_name(f"settings.damaged-{time.strftime('%Y%m%d-%H%M%S')}.json")
            try:
                path.replace(backup)
                where = f"kept as {backup.name}"
            except OSError:
                where = "left in place"
            settings = cls()
            settings.load_warning = f"{path}: unreadable settings ({exc}); {where}, using defaults"
            return settings
        known = {f.name for f in fields(cls)} - {"load_warning"}
        values = {k: v for k, v in data.items() if k in known}
        settings = cls()
        for key, value in values.items():
            default = getattr(settings, key)
            if isinstance(default, list) and isinstance(value, list):
                setattr(settings, key, [str(v) for v in value])
            elif isinstance(default, str) and isinstance(value, str):
                setattr(settings, key, value)
        return settings

    def save(self) -> Path:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.pop("load_warning", None)
        data["version"] = SETTINGS_VERSION
        return atomic_write_json(path, data)

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else default_output_dir()

    def add_recent(self, project: str | Path) -> None:
        text = str(Path(project))
        self.recent_projects = [text] + [p for p in self.recent_projects if p != text]
        del self.recent_projects[MAX_RECENT:]
