"""The five section pages (Dataset · Train · Merge · Preview · Compare) and the panels in them.

A section page shows the panels plugins contribute for it, in ``PanelSpec.order``. With no panel
it says what the section is for and that its tools come from plugins: text, never fake controls.
A panel whose widget cannot be created gets an error card in its place.
"""

from __future__ import annotations

import html
import traceback
from dataclasses import dataclass, field

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from difflora_gui.specs import SECTIONS, PanelSpec, resolve_callable


@dataclass(frozen=True)
class SectionInfo:
    key: str
    title: str
    subtitle: str
    will_hold: tuple[str, ...]
    drops: str = ""


SECTION_INFO: dict[str, SectionInfo] = {
    "dataset": SectionInfo(
        "dataset",
        "Dataset",
        "Paired data for the two component LoRAs.",
        (
            "Set A (concept present) and set B (concept absent), matched pair by pair by file name.",
            "Import of images and video clips, with trimming to Wan frame counts (4N+1 frames at 16 fps).",
            "Captions per pair, including empty captions, which suit differential LoRAs.",
            "Export of Musubi Tuner dataset configs for both sets.",
        ),
        "Images and videos dropped on the window will go here.",
    ),
    "train": SectionInfo(
        "train",
        "Train",
        "LoRA A and LoRA B, trained with the same settings.",
        (
            "Trainer backends (Musubi Tuner for Wan2.1/2.2 1.3B and 14B) with their settings.",
            "A training queue on the device lane: one GPU job per card at a time.",
            "Live loss curves, sample videos during training, and resume from saved state.",
        ),
    ),
    "merge": SectionInfo(
        "merge",
        "Merge",
        "A − B, re-factored to a low rank: the slider LoRA.",
        (
            "The two component LoRAs and their key formats (Musubi, diffusers/PEFT, ComfyUI).",
            "Block selection: which Wan blocks and layers take part in the difference.",
            "Merge strategies (SVD and others from plugins) with per-block energy and error figures.",
            "Writing the slider LoRA in the format your loader expects.",
        ),
        ".safetensors files dropped on the window will go here.",
    ),
    "preview": SectionInfo(
        "preview",
        "Preview",
        "The slider rendered: its strength, its blocks, A/B.",
        (
            "Renders of a LoRA stack with the model kept loaded: a strength or block change reloads nothing.",
            "A frame-exact player and an A/B swipe against the same seed at strength 0.",
            "Export of the strength and blocks you chose, baked into a new LoRA file.",
            "Strength sweeps as a synchronised video grid are in the Compare section.",
        ),
    ),
    "compare": SectionInfo(
        "compare",
        "Compare",
        "Strengths, seeds, merges and epochs side by side.",
        (
            "Grids of preview clips on up to three axes: strength, seed, LoRA variant (merges or the "
            "checkpoints of one run), block preset or selector, prompt, and per-expert strength for Wan2.2.",
            "Every cell on one timeline, with a difference view against strength 0.",
            "Export as one labelled video (H.264, WebM, WebP, GIF), a PNG contact sheet and a JSON sidecar "
            "that renders the same grid again.",
        ),
        ".safetensors files dropped on the window will go to its LoRA stack.",
    ),
}
assert tuple(SECTION_INFO) == SECTIONS


@dataclass
class PanelEntry:
    """A panel the window built (or tried to): its spec, owner plugin and widget or error."""

    spec: PanelSpec
    plugin: str
    widget: QWidget
    error: str = ""
    traceback: str = ""
    accepts: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.error


def build_panel(spec: PanelSpec, plugin: str, services) -> PanelEntry:
    """Import and construct a panel's widget; any failure becomes an :class:`ErrorCard`."""
    try:
        factory = resolve_callable(spec.widget)
        widget = factory(services)
        if not isinstance(widget, QWidget):
            raise TypeError(f"{spec.widget!r} returned {type(widget).__name__}, not a QWidget")
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        trace = traceback.format_exc()
        card = ErrorCard(
            f"The panel '{spec.title}' (plugin '{plugin}') could not be created.",
            error,
            trace,
        )
        return PanelEntry(spec, plugin, card, error, trace)
    widget.setObjectName(widget.objectName() or f"panel-{spec.name}")
    return PanelEntry(spec, plugin, widget, accepts=spec.accepts)


