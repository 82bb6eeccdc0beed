"""One video frame on screen, exactly: fit to the view, or image pixels at 100 % / 200 % with scroll bars.

:class:`FrameView` paints an RGB uint8 array (no copy: the ``QImage`` wraps the array while it is
painted). Given a second frame and a split position it paints a swipe comparison: image columns
left of the split from the first frame, the rest from the second, a divider the user drags, and a
label on each side. At 100 % and 200 % the frame is drawn without smoothing, so screen pixels are
the decoded pixels (``grab()`` of the canvas equals the frame). :class:`ElidedLabel` is a one-line
label that elides to its width and shows the whole text as its tooltip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QWidget

if TYPE_CHECKING:
    import numpy as np

BACKGROUND = "#101113"
DIVIDER = "#f2f3f5"
#: how near the divider (screen px) a press grabs it rather than jumping it there
GRAB_MARGIN = 6


def rgb_qimage(frame: np.ndarray) -> QImage:
    """A ``QImage`` that wraps (does not copy) a C-contiguous HxWx3 uint8 array; keep the array alive."""
    height, width = frame.shape[:2]
    return QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_RGB888)


def qimage_rgb(image: QImage) -> np.ndarray:
    """A ``QImage`` as an HxWx3 uint8 RGB array (a copy), for tests and checks."""
    import numpy as np

    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return rows.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3).copy()


class ElidedLabel(QLabel):
    """A one-line label elided at the end to its width; the whole text is its tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(10)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def _elide(self) -> None:
        self.setText(
            self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(self.width(), 10))
        )

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()


