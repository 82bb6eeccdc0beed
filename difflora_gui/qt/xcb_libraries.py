"""Linux first start: the system libraries Qt's X11 platform plugin (xcb) needs, checked before Qt.

PySide6's wheels bundle Qt but not the X11 client libraries its ``xcb`` platform plugin links
against. When one is missing (``libxcb-cursor0`` is the usual one since Qt 6.5), Qt prints "Could
not load the Qt platform plugin xcb" and aborts the process, which tells a newcomer nothing about
what to install. :func:`missing_xcb_message` reads the plugin's dynamic dependencies (its ELF
``DT_NEEDED`` entries, following the Qt libraries bundled beside it), tries to load every one that
is not bundled, and names the Debian/Ubuntu packages of those that fail. Nothing here imports Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: what the xcb plugin of Qt 6 links against, used when the plugin file cannot be read
FALLBACK_SONAMES = (
    "libxcb.so.1",
    "libX11-xcb.so.1",
    "libxkbcommon.so.0",
    "libxkbcommon-x11.so.0",
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-image.so.0",
    "libxcb-keysyms.so.1",
    "libxcb-randr.so.0",
    "libxcb-render-util.so.0",
    "libxcb-render.so.0",
    "libxcb-shape.so.0",
    "libxcb-shm.so.0",
    "libxcb-sync.so.1",
    "libxcb-util.so.1",
    "libxcb-xfixes.so.0",
    "libxcb-xkb.so.1",
)

#: packages whose names do not follow Debian's "soname without .so" rule
PACKAGE_OF = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g",
    **{glibc: "libc6" for glibc in ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1")},
}

_DT_NEEDED = 1
_SHT_DYNAMIC = 6


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``: ``libxcb-cursor.so.0`` → ``libxcb-cursor0``."""
    if soname in PACKAGE_OF:
        return PACKAGE_OF[soname]
    if soname.startswith("ld-linux"):
        return "libc6"
    match = re.fullmatch(r"(.+?)\.so\.(\d+)(?:\..*)?", soname)
    if not match:
        return soname
    base, version = match.group(1).lower(), match.group(2)
    return f"{base}-{version}" if base[-1].isdigit() else f"{base}{version}"


def needed_libraries(path: Path) -> list[str]:
    """The ``DT_NEEDED`` sonames of an ELF shared object (raises OSError/ValueError if unreadable)."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ValueError(f"{path}: not an ELF file")
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        header = struct.Struct(order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"))
        fields = header.unpack(f.read(header.size))
        shoff, shentsize, shnum = fields[5], fields[10], fields[11]
        section = struct.Struct(order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII"))

        def read_section(index: int) -> tuple:
            f.seek(shoff + index * shentsize)
            return section.unpack(f.read(section.size))

        sections = [read_section(i) for i in range(shnum)]
        names: list[str] = []
        entry = struct.Struct(order + ("qQ" if wide else "iI"))
        for _name, kind, _flags, _addr, offset, size, link, *_rest in sections:
            if kind != _SHT_DYNAMIC:
                continue
            strtab_offset, strtab_size = sections[link][4], sections[link][5]
            f.seek(strtab_offset)
            strtab = f.read(strtab_size)
            f.seek(offset)
            table = f.read(size)
            for tag, value in entry.iter_unpack(table[: len(table) - len(table) % entry.size]):
                if tag == 0:
                    break
                if tag == _DT_NEEDED:
                    names.append(strtab[value : strtab.index(b"\0", value)].decode("utf-8", "replace"))
        return names


def _pyside_qt_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt"


def system_libraries_of_xcb(qt_dir: Path | None) -> list[str]:
    """The system sonames the xcb plugin needs, directly or through the Qt libraries bundled with it."""
    plugin = qt_dir / "plugins" / "platforms" / "libqxcb.so" if qt_dir else None
    if plugin is None or not plugin.is_file():
        return list(FALLBACK_SONAMES)
    bundled = qt_dir / "lib"
    system: list[str] = []
    seen: set[str] = set()
    pending = [plugin]
    try:
        while pending:
            for soname in needed_libraries(pending.pop()):
                if soname in seen:
                    continue
                seen.add(soname)
                if (bundled / soname).is_file():
                    pending.append(bundled / soname)
                else:
                    system.append(soname)
    except (OSError, ValueError, struct.error, IndexError):
        return list(FALLBACK_SONAMES)
    return system


def can_load(soname: str) -> bool:
    """Whether the dynamic loader finds and loads ``soname`` (as Qt's plugin loader would)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def xcb_is_the_platform(environ: Mapping[str, str], platform: str | None = None) -> bool:
    """Whether Qt would start on X11 here: Linux, a DISPLAY, and QT_QPA_PLATFORM unset or ``xcb``."""
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or not environ.get("DISPLAY"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    # Qt 6 picks its Wayland plugin first in a Wayland session, where X11 libraries do not matter
    return not (environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE", "").lower() == "wayland")


def missing_xcb_message(
    environ: Mapping[str, str] | None = None,
    *,
    platform: str | None = None,
    loadable: Callable[[str], bool] | None = None,
    qt_dir: Path | None = None,
) -> str | None:
    """One line naming the missing system packages and the command that installs them, or None."""
    environ = os.environ if environ is None else environ
    loadable = loadable or can_load
    if not xcb_is_the_platform(environ, platform):
        return None
    missing = [soname for soname in system_libraries_of_xcb(qt_dir or _pyside_qt_dir()) if not loadable(soname)]
    if not missing:
        return None
    packages = list(dict.fromkeys(debian_package(soname) for soname in missing))
    return (
        f"Cannot open the window: Qt's X11 platform plugin (xcb) needs system libraries that are "
        f"missing ({', '.join(missing)}); install them with: sudo apt-get install {' '.join(packages)}"
    )
