"""The plugin contract: discovery order, isolation, enable/disable, hook validation."""

from __future__ import annotations

import pytest

from difflora_gui.errors import UserError
from difflora_gui.plugin_host import PluginHost
from difflora_gui.settings import AppSettings
from difflora_gui.specs import MergeStrategySpec
from tests.plugin_helpers import install_fake_distribution, on_sys_path, strategy_plugin_source, write_module

BROKEN_IMPORT = "raise ImportError('needs a package that is not installed')\n"

RAISING_HOOK = """
from difflora_gui import hookimpl

@hookimpl
def difflora_register_merge_strategies():
    raise RuntimeError("plugin bug")
"""

WRONG_TYPE = """
from difflora_gui import hookimpl

@hookimpl
def difflora_register_merge_strategies():
    return ["not a spec"]
"""

TYPO_HOOK = """
from difflora_gui import hookimpl

@hookimpl
def difflora_register_merge_strategys():
    return []
"""

GUI_ONLY = """
from difflora_gui import hookimpl
from difflora_gui.specs import PanelSpec

@hookimpl
def difflora_gui_register_panels():
    return [PanelSpec(name="p", title="P", section="merge", widget="nowhere:Widget")]
"""


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "builtin", tmp_path / "user", tmp_path / "site"


def names(host):
    return {i.name: i for i in host.infos()}


def test_discovery_order_and_sources(dirs):
    builtin, user, site = dirs
    write_module(builtin, "bi_alpha", strategy_plugin_source("alpha_strategy"))
    write_module(user, "user_beta", strategy_plugin_source("beta_strategy", "2.5"))
    install_fake_distribution(
        site, "difflora-gamma", "3.1", "gamma_plugin", strategy_plugin_source("gamma_strategy")
    )
    with on_sys_path(site, "gamma_plugin"):
        host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()
        infos = [i for i in host.infos() if i.name != "core"]
        assert [(i.name, i.source) for i in infos] == [
            ("bi_alpha", "built-in"),
            ("user_beta", "folder"),
            ("gamma_plugin", "package"),
        ]
        assert [i.version for i in infos] == ["0.1.0", "2.5", "3.1"]
        assert all(i.status == "enabled" and i.hooks == ["difflora_register_merge_strategies"] for i in infos)
        assert list(host.merge_strategies()) == ["alpha_strategy", "beta_strategy", "gamma_strategy"]
        assert host.owner_of("difflora_register_merge_strategies", "gamma_strategy") == "gamma_plugin"
        # a string target in a folder plugin resolves through its importable package name
        spec = host.merge_strategies()["beta_strategy"]
        assert isinstance(spec, MergeStrategySpec) and spec.is_filter and not spec.is_compressor


def test_autoload_switch_skips_folder_and_package_plugins(dirs, monkeypatch):
    builtin, user, site = dirs
    write_module(builtin, "bi_only", strategy_plugin_source("s1"))
    write_module(user, "user_only", strategy_plugin_source("s2"))
    install_fake_distribution(site, "difflora-pkg", "1.0", "pkg_only", strategy_plugin_source("s3"))
    monkeypatch.setenv("DIFFLORA_DISABLE_PLUGIN_AUTOLOAD", "1")
    with on_sys_path(site, "pkg_only"):
        host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()
        assert set(names(host)) == {"core", "bi_only"}


def test_broken_plugins_are_isolated_and_reported(dirs):
    builtin, user, _ = dirs
    write_module(builtin, "bi_good", strategy_plugin_source("good"))
    write_module(user, "user_broken_import", BROKEN_IMPORT)
    write_module(user, "user_raising", RAISING_HOOK)
    write_module(user, "user_wrong_type", WRONG_TYPE)
    write_module(user, "user_typo", TYPO_HOOK)
    host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()
    assert list(host.merge_strategies()) == ["good"]
    info = names(host)
    assert info["user_broken_import"].status == "failed"
    assert "import failed: ImportError: needs a package" in info["user_broken_import"].error
    assert info["user_raising"].status == "failed" and "plugin bug" in info["user_raising"].error
    assert info["user_wrong_type"].status == "failed" and "MergeStrategySpec" in info["user_wrong_type"].error
    assert info["user_typo"].status == "failed"
    assert "unknown hook 'difflora_register_merge_strategys'" in info["user_typo"].error
    assert info["bi_good"].status == "enabled"
    assert host.pm.get_plugin("user_raising") is None  # disabled for the rest of the session


