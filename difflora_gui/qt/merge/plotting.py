"""Keeping the window responsive around the plots: pyqtgraph loaded off the UI thread, heap frozen.

Qt-free. pyqtgraph takes about 0.35 s to import on a 2-core machine; imported on a background
thread (it creates no QObject while importing) the window keeps answering. After torch and
pyqtgraph are in, :func:`freeze_startup_heap` keeps Python's full garbage collections short.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading

_started = False
_ready = threading.Event()
_heap_frozen = False


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


def freeze_startup_heap() -> None:
    """Exempt the objects of the heavy imports (torch, pyqtgraph, Qt) from Python's full collections.

    A full (generation 2) garbage collection walks every object; with torch and pyqtgraph loaded
    that takes 100-150 ms on a 2-core machine, holding the GIL: the window freezes that long at
    random moments, also while a merge runs. ``gc.freeze()`` moves the objects alive now into a
    permanent generation that later collections skip (after one last collection here, at a quiet
    moment). Done once, after torch and pyqtgraph are in.
    """
    global _heap_frozen
    if _heap_frozen or "torch" not in sys.modules or "pyqtgraph" not in sys.modules:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()
