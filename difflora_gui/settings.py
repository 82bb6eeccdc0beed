"""Per-user application settings (Qt-free), stored as JSON in the platform's config folder.

``DIFFLORA_CONFIG_DIR`` and ``DIFFLORA_DATA_DIR`` override the folders (tests use them). The GUI
keeps only window geometry in ``QSettings``; everything a job needs lives here so the CLI sees
the same configuration.

Settings are dataclasses with type hints; one small validator (:func:`_coerce`) checks a file's
values against them on load. A bad value is never dropped silently: it keeps its default, the
problem is reported with the file and the key (``load_warning``), and the value the user wrote is
written back unchanged on save unless the setting was changed meanwhile. Keys this version does
not know are kept too, so a file written by a newer version survives a round trip.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from difflora_gui import APP_NAME
from difflora_gui.fileio import atomic_write_json

#: 2: ``comfyui_servers`` became records (version 1 stored a list of URL strings)
SETTINGS_VERSION = 2
MAX_RECENT = 10
DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"

#: field metadata: kept in memory only, never read from or written to the file
INTERNAL = {"internal": True}

#: a settings file set aside as damaged by this process, by path: later loads still report it
#: (the plugin host reads the settings before the window does, and would otherwise swallow it)
_set_aside_warnings: dict[str, str] = {}


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


# --- value checks (also used by the Settings dialog) ---------------------------------------------


def url_problem(url: str) -> str:
    """Why ``url`` is not a server address ('' if it is), phrased as ``expected ...``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"expected a URL such as {DEFAULT_COMFYUI_URL} (http or https, a host, a port), got {url!r}"
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"expected a URL with a port from 1 to 65535, got {url!r}"
    return ""


def _one_of(*choices: str) -> Callable[[Any], str]:
    def problem(value: Any) -> str:
        return "" if value in choices else f"expected one of {', '.join(choices)}, got {value!r}"

    return problem


def device_problem(device: str) -> str:
    """Why ``device`` is not ``auto``, ``cpu`` or ``cuda:N`` ('' if it is)."""
    if device in ("auto", "cpu"):
        return ""
    index = device.removeprefix("cuda:")
    if device.startswith("cuda:") and index.isdigit():
        return ""
    return f"expected auto, cpu or cuda:N, got {device!r}"


def server_name_for(url: str) -> str:
    """The name a server gets when it has none: ``host:port`` of its URL (or the URL itself)."""
    parsed = urlparse(url.strip())
    if not parsed.hostname:
        return url.strip()
    return parsed.netloc.rpartition("@")[2]  # never a user name or password in a lane name


def _bounded(minimum: float | None = None, maximum: float | None = None) -> dict[str, Any]:
    return {"min": minimum, "max": maximum}


# --- the settings --------------------------------------------------------------------------------


@dataclass
class ComfyServer:
    """A running ComfyUI server that renders previews and grid cells (one job at a time each)."""

    #: unique among the servers; names the job lane ``comfy:<name>``
    name: str = ""
    url: str = field(default="", metadata={"required": True, "check": url_problem})
    #: this machine's path of a folder the server lists under its ``models/loras`` (a local folder
    #: or a network share): ComfyUI has no LoRA upload, so a LoRA to render is copied there
    lora_dir: str = ""
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, metadata=INTERNAL)


def _default_servers() -> list[ComfyServer]:
    return [ComfyServer(name=server_name_for(DEFAULT_COMFYUI_URL), url=DEFAULT_COMFYUI_URL)]


