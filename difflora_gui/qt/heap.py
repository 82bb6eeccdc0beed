"""Short garbage collections once the heavy libraries are loaded (an app-wide responsiveness fix).

A full (generation 2) garbage collection walks every Python object. With torch and pyqtgraph
loaded that takes 100-150 ms on a 2-core machine, holding the GIL: the window freezes that long
at random moments, also while a job runs. ``gc.freeze()`` moves the objects alive now into a
permanent generation that later collections skip. The library objects never die anyway, so this
is done (after one last collection, at a quiet moment) whenever another heavy library arrived.

This is the application's decision, taken on the GUI thread (the job controller calls it when a
job has ended, the panels when their plots are built), never a job's: a job thread that calls it
is refused, so no job changes the collector for the others. Jobs themselves leave the collector
alone (a merge used to switch it off while it ran; that cost it one collection, ~0.2 s, in a
fresh process and nothing in a warm one).
"""

from __future__ import annotations

import gc
import sys
import threading

HEAVY_MODULES = ("torch", "pyqtgraph", "diffusers", "transformers", "cv2", "safetensors")

_frozen_with: set[str] = set()


def freeze_heap_after_heavy_imports() -> bool:
    """Freeze the heap if a heavy module was imported since the last freeze; True if it did.

    Only on the main (GUI) thread; anywhere else it does nothing and returns False.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    loaded = {name for name in HEAVY_MODULES if name in sys.modules}
    if not loaded - _frozen_with:
        return False
    _frozen_with.update(loaded)
    gc.collect()
    gc.freeze()
    return True
