"""The swipe (split) view: A left of a movable divider, B right of it, in one zoomable view.

Both images are stretched onto the same scene rectangle (B onto A's size), B is drawn over A and
clipped to the right of the divider. The divider sits at ``split`` (0 … 1 of the image width); drag it
in the view, or move the slider the pair view puts under it. Zoom, pan and fit work as in
:class:`~difflora_gui.qt.dataset.zoom_view.ZoomView`.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPixmapItem

from difflora_gui.qt.dataset.zoom_view import ZoomView, stretched_item

#: how close (view pixels) a press must be to the divider to grab it
GRAB_PX = 8


class _ClippedPixmapItem(QGraphicsPixmapItem):
    """A pixmap drawn only right of ``clip_fraction`` of its width."""

    def __init__(self, source: QGraphicsPixmapItem):
        super().__init__(source.pixmap())
        self.setTransform(source.transform())
        self.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.clip_fraction = 0.5

    def paint(self, painter, option, widget=None) -> None:
        width = self.pixmap().width()
        left = self.clip_fraction * width
        painter.setClipRect(
            QRectF(left, 0, width - left, self.pixmap().height()), Qt.ClipOperation.IntersectClip
        )
        super().paint(painter, option, widget)


class SwipeView(ZoomView):
    """A and B split by a divider at ``split``; ``split_changed(float)`` when the user drags it."""

    split_changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._split = 0.5
        self._b_item: _ClippedPixmapItem | None = None
        self._line: QGraphicsLineItem | None = None
        self._dragging = False
        self.viewport().setMouseTracking(True)

    def clear_content(self) -> None:
        super().clear_content()
        self._b_item = self._line = None

    def set_images(self, a: QImage | QPixmap | None, b: QImage | QPixmap | None, message: str = "") -> None:
        self.set_image(a, message)
        if self._b_item is not None:
            self.scene().removeItem(self._b_item)
            self._b_item = None
        if b is not None and not b.isNull():
            self._b_item = _ClippedPixmapItem(stretched_item(b, self.scene_size()))
            self._b_item.setZValue(1)
            self.scene().addItem(self._b_item)
        if self._line is None or self._line.scene() is None:
            pen = QPen(QColor("#ffffff"), 2)
            pen.setCosmetic(True)
            self._line = self.scene().addLine(0, 0, 0, 1, pen)
            self._line.setZValue(20)
        self._place()

    def split(self) -> float:
        return self._split

    def set_split(self, fraction: float) -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        if fraction == self._split:
            return
        self._split = fraction
        self._place()

    def _place(self) -> None:
        if self._b_item is not None:
            self._b_item.clip_fraction = self._split
            self._b_item.update()
        if self._line is not None:
            w, h = self.scene_size()
            x = self._split * w
            self._line.setLine(x, 0, x, h)

    def divider_x(self) -> float:
        """The divider's x in view (viewport) pixels."""
        from PySide6.QtCore import QPointF

        return float(self.mapFromScene(QPointF(self._split * self.scene_size()[0], 0)).x())

    def _near_divider(self, event) -> bool:
        return abs(event.position().x() - self.divider_x()) <= GRAB_PX

    def _drag_to(self, event) -> None:
        x = self.mapToScene(event.position().toPoint()).x()
        self.set_split(x / self.scene_size()[0])
        self.split_changed.emit(self._split)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and self._near_divider(event):
            self._dragging = True
            self.setDragMode(self.DragMode.NoDrag)
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._dragging:
            self._drag_to(event)
            event.accept()
            return
        if not event.buttons():
            near = self._near_divider(event)
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.OpenHandCursor)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._dragging:
            self._drag_to(event)
            self._dragging = False
            self.setDragMode(self.DragMode.ScrollHandDrag)
            event.accept()
            return
        super().mouseReleaseEvent(event)
