"""Work-arounds for bugs in the Qt binding; every Qt module of the app imports this first.

PySide6 6.12.0 on Python 3.11 (and older) returns ``None``, ``True`` and ``False`` from many calls
without taking a reference to them: every ``signal.emit()`` costs ``True`` one reference, every
``QCoreApplication.processEvents()`` or ``setObjectName()`` costs ``None`` one. Once a count
reaches zero the interpreter aborts ("bool_dealloc: deallocating True or False", "none_dealloc")
or corrupts memory, after anything from a few hundred emits to a few minutes of event loop.
PySide6 6.11.3 does not do this, and from Python 3.12 on these objects are immortal, so the bug
is harmless there (which is presumably why it went unnoticed).

When the bug is measured here, ``None``, ``True`` and ``False`` get a huge number of extra
references, which makes them as immortal as Python 3.12 makes them: they can never be freed.
Nothing else changes. Remove this module once PySide6 6.12.0 is excluded from the dependencies.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

#: extra references given to the singletons when the bug is present (~10**12 calls of headroom)
_EXTRA_REFS = 1 << 40


class _Probe(QObject):
    ping = Signal()


def binding_loses_references() -> bool:
    """True if this binding drops references to ``True`` (``emit``) or ``None`` (``setObjectName``)."""
    probe = _Probe()
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(8):
        probe.ping.emit()
        probe.setObjectName("probe")
    lost_true = sys.getrefcount(True) < true_before - 4
    lost_none = sys.getrefcount(None) < none_before - 4
    return lost_true or lost_none


def _make_singletons_immortal() -> None:
    for value in (None, True, False):
        ctypes.c_ssize_t.from_address(id(value)).value += _EXTRA_REFS


REFCOUNT_WORKAROUND = (
    sys.version_info < (3, 12) and sys.implementation.name == "cpython" and binding_loses_references()
)
if REFCOUNT_WORKAROUND:
    _make_singletons_immortal()
