"""Garbage collection runs on the GUI thread only: a job thread never destroys a Qt object."""

from __future__ import annotations

import gc
import threading

from difflora_gui.qt.jobs import JobController
from difflora_gui.qt.main_thread_gc import MainThreadCollector, install_main_thread_gc


class _Cycle:
    """An object in a reference cycle that records the thread its finalizer ran on."""

    def __init__(self, seen: list):
        self.seen = seen
        self.me = self

    def __del__(self):
        self.seen.append(threading.current_thread().name)


def test_cycles_made_on_a_job_thread_are_collected_on_the_gui_thread(qtbot):
    controller = JobController()
    collector = install_main_thread_gc()
    assert isinstance(collector, MainThreadCollector) and install_main_thread_gc() is collector  # once
    assert not gc.isenabled()
    seen: list[str] = []
    kept: list = []

    def job_thread():
        for _ in range(50):
            _Cycle(seen)
        # far past the threshold: an enabled collector would run right here, on this thread
        kept.extend([] for _ in range(gc.get_threshold()[0] * 20))

    worker = threading.Thread(target=job_thread, name="job-test")
    worker.start()
    worker.join()
    assert seen == []  # nothing collected on the job thread
    qtbot.waitUntil(lambda: len(seen) == 50, timeout=5000)
    assert set(seen) == {threading.main_thread().name}
    controller.shutdown(5)


def test_only_the_gui_thread_installs_it(qapp):
    result: list = []
    worker = threading.Thread(target=lambda: result.append(install_main_thread_gc()))
    worker.start()
    worker.join()
    assert result == [None]
