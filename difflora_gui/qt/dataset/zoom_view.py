"""A zoomable, pannable image view, and the link that keeps several of them on the same spot.

:class:`ZoomView` shows one image (plus an optional overlay, the difference heatmap, at an opacity):
the wheel zooms at the pointer (the app's wheel guard only redirects combos, spins and sliders, so the
view takes the wheel), a drag pans, a double-click fits the image again; with the keyboard focus,
``+``/``-`` zoom, ``1`` shows image pixels 1:1, ``0`` or ``F`` fits. The image is placed in a
fixed scene rectangle (``set_scene_size``), so two views of images of different sizes still line up:
each image is stretched onto the same rectangle. :class:`ViewSync` copies one view's zoom and centre to
the others whenever the user zooms or pans.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

if TYPE_CHECKING:
    import numpy as np

MIN_ZOOM = 0.02
MAX_ZOOM = 64.0
WHEEL_STEP = 1.25


def bgr_to_qimage(image: np.ndarray) -> QImage:
    import cv2  # loaded when a picture is shown, not when the window starts
    import numpy as np

    """A deep-copied ``QImage`` of a uint8 BGR (or grey) array; make it off the UI thread.

    The image is ``Format_RGB32`` (B, G, R, 255 in memory on little-endian machines), the pixmap format, so
    ``QPixmap.fromImage`` on the UI thread is a copy (1 ms for 4096×2304) instead of a conversion (80 ms).
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if sys.byteorder != "little":
        image = np.ascontiguousarray(image[..., ::-1])  # A, R, G, B in memory
    return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB32).copy()


def stretched_item(image: QImage | QPixmap | None, size: tuple[float, float]) -> QGraphicsPixmapItem:
    """A pixmap item showing ``image`` stretched onto a ``size`` rectangle at the origin.

    Pass a ``QPixmap`` to share one among several views (converting a large ``QImage`` costs time).
    """
    item = QGraphicsPixmapItem()
    item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
    if image is not None and not image.isNull():
        item.setPixmap(image if isinstance(image, QPixmap) else QPixmap.fromImage(image))
        item.setTransform(QTransform.fromScale(size[0] / image.width(), size[1] / image.height()))
    return item


class ZoomView(QGraphicsView):
    """One image with zoom at the pointer, drag to pan, double-click to fit; ``view_changed`` on each."""

    view_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setBackgroundBrush(QBrush(QColor("#101113")))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(80, 60)
        self._size = (1.0, 1.0)
        self._fitted = True
        self._syncing = False
        self.base_item: QGraphicsPixmapItem | None = None
        self.overlay_item: QGraphicsPixmapItem | None = None
        self._message: QGraphicsSimpleTextItem | None = None
        self.horizontalScrollBar().valueChanged.connect(self._scrolled)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)

    # --- content -------------------------------------------------------------------------------

    def scene_size(self) -> tuple[float, float]:
        return self._size

    def set_scene_size(self, width: float, height: float) -> None:
        self._size = (max(1.0, float(width)), max(1.0, float(height)))
        self.scene().setSceneRect(QRectF(0, 0, *self._size))

    def clear_content(self) -> None:
        self.scene().clear()
        self.base_item = self.overlay_item = self._message = None

    def set_image(self, image: QImage | QPixmap | None, message: str = "") -> None:
        """Show ``image`` stretched onto the scene rectangle (or ``message`` where there is none)."""
        if self.base_item is not None:
            self.scene().removeItem(self.base_item)
        if self._message is not None:
            self.scene().removeItem(self._message)
            self._message = None
        self.base_item = stretched_item(image, self._size)
        self.base_item.setZValue(0)
        self.scene().addItem(self.base_item)
        if image is None or image.isNull():
            self._message = self.scene().addSimpleText(message or "no image")
            self._message.setBrush(QBrush(QColor("#e3e5e8")))
            self._message.setFlag(QGraphicsSimpleTextItem.GraphicsItemFlag.ItemIgnoresTransformations)
            self._message.setPos(4, 4)

    def set_overlay(
        self, image: QImage | QPixmap | None, opacity: float = 0.6, visible: bool = False
    ) -> None:
        if self.overlay_item is not None:
            self.scene().removeItem(self.overlay_item)
            self.overlay_item = None
        if image is None or image.isNull():
            return
        self.overlay_item = stretched_item(image, self._size)
        self.overlay_item.setZValue(10)
        self.overlay_item.setOpacity(opacity)
        self.overlay_item.setVisible(visible)
        self.scene().addItem(self.overlay_item)

    def show_overlay(self, visible: bool, opacity: float | None = None) -> None:
        if self.overlay_item is not None:
            self.overlay_item.setVisible(visible)
            if opacity is not None:
                self.overlay_item.setOpacity(opacity)

    # --- zoom and pan --------------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        """The whole image in view (what a double-click does)."""
        self._fitted = True
        self.resetTransform()
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.view_changed.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom by ``factor`` keeping the scene point under ``anchor`` (view pixels) in place."""
        current = self.zoom()
        factor = max(MIN_ZOOM / current, min(MAX_ZOOM / current, factor))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        point = (anchor if anchor is not None else QPointF(self.viewport().rect().center())).toPoint()
        before = self.mapToScene(point)
        self.scale(factor, factor)
        drift = self.mapFromScene(before) - point
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + drift.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + drift.y())
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._fitted = False
        self.view_changed.emit()

    def centre(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def follow(self, other: ZoomView) -> None:
        """Take ``other``'s zoom and centre (without re-emitting)."""
        self._syncing = True
        try:
            self._fitted = other._fitted
            self.setTransform(other.transform())
            # the same centre: scroll values offset by half the viewports' difference (they may differ by a pixel)
            for mine, theirs, extra in (
                (
                    self.horizontalScrollBar(),
                    other.horizontalScrollBar(),
                    other.viewport().width() - self.viewport().width(),
                ),
                (
                    self.verticalScrollBar(),
                    other.verticalScrollBar(),
                    other.viewport().height() - self.viewport().height(),
                ),
            ):
                mine.setValue(theirs.value() + round(extra / 2))
        finally:
            self._syncing = False

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if not steps:
            event.ignore()
            return
        self.zoom_by(WHEEL_STEP**steps, event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(WHEEL_STEP)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1 / WHEEL_STEP)
        elif key in (Qt.Key.Key_0, Qt.Key.Key_F):
            self.fit()
        elif key == Qt.Key.Key_1:
            self.zoom_by(1 / self.zoom())  # 1:1, one image pixel a screen pixel
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self.fit()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def _scrolled(self, _value: int) -> None:
        if not self._syncing:
            self.view_changed.emit()


class ViewSync:
    """Keeps ``views`` on the same zoom and centre: a change in one is copied to the others."""

    def __init__(self, views):
        self.views = list(views)
        self._busy = False
        for view in self.views:
            view.view_changed.connect(lambda v=view: self._changed(v))

    def _changed(self, source: ZoomView) -> None:
        if self._busy or source._syncing:
            return
        self._busy = True
        try:
            for view in self.views:
                if view is not source and view.isVisible() == source.isVisible():
                    view.follow(source)
        finally:
            self._busy = False

    def fit_all(self) -> None:
        for view in self.views:
            view._syncing = True
            try:
                view.fit()
            finally:
                view._syncing = False
