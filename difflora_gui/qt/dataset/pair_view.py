"""The pair view: one pair's A and B, compared every way the checks cannot show in numbers.

* **Side by side**: two views that zoom and pan together (wheel at the pointer, drag, double-click fits).
* **Swipe**: one view with A left of a divider and B right of it; drag the divider or the slider under it.
* **Difference**: the absolute-difference heatmap over the images, at an opacity (:mod:`~difflora_gui.dataset.diff_image`).
* **Training crop**: each image as Musubi trains it at the chosen resolution, resized and centre-cropped into
  its aspect bucket (:mod:`~difflora_gui.dataset.buckets`), with the bucket written under the images.

Decoding and the heatmaps are computed on the thread pool (:mod:`~difflora_gui.dataset.pair_preview`), never
on the UI thread; a result for a pair no longer shown is dropped. Under the images: the scores line, the
bucket line, and the edit controls (:class:`~difflora_gui.qt.dataset.pair_controls.PairControls`), which call
the :class:`~difflora_gui.qt.dataset.edits.DatasetEditor` given with :meth:`PairView.set_editor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from difflora_gui.dataset.model import Pair
from difflora_gui.qt.dataset.pair_controls import PairControls, scores_text
from difflora_gui.qt.dataset.swipe import SwipeView
from difflora_gui.qt.dataset.zoom_view import ViewSync, ZoomView, bgr_to_qimage
from difflora_gui.qt.theme import COLORS

if TYPE_CHECKING:
    from difflora_gui.dataset.pair_preview import PairPreview

MODES = ("side", "swipe")
IMAGE_KEYS = ("a", "b", "a_crop", "b_crop", "heat", "crop_heat")


class _Signals(QObject):
    done = Signal(int, object, object)  # generation, PairPreview, {key: QImage}


class _LoadPreview(QRunnable):
    def __init__(self, generation: int, pair: Pair, resolution: int, frame: int | None):
        super().__init__()
        self.signals = _Signals()
        self._args = (generation, pair, resolution, frame)

    def run(self) -> None:
        generation, pair, resolution, frame = self._args
        # cv2 and numpy load on the first pair shown, not when the window starts
        from difflora_gui.dataset.pair_preview import PairPreview, SidePreview, build_preview

        try:
            preview = build_preview(pair, resolution, frame)
        except Exception as error:  # noqa: BLE001 - a bug here must not leave the view "Loading…" for ever
            preview = PairPreview(pair.id, resolution, frame, SidePreview(pair.a), SidePreview(pair.b))
            preview.a.error = preview.b.error = f"could not be shown: {type(error).__name__}: {error}"
        arrays = {
            "a": preview.a.image,
            "b": preview.b.image,
            "a_crop": preview.a.crop,
            "b_crop": preview.b.crop,
            "heat": preview.heatmap.heatmap if preview.heatmap else None,
            "crop_heat": preview.crop_heatmap.heatmap if preview.crop_heatmap else None,
        }
        images = {key: (None if array is None else bgr_to_qimage(array)) for key, array in arrays.items()}
        self.signals.done.emit(generation, preview, images)


def _label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    return label


def _tool(text: str, tip: str, checkable: bool = True) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setCheckable(checkable)
    return button


class PairView(QWidget):
    """One pair in detail; ``loaded(pair_id)`` once its images are shown."""

    loaded = Signal(str)

    def __init__(self, parent=None, *, thread_pool: QThreadPool | None = None):
        super().__init__(parent)
        self._pool = thread_pool or QThreadPool.globalInstance()
        self._pair: Pair | None = None
        self._scores = None
        self._scored_pair: Pair | None = None
        self._resolution = 256
        self._frame: int | None = None
        self._generation = 0
        self._loaded_key = None
        self._preview: PairPreview | None = None
        self._images: dict = {}
        self._editor = None
        self._pending: dict[int, QObject] = {}
        self._build()
        self.clear()

    # --- building ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.side_button = _tool("Side by side", "A and B next to each other; they zoom and pan together")
        self.swipe_button = _tool("Swipe", "A left of a divider, B right of it: drag the divider")
        self.side_button.setChecked(True)
        self._modes = QButtonGroup(self)
        self._modes.addButton(self.side_button)
        self._modes.addButton(self.swipe_button)
        self.side_button.toggled.connect(lambda on: on and self.set_mode("side"))
        self.swipe_button.toggled.connect(lambda on: on and self.set_mode("swipe"))
        self.crop_button = _tool(
            "Training crop", "Each image resized and cropped into its bucket, as Musubi trains it"
        )
        self.crop_button.toggled.connect(self._refresh_content)
        self.heat_button = _tool(
            "Difference", "The absolute difference of A and B as a heatmap over the images"
        )
        self.heat_button.toggled.connect(self._update_overlay)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(70)
        self.opacity_slider.setMaximumWidth(110)
        self.opacity_slider.setToolTip("Opacity of the difference heatmap")
        self.opacity_slider.valueChanged.connect(self._update_overlay)
        self.fit_button = _tool("Fit", "Show the whole image (or double-click it)", checkable=False)
        self.fit_button.clicked.connect(self.fit)
        # the app's style sheet gives tool buttons no checked look: the mode and toggles need one
        accent = COLORS["accent"]
        self.setStyleSheet(f"QToolButton:checked {{ background: #33456b; border-color: {accent}; }}")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for widget in (self.side_button, self.swipe_button, self.crop_button, self.heat_button):
            bar.addWidget(widget)
        bar.addWidget(self.opacity_slider)
        bar.addStretch(1)
        bar.addWidget(self.fit_button)

        self.view_a, self.view_b = ZoomView(), ZoomView()
        self.title_a, self.title_b = _label(), _label()
        side_page = QWidget()
        side = QHBoxLayout(side_page)
        side.setContentsMargins(0, 0, 0, 0)
        for title, view in ((self.title_a, self.view_a), (self.title_b, self.view_b)):
            column = QVBoxLayout()
            column.setSpacing(2)
            column.addWidget(title)
            column.addWidget(view, 1)
            side.addLayout(column, 1)
        self.sync = ViewSync([self.view_a, self.view_b])

        self.swipe_view = SwipeView()
        self.swipe_slider = QSlider(Qt.Orientation.Horizontal)
        self.swipe_slider.setRange(0, 1000)
        self.swipe_slider.setValue(500)
        self.swipe_slider.setToolTip("Where the divider is: A left of it, B right of it")
        self.swipe_slider.valueChanged.connect(lambda v: self.swipe_view.set_split(v / 1000))
        self.swipe_view.split_changed.connect(self._divider_dragged)
        self.swipe_title = _label()
        swipe_page = QWidget()
        swipe = QVBoxLayout(swipe_page)
        swipe.setContentsMargins(0, 0, 0, 0)
        swipe.setSpacing(2)
        swipe.addWidget(self.swipe_title)
        swipe.addWidget(self.swipe_view, 1)
        swipe.addWidget(self.swipe_slider)

        self.stack = QStackedWidget()
        self.stack.addWidget(side_page)
        self.stack.addWidget(swipe_page)

        self.frame_label = QLabel("Frame")
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setToolTip("The clip's frame to compare (the middle one first)")
        self._frame_timer = QTimer(self, singleShot=True, interval=200)
        self._frame_timer.timeout.connect(self._frame_chosen)
        self.frame_slider.valueChanged.connect(lambda _v: self._frame_timer.start())
        frames = QHBoxLayout()
        frames.setContentsMargins(0, 0, 0, 0)
        frames.addWidget(self.frame_label)
        frames.addWidget(self.frame_slider, 1)
        self.frame_row = QWidget()
        self.frame_row.setLayout(frames)

        self.scores_label = _label()
        self.bucket_label = _label()
        self.controls = PairControls()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.frame_row)
        layout.addWidget(self.scores_label)
        layout.addWidget(self.bucket_label)
        layout.addWidget(self.controls)

    # --- public API ----------------------------------------------------------------------------

    def set_editor(self, editor) -> None:
        """The :class:`DatasetEditor` the controls call; the view follows its ``changed`` signal."""
        if self._editor is not None:
            try:
                self._editor.changed.disconnect(self._editor_changed)
            except (RuntimeError, TypeError):
                pass
        self._editor = editor
        self.controls.set_editor(editor)
        if editor is not None:
            editor.changed.connect(self._editor_changed)

    def pair(self) -> Pair | None:
        return self._pair

    def preview(self) -> PairPreview | None:
        """What is shown (None while loading)."""
        return self._preview

    def set_pair(self, pair: Pair | None, scores=None, resolution: int = 256) -> None:
        """Show ``pair`` with its check ``scores`` (D2's PairScores, or None) at the training ``resolution``."""
        if pair is None:
            self.clear()
            return
        if self._pair is None or self._pair.id != pair.id:
            self._frame = None
            self._scored_pair = pair
        if scores is not None or self._pair is None or self._pair.id != pair.id:
            self._scored_pair = pair
        self._pair, self._scores, self._resolution = pair, scores, int(resolution)
        self.crop_button.setText(f"Training crop {self._resolution}")
        self.controls.show_pair(pair)
        self._show_scores()
        self._load()

    def clear(self) -> None:
        """Show nothing (no pair chosen)."""
        self._generation += 1
        self._pair = self._scores = self._scored_pair = self._preview = None
        self._loaded_key = None
        self._images = {}
        for view in (self.view_a, self.view_b, self.swipe_view):
            view.clear_content()
            view.set_scene_size(1, 1)
        self.view_a.set_image(None, "Choose a pair to see A and B")
        self.title_a.setText("A")
        self.title_b.setText("B")
        self.swipe_title.setText("")
        self.scores_label.setText("")
        self.bucket_label.setText("")
        self.frame_row.hide()
        self.controls.show_pair(None)

    def mode(self) -> str:
        return "swipe" if self.stack.currentIndex() == 1 else "side"

    def set_mode(self, mode: str) -> None:
        """``"side"`` (side by side) or ``"swipe"``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        button = self.swipe_button if mode == "swipe" else self.side_button
        if not button.isChecked():
            button.setChecked(True)
        self.stack.setCurrentIndex(MODES.index(mode))
        self.fit()

    def set_split(self, fraction: float) -> None:
        """Put the swipe divider at ``fraction`` (0 … 1) of the image width."""
        self.swipe_slider.setValue(round(max(0.0, min(1.0, fraction)) * 1000))

    def set_training_crop(self, on: bool) -> None:
        self.crop_button.setChecked(on)

    def set_heatmap(self, visible: bool, opacity: float | None = None) -> None:
        if opacity is not None:
            self.opacity_slider.setValue(round(opacity * 100))
        self.heat_button.setChecked(visible)
        self._update_overlay()

    def fit(self) -> None:
        self.sync.fit_all()
        self.swipe_view.fit()

    # --- loading -------------------------------------------------------------------------------

    def _key(self):
        pair = self._pair
        return (
            pair.id,
            pair.a.path if pair.a else None,
            pair.b.path if pair.b else None,
            self._resolution,
            self._frame,
        )

    def _load(self) -> None:
        key = self._key()
        if key == self._loaded_key:
            return
        self._loaded_key = key
        self._generation += 1
        self._preview = None
        for view in (self.view_a, self.view_b, self.swipe_view):
            view.clear_content()
        self.view_a.set_image(None, "Loading…")
        job = _LoadPreview(self._generation, self._pair, self._resolution, self._frame)
        job.signals.done.connect(self._loaded, Qt.ConnectionType.QueuedConnection)
        self._pending[self._generation] = job.signals  # kept alive until its result arrives
        self._pool.start(job)

    def _loaded(self, generation: int, preview: PairPreview, images: dict) -> None:
        self._pending.pop(generation, None)
        if generation != self._generation or self._pair is None:
            return
        # one pixmap per image, shared by the three views
        self._preview = preview
        self._images = {k: (None if img is None else QPixmap.fromImage(img)) for k, img in images.items()}
        self._show_frames(preview)
        self._refresh_content()
        self.loaded.emit(preview.pair_id)

    def _show_frames(self, preview: PairPreview) -> None:
        counts = [n for n in (preview.a.frames, preview.b.frames) if n]
        if not counts:
            self.frame_row.hide()
            return
        top = max(counts) - 1
        self.frame_slider.blockSignals(True)
        self.frame_slider.setRange(0, max(0, top))
        self.frame_slider.setValue(self._frame if self._frame is not None else counts[0] // 2)
        self.frame_slider.blockSignals(False)
        self.frame_label.setText(f"Frame {self.frame_slider.value()} / {top}")
        self.frame_row.show()

    def _frame_chosen(self) -> None:
        if self._pair is not None:
            self._frame = self.frame_slider.value()
            self._load()

    # --- showing -------------------------------------------------------------------------------

    def _side_title(self, side: str) -> str:
        preview = self._preview
        info = preview.side(side) if preview else None
        name = info.item.name if info and info.item else "—"
        size = f" · {info.source_size[0]}×{info.source_size[1]}" if info and info.source_size else ""
        if size and info.fit is not None and self.crop_button.isChecked():
            size += f" → {info.fit.bucket[0]}×{info.fit.bucket[1]}"
        return f"<b>{side.upper()}</b> · {name}{size}"

    def _refresh_content(self, *_args) -> None:
        preview = self._preview
        if preview is None:
            return
        crop = self.crop_button.isChecked()
        a_key, b_key, heat_key = ("a_crop", "b_crop", "crop_heat") if crop else ("a", "b", "heat")
        first = preview.a if preview.a.image is not None else preview.b
        if crop and first.fit is not None:
            size = first.fit.bucket
        elif first.image is not None:
            size = (first.image.shape[1], first.image.shape[0])
        else:
            size = (1, 1)
        a_img, b_img = self._images.get(a_key), self._images.get(b_key)
        for view in (self.view_a, self.view_b, self.swipe_view):
            view.clear_content()
            view.set_scene_size(*size)
        self.view_a.set_image(a_img, preview.a.error or "")
        self.view_b.set_image(b_img, preview.b.error or "")
        errors = " · ".join(e for e in (preview.a.error, preview.b.error) if e)
        self.swipe_view.set_images(a_img, b_img, errors)
        heat = self._images.get(heat_key)
        for view in (self.view_a, self.view_b, self.swipe_view):
            view.set_overlay(heat)
        self.swipe_view.set_split(self.swipe_slider.value() / 1000)
        self.title_a.setText(self._side_title("a"))
        self.title_b.setText(self._side_title("b"))
        self.swipe_title.setText(f"{self._side_title('a')} ← divider → {self._side_title('b')}")
        self._show_buckets()
        self._update_overlay()
        self.fit()

    def _update_overlay(self, *_args) -> None:
        on = self.heat_button.isChecked()
        self.opacity_slider.setEnabled(on)
        opacity = self.opacity_slider.value() / 100
        for view in (self.view_a, self.view_b, self.swipe_view):
            view.show_overlay(on, opacity)

    def _divider_dragged(self, fraction: float) -> None:
        self.swipe_slider.blockSignals(True)
        self.swipe_slider.setValue(round(fraction * 1000))
        self.swipe_slider.blockSignals(False)

    def _show_scores(self) -> None:
        text = scores_text(self._scores)
        pair, scored = self._pair, self._scored_pair
        stale = self._scores is not None and pair is not None and scored is not None
        if stale and (pair.a, pair.b) != (scored.a, scored.b):
            text += " — scores are from before the last edit; check again"
        self.scores_label.setText(text)
        self._fit_labels()

    def _show_buckets(self) -> None:
        preview = self._preview
        a_fit, b_fit = preview.a.fit, preview.b.fit
        if a_fit and b_fit and a_fit.describe() == b_fit.describe():
            text = f"Training at {preview.resolution}: A and B {a_fit.describe()}"
        else:
            parts = [f"{s.upper()} {f.describe()}" for s, f in (("a", a_fit), ("b", b_fit)) if f is not None]
            text = f"Training at {preview.resolution}: " + "; ".join(parts) if parts else ""
            if a_fit and b_fit and a_fit.bucket != b_fit.bucket:
                text += " — A and B train in different buckets"
        heat = preview.crop_heatmap if self.crop_button.isChecked() else preview.heatmap
        if heat is not None:
            text += f" · pixel difference mean {heat.mean:.1f}, max {heat.max} (of 255)"
        self.bucket_label.setText(text)
        self._fit_labels()

    def _fit_labels(self) -> None:
        """Wrapped lines get the height they need at the current width (a layout gives them one line)."""
        width = max(50, self.width() - 8)
        for label in (self.scores_label, self.bucket_label):
            label.setMinimumHeight(label.heightForWidth(width) if label.text() else 0)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_labels()

    # --- edits ---------------------------------------------------------------------------------

    def _editor_changed(self, ids: list) -> None:
        if self._pair is None or self._pair.id not in ids:
            return
        pair = self._editor.pair(self._pair.id) if self._editor is not None else None
        if pair is None:
            self.clear()
            return
        self._pair = pair
        self.controls.show_pair(pair)
        self._show_scores()
        self._load()