class _Canvas(QWidget):
    def __init__(self, view: FrameView):
        super().__init__()
        self._view = view
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        self._view._paint(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._view._press(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._view._move(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._view._release(event)


class FrameView(QScrollArea):
    """Shows one frame, or two split by a swipe divider; ``set_zoom("fit" | 1.0 | 2.0 | …)``."""

    #: the user dragged the swipe divider to this position (0…1 of the image width)
    split_dragged = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("frameView")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a click focuses the player around it
        self.setMinimumSize(160, 90)
        self.setStyleSheet(f"QScrollArea#frameView {{ background: {BACKGROUND}; border: none; }}")
        self.canvas = _Canvas(self)
        self.setWidget(self.canvas)
        self.viewport().setStyleSheet(f"background: {BACKGROUND};")
        self._a: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self._split: float | None = None
        self._labels = ("", "")
        self._message = "No clip"
        self._zoom: str | float = "fit"
        self._drag: str | None = None  # "split" | "pan"
        self._pan_from = QPoint()
        self.setWidgetResizable(True)

    # --- content -----------------------------------------------------------------------------

    def set_frames(self, a: np.ndarray | None, b: np.ndarray | None = None) -> None:
        """Show ``a`` (and ``b`` right of the split in swipe mode); arrays are kept, not copied."""
        old = self.image_size()
        self._a, self._b = a, b
        if self.image_size() != old and self._zoom != "fit":
            self._size_canvas()
        self.canvas.update()

    def set_split(self, position: float | None, labels: tuple[str, str] = ("", "")) -> None:
        """Swipe mode at ``position`` (0…1), or ``None`` for one frame."""
        self._split = None if position is None else min(1.0, max(0.0, float(position)))
        self._labels = labels
        self.canvas.update()

    def set_message(self, text: str) -> None:
        """What the view says while it has no frame ("No clip", "Loading …", an error)."""
        self._message = text
        self.canvas.update()

    def message(self) -> str:
        return self._message

    def image_size(self) -> QSize:
        return QSize(0, 0) if self._a is None else QSize(self._a.shape[1], self._a.shape[0])

    def split_column(self) -> int:
        """The first image column shown from the second frame."""
        return round((self._split or 0.0) * self.image_size().width())

    def composed(self) -> np.ndarray | None:
        """The frame as the view shows it, at image resolution (swipe: columns split between a and b)."""
        if self._a is None or self._b is None or self._split is None:
            return self._a
        import numpy as np

        out = self._a.copy()
        column = self.split_column()
        out[:, column:] = self._b_matched()[:, column:]
        return np.ascontiguousarray(out)

    def _b_matched(self) -> np.ndarray:
        """The second frame at the first frame's size (clips of different sizes share the rectangle)."""
        if self._b.shape == self._a.shape:
            return self._b
        import cv2

        height, width = self._a.shape[:2]
        return cv2.resize(self._b, (width, height), interpolation=cv2.INTER_AREA)

    # --- zoom --------------------------------------------------------------------------------

    def zoom(self) -> str | float:
        return self._zoom

    def set_zoom(self, zoom: str | float) -> None:
        self._zoom = "fit" if zoom == "fit" else max(0.1, min(16.0, float(zoom)))
        self.setWidgetResizable(self._zoom == "fit")
        self._size_canvas()
        self.canvas.update()

    def _size_canvas(self) -> None:
        if self._zoom == "fit":
            return
        size = self.image_size()
        self.canvas.resize(
            max(1, round(size.width() * self._zoom)), max(1, round(size.height() * self._zoom))
        )

    def image_rect(self) -> QRectF:
        """Where the frame is drawn, in canvas coordinates."""
        size = self.image_size()
        if size.isEmpty():
            return QRectF()
        if self._zoom != "fit":
            return QRectF(0, 0, size.width() * self._zoom, size.height() * self._zoom)
        area = self.canvas.rect()
        scale = min(area.width() / size.width(), area.height() / size.height())
        width, height = size.width() * scale, size.height() * scale
        return QRectF((area.width() - width) / 2, (area.height() - height) / 2, width, height)

    # --- painting ----------------------------------------------------------------------------

    def _paint(self, canvas: QWidget) -> None:
        painter = QPainter(canvas)
        painter.fillRect(canvas.rect(), QColor(BACKGROUND))
        if self._a is None:
            painter.setPen(QColor("#8b9098"))
            painter.drawText(
                canvas.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
            )
            return
        target = self.image_rect()
        exact = self._zoom != "fit" and float(self._zoom).is_integer()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not exact)
        width, height = self._a.shape[1], self._a.shape[0]
        if self._b is None or self._split is None:
            painter.drawImage(target, rgb_qimage(self._a))
            return
        column = self.split_column()
        scale = target.width() / width
        split_x = target.left() + column * scale
        left = QRectF(target.left(), target.top(), split_x - target.left(), target.height())
        right = QRectF(split_x, target.top(), target.right() - split_x, target.height())
        b = self._b_matched()
        if column > 0:
            painter.drawImage(left, rgb_qimage(self._a), QRectF(0, 0, column, height))
        if column < width:
            painter.drawImage(right, rgb_qimage(b), QRectF(column, 0, width - column, height))
        painter.setPen(QPen(QColor(DIVIDER), 2))
        painter.drawLine(round(split_x), round(target.top()), round(split_x), round(target.bottom()))
        self._paint_labels(painter, target, split_x)

    def _paint_labels(self, painter: QPainter, target: QRectF, split_x: float) -> None:
        metrics = painter.fontMetrics()
        visible = target.intersected(QRectF(self.canvas.visibleRegion().boundingRect()))
        for text, on_left in ((self._labels[0], True), (self._labels[1], False)):
            if not text:
                continue
            room = (split_x - visible.left()) if on_left else (visible.right() - split_x)
            text = metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, max(0, int(room) - 24))
            if not text:
                continue
            box = QRect(0, 0, metrics.horizontalAdvance(text) + 12, metrics.height() + 6)
            x = visible.left() + 6 if on_left else visible.right() - box.width() - 6
            box.moveTo(round(x), round(visible.top()) + 6)
            painter.fillRect(box, QColor(0, 0, 0, 170))
            painter.setPen(QColor("#ffffff"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # --- mouse: drag the divider (swipe) or pan (zoomed in) ----------------------------------

    def _split_x(self) -> float:
        target = self.image_rect()
        return target.left() + self.split_column() * target.width() / max(1, self.image_size().width())

    def _position_at(self, x: float) -> float:
        target = self.image_rect()
        return min(1.0, max(0.0, (x - target.left()) / max(1.0, target.width())))

    def _press(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._a is None:
            return
        x = event.position().x()
        swipe = self._b is not None and self._split is not None
        near_divider = abs(x - self._split_x()) <= GRAB_MARGIN
        if swipe and (near_divider or self._zoom == "fit" or not self._scrollable()):
            self._drag = "split"
            self.split_dragged.emit(self._position_at(x))
        elif self._scrollable():
            self._drag = "pan"
            self._pan_from = event.globalPosition().toPoint()
            self.canvas.setCursor(Qt.CursorShape.ClosedHandCursor)

    def _move(self, event: QMouseEvent) -> None:
        if self._drag == "split":
            self.split_dragged.emit(self._position_at(event.position().x()))
        elif self._drag == "pan":
            now = event.globalPosition().toPoint()
            delta = now - self._pan_from
            self._pan_from = now
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
        else:
            self._update_cursor(event.position().x())

    def _release(self, event: QMouseEvent) -> None:
        self._drag = None
        self._update_cursor(event.position().x())

    def _update_cursor(self, x: float) -> None:
        swipe = self._b is not None and self._split is not None
        if swipe and abs(x - self._split_x()) <= GRAB_MARGIN:
            self.canvas.setCursor(Qt.CursorShape.SplitHCursor)
        elif self._scrollable():
            self.canvas.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.canvas.unsetCursor()

    def _scrollable(self) -> bool:
        return self.horizontalScrollBar().maximum() > 0 or self.verticalScrollBar().maximum() > 0
