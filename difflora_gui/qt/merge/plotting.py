"""Keeping the window responsive around the plots: pyqtgraph loaded off the UI thread.

Qt-free. pyqtgraph takes about 0.35 s to import on a 2-core machine; imported on a background
thread (it creates no QObject while importing) the window keeps answering. (After it is in,
:mod:`difflora_gui.qt.heap` keeps Python's full garbage collections short.)
"""

from __future__ import annotations

import importlib
import threading

_started = False
_ready = threading.Event()


def _import_pyqtgraph() -> None:
    try:
        importlib.import_module("pyqtgraph")
    finally:
        _ready.set()  # a failed import shows up (with its error) when the plots are built


def warm_up_plotting() -> None:
    """Start importing pyqtgraph on a background thread (once); returns at once."""
    global _started
    if _started:
        return
    _started = True
    threading.Thread(target=_import_pyqtgraph, name="difflora-warm-plots", daemon=True).start()


def plotting_ready() -> bool:
    """Whether the background import is over (importing pyqtgraph now costs nothing)."""
    return _ready.is_set()
