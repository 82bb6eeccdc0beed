"""Test set-up shared by every test.

* Qt runs offscreen (must be set before a QApplication exists).
* Each test gets its own config/data folders, so no test reads or writes the user's settings.
* The process-wide plugin host is reset after each test.
* Tests that use Qt fail if they leave a QThread running.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")
os.environ.setdefault("PYTHONIOENCODING", "utf-8")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("DIFFLORA_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("DIFFLORA_DATA_DIR", str(base / "data"))
    yield base
    from difflora_gui.plugin_host import set_plugin_host

    set_plugin_host(None)


@pytest.fixture(autouse=True)
def _gc_on_the_gui_thread(request):
    """Qt tests run in the app's theme and collect garbage as the app does: on the GUI thread
    only (qt/main_thread_gc.py).

    Python's collector otherwise runs on whichever thread allocates, and a job or loader thread
    that frees a cycle holding a Qt object destroys it off the GUI thread (a hang or a crash, seen
    once in a full run). Other tests keep Python's own collector."""
    if "qtbot" not in request.fixturenames and "qapp" not in request.fixturenames:
        yield
        return
    import gc

    from difflora_gui.qt.main_thread_gc import install_main_thread_gc
    from difflora_gui.qt.theme import apply_dark_theme

    app = request.getfixturevalue("qapp")
    if not app.property("difflora_themed"):
        # the app's own look (Fusion, the dark palette, style.qss): sizes and layouts are measured
        # as users see them, whichever test runs first
        apply_dark_theme(app)
        app.setProperty("difflora_themed", True)
    collector = install_main_thread_gc(app)
    yield
    if collector is not None:
        collector.timer.stop()
        collector.setParent(None)
        collector.deleteLater()
    gc.enable()
    gc.collect()  # here, on the GUI thread, what the test left


@pytest.fixture(autouse=True)
def _no_dangling_qthreads(request, monkeypatch):
    """Fail a Qt test that leaves a QThread (or a pooled worker) running after it ends."""
    if "qtbot" not in request.fixturenames and "qapp" not in request.fixturenames:
        yield
        return
    from PySide6.QtCore import QThread, QThreadPool

    started: list = []
    original_start = QThread.start

    def recording_start(self, *args, **kwargs):
        started.append(self)
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield
    still_running = []
    for thread in started:
        try:
            if thread.isRunning() and not thread.wait(2000):
                still_running.append(thread)
        except RuntimeError:  # the C++ object is gone: it is not running
            pass
    pool_busy = not QThreadPool.globalInstance().waitForDone(2000)
    if still_running or pool_busy:
        pytest.fail(
            f"test left {len(still_running)} QThread(s) running"
            + (" and busy QThreadPool workers" if pool_busy else "")
            + "; wait for jobs to finish (qtbot.waitUntil / controller.shutdown())",
            pytrace=False,
        )


@pytest.fixture
def fresh_comfy_pools():
    """No health answer of an earlier test's ComfyUI servers carries over (modules opt in with
    ``pytest.mark.usefixtures("fresh_comfy_pools")``)."""
    from difflora_gui.comfy.pool import forget_shared_pools

    forget_shared_pools()
    yield
    forget_shared_pools()


@pytest.fixture
def standins(tmp_path):
    """``start(name, **kwargs)`` starts a ComfyUI stand-in server (tests/fixtures/comfy_standin.py)
    under ``tmp_path/name``; all of them stop after the test."""
    from tests.fixtures.comfy_standin import StandinComfy

    started = []

    def start(name, **kwargs):
        server = StandinComfy(tmp_path / name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
