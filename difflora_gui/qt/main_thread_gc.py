"""Garbage collection on the GUI thread only (an app-wide fix for a freeze).

Python's cyclic collector runs on whichever thread happens to allocate past its threshold. When a
job thread collects a cycle that holds a Qt object (a widget's Python wrapper, a signal's closure),
the object's C++ destructor runs on that job thread: it takes the object's lock and then waits for
the GIL, while the GUI thread, holding the GIL, waits for that same lock to delete a widget — and
the window hangs for good. (Seen as a hung test: the merge job's thread in ``gc_collect_main`` →
``QObject::~QObject`` → ``GilState::acquire``, the GUI thread in ``~QObject`` → ``QBasicMutex``.)

The cure is the one pyqtgraph ships as ``pyqtgraph.util.garbage_collector.GarbageCollector``:
automatic collection off, and a timer on the GUI thread that collects each generation when its
count passes the threshold Python would have used. Importing pyqtgraph's would load pyqtgraph at
startup (it is loaded on a background thread, later), so these few lines do the same. The command
line keeps Python's own collector: it has no Qt objects.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QCoreApplication, QObject, QTimer

OBJECT_NAME = "difflora_main_thread_gc"


class MainThreadCollector(QObject):
    """Collects on a GUI-thread timer instead of wherever an allocation crosses the threshold."""

    def __init__(self, parent: QObject, interval_ms: int = 100):
        super().__init__(parent)
        self.setObjectName(OBJECT_NAME)
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, youngest first."""
        count0, count1, count2 = gc.get_count()
        if count0 <= self.threshold[0]:
            return
        generation = 0
        if count1 > self.threshold[1]:
            generation = 2 if count2 > self.threshold[2] else 1
        gc.collect(generation)


def install_main_thread_gc(app: QCoreApplication | None = None) -> MainThreadCollector | None:
    """Move garbage collection onto the GUI thread of ``app`` (the running one by default), once.

    Call it on the GUI thread; elsewhere (or without an application) it does nothing.
    """
    app = app if app is not None else QCoreApplication.instance()
    if app is None or threading.current_thread() is not threading.main_thread():
        return None
    existing = app.findChild(MainThreadCollector, OBJECT_NAME)
    if existing is not None:
        return existing
    return MainThreadCollector(app)