@dataclass
class AppSettings:
    """What the Settings dialog edits. Paths are stored as strings (JSON, any platform)."""

    model_folders: list[str] = field(default_factory=list)
    musubi_tuner_dir: str = ""
    #: the Python that runs Musubi Tuner (its venv's python.exe); empty: this app's Python
    musubi_python: str = ""
    #: Wan model files for training (Musubi) and single-file loading: DiT (the low-noise expert for
    #: Wan2.2 A14B), the high-noise DiT, VAE, T5 and CLIP (Wan2.1 I2V only); checked before a run
    wan_dit: str = ""
    wan_dit_high_noise: str = ""
    wan_vae: str = ""
    wan_t5: str = ""
    wan_clip: str = ""
    #: a diffusers-format Wan folder (model_index.json, transformer[_2], vae, text_encoder) for the
    #: built-in trainer and the preview
    wan_model_dir: str = ""
    #: diffusers component folders (config.json + *.safetensors) used instead of the diffusers
    #: folder's vae/ and text_encoder/ by the preview and the built-in trainer; empty: the folder's own
    wan_vae_dir: str = ""
    wan_text_encoder_dir: str = ""
    #: the preview's compute dtype, its memory savers (model or group CPU offload, VAE tiling and
    #: slicing for 14B on 24 GB) and the size limit of its render cache in the project workspace
    preview_dtype: str = field(default="bf16", metadata={"check": _one_of("bf16", "fp16", "fp32")})
    preview_offload: str = field(default="none", metadata={"check": _one_of("none", "model", "group")})
    preview_vae_tiling: bool = False
    preview_vae_slicing: bool = False
    preview_cache_mb: int = field(default=2048, metadata=_bounded(16, 1_000_000))
    #: a diffusers-format FLUX.1 Kontext [dev] folder (model_index.json, transformer, vae, text
    #: encoders, tokenizers) for counterpart generation; checked by the Settings dialog
    #: (``difflora_gui.dataset.kontext_params.model_folder_problem``), not on load (a drive may be away)
    kontext_model_dir: str = ""
    comfyui_servers: list[ComfyServer] = field(default_factory=_default_servers)
    default_device: str = field(default="auto", metadata={"check": device_problem})
    output_dir: str = ""
    disabled_plugins: list[str] = field(default_factory=list)
    recent_projects: list[str] = field(default_factory=list)
    #: seconds between autosaves of a project with unsaved changes (the GUI's crash recovery)
    autosave_interval_s: int = field(default=60, metadata=_bounded(5, 3600))
    #: how many ``light`` jobs (file checks, thumbnails, analysis) the job scheduler runs at once
    max_parallel_light_jobs: int = field(default=2, metadata=_bounded(1, 8))
    #: on quit, how long the window waits for cancelled jobs to stop before it stays open
    shutdown_timeout_s: float = field(default=30.0, metadata=_bounded(1.0, 600.0))
    #: load third-party plugins (the user plugins folder and installed packages); the built-in
    #: ones always load. ``DIFFLORA_DISABLE_PLUGIN_AUTOLOAD=1`` turns them off for one run.
    load_user_plugins: bool = True
    #: the first start's "Build the demo project?" banner was answered (either way): it shows once
    demo_offer_answered: bool = False

    #: what was wrong with the file on the last load: one line, "<file>: key 'x': ...; key 'y': ..."
    load_warning: str = field(default="", compare=False, repr=False, metadata=INTERNAL)
    #: the same problems, one entry each ("key 'x': expected ..., got ...; using the default ...")
    load_problems: list[str] = field(default_factory=list, compare=False, repr=False, metadata=INTERNAL)
    #: keys of the file this version does not know, written back unchanged
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, metadata=INTERNAL)
    #: fields with a bad value in the file: name -> (the value as written, the value loaded instead)
    kept_bad_values: dict[str, tuple[Any, Any]] = field(
        default_factory=dict, compare=False, repr=False, metadata=INTERNAL
    )
    file_version: int = field(default=SETTINGS_VERSION, compare=False, repr=False, metadata=INTERNAL)

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> AppSettings:
        """Read the settings; a damaged file is set aside (never lost) and defaults are used."""
        path = cls.path()
        if not path.exists():
            settings = cls()
            settings.load_warning = _set_aside_warnings.get(str(path), "")
            return settings
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad may add a BOM
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
            _set_aside_warnings[str(path)] = settings.load_warning
            return settings
        return cls.from_json(data, source=path)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path | str = "settings") -> AppSettings:
        """Settings from a file's JSON object: migrated, validated, problems in ``load_warning``."""
        problems: list[str] = []
        version = data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            problems.append(
                f"key 'version': expected a whole number from 1, got {_describe(version)}; read as 1"
            )
            version = 1
        data = _migrate({k: v for k, v in data.items() if k != "version"}, version)
        kept: dict[str, tuple[Any, Any]] = {}
        settings = _load_record(cls, data, "", problems, kept)
        problems.extend(settings._settle_servers())
        # what was loaded instead of each bad value, as settled: unchanged at save = write it back
        settings.kept_bad_values = {
            name: (written, copy.deepcopy(getattr(settings, name))) for name, (written, _) in kept.items()
        }
        settings.file_version = max(version, SETTINGS_VERSION)
        settings.load_problems = problems
        if problems:
            settings.load_warning = f"{source}: " + "; ".join(problems)
        return settings

    def to_json(self) -> dict[str, Any]:
        """What :meth:`save` writes: every setting, the unknown keys and the untouched bad values."""
        data: dict[str, Any] = {"version": self.file_version}
        data.update(_to_json(self))
        for name, (written, loaded_instead) in self.kept_bad_values.items():
            if _to_json(getattr(self, name)) == _to_json(loaded_instead):
                data[name] = written  # never changed since: keep what the user wrote
        return data

    def save(self) -> Path:
        path = self.path()
        path.parent.mkdir(parents=True, exist_ok=True)
        written = atomic_write_json(path, self.to_json())
        _set_aside_warnings.pop(str(path), None)
        return written

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else default_output_dir()

    def add_recent(self, project: str | Path) -> None:
        text = str(Path(project))
        self.recent_projects = [text] + [p for p in self.recent_projects if p != text]
        del self.recent_projects[MAX_RECENT:]

    def enabled_comfyui_servers(self) -> list[ComfyServer]:
        return [server for server in self.comfyui_servers if server.enabled]

    def _settle_servers(self) -> list[str]:
        """Give nameless servers their ``host:port`` and make names unique (they name job lanes)."""
        problems = []
        seen: dict[str, int] = {}
        for index, server in enumerate(self.comfyui_servers):
            if not server.name.strip():
                server.name = server_name_for(server.url)
            server.name = server.name.strip()
            if server.name in seen:
                base, number = server.name, 2
                while f"{base} ({number})" in seen or any(
                    s.name == f"{base} ({number})" for s in self.comfyui_servers
                ):
                    number += 1
                server.name = f"{base} ({number})"
                problems.append(
                    f"key 'comfyui_servers[{index}].name': {base!r} is already the name of "
                    f"comfyui_servers[{seen[base]}]; renamed {server.name!r}"
                )
            seen[server.name] = index
        return problems


