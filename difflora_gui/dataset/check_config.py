"""The pair checks' one declaration: the check resolution and every threshold, with help text.

``python main.py dataset check``'s flags, the "check pairs" tool's form (tooltips from ``help``) and
the thresholds stored beside the scores all come from :data:`CHECK_CONFIG`. Flags are derived from
the stored numbers and these thresholds (:func:`difflora_gui.dataset.checks.flag_scores`), so a
changed threshold re-flags a set without re-reading a single image. Qt-free and import-light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from difflora_gui.config import ConfigDeclaration, Param, check_dataclass

GROUPS = (
    ("resolution", "check resolution"),
    ("detail", "structure"),
    ("alignment", "alignment"),
    ("colour", "colour drift"),
    ("size", "size and video"),
    ("set", "whole set"),
    ("running", "running"),
)

CHECK_CONFIG = ConfigDeclaration(
    name="pair check settings",
    groups=GROUPS,
    params=(
        Param(
            "resolution",
            "int",
            256,
            "the training resolution: both images are brought to this short side (B to A's size) before "
            "they are compared, so the scores say what the trainer will see",
            title="Resolution",
            group="resolution",
            minimum=32,
            maximum=4096,
            metavar="PX",
        ),
        Param(
            "ssim_min",
            "float",
            0.5,
            "flag a pair whose grey SSIM is below this (1 = identical). A counterpart that only simplifies "
            "detail keeps SSIM high; a different composition or a moved scene drops it",
            title="SSIM at least",
            group="detail",
            minimum=0.0,
            maximum=1.0,
            step=0.01,
        ),
        Param(
            "mad_max",
            "float",
            40.0,
            "flag a pair whose mean absolute difference (grey, 0–255) is above this",
            title="Mean abs. difference at most",
            group="detail",
            minimum=0.0,
            maximum=255.0,
        ),
        Param(
            "shift_max",
            "float",
            2.0,
            "flag a pair whose content moved by more than this many pixels at the check resolution "
            "(phase correlation of the grey images): a moved scene is learned as the concept",
            title="Shift at most (px)",
            group="alignment",
            minimum=0.0,
        ),
        Param(
            "align_min_response",
            "float",
            0.05,
            "a phase-correlation peak weaker than this is not trusted (the images share too little "
            "structure to say how far they moved); the shift is then reported but not flagged",
            title="Alignment confidence at least",
            group="alignment",
            minimum=0.0,
            maximum=1.0,
            advanced=True,
        ),
        Param(
            "scale_tolerance",
            "float",
            0.02,
            "flag a pair whose content is zoomed by more than this fraction (log-polar phase "
            "correlation of the spectra): a counterpart that zoomed the scene teaches the zoom",
            title="Zoom tolerance",
            group="alignment",
            minimum=0.0,
            maximum=1.0,
            step=0.005,
        ),
        Param(
            "scale_min_response",
            "float",
            0.2,
            "a zoom is flagged only when its correlation peak is at least this high (below it the "
            "spectra are too different to say)",
            title="Zoom confidence at least",
            group="alignment",
            minimum=0.0,
            maximum=1.0,
            advanced=True,
        ),
        Param(
            "drift_lightness",
            "float",
            3.0,
            "flag a pair whose mean lightness differs by more than this (CIE L*, 0–100): "
            "B is darker / lighter than A",
            title="Lightness drift at most (ΔL)",
            group="colour",
            minimum=0.0,
        ),
        Param(
            "drift_colour",
            "float",
            2.5,
            "flag a pair whose mean colour differs by more than this on the green–magenta (Δa) or "
            "blue–yellow (Δb) axis of CIE Lab: B is greener / more magenta / warmer / cooler than A",
            title="Colour drift at most (Δa, Δb)",
            group="colour",
            minimum=0.0,
        ),
        Param(
            "drift_saturation",
            "float",
            3.0,
            "flag a pair whose mean chroma (Lab √(a²+b²)) differs by more than this: B is more / less "
            "saturated than A",
            title="Saturation drift at most",
            group="colour",
            minimum=0.0,
        ),
        Param(
            "histogram_max",
            "float",
            0.3,
            "flag a pair whose colour histograms differ by more than this (Bhattacharyya distance of the "
            "worst channel, 0 = same distribution, 1 = disjoint)",
            title="Histogram distance at most",
            group="colour",
            minimum=0.0,
            maximum=1.0,
            step=0.01,
        ),
        Param(
            "aspect_tolerance",
            "float",
            0.01,
            "flag a pair whose aspect ratios differ by more than this fraction (any size difference is "
            "flagged too: B is resized to A's size for the other checks)",
            title="Aspect tolerance",
            group="size",
            minimum=0.0,
            advanced=True,
        ),
        Param(
            "fps_tolerance",
            "float",
            0.01,
            "videos: flag a pair whose frame rates differ by more than this (frames per second)",
            title="Frame rate tolerance",
            group="size",
            minimum=0.0,
            advanced=True,
        ),
        Param(
            "duration_tolerance",
            "float",
            0.05,
            "videos: flag a pair whose durations differ by more than this (seconds); frame counts are "
            "flagged on any difference",
            title="Duration tolerance (s)",
            group="size",
            minimum=0.0,
            advanced=True,
        ),
        Param(
            "video_samples",
            "int",
            3,
            "videos: how many frames (at the same relative positions in A and B) are scored",
            title="Frames scored per video",
            group="size",
            minimum=1,
            maximum=32,
            advanced=True,
        ),
        Param(
            "set_drift_fraction",
            "float",
            0.6,
            "call out a set-level colour drift when at least this fraction of the pairs drift the same "
            "way: the kind of difference a slider learns even when each pair is under its threshold",
            title="Set-level drift share",
            group="set",
            minimum=0.0,
            maximum=1.0,
            step=0.05,
        ),
        Param(
            "set_drift_min",
            "float",
            1.0,
            "a pair counts towards a set-level drift when it drifts at least this much (ΔL, Δa, Δb or "
            "chroma) in the common direction",
            title="Set-level drift at least",
            group="set",
            minimum=0.0,
        ),
        Param(
            "workers",
            "int",
            0,
            "pairs checked at once (0 = one per CPU core)",
            title="Workers",
            group="running",
            minimum=0,
            maximum=64,
            advanced=True,
        ),
    ),
)


@dataclass(frozen=True)
class CheckThresholds:
    """The checked values of :data:`CHECK_CONFIG` as a typed record (defaults identical)."""

    resolution: int = 256
    ssim_min: float = 0.5
    mad_max: float = 40.0
    shift_max: float = 2.0
    align_min_response: float = 0.05
    scale_tolerance: float = 0.02
    scale_min_response: float = 0.2
    drift_lightness: float = 3.0
    drift_colour: float = 2.5
    drift_saturation: float = 3.0
    histogram_max: float = 0.3
    aspect_tolerance: float = 0.01
    fps_tolerance: float = 0.01
    duration_tolerance: float = 0.05
    video_samples: int = 3
    set_drift_fraction: float = 0.6
    set_drift_min: float = 1.0
    workers: int = 0

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> CheckThresholds:
        """Checked (``UserError`` on a bad value); unknown keys are ignored, missing ones defaulted."""
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in dict(values or {}).items() if k in names and v is not None}
        return cls(**CHECK_CONFIG.resolve(given, owner=CHECK_CONFIG.name))

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


check_dataclass(CheckThresholds, CHECK_CONFIG)
