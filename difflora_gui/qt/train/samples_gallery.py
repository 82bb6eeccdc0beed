"""The samples a training run made, as thumbnails: newest step first, each labelled with its run and step.

A sample is an ``Artifact`` of kind ``"sample"`` (``meta step=N``): an image, or a video whose
thumbnail is one of its frames (:func:`difflora_gui.dataset.thumbnails.make_thumbnail`, the
dataset grid's reader). Thumbnails are decoded on one worker thread (cv2 and numpy are imported
there, on the first sample, never at start-up) and come back as ``QImage`` through a queued
signal; the list shows a placeholder until then. Double-click opens the file in the system
viewer. The monitor hides the gallery while a run has no samples.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from difflora_gui.qt.theme import COLORS

THUMB = 128
#: the icon box is 4:3 (Wan's 16:9 and 3:4 samples both fit with little empty space)
THUMB_HEIGHT = 96
PATH_ROLE = Qt.ItemDataRole.UserRole
STEP_ROLE = Qt.ItemDataRole.UserRole + 1
ORDER_ROLE = Qt.ItemDataRole.UserRole + 2


class _Relay(QObject):
    done = Signal(str, object, str)  # path, QImage | None, error


class _ThumbnailWorker:
    """One daemon thread that turns sample files into ``QImage`` thumbnails, newest request first."""

    def __init__(self, relay: _Relay):
        self._relay = relay
        self._pending: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def request(self, path: str) -> None:
        with self._lock:
            if self._stopping:
                return
            self._pending.append(path)
            self._lock.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="sample-thumbnails", daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._pending.clear()
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(5)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                path = self._pending.pop()
            image, error = None, ""
            try:
                image = _thumbnail(path)
            except Exception as exc:  # a bad or half-written file: the item says so, the worker goes on
                error = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
            try:
                self._relay.done.emit(path, image, error)
            except RuntimeError:  # the gallery is gone
                return


def _thumbnail(path: str) -> QImage:
    from difflora_gui.dataset.thumbnails import make_thumbnail

    bgr = make_thumbnail(path, THUMB)
    rgb = bgr[:, :, ::-1].copy()
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _placeholder() -> QIcon:
    pixmap = QPixmap(THUMB, THUMB_HEIGHT)
    pixmap.fill(QColor(COLORS["alternate"]))
    return QIcon(pixmap)


class SamplesGallery(QWidget):
    """Thumbnails of sample files; ``add_sample(run_label, path, step)``. GUI thread only."""

    #: a sample's thumbnail arrived (tests)
    thumbnail_ready = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("samplesGallery")
        self.title = QLabel("Samples")
        self.title.setStyleSheet(f"color: {COLORS['muted']};")
        self.list = QListWidget()
        self.list.setObjectName("samplesList")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB_HEIGHT))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWordWrap(True)
        self.list.setSpacing(4)
        self.list.setUniformItemSizes(True)
        self.list.setGridSize(QSize(THUMB + 12, THUMB_HEIGHT + 12 + self.fontMetrics().lineSpacing()))
        self.list.itemDoubleClicked.connect(self._open)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        self.setMinimumWidth(THUMB + 36)
        self._items: dict[str, QListWidgetItem] = {}
        self._order = 0
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_thumbnail, Qt.ConnectionType.QueuedConnection)
        self._worker = _ThumbnailWorker(self._relay)
        self.errors: dict[str, str] = {}
        self.loaded = 0
        self._answered: set[str] = set()

    def add_sample(self, run_label: str, path: str, step: int | None = None, run_name: str = "") -> bool:
        """Add a sample (once per path), placed by step: the newest first. ``run_label`` is the
        short caption ("A", "B high"), ``run_name`` the run's full name for the tooltip."""
        path = str(path)
        if path in self._items:
            return False
        self._order += 1
        step_text = f"step {step}" if step is not None else "sample"
        item = QListWidgetItem(_placeholder(), f"{run_label} · {step_text}")
        item.setData(PATH_ROLE, path)
        item.setData(STEP_ROLE, -1 if step is None else int(step))
        item.setData(ORDER_ROLE, self._order)
        item.setToolTip(f"{path}\n{run_name or run_label}, {step_text} — double-click to open")
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.list.insertItem(self._row_for(item), item)
        self._items[path] = item
        self.title.setText(f"Samples ({len(self._items)})")
        self._worker.request(path)
        return True

    def _row_for(self, new: QListWidgetItem) -> int:
        """Newest first: a higher step goes before; at the same step, the order they came in."""
        key = (-new.data(STEP_ROLE), new.data(ORDER_ROLE))
        for row in range(self.list.count()):
            item = self.list.item(row)
            if key < (-item.data(STEP_ROLE), item.data(ORDER_ROLE)):
                return row
        return self.list.count()

    @Slot(str, object, str)
    def _on_thumbnail(self, path: str, image, error: str) -> None:
        item = self._items.get(path)
        if item is None:
            return
        self._answered.add(path)
        if image is None:
            self.errors[path] = error or "no picture"
            item.setToolTip(f"{item.toolTip()}\nno thumbnail: {self.errors[path]}")
        else:
            item.setIcon(QIcon(QPixmap.fromImage(image)))
            self.loaded += 1
        self.thumbnail_ready.emit(path)

    def _open(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        if path and Path(path).exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    # --- for the monitor and tests -----------------------------------------------------------

    def count(self) -> int:
        return len(self._items)

    def paths(self) -> list[str]:
        """Sample paths in display order (newest first)."""
        return [self.list.item(row).data(PATH_ROLE) for row in range(self.list.count())]

    def labels(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def idle(self) -> bool:
        """Every sample's thumbnail (or its error) is in."""
        return self._answered >= set(self._items)

    def clear(self) -> None:
        self.list.clear()
        self._items.clear()
        self.errors.clear()
        self._answered.clear()
        self.title.setText("Samples")

    def shutdown(self) -> None:
        """Stop the thumbnail thread (it finishes the file in hand)."""
        self._worker.stop()