def setting_bounds(name: str) -> tuple[Any, Any]:
    """The ``(min, max)`` a numeric setting accepts (``None`` where open), for editors."""
    meta = next(f.metadata for f in fields(AppSettings) if f.name == name)
    return meta.get("min"), meta.get("max")


# --- migration ----------------------------------------------------------------------------------


def _migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring a file's data to :data:`SETTINGS_VERSION` (newer files are read as they are)."""
    if version < 2:
        servers = data.get("comfyui_servers")
        if isinstance(servers, list):
            data["comfyui_servers"] = [
                {"name": server_name_for(s), "url": s.strip(), "lora_dir": "", "enabled": True}
                if isinstance(s, str)
                else s
                for s in servers
            ]
    return data


# --- the validator ------------------------------------------------------------------------------


class SettingValueError(ValueError):
    """One bad value: ``key`` is its place in the file (``comfyui_servers[1].url``)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"key {key!r}: {message}")
        self.key = key
        self.message = message


def _describe(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _stored_fields(cls: type) -> list[Field]:
    return [f for f in fields(cls) if not f.metadata.get("internal")]


def _default_of(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _range_text(meta: typing.Mapping[str, Any]) -> str:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _check_number(value: float, kind: str, key: str, meta: typing.Mapping[str, Any], raw: Any) -> None:
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SettingValueError(key, f"expected {kind}{_range_text(meta)}, got {_describe(raw)}")


def _coerce(value: Any, hint: Any, key: str, meta: typing.Mapping[str, Any], problems: list[str]) -> Any:
    """``value`` as type ``hint``, or SettingValueError. Bad list items are left out (a problem)."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingValueError(key, f"expected true or false, got {_describe(value)}")
    elif hint is int:
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral:
            raise SettingValueError(
                key, f"expected a whole number{_range_text(meta)}, got {_describe(value)}"
            )
        _check_number(value, "a whole number", key, meta, value)
        value = int(value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingValueError(key, f"expected a number{_range_text(meta)}, got {_describe(value)}")
        _check_number(value, "a number", key, meta, value)
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise SettingValueError(key, f"expected a text, got {_describe(value)}")
    elif origin is list:
        if not isinstance(value, list):
            raise SettingValueError(key, f"expected a list, got {_describe(value)}")
        (item_hint,) = typing.get_args(hint)
        items = []
        for index, item in enumerate(value):
            item_key = f"{key}[{index}]"
            try:
                items.append(_coerce(item, item_hint, item_key, {}, problems))
            except SettingValueError as exc:
                problems.append(f"{exc}; {item_key} left out")
        value = items
    elif isinstance(hint, type) and is_dataclass(hint):
        return _load_record(hint, value, key, problems, None)
    else:  # a programming error in a settings class, not a user's mistake
        raise TypeError(f"settings field {key!r} has an unsupported type {hint!r}")
    check: Callable[[Any], str] | None = meta.get("check")
    if check is not None and (problem := check(value)):
        raise SettingValueError(key, problem)
    return value


def _load_record(
    cls: type, data: Any, key: str, problems: list[str], kept: dict[str, tuple[Any, Any]] | None
) -> Any:
    """A dataclass from a JSON object: a bad field keeps its default (a problem), a bad required
    field fails the whole record; unknown keys go to the record's ``extra``."""
    stored = _stored_fields(cls)
    if not isinstance(data, dict):
        names = ", ".join(f.name for f in stored)
        raise SettingValueError(key, f"expected an object with {names}, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in stored:
        sub_key = f"{key}.{f.name}" if key else f.name
        if f.name not in data:
            if f.metadata.get("required"):
                raise SettingValueError(sub_key, "missing")
            continue
        before = len(problems)
        try:
            values[f.name] = _coerce(data[f.name], hints[f.name], sub_key, f.metadata, problems)
        except SettingValueError as exc:
            if f.metadata.get("required"):
                raise
            default = _default_of(f)
            problems.append(f"{exc}; using the default {_describe(_to_json(default))}")
            values[f.name] = default
        if kept is not None and len(problems) > before:
            kept[f.name] = (copy.deepcopy(data[f.name]), copy.deepcopy(values[f.name]))
    record = cls(**values)
    known = {f.name for f in stored}
    record.extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in known}
    return record


def _to_json(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _to_json(getattr(value, f.name)) for f in _stored_fields(type(value))}
        for name, extra in getattr(value, "extra", {}).items():
            data.setdefault(name, copy.deepcopy(extra))
        return data
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value
