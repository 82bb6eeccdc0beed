"""Thumbnails for the pair grid, made and decoded on worker threads, handed to the UI as pixmaps.

The grid asks with :meth:`ThumbnailLoader.pixmap` while it paints: a thumbnail already in memory is
returned at once; otherwise ``None`` (the cell draws a placeholder) and the path is queued. Two
plain worker threads take the newest requests first (what is on screen now), make the JPEG in the
dataset's ``thumbs/`` folder when it is not cached (:class:`~difflora_gui.dataset.thumbnails.ThumbnailCache`)
and load it into a ``QImage`` (thread-safe, unlike ``QPixmap``). Results come back through one
queued signal; the UI thread turns each into a pixmap and repaints the grid once per batch
(:data:`FLUSH_MS`). No image is ever decoded on the UI thread. Stale requests (the user scrolled
on) are dropped beyond :data:`MAX_PENDING`.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from difflora_gui.dataset.thumbnails import ThumbnailCache
from difflora_gui.errors import UserError

#: worker threads: leave a core to the UI thread (one worker on a 2-core machine, at most two)
WORKERS = max(1, min(2, (os.cpu_count() or 2) - 1))
#: requests kept waiting at most (the oldest are dropped: they scrolled out of view)
MAX_PENDING = 600
#: pixmaps kept in memory (about 40 kB each at 112 px)
MAX_IN_MEMORY = 6000
FLUSH_MS = 30


class _Relay(QObject):
    done = Signal(str, object, str)  # path, QImage | None, error text


class ThumbnailLoader(QObject):
    """Pixmaps of item thumbnails; ``ready()`` fires (batched) when new ones arrived."""

    ready = Signal()

    def __init__(self, cache: ThumbnailCache | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.cache = cache
        self._pixmaps: collections.OrderedDict[str, QPixmap] = collections.OrderedDict()
        self.errors: dict[str, str] = {}
        self._pending: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()
        self._lock = threading.Condition()
        self._stopping = False
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(FLUSH_MS)
        self._flush.timeout.connect(self.ready.emit)
        self.loaded = 0  # thumbnails delivered (for tests and the status line)

    # --- what the grid calls (UI thread) -----------------------------------------------------

    def set_cache(self, cache: ThumbnailCache | None) -> None:
        """Another dataset: forget what is queued (pixmaps stay: they are keyed by path)."""
        with self._lock:
            self.cache = cache
            self._generation += 1
            self._pending.clear()
            self._queued.clear()
        self.errors.clear()

    def pixmap(self, path: str) -> QPixmap | None:
        """The thumbnail of ``path`` if it is in memory; else queue it and return None."""
        found = self._pixmaps.get(path)
        if found is not None:
            return found
        if path not in self.errors:
            self.request(path)
        return None

    def error(self, path: str) -> str:
        return self.errors.get(path, "")

    def request(self, path: str) -> None:
        if self.cache is None:
            return
        with self._lock:
            if path in self._queued:
                return
            self._queued.add(path)
            self._pending.append(path)
            while len(self._pending) > MAX_PENDING:
                self._queued.discard(self._pending.popleft())
            self._lock.notify()
        self._start_threads()

    def forget(self, paths) -> None:
        """Drop these paths' pixmaps (their files changed)."""
        for path in paths:
            self._pixmaps.pop(path, None)
            self.errors.pop(path, None)

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not self._queued

    def shutdown(self) -> None:
        """Stop the worker threads (they finish the thumbnail in hand)."""
        with self._lock:
            self._stopping = True
            self._pending.clear()
            self._queued.clear()
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    # --- workers -----------------------------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads or self._stopping:
            return
        for index in range(WORKERS):
            thread = threading.Thread(target=self._work, name=f"thumbnails-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                path = self._pending.pop()  # the newest request: what is on screen now
                cache, generation = self.cache, self._generation
            image, error = None, ""
            try:
                image = QImage(str(cache.get(path)))
                if image.isNull():
                    image, error = None, "the thumbnail could not be read"
            except UserError as exc:
                error = getattr(exc, "problem", str(exc))
            except Exception as exc:  # a reader bug must not end the worker
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                if self._stopping:
                    return
                current = generation == self._generation
            if current:
                try:
                    self._relay.done.emit(path, image, error)
                except RuntimeError:  # the loader is gone
                    return

    @Slot(str, object, str)
    def _on_done(self, path: str, image, error: str) -> None:
        with self._lock:
            self._queued.discard(path)
        if image is None:
            self.errors[path] = error or "no thumbnail"
        else:
            self._pixmaps[path] = QPixmap.fromImage(image)
            while len(self._pixmaps) > MAX_IN_MEMORY:
                self._pixmaps.popitem(last=False)
            self.loaded += 1
        if not self._flush.isActive():
            self._flush.start()


def default_cache(folder: str | Path | None) -> ThumbnailCache | None:
    return ThumbnailCache.for_dataset(folder) if folder else None
