"""The settings of frame extraction (declared once: the CLI flags, the plugin's form, the job's params).

Import-light on purpose (no av, cv2 or numpy): the plugin and ``--help`` read it.
"""

from __future__ import annotations

from difflora_gui.config import ConfigDeclaration
from difflora_gui.params import Param, when

MODES = ("scenes", "interval")
DETECTORS = ("content", "adaptive")

FRAME_OPTIONS = ConfigDeclaration(
    name="frame extraction",
    groups=(("pick", "which frames"), ("filters", "skip")),
    params=(
        Param(
            "mode",
            "choice",
            "scenes",
            "scenes: one frame per shot (cuts found by PySceneDetect); interval: one frame every N seconds",
            choices=MODES,
            group="pick",
        ),
        Param(
            "every_s",
            "float",
            2.0,
            "interval mode: seconds between frames",
            title="Every (seconds)",
            minimum=0.05,
            flag="every",
            metavar="SECONDS",
            group="pick",
            visible_when=when(mode="interval"),
        ),
        Param(
            "detector",
            "choice",
            "content",
            "scene mode: PySceneDetect's ContentDetector or AdaptiveDetector",
            choices=DETECTORS,
            group="pick",
            advanced=True,
            visible_when=when(mode="scenes"),
        ),
        Param(
            "threshold",
            "float",
            27.0,
            "scene mode: the detector's cut threshold (ContentDetector 27; AdaptiveDetector uses 3 "
            "when left at 27); lower finds more cuts",
            minimum=0.0,
            group="pick",
            visible_when=when(mode="scenes"),
        ),
        Param(
            "min_scene_len_s",
            "float",
            0.6,
            "scene mode: shortest shot in seconds (cuts closer together are merged; flashes ignored)",
            title="Min scene length (s)",
            minimum=0.0,
            flag="min_scene_len",
            metavar="SECONDS",
            group="pick",
            visible_when=when(mode="scenes"),
        ),
        Param(
            "skip_dark",
            "bool",
            True,
            "skip dark frames (mean brightness below --dark_level)",
            group="filters",
        ),
        Param(
            "dark_level",
            "float",
            20.0,
            "mean brightness (0-255) below which a frame is dark",
            minimum=0.0,
            maximum=255.0,
            group="filters",
            advanced=True,
        ),
        Param(
            "skip_blank",
            "bool",
            True,
            "skip blank frames (one flat colour: brightness spread below --blank_level)",
            group="filters",
        ),
        Param(
            "blank_level",
            "float",
            5.0,
            "brightness standard deviation (0-255) below which a frame is blank",
            minimum=0.0,
            group="filters",
            advanced=True,
        ),
        Param(
            "dedupe",
            "bool",
            True,
            "skip near-duplicates of any frame already kept in this run (perceptual dHash)",
            group="filters",
        ),
        Param(
            "dedupe_distance",
            "int",
            6,
            "dHash bits (of 64) two frames may differ by and still count as duplicates",
            minimum=0,
            maximum=64,
            group="filters",
        ),
    ),
)
