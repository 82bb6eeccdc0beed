"""Typed settings: every type survives a round trip, bad values are reported with file and key
(and keep their defaults while the rest loads), version-1 files migrate, unknown keys survive."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from difflora_gui.settings import (
    SETTINGS_VERSION,
    AppSettings,
    ComfyServer,
    device_problem,
    server_name_for,
    setting_bounds,
    url_problem,
)


def write_settings(data) -> None:
    path = AppSettings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def stored() -> dict:
    return json.loads(AppSettings.path().read_text(encoding="utf-8"))


def test_every_type_survives_a_round_trip(tmp_path):
    share = tmp_path / "ComfyUI ü" / "models" / "loras" / "difflora"
    settings = AppSettings(
        model_folders=[str(tmp_path / "models ü"), str(tmp_path / "more")],
        musubi_tuner_dir=str(tmp_path / "musubi"),
        comfyui_servers=[
            ComfyServer(name="local", url="http://127.0.0.1:8188", lora_dir=str(share), enabled=True),
            ComfyServer(name="render box", url="https://render.example.org:8443", enabled=False),
        ],
        default_device="cuda:1",
        output_dir=str(tmp_path / "out"),
        disabled_plugins=["x"],
        recent_projects=[str(tmp_path / "a.difflora")],
        autosave_interval_s=300,
        max_parallel_light_jobs=4,
        shutdown_timeout_s=12.5,
        load_user_plugins=False,
    )
    settings.save()
    loaded = AppSettings.load()
    assert loaded == settings
    assert loaded.load_warning == ""
    assert isinstance(loaded.comfyui_servers[1], ComfyServer)
    assert loaded.comfyui_servers[1].enabled is False
    assert loaded.shutdown_timeout_s == 12.5 and isinstance(loaded.shutdown_timeout_s, float)
    data = stored()
    assert data["version"] == SETTINGS_VERSION
    assert data["comfyui_servers"][0] == {
        "name": "local",
        "url": "http://127.0.0.1:8188",
        "lora_dir": str(share),
        "enabled": True,
    }
    assert data["load_user_plugins"] is False and data["autosave_interval_s"] == 300
    for internal in ("load_warning", "load_problems", "extra", "kept_bad_values", "file_version"):
        assert internal not in data


def test_defaults_when_there_is_no_file():
    settings = AppSettings.load()
    assert settings == AppSettings()
    assert settings.load_warning == ""
    assert [(s.name, s.url, s.enabled) for s in settings.comfyui_servers] == [
        ("127.0.0.1:8188", "http://127.0.0.1:8188", True)
    ]
    assert settings.autosave_interval_s == 60 and settings.max_parallel_light_jobs == 2


def test_a_bad_value_is_reported_with_file_and_key_and_the_rest_loads():
    write_settings(
        {
            "version": 2,
            "musubi_tuner_dir": "C:/musubi",
            "comfyui_servers": [
                {"name": "a", "url": "http://127.0.0.1:8188"},
                {"name": "b", "url": "127.0.0.1:8189", "enabled": True},
                {"name": "c", "url": "http://10.0.0.5:8188", "enabled": "yes"},
            ],
            "autosave_interval_s": "often",
            "max_parallel_light_jobs": 99,
            "shutdown_timeout_s": 7,
            "load_user_plugins": 0,
            "default_device": "tpu",
            "model_folders": ["D:/models", 5],
        }
    )
    settings = AppSettings.load()
    path = AppSettings.path()
    assert settings.load_warning.startswith(f"{path}: key 'model_folders[1]': expected a text, got 5")
    assert (
        "; key 'comfyui_servers[1].url': expected a URL such as http://127.0.0.1:8188"
        in settings.load_warning
    )
    assert "\n" not in settings.load_warning  # one line, for stderr and the Log
    assert settings.load_problems == [
        "key 'model_folders[1]': expected a text, got 5; model_folders[1] left out",
        "key 'comfyui_servers[1].url': expected a URL such as http://127.0.0.1:8188 (http or https, "
        "a host, a port), got '127.0.0.1:8189'; comfyui_servers[1] left out",
        "key 'comfyui_servers[2].enabled': expected true or false, got 'yes'; using the default true",
        "key 'default_device': expected auto, cpu or cuda:N, got 'tpu'; using the default 'auto'",
        "key 'autosave_interval_s': expected a whole number from 5 to 3600, got 'often'; using the default 60",
        "key 'max_parallel_light_jobs': expected a whole number from 1 to 8, got 99; using the default 2",
        "key 'load_user_plugins': expected true or false, got 0; using the default true",
    ]
    # the good values load, the bad ones keep their defaults
    assert settings.musubi_tuner_dir == "C:/musubi"
    assert settings.model_folders == ["D:/models"]
    assert [(s.name, s.enabled) for s in settings.comfyui_servers] == [("a", True), ("c", True)]
    assert settings.shutdown_timeout_s == 7.0  # an int is a fine float
    assert (settings.autosave_interval_s, settings.max_parallel_light_jobs) == (60, 2)
    assert settings.default_device == "auto" and settings.load_user_plugins is True


def test_bad_values_are_written_back_unchanged_unless_the_setting_was_changed():
    write_settings({"version": 2, "autosave_interval_s": "often", "comfyui_servers": [{"url": 3}]})
    settings = AppSettings.load()
    settings.musubi_tuner_dir = "/opt/musubi"
    settings.save()
    data = stored()
    assert data["autosave_interval_s"] == "often"  # the user's text is not lost
    assert data["comfyui_servers"] == [{"url": 3}]
    assert data["musubi_tuner_dir"] == "/opt/musubi"
    again = AppSettings.load()
    assert "key 'autosave_interval_s'" in again.load_warning
    again.autosave_interval_s = 120
    again.save()
    assert stored()["autosave_interval_s"] == 120
    assert "autosave_interval_s" not in AppSettings.load().load_warning


def test_a_version_1_file_migrates_to_server_records():
    # what the version-1 code wrote (its asdict() plus version)
    write_settings(
        {
            "model_folders": ["D:/ComfyUI/models"],
            "musubi_tuner_dir": "",
            "comfyui_servers": ["http://127.0.0.1:8188", "https://render.example.org:8443", "http://gpu-box"],
            "default_device": "cuda:0",
            "output_dir": "",
            "disabled_plugins": [],
            "recent_projects": ["D:/work/slider.difflora"],
            "version": 1,
        }
    )
    settings = AppSettings.load()
    assert settings.load_warning == ""
    assert settings.comfyui_servers == [
        ComfyServer(name="127.0.0.1:8188", url="http://127.0.0.1:8188", lora_dir="", enabled=True),
        ComfyServer(name="render.example.org:8443", url="https://render.example.org:8443", enabled=True),
        ComfyServer(name="gpu-box", url="http://gpu-box", enabled=True),
    ]
    assert settings.default_device == "cuda:0" and settings.recent_projects == ["D:/work/slider.difflora"]
    settings.save()
    data = stored()
    assert data["version"] == SETTINGS_VERSION
    assert data["comfyui_servers"][1] == {
        "name": "render.example.org:8443",
        "url": "https://render.example.org:8443",
        "lora_dir": "",
        "enabled": True,
    }
    assert AppSettings.load() == settings


def test_a_version_1_file_with_a_bad_server_url_reports_it():
    write_settings({"version": 1, "comfyui_servers": ["http://127.0.0.1:8188", "localhost:8188"]})
    settings = AppSettings.load()
    assert [s.url for s in settings.comfyui_servers] == ["http://127.0.0.1:8188"]
    assert settings.load_warning == (
        f"{AppSettings.path()}: key 'comfyui_servers[1].url': expected a URL such as http://127.0.0.1:8188 "
        "(http or https, a host, a port), got 'localhost:8188'; comfyui_servers[1] left out"
    )


def test_a_file_saved_with_a_byte_order_mark_loads():
    AppSettings.path().parent.mkdir(parents=True, exist_ok=True)
    AppSettings.path().write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"version": 2, "output_dir": "D:/Ausgabe ü"}).encode()
    )
    settings = AppSettings.load()
    assert settings.load_warning == "" and settings.output_dir == "D:/Ausgabe ü"


def test_unknown_keys_are_preserved_at_the_top_and_in_records():
    write_settings(
        {
            "version": 2,
            "theme": {"name": "dark", "accent": "#5b8def"},
            "comfyui_servers": [{"name": "a", "url": "http://127.0.0.1:8188", "api_key_env": "COMFY_KEY"}],
            "default_device": "cpu",
        }
    )
    settings = AppSettings.load()
    assert settings.load_warning == ""
    settings.default_device = "auto"
    settings.save()
    data = stored()
    assert data["theme"] == {"name": "dark", "accent": "#5b8def"}
    assert data["comfyui_servers"][0]["api_key_env"] == "COMFY_KEY"
    assert data["default_device"] == "auto"


def test_a_newer_file_keeps_its_version_number():
    write_settings({"version": SETTINGS_VERSION + 1, "new_feature": True, "default_device": "cpu"})
    settings = AppSettings.load()
    assert settings.load_warning == "" and settings.default_device == "cpu"
    settings.save()
    assert stored()["version"] == SETTINGS_VERSION + 1
    assert stored()["new_feature"] is True


def test_nameless_and_duplicate_server_names_are_settled():
    write_settings(
        {
            "version": 2,
            "comfyui_servers": [
                {"url": "http://10.0.0.2:8188"},
                {"name": "box", "url": "http://10.0.0.3:8188"},
                {"name": "box", "url": "http://10.0.0.4:8188"},
            ],
        }
    )
    settings = AppSettings.load()
    assert [s.name for s in settings.comfyui_servers] == ["10.0.0.2:8188", "box", "box (2)"]
    assert settings.load_problems == [
        "key 'comfyui_servers[2].name': 'box' is already the name of comfyui_servers[1]; renamed 'box (2)'"
    ]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_damaged_file_is_set_aside(text, reason):
    path = AppSettings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    settings = AppSettings.load()
    assert settings == AppSettings()
    assert not path.exists()
    backups = list(path.parent.glob("settings.damaged-*.json"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == text
    assert settings.load_warning.startswith(f"{path}: unreadable settings (")
    assert reason in settings.load_warning
    assert f"kept as {backups[0].name}, using defaults" in settings.load_warning
    # a later load in the same process (the window after the plugin host) still reports it ...
    assert AppSettings.load().load_warning == settings.load_warning
    # ... until a good file is written
    AppSettings().save()
    assert AppSettings.load().load_warning == ""


def test_a_bad_top_level_type_and_version():
    write_settings({"version": "two", "comfyui_servers": "http://127.0.0.1:8188", "recent_projects": None})
    settings = AppSettings.load()
    assert settings.comfyui_servers == AppSettings().comfyui_servers
    problems = settings.load_problems
    assert len(problems) == 3
    assert problems[0] == "key 'version': expected a whole number from 1, got 'two'; read as 1"
    assert problems[1].startswith(
        "key 'comfyui_servers': expected a list, got 'http://127.0.0.1:8188'; using the default [{"
    )
    assert problems[2] == "key 'recent_projects': expected a list, got null; using the default []"


def test_value_checks():
    assert url_problem("http://localhost:8188") == ""
    assert url_problem("https://render.example.org/comfy") == ""
    assert url_problem("ftp://x").startswith("expected a URL such as")
    assert (
        url_problem("http://host:99999")
        == "expected a URL with a port from 1 to 65535, got 'http://host:99999'"
    )
    assert device_problem("cuda:3") == "" and device_problem("auto") == "" and device_problem("cpu") == ""
    assert device_problem("cuda:x") == "expected auto, cpu or cuda:N, got 'cuda:x'"
    assert server_name_for("http://127.0.0.1:8188/") == "127.0.0.1:8188"
    assert server_name_for("https://box") == "box"
    assert server_name_for("http://[::1]:8188") == "[::1]:8188"
    assert server_name_for("http://user:secret@gpu-box:8188") == "gpu-box:8188"
    assert setting_bounds("max_parallel_light_jobs") == (1, 8)
    assert AppSettings(
        comfyui_servers=[
            ComfyServer(name="a", url="http://a:1", enabled=False),
            ComfyServer(name="b", url="http://b:1"),
        ]
    ).enabled_comfyui_servers() == [ComfyServer(name="b", url="http://b:1")]


def test_settings_import_nothing_heavy():
    code = (
        "import sys; import difflora_gui.settings as s; s.AppSettings.load(); "
        "print(sorted(m for m in ('torch', 'numpy', 'PySide6', 'pydantic', 'attrs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("load_user_plugins", [True, False])
def test_load_user_plugins_switches_third_party_plugins(tmp_path, monkeypatch, load_user_plugins):
    from difflora_gui.plugin_host import AUTOLOAD_ENV, PluginHost
    from tests.plugin_helpers import strategy_plugin_source, write_module

    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    builtin, user = tmp_path / "builtin", tmp_path / "user"
    builtin.mkdir()
    user.mkdir()
    write_module(builtin, "bi_only", strategy_plugin_source("s1"))
    write_module(user, "user_only", strategy_plugin_source("s2"))
    AppSettings(load_user_plugins=load_user_plugins, disabled_plugins=["nothing"]).save()
    host = PluginHost(builtin_dir=builtin, user_dir=user).load()
    loaded = {info.name for info in host.infos()}
    assert "bi_only" in loaded
    assert ("user_only" in loaded) is load_user_plugins
    assert host.autoload is load_user_plugins


def test_the_cli_prints_a_settings_problem_as_one_line_on_stderr(capsys):
    from difflora_gui.cli import main

    write_settings(
        {"version": 2, "comfyui_servers": [{"name": "a", "url": "http://127.0.0.1:8188"}, {"url": "x"}]}
    )
    assert main(["plugins"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: {AppSettings.path()}: key 'comfyui_servers[1].url': expected a URL such as "
        "http://127.0.0.1:8188 (http or https, a host, a port), got 'x'; comfyui_servers[1] left out"
    ]


def test_the_cli_reports_a_damaged_file_the_plugin_host_set_aside(capsys):
    from difflora_gui.cli import main

    path = AppSettings.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{oops", encoding="utf-8")
    assert main(["plugins"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: {path}: unreadable settings (")
    assert "kept as settings.damaged-" in line


def test_kontext_model_dir_round_trips_and_a_bad_value_keeps_its_default(tmp_path):
    assert AppSettings().kontext_model_dir == ""
    folder = str(tmp_path / "FLUX.1 Kontext ü")
    AppSettings(kontext_model_dir=folder).save()
    assert AppSettings.load().kontext_model_dir == folder
    assert stored()["kontext_model_dir"] == folder
    write_settings({"version": SETTINGS_VERSION, "kontext_model_dir": 5})
    settings = AppSettings.load()
    assert settings.kontext_model_dir == ""
    assert "key 'kontext_model_dir': expected a text, got 5" in settings.load_warning
    # a folder that is away (an unplugged drive) loads as written: the dialog checks it, not load
    write_settings({"version": SETTINGS_VERSION, "kontext_model_dir": str(tmp_path / "away")})
    settings = AppSettings.load()
    assert settings.kontext_model_dir == str(tmp_path / "away") and settings.load_warning == ""
