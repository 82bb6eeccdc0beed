"""Finding, loading, isolating and calling plugins.

Discovery order (a later plugin with a name already taken is refused):

1. the app's ``plugins/`` folder (built-in plugins, importable as ``difflora_builtin_plugins.*``);
2. the per-user plugins folder (``settings.user_plugins_dir()``, importable as
   ``difflora_user_plugins.*``), one ``.py`` module or package per plugin;
3. installed distributions declaring the entry-point group ``difflora_gui.plugins``.

``DIFFLORA_DISABLE_PLUGIN_AUTOLOAD=1`` skips 2 and 3. A plugin that fails to import, implements
an unknown hook, or raises or returns garbage from a hook is disabled and reported with its
error; everything else keeps working. Users can disable plugins; the choice is persisted in
:class:`difflora_gui.settings.AppSettings`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from difflora_gui import PROJECT_NAME, __version__, hookspecs
from difflora_gui.specs import SPEC_TYPES, check_specs

ENTRY_POINT_GROUP = "difflora_gui.plugins"
AUTOLOAD_ENV = "DIFFLORA_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PACKAGE = "difflora_builtin_plugins"
USER_PACKAGE = "difflora_user_plugins"
#: hooks with this prefix belong to the GUI hookspecs, which are added only when the window starts
GUI_HOOK_PREFIX = "difflora_gui_"
#: always-on plugins inside the package (the core commands); they cannot be disabled
ESSENTIAL_PLUGINS = (("core", "difflora_gui.commands"),)

SOURCES = ("built-in", "folder", "package")


@dataclass
class PluginInfo:
    """One row of ``python main.py plugins`` and of the Plugins dialog."""

    name: str
    source: str
    version: str = ""
    location: str = ""
    hooks: list[str] = field(default_factory=list)
    status: str = "enabled"  # enabled | disabled | failed
    error: str = ""
    can_disable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "location": self.location,
            "hooks": list(self.hooks),
            "status": self.status,
            "error": self.error,
        }


@dataclass
class _Candidate:
    name: str
    source: str
    location: str
    load: Any  # () -> module object
    version: str = ""
    can_disable: bool = True


def app_plugins_dir() -> Path:
    """The built-in ``plugins/`` folder (see :mod:`difflora_gui.paths`)."""
    from difflora_gui.paths import builtin_plugins_dir

    return builtin_plugins_dir()


def _ensure_namespace(package: str, folder: Path) -> None:
    """Make ``package.<module>`` importable from ``folder`` so "module:attr" strings resolve."""
    module = sys.modules.get(package)
    folder_text = str(folder)
    if module is None:
        module = types.ModuleType(package)
        module.__path__ = []  # type: ignore[attr-defined]
        module.__package__ = package
        module.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
        module.__spec__.submodule_search_locations = module.__path__  # type: ignore[attr-defined]
        sys.modules[package] = module
    if folder_text not in module.__path__:  # type: ignore[attr-defined]
        module.__path__.append(folder_text)  # type: ignore[attr-defined]


def _folder_candidates(folder: Path, package: str, source: str) -> list[_Candidate]:
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_file() and entry.suffix == ".py":
            stem = entry.stem
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            stem = entry.name
        else:
            continue
        if not stem.isidentifier():
            continue
        module_name = f"{package}.{stem}"

        def load(module_name=module_name, folder=folder, package=package):
            _ensure_namespace(package, folder)
            return importlib.import_module(module_name)

        version = __version__ if source == "built-in" else ""
        found.append(_Candidate(stem, source, str(entry), load, version))
    return found


def _entry_point_candidates() -> list[_Candidate]:
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else ""
        location = f"{dist.metadata['Name']} ({ep.value})" if dist is not None else ep.value
        found.append(_Candidate(ep.name, "package", location, ep.load, version))
    return found


class PluginHost:
    """Owns the pluggy ``PluginManager`` and everything known about each plugin."""

    def __init__(
        self,
        *,
        builtin_dir: Path | None = None,
        user_dir: Path | None = None,
        autoload: bool | None = None,
        disabled: Iterable[str] | None = None,
        persist: bool = True,
    ):
        from difflora_gui.settings import AppSettings, user_plugins_dir

        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._builtin_dir = builtin_dir if builtin_dir is not None else app_plugins_dir()
        self._user_dir = user_dir if user_dir is not None else user_plugins_dir()
        settings = AppSettings.load() if persist else None
        if autoload is None:
            autoload = os.environ.get(AUTOLOAD_ENV, "").strip() not in ("1", "true", "yes")
            autoload = autoload and (settings is None or settings.load_user_plugins)
        self.autoload = autoload
        self._persist = persist
        if disabled is None:
            disabled = settings.disabled_plugins if settings is not None else ()
        self._disabled = set(disabled)
        self._infos: dict[str, PluginInfo] = {}
        self._candidates: dict[str, _Candidate] = {}
        self._cache: dict[str, list] = {}
        self._gui_specs_added = False
        self._lock = threading.RLock()
        self._loaded = False

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> PluginHost:
        with self._lock:
            if self._loaded:
                return self
            self._loaded = True
            for name, module_name in ESSENTIAL_PLUGINS:
                candidate = _Candidate(
                    name,
                    "built-in",
                    module_name,
                    lambda m=module_name: importlib.import_module(m),
                    __version__,
                    can_disable=False,
                )
                self._load_candidate(candidate)
            candidates = _folder_candidates(self._builtin_dir, BUILTIN_PACKAGE, "built-in")
            if self.autoload:
                candidates += _folder_candidates(self._user_dir, USER_PACKAGE, "folder")
                try:
                    candidates += _entry_point_candidates()
                except Exception as exc:  # broken package metadata must not stop the app
                    self._infos["<entry points>"] = PluginInfo(
                        "<entry points>",
                        "package",
                        status="failed",
                        error=f"reading entry points failed: {exc}",
                    )
            for candidate in candidates:
                self._load_candidate(candidate)
            self._check_hooks()
        return self

    def _load_candidate(self, candidate: _Candidate) -> None:
        if candidate.name in self._infos:
            other = self._infos[candidate.name]
            clash = PluginInfo(
                f"{candidate.name} ({candidate.source})",
                candidate.source,
                candidate.version,
                candidate.location,
                status="failed",
                error=f"name {candidate.name!r} is already used by the {other.source} plugin at {other.location}",
            )
            self._infos[clash.name] = clash
            return
        info = PluginInfo(
            candidate.name,
            candidate.source,
            candidate.version,
            candidate.location,
            can_disable=candidate.can_disable,
        )
        self._infos[candidate.name] = info
        self._candidates[candidate.name] = candidate
        if candidate.can_disable and candidate.name in self._disabled:
            info.status = "disabled"
            return
        try:
            module = candidate.load()
        except BaseException as exc:  # SystemExit/KeyboardInterrupt from a plugin import too
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.status = "failed"
            info.error = f"import failed: {type(exc).__name__}: {exc}"
            return
        if not info.version:
            info.version = str(getattr(module, "__version__", "") or "")
        try:
            self.pm.register(module, name=candidate.name)
        except Exception as exc:
            info.status = "failed"
            info.error = f"registration failed: {type(exc).__name__}: {exc}"
            return
        info.hooks = sorted(impl_name for impl_name, _ in self._impls_of(candidate.name))
        self._cache.clear()

    def _impls_of(self, plugin_name: str):
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return [(caller.name, caller) for caller in self.pm.get_hookcallers(plugin) or []]

    def _check_hooks(self) -> None:
        """Reject plugins implementing hooks that do not exist (a typo would silently do nothing)."""
        for caller_name, caller in list(vars(self.pm.hook).items()):
            if not isinstance(caller, pluggy.HookCaller) or caller.spec is not None:
                continue
            if caller_name.startswith(GUI_HOOK_PREFIX) and not self._gui_specs_added:
                continue  # a GUI hook; checked once the GUI adds its hookspecs
            for impl in caller.get_hookimpls():
                if getattr(impl, "hookimpl_config", None) is not None and impl.hookimpl_config.optionalhook:
                    continue
                self._fail(impl.plugin_name, f"implements unknown hook {caller_name!r}")
        if self._gui_specs_added:
            self.pm.check_pending()

    def add_gui_hookspecs(self, module) -> None:
        """Called by the GUI at start-up with :mod:`difflora_gui.qt.gui_hookspecs`."""
        with self._lock:
            self.pm.add_hookspecs(module)
            self._gui_specs_added = True
            for info in self._infos.values():
                if info.status == "enabled":
                    info.hooks = sorted(name for name, _ in self._impls_of(info.name))
            self._check_hooks()
            self._cache.clear()

    def _fail(self, plugin_name: str, error: str) -> None:
        info = self._infos.get(plugin_name)
        if info is None:
            info = self._infos[plugin_name] = PluginInfo(plugin_name, "package")
        info.status = "failed"
        info.error = error
        if self.pm.get_plugin(plugin_name) is not None:
            self.pm.unregister(name=plugin_name)
        self._cache.clear()

    # --- registering directly (tests, embedding) ---------------------------------------------

    def register(self, plugin: Any, name: str, *, source: str = "package", version: str = "") -> PluginInfo:
        """Register an already imported plugin object (a module or an object with hookimpls)."""
        with self._lock:
            self._loaded = True
            candidate = _Candidate(name, source, repr(plugin), lambda: plugin, version)
            self._load_candidate(candidate)
            self._check_hooks()
            return self._infos[name]

    def unregister(self, name: str) -> None:
        with self._lock:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._infos.pop(name, None)
            self._candidates.pop(name, None)
            self._cache.clear()

    # --- enable / disable --------------------------------------------------------------------

    def set_enabled(self, name: str, enabled: bool) -> PluginInfo:
        """Enable or disable a plugin now and remember the choice."""
        from difflora_gui.errors import UserError

        with self._lock:
            info = self._infos.get(name)
            if info is None:
                raise UserError(f"no plugin named {name!r}")
            if not info.can_disable:
                raise UserError(f"plugin {name!r} is part of the app and cannot be disabled")
            if enabled:
                self._disabled.discard(name)
                if info.status != "enabled" and name in self._candidates:
                    if self.pm.get_plugin(name) is not None:
                        self.pm.unregister(name=name)
                    del self._infos[name]
                    self._load_candidate(self._candidates[name])
                    self._check_hooks()
            else:
                self._disabled.add(name)
                if self.pm.get_plugin(name) is not None:
                    self.pm.unregister(name=name)
                info.status = "disabled"
                info.error = ""
            self._cache.clear()
            if self._persist:
                self._save_disabled()
            return self._infos[name]

    def _save_disabled(self) -> None:
        from difflora_gui.settings import AppSettings

        settings = AppSettings.load()
        settings.disabled_plugins = sorted(self._disabled)
        settings.save()

    # --- queries -----------------------------------------------------------------------------

    def infos(self) -> list[PluginInfo]:
        self.load()
        return list(self._infos.values())

    def info(self, name: str) -> PluginInfo | None:
        self.load()
        return self._infos.get(name)

    def call_register(self, hook_name: str, expected: type | None = None) -> list[tuple[str, Any]]:
        """Call a ``register`` hook on every plugin separately; return ``(plugin_name, spec)`` pairs.

        A plugin whose implementation raises or returns the wrong type is disabled and reported;
        a spec whose name another plugin already registered for this hook is refused.
        """
        self.load()
        with self._lock:
            if hook_name in self._cache:
                return list(self._cache[hook_name])
            caller = getattr(self.pm.hook, hook_name, None)
            if caller is None:
                return []
            expected = expected or SPEC_TYPES.get(hook_name)
            results: list[tuple[str, Any]] = []
            owners: dict[str, str] = {}
            for impl in caller.get_hookimpls():  # registration (= discovery) order
                plugin_name = impl.plugin_name
                try:
                    specs = check_specs(hook_name, impl.function(), expected)
                except Exception as exc:
                    self._fail(plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
                    continue
                for spec in specs:
                    key = getattr(spec, "name", None)
                    if key in owners:
                        self._fail(
                            plugin_name,
                            f"{hook_name}: name {key!r} is already registered by plugin {owners[key]!r}",
                        )
                        results = [(p, s) for p, s in results if p != plugin_name]
                        break
                    owners[key] = plugin_name
                    results.append((plugin_name, spec))
            self._cache[hook_name] = results
            return list(results)

    def specs(self, hook_name: str) -> dict[str, Any]:
        """``{spec.name: spec}`` from a register hook, in discovery order."""
        return {spec.name: spec for _, spec in self.call_register(hook_name)}

    def owner_of(self, hook_name: str, spec_name: str) -> str | None:
        for plugin_name, spec in self.call_register(hook_name):
            if spec.name == spec_name:
                return plugin_name
        return None

    def merge_strategies(self):
        return self.specs("difflora_register_merge_strategies")

    def trainer_backends(self):
        return self.specs("difflora_register_trainer_backends")

    def dataset_tools(self):
        return self.specs("difflora_register_dataset_tools")

    def preview_backends(self):
        return self.specs("difflora_register_preview_backends")

    def cli_commands(self):
        return self.specs("difflora_register_cli_commands")


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
    return _host.load()


def set_plugin_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests, embedding); ``None`` resets it."""
    global _host
    with _host_lock:
        _host = host