class ErrorCard(QFrame):
    """Stands where a broken panel would be: what failed, the error and its traceback."""

    def __init__(self, heading: str, error: str, trace: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorCard")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.error = error
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(8)
        title = QLabel(heading)
        title.setObjectName("errorHeading")
        title.setWordWrap(True)
        message = QLabel(error)
        message.setWordWrap(True)
        message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hint = QLabel("The rest of the app works. The plugin's other contributions are unaffected.")
        hint.setObjectName("mutedLabel")
        layout.addWidget(title)
        layout.addWidget(message)
        layout.addWidget(hint)
        if trace:
            details = QPlainTextEdit(trace)
            details.setObjectName("tracebackView")
            details.setReadOnly(True)
            details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            details.setMaximumHeight(180)
            layout.addWidget(details)
        layout.addStretch(1)


class SectionPage(QWidget):
    """One section: a heading, then its panels (tabs if several) or what the section will hold."""

    def __init__(self, info: SectionInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.info = info
        self.setObjectName(f"section-{info.key}")
        self.entries: list[PanelEntry] = []
        title = QLabel(info.title)
        title.setObjectName("sectionTitle")
        # elided when the window is narrow: the heading row never sets the window's minimum width
        subtitle = QElidingLabel(info.subtitle)
        subtitle.setObjectName("sectionSubtitle")
        subtitle.setToolTip(info.subtitle)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(22, 12, 22, 16)
        self._layout.setSpacing(4)
        # the subtitle beside the title: one line of height more for the panel (a 720p screen)
        heading = QHBoxLayout()
        heading.setSpacing(14)
        heading.addWidget(title, 0, Qt.AlignmentFlag.AlignBaseline)
        heading.addWidget(subtitle, 1, Qt.AlignmentFlag.AlignBaseline)
        self._layout.addLayout(heading)
        self._layout.addSpacing(6)
        self._body: QWidget | None = None
        self.set_panels([])

    def set_panels(self, entries: list[PanelEntry]) -> None:
        """Show these panels (already built, sorted by order), replacing the previous ones."""
        if self._body is not None:
            self._layout.removeWidget(self._body)
            self._body.hide()  # removeWidget alone leaves it painted until the deferred delete
            self._body.deleteLater()
        self.entries = list(entries)
        if not entries:
            self._body = self._intro_page()
        elif len(entries) == 1:
            self._body = entries[0].widget
        else:
            tabs = QTabWidget()
            tabs.setObjectName(f"panels-{self.info.key}")
            tabs.setDocumentMode(True)
            for entry in entries:
                tabs.addTab(entry.widget, entry.spec.title)
            self._body = tabs
        alignment = Qt.AlignmentFlag.AlignTop if isinstance(self._body, ErrorCard) else Qt.AlignmentFlag(0)
        self._layout.addWidget(self._body, 1, alignment)

    def show_panel(self, entry: PanelEntry) -> None:
        if isinstance(self._body, QTabWidget):
            self._body.setCurrentWidget(entry.widget)

    @property
    def has_panels(self) -> bool:
        return bool(self.entries)

    def _intro_page(self) -> QWidget:
        info = self.info
        items = "".join(f"<li style='margin-bottom:6px'>{html.escape(item)}</li>" for item in info.will_hold)
        drops = f"<p>{html.escape(info.drops)}</p>" if info.drops else ""
        card = QFrame()
        card.setObjectName("sectionCard")
        layout = QVBoxLayout(card)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(8)
        heading = QLabel("This section will hold")
        heading.setObjectName("cardHeading")
        text = QLabel(f"<ul style='margin-left:-20px'>{items}</ul>{drops}")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        note = QLabel(
            "No panel is installed for this section yet. Its tools come from plugins; "
            "see Tools ▸ Plugins for what is loaded."
        )
        note.setObjectName("mutedLabel")
        note.setWordWrap(True)
        layout.addWidget(heading)
        layout.addWidget(text)
        layout.addWidget(note)
        holder = QWidget()
        outer = QVBoxLayout(holder)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(card)
        outer.addStretch(1)
        scroll = QScrollArea()
        scroll.setObjectName(f"section-intro-{info.key}")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)
        return scroll
