"""The grid job's params and result, and the export options (plain data, JSON round trip).

:class:`GridJob` is what ``run_grid(params, ctx)`` (:mod:`difflora_gui.compare.grid_job`) gets:
the grid, the preview backend and its options, where cells are cached, which lanes they may use,
and optionally where to export the grid at the end. :class:`GridResult` is what it returns: one
:class:`CellResult` per cell (the cached video it replays from), how many cells were rendered and
how many were already cached, and the files the export wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.compare.grid_spec import LAYOUTS, GridSpec
from difflora_gui.errors import UserError

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
#: export formats, by the output file's suffix
EXPORT_SUFFIXES = (".mp4", ".webm", ".webp", ".gif")


@dataclass(frozen=True)
class ExportOptions:
    """How a grid becomes one video: ``layout`` (horizontal: the first axis along the columns;
    vertical: down the rows), H.264 ``crf`` and ``preset``, ``sheet_frame`` (also write a PNG
    contact sheet of that frame, next to the video as ``NAME.sheet.png``; None: no sheet),
    ``labels`` (draw the axis labels), ``sidecar`` (write ``NAME.json`` with every generation
    parameter, for ``python main.py grid --from``)."""

    layout: str = "horizontal"
    crf: int = 20
    preset: str = "veryfast"
    sheet_frame: int | None = None
    labels: bool = True
    sidecar: bool = True

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise UserError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not 0 <= int(self.crf) <= 51:
            raise UserError(f"crf must be 0…51, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise UserError(f"preset must be one of x264's: {', '.join(X264_PRESETS)}; got {self.preset!r}")
        if self.sheet_frame is not None and int(self.sheet_frame) < 0:
            raise UserError(f"the contact sheet frame must be ≥ 0, got {self.sheet_frame}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown export option(s): {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class GridJob:
    """One grid run.

    ``backend``: a preview backend's name; ``options``: its options (as a preview job's).
    ``cache_dir`` (required: a grid is resumable only through its cached cells) and ``cache_mb``.
    ``lane``: where cells may render — a lane key or pattern (``device:cuda:*``: every GPU;
    ``comfy:*``: every healthy ComfyUI server); empty: the backend's own lane with ``device``.
    ``out``: export the grid there when every cell is done (empty: no export); ``overwrite``:
    replace an existing ``out``.
    """

    spec: GridSpec
    backend: str = "diffusers"
    options: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: str = ""
    cache_mb: int = 8192
    lane: str = ""
    device: str = "cpu"
    out: str = ""
    overwrite: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)

    def __post_init__(self):
        if isinstance(self.spec, Mapping):
            object.__setattr__(self, "spec", GridSpec.from_json(self.spec))
        if isinstance(self.export, Mapping):
            object.__setattr__(self, "export", ExportOptions.from_json(self.export))
        if not isinstance(self.export, ExportOptions):
            raise UserError(f"a grid's export options must be an object, got {type(self.export).__name__}")
        if not isinstance(self.spec, GridSpec):
            raise UserError(f"a grid's spec must be an object, got {type(self.spec).__name__}")
        object.__setattr__(self, "options", dict(self.options or {}))
        if not self.cache_dir:
            raise UserError("a grid needs a cache folder (its cells are kept there)")
        if self.out and not self.out.lower().endswith(EXPORT_SUFFIXES):
            raise UserError(f"{self.out}: a grid exports to {', '.join(EXPORT_SUFFIXES)}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["spec"] = self.spec.to_json()
        data["export"] = self.export.to_json()
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GridJob:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown grid job field(s): {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class CellResult:
    """A finished cell: its place, labels, the cached video and first frame, its cache key, and
    whether this run rendered it (False: it was already cached)."""

    index: tuple[int, ...]
    row: int
    col: int
    labels: tuple[str, ...]
    video: str
    first_frame: str
    key: str
    rendered: bool
    frames: int
    width: int
    height: int
    fps: int
    request: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellResult:
        values = dict(data)
        values["index"] = tuple(values["index"])
        values["labels"] = tuple(values["labels"])
        return cls(**values)


@dataclass(frozen=True)
class GridResult:
    """Every cell (in render order), the counts, and what the export wrote (empty when none)."""

    cells: tuple[CellResult, ...]
    rendered: int
    cached: int
    out: str = ""
    sheet: str = ""
    sidecar: str = ""

    def cell_at(self, row: int, col: int) -> CellResult:
        for cell in self.cells:
            if (cell.row, cell.col) == (row, col):
                return cell
        raise IndexError(f"no cell at row {row}, column {col}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cells"] = [c.to_json() for c in self.cells]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GridResult:
        values = dict(data)
        values["cells"] = tuple(CellResult.from_json(c) for c in values.get("cells", ()))
        return cls(**values)
