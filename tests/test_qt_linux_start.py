"""Linux first start: missing X11 libraries are one line and exit code 2, before Qt aborts."""

from __future__ import annotations

import sys

import pytest
from app_process import run_main

from difflora_gui.qt import app as qt_app
from difflora_gui.qt import xcb_libraries
from difflora_gui.qt.xcb_libraries import debian_package, missing_xcb_message, needed_libraries

X11_DESKTOP = {"DISPLAY": ":0"}


def test_a_missing_library_is_one_line_naming_its_package_and_the_install_command():
    message = missing_xcb_message(
        X11_DESKTOP, platform="linux", loadable=lambda soname: soname != "libxcb-cursor.so.0"
    )
    assert message is not None and "\n" not in message
    assert "libxcb-cursor.so.0" in message
    assert message.endswith("install them with: sudo apt-get install libxcb-cursor0")


def test_several_missing_libraries_name_each_package_once():
    gone = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libglib-2.0.so.0", "libgthread-2.0.so.0"}
    message = missing_xcb_message(
        X11_DESKTOP, platform="linux", loadable=lambda soname: soname not in gone, qt_dir=None
    )
    assert message is not None
    command = message.split("install them with: ")[1]
    assert command.startswith("sudo apt-get install ")
    packages = command.removeprefix("sudo apt-get install ").split()
    assert {"libxcb-icccm4", "libxcb-keysyms1"} <= set(packages)
    assert len(packages) == len(set(packages))


def test_nothing_is_reported_when_every_library_loads():
    assert missing_xcb_message(X11_DESKTOP, platform="linux", loadable=lambda soname: True) is None


@pytest.mark.parametrize(
    ("environ", "platform"),
    [
        ({"DISPLAY": ":0"}, "win32"),
        ({"DISPLAY": ":0"}, "darwin"),
        ({}, "linux"),  # no X server: Qt's own message about the display applies
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux"),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, "linux"),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "linux"),
    ],
)
def test_only_an_x11_start_on_linux_is_checked(environ, platform):
    assert missing_xcb_message(environ, platform=platform, loadable=lambda soname: False) is None


@pytest.mark.parametrize("chosen", ["", "xcb", "xcb:nograb", "xcb;wayland"])
def test_an_unset_or_xcb_platform_is_checked(chosen):
    environ = {**X11_DESKTOP, "QT_QPA_PLATFORM": chosen}
    assert missing_xcb_message(environ, platform="linux", loadable=lambda soname: False) is not None


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libGL.so.1", "libgl1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libz.so.1", "zlib1g"),
    ],
)
def test_debian_package_names(soname, package):
    assert debian_package(soname) == package


def test_the_plugin_dependencies_are_read_from_pysides_own_xcb_plugin():
    qt_dir = xcb_libraries._pyside_qt_dir()
    plugin = qt_dir / "plugins" / "platforms" / "libqxcb.so" if qt_dir else None
    if plugin is None or not plugin.is_file():
        pytest.skip("this PySide6 has no xcb plugin (not Linux)")
    assert {"libxcb.so.1", "libQt6XcbQpa.so.6"} <= set(needed_libraries(plugin))
    system = xcb_libraries.system_libraries_of_xcb(qt_dir)
    # libxkbcommon-x11 is needed by the bundled libQt6XcbQpa, not only by the plugin itself
    assert "libxcb-cursor.so.0" in system and "libxkbcommon-x11.so.0" in system
    assert not any(name.startswith("libQt6") for name in system)


def test_run_gui_exits_2_with_the_line_before_qt_starts(monkeypatch, capsys):
    monkeypatch.setattr(xcb_libraries, "can_load", lambda soname: soname != "libxcb-cursor.so.0")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert qt_app.run_gui() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sudo apt-get install libxcb-cursor0" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the dynamic loader's search path is Linux's")
def test_python_main_py_names_a_hidden_library_and_exits_2(tmp_path):
    # A broken stand-in found first on the loader's path makes the library unloadable, as if missing.
    (tmp_path / "libxcb-cursor.so.0").write_bytes(b"")
    result = run_main(
        env={"DISPLAY": ":99", "QT_QPA_PLATFORM": "", "WAYLAND_DISPLAY": "", "LD_LIBRARY_PATH": str(tmp_path)}
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "libxcb-cursor.so.0" in lines[0]
    assert "sudo apt-get install" in lines[0] and "libxcb-cursor0" in lines[0].split("apt-get install")[1]
    assert "Could not load the Qt platform plugin" not in result.stderr