def test_gui_hooks_are_not_typos_headless(dirs):
    builtin, user, _ = dirs
    write_module(user, "user_gui_only", GUI_ONLY)
    host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()
    assert names(host)["user_gui_only"].status == "enabled"
    from difflora_gui.qt import gui_hookspecs

    host.add_gui_hookspecs(gui_hookspecs)  # the GUI does this at start-up; check_pending() then passes
    panels = host.call_register("difflora_gui_register_panels")
    assert [(p, s.name) for p, s in panels] == [("user_gui_only", "p")]


def test_name_clashes_are_refused(dirs):
    builtin, user, _ = dirs
    write_module(builtin, "clash", strategy_plugin_source("first"))
    write_module(user, "clash", strategy_plugin_source("second"))
    write_module(user, "user_dupe_strategy", strategy_plugin_source("first"))
    host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()
    info = names(host)
    assert info["clash"].source == "built-in" and info["clash"].status == "enabled"
    assert info["clash (folder)"].status == "failed" and "already used" in info["clash (folder)"].error
    assert list(host.merge_strategies()) == ["first"]
    assert "already registered by plugin 'clash'" in names(host)["user_dupe_strategy"].error


def test_disable_and_enable_are_persisted(dirs):
    builtin, user, _ = dirs
    write_module(user, "user_toggle", strategy_plugin_source("toggled"))
    host = PluginHost(builtin_dir=builtin, user_dir=user).load()
    assert "toggled" in host.merge_strategies()
    host.set_enabled("user_toggle", False)
    assert "toggled" not in host.merge_strategies()
    assert AppSettings.load().disabled_plugins == ["user_toggle"]

    again = PluginHost(builtin_dir=builtin, user_dir=user).load()
    assert names(again)["user_toggle"].status == "disabled"
    assert "toggled" not in again.merge_strategies()
    again.set_enabled("user_toggle", True)
    assert names(again)["user_toggle"].status == "enabled"
    assert "toggled" in again.merge_strategies()
    assert AppSettings.load().disabled_plugins == []
    with pytest.raises(UserError, match="cannot be disabled"):
        again.set_enabled("core", False)
    with pytest.raises(UserError, match="no plugin named"):
        again.set_enabled("nope", False)


def test_registering_a_test_plugin_object(dirs):
    builtin, user, _ = dirs
    host = PluginHost(builtin_dir=builtin, user_dir=user, persist=False).load()

    class TestPlugin:
        from difflora_gui import hookimpl

        @hookimpl
        def difflora_register_merge_strategies(self):
            return [
                MergeStrategySpec(
                    name="inline", title="Inline", description="d", select=lambda s, p, c: set()
                )
            ]

    host.register(TestPlugin(), "inline_plugin")
    assert "inline" in host.merge_strategies()
    host.unregister("inline_plugin")
    assert "inline" not in host.merge_strategies()


def test_one_registry_declares_every_register_hook_and_its_spec_type():
    import inspect

    from difflora_gui import hookspecs, specs
    from difflora_gui.qt import gui_hookspecs

    def declared(module):
        return {name for name, f in vars(module).items() if name.startswith("difflora_") and inspect.isfunction(f)}

    registry = {hook.name: hook for hook in specs.REGISTER_HOOKS}
    assert {name for name, hook in registry.items() if not hook.gui} == declared(hookspecs)
    assert {name for name, hook in registry.items() if hook.gui} == declared(gui_hookspecs)
    assert specs.register_hook_names(gui=False) == hookspecs.REGISTER_HOOKS
    assert specs.register_hook_names(gui=True) == gui_hookspecs.GUI_REGISTER_HOOKS
    assert {name: hook.spec_type for name, hook in registry.items()} == specs.SPEC_TYPES
    assert specs.spec_type("difflora_gui_register_panels") is specs.PanelSpec
