"""Export a pair set for Musubi Tuner: two dataset TOMLs, one for set A and one for set B.

Layout of the export folder (``out/``)::

    out/A/<name>.png  out/A/<name>.txt      (set A: concept present; a caption file per item)
    out/B/<name>.png  out/B/<name>.txt      (set B: concept absent; the same names)
    out/cache/A/  out/cache/B/              (empty: Musubi's latent and text-encoder caches)
    out/dataset_A.toml  out/dataset_B.toml  (train LoRA A with the first, LoRA B with the second)
    out/difflora-export.json                (what was exported from where, and what was left out)

When the set holds both images and clips, each side is split into ``A/images`` and ``A/videos``
(and the caches likewise), one ``[[datasets]]`` entry each: Musubi's image datasets glob only
images and its video datasets only videos, so one folder would work, but their caption files
would share a folder with nothing keeping their names apart.

What the two TOMLs get right (``shared/reference/musubi-tuner.md`` §0.4 and §4, checked against
Musubi's ``dataset/config_utils.py``):

* the same settings in both: everything but ``image_directory``/``video_directory`` and
  ``cache_directory`` is written identically; the shared keys go to ``[general]``, the video keys
  (not allowed in ``[general]``) to each video dataset;
* only ``[general]`` and ``[[datasets]]`` and only keys Musubi's schema knows (it rejects others);
* a cache folder of its own for every dataset (Musubi requires unique ones per file, and A and B
  hold the same file names, so a shared cache would mix the two sets); the cache folders start
  empty, because training picks up every ``*_wan.safetensors`` it finds there;
* a caption file for every item, empty for an empty caption (Musubi silently skips images that
  have none, and a clip without one crashes its text-encoder caching);
* lower-case suffixes (Musubi's globs know ``.png`` and ``.PNG`` but not ``.Png``);
* ``target_frames`` of the form 4N+1, ``source_fps`` written as a decimal number;
* paths as TOML literal strings (``'C:\\Users\\me\\data'`` needs no escaping), falling back to an
  escaped basic string only for a path that contains ``'``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflora_gui.dataset.folder_export import (
    ExportItem,
    LeftOut,
    check_caption_extension,
    prepare,
    staged_folder,
    write_items,
    write_manifest,
)
from difflora_gui.dataset.model import PairSet
from difflora_gui.errors import UserError

TOML_NAMES = {"a": "dataset_A.toml", "b": "dataset_B.toml"}
SIDE_FOLDERS = {"a": "A", "b": "B"}
CACHE_FOLDER = "cache"
FRAME_EXTRACTIONS = ("head", "chunk", "slide", "uniform", "full")
#: the keys Musubi allows in ``[general]`` and in every dataset (``DATASET_ASCENDABLE_SCHEMA``)
GENERAL_KEYS = (
    "resolution",
    "caption_extension",
    "batch_size",
    "num_repeats",
    "enable_bucket",
    "bucket_no_upscale",
)
#: what a dataset entry of each kind may hold (``IMAGE_/VIDEO_DATASET_DISTINCT_SCHEMA``, the keys this export uses)
IMAGE_KEYS = ("image_directory", "cache_directory")
VIDEO_KEYS = (
    "video_directory",
    "cache_directory",
    "target_frames",
    "frame_extraction",
    "frame_stride",
    "frame_sample",
    "max_frames",
    "source_fps",
)
SIDE_TITLES = {"a": "set A (concept present)", "b": "set B (concept absent)"}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def parse_resolution(value: Any) -> int | tuple[int, int]:
    """192, "192", [336, 192], "336x192" or "336,192" → 192 or (336, 192)."""
    if isinstance(value, str):
        parts = [p for p in value.lower().replace("×", "x").replace(",", "x").split("x") if p.strip()]
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise UserError(f"resolution must be a number or WIDTHxHEIGHT (336x192), got {value!r}") from None
        value = numbers[0] if len(numbers) == 1 else numbers
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            value = value[0]
        elif len(value) != 2:
            raise UserError(f"resolution must be one size or [width, height], got {list(value)!r}")
        else:
            w, h = (_positive_int("resolution", v, 16) for v in value)
            return (w, h)
    return _positive_int("resolution", value, 16)


@dataclass(frozen=True)
class MusubiOptions:
    """The dataset settings written to both TOMLs (Musubi's names and defaults unless noted)."""

    resolution: int | tuple[int, int] = 192  # bucket area = W×H (one number: a square)
    enable_bucket: bool = True  # Musubi's default is false; aspect buckets keep film frames uncropped
    bucket_no_upscale: bool = False
    num_repeats: int = 1
    batch_size: int = 1
    caption_extension: str = ".txt"
    # video datasets only
    target_frames: tuple[int, ...] = (1, 25, 45)  # each 4N+1 (Musubi's docs example)
    frame_extraction: str = "head"
    frame_stride: int = 1  # slide
    frame_sample: int = 1  # uniform (how many windows)
    max_frames: int = 129  # full
    source_fps: float | None = None  # the clips' frame rate, to drop frames to the model's (16 fps for Wan)

    @classmethod
    def from_values(cls, **values: Any) -> MusubiOptions:
        """Options from keywords; ``repeats`` is accepted for ``num_repeats``. Raises ``UserError``."""
        if "repeats" in values:
            repeats = values.pop("repeats")
            if values.setdefault("num_repeats", repeats) != repeats:
                raise UserError("give repeats or num_repeats, not both")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown Musubi export option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in values.items() if v is not None}).validated()

    def validated(self) -> MusubiOptions:
        frames = self.target_frames
        if isinstance(frames, int):
            frames = (frames,)
        frames = tuple(_positive_int("target_frames", f) for f in frames)
        if not frames:
            raise UserError("target_frames needs at least one frame count (4N+1: 1, 5, 9 … 45 …)")
        for f in frames:
            if (f - 1) % 4:
                low = (f - 1) // 4 * 4 + 1
                raise UserError(f"target_frames {f} is not of the form 4N+1 (use {low} or {low + 4})")
        if self.frame_extraction not in FRAME_EXTRACTIONS:
            raise UserError(
                f"frame_extraction must be one of {', '.join(FRAME_EXTRACTIONS)}, got {self.frame_extraction!r}"
            )
        if self.frame_extraction == "uniform" and self.frame_sample < 2:
            raise UserError(
                "frame_extraction uniform needs frame_sample of at least 2 (with 1 Musubi falls back to head)"
            )
        fps = self.source_fps
        if fps is not None:
            if (
                isinstance(fps, bool)
                or not isinstance(fps, (int, float))
                or not math.isfinite(fps)
                or fps <= 0
            ):
                raise UserError(f"source_fps must be a positive number, got {fps!r}")
            fps = float(fps)
        for name in ("enable_bucket", "bucket_no_upscale"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be true or false, got {getattr(self, name)!r}")
        return dataclasses.replace(
            self,
            resolution=parse_resolution(self.resolution),
            num_repeats=_positive_int("num_repeats", self.num_repeats),
            batch_size=_positive_int("batch_size", self.batch_size),
            caption_extension=check_caption_extension(self.caption_extension),
            target_frames=tuple(sorted(set(frames))),
            frame_stride=_positive_int("frame_stride", self.frame_stride),
            frame_sample=_positive_int("frame_sample", self.frame_sample),
            max_frames=_positive_int("max_frames", self.max_frames),
            source_fps=fps,
        )

    def general_table(self) -> dict[str, Any]:
        res = self.resolution
        return {
            "resolution": list(res) if isinstance(res, tuple) else res,
            "caption_extension": self.caption_extension,
            "batch_size": self.batch_size,
            "num_repeats": self.num_repeats,
            "enable_bucket": self.enable_bucket,
            "bucket_no_upscale": self.bucket_no_upscale,
        }

    def video_table(self) -> dict[str, Any]:
        """The video keys that apply to the chosen frame extraction."""
        table: dict[str, Any] = {
            "target_frames": list(self.target_frames),
            "frame_extraction": self.frame_extraction,
        }
        if self.frame_extraction == "slide":
            table["frame_stride"] = self.frame_stride
        if self.frame_extraction == "uniform":
            table["frame_sample"] = self.frame_sample
        if self.frame_extraction == "full":
            table["max_frames"] = self.max_frames
        if self.source_fps is not None:
            table["source_fps"] = self.source_fps
        return table


@dataclass(frozen=True)
class MusubiDataset:
    """One ``[[datasets]]`` entry: a side's images or clips and its cache folder."""

    side: str
    kind: str
    directory: Path
    cache_directory: Path
    items: int


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    toml_a: Path
    toml_b: Path
    folders: dict[str, Path]  # "a" / "b" → the side's folder (its images/videos folders inside when mixed)
    datasets: tuple[MusubiDataset, ...]
    items: tuple[ExportItem, ...]
    left_out: tuple[LeftOut, ...] = ()
    linked: int = 0
    options: MusubiOptions = MusubiOptions()

    @property
    def pairs(self) -> int:
        return len(self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "toml_a": str(self.toml_a),
            "toml_b": str(self.toml_b),
            "folders": {side: str(path) for side, path in self.folders.items()},
            "datasets": [
                {
                    "side": d.side,
                    "kind": d.kind,
                    "directory": str(d.directory),
                    "cache": str(d.cache_directory),
                    "items": d.items,
                }
                for d in self.datasets
            ],
            "pairs": self.pairs,
            "left_out": [x.to_json() for x in self.left_out],
            "linked": self.linked,
        }


# --- TOML text -------------------------------------------------------------------------------

_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def toml_string(text: str) -> str:
    """``text`` as a TOML string: a literal string (no escapes: Windows paths stay readable) when it can be."""
    if "'" not in text and not any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
        return f"'{text}'"
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"  # Musubi wants 30.0, not 30
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render_dataset_toml(
    general: dict[str, Any], datasets: list[dict[str, Any]], comments: tuple[str, ...] = ()
) -> str:
    """A Musubi dataset config: comment lines, ``[general]``, then one ``[[datasets]]`` per entry."""
    lines = [f"# {c}" for c in comments]
    if lines:
        lines.append("")
    lines.append("[general]")
    lines += [f"{key} = {toml_value(value)}" for key, value in general.items()]
    for entry in datasets:
        lines += ["", "[[datasets]]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


# --- the export ------------------------------------------------------------------------------


def dataset_layout(kinds: set[str]) -> dict[tuple[str, str], str]:
    """(side, kind) → the folder relative to the export (``A``, or ``A/images`` and ``A/videos`` when mixed)."""
    mixed = len(kinds) > 1
    return {
        (side, kind): f"{SIDE_FOLDERS[side]}/{kind}s" if mixed else SIDE_FOLDERS[side]
        for side in ("a", "b")
        for kind in sorted(kinds)
    }


def dataset_entries(
    side: str, layout: dict[tuple[str, str], str], out: Path, options: MusubiOptions, counts: dict[str, int]
) -> tuple[list[dict[str, Any]], list[MusubiDataset]]:
    entries, datasets = [], []
    for kind in ("image", "video"):
        if (side, kind) not in layout:
            continue
        folder = out / layout[(side, kind)]
        cache = out / CACHE_FOLDER / layout[(side, kind)]
        if kind == "image":
            entry: dict[str, Any] = {"image_directory": str(folder), "cache_directory": str(cache)}
        else:
            entry = {"video_directory": str(folder), "cache_directory": str(cache), **options.video_table()}
        entries.append(entry)
        datasets.append(MusubiDataset(side, kind, folder, cache, counts[kind]))
    return entries, datasets


def export_musubi(
    pair_set: PairSet,
    out_dir: str | Path,
    options: MusubiOptions | None = None,
    *,
    link: bool = False,
    overwrite: bool = False,
    base_dir: str | Path | None = None,
    ctx=None,
    **option_values: Any,
) -> ExportResult:
    """Write the A and B folders, their empty cache folders and ``dataset_A.toml``/``dataset_B.toml``.

    ``options`` or keywords (``resolution=192`` or ``[336, 192]``, ``repeats``/``num_repeats``,
    ``batch_size``, ``enable_bucket``, ``bucket_no_upscale``, ``caption_extension``, and for clips
    ``target_frames``, ``frame_extraction``, ``frame_stride``, ``frame_sample``, ``max_frames``,
    ``source_fps``). ``link`` hard-links instead of copying where the drive allows it. Bad input
    raises ``UserError`` before anything is written; a failure or cancel leaves nothing behind.
    """
    if options is None:
        options = MusubiOptions.from_values(**option_values)
    else:
        if option_values:
            raise UserError("give MusubiOptions or option keywords, not both")
        options = options.validated()
    plan = prepare(pair_set, out_dir, overwrite=overwrite, base_dir=base_dir)
    counts = {kind: sum(1 for item in plan.items if item.kind == kind) for kind in ("image", "video")}
    layout = dataset_layout({kind for kind, n in counts.items() if n})
    general = options.general_table()
    tomls: dict[str, str] = {}
    datasets: list[MusubiDataset] = []
    for side in ("a", "b"):
        entries, found = dataset_entries(side, layout, plan.out, options, counts)
        datasets += found
        what = ", ".join(f"{d.items} {d.kind}{'s' if d.items != 1 else ''}" for d in found)
        tomls[side] = render_dataset_toml(
            general,
            entries,
            (
                f"Musubi Tuner dataset config for {SIDE_TITLES[side]}: {what}. Written by DiffLoRA Studio.",
                f"Its twin {TOML_NAMES['b' if side == 'a' else 'a']} differs only in the folders; train one LoRA with each.",
            ),
        )
    with staged_folder(plan.out) as root:
        linked = write_items(
            plan.items,
            root,
            lambda side, kind: layout[(side, kind)],
            caption_extension=options.caption_extension,
            link=link,
            ctx=ctx,
        )
        for d in datasets:
            (root / d.cache_directory.relative_to(plan.out)).mkdir(parents=True, exist_ok=True)
        for side, text in tomls.items():
            (root / TOML_NAMES[side]).write_text(text, encoding="utf-8", newline="\n")
        write_manifest(
            root,
            "musubi",
            plan.items,
            plan.left_out,
            tomls=dict(TOML_NAMES),
            options=_options_json(options),
        )
    if ctx is not None:
        ctx.log(
            f"exported {len(plan.items)} pairs for Musubi Tuner to {plan.out} ({len(plan.left_out)} left out)"
        )
        for side in ("a", "b"):
            ctx.artifact("file", plan.out / TOML_NAMES[side], side=side, role="musubi_dataset_config")
    return ExportResult(
        out_dir=plan.out,
        toml_a=plan.out / TOML_NAMES["a"],
        toml_b=plan.out / TOML_NAMES["b"],
        folders={side: plan.out / SIDE_FOLDERS[side] for side in ("a", "b")},
        datasets=tuple(datasets),
        items=tuple(plan.items),
        left_out=tuple(plan.left_out),
        linked=linked,
        options=options,
    )


def _options_json(options: MusubiOptions) -> dict[str, Any]:
    data = dataclasses.asdict(options)
    data["resolution"] = (
        list(options.resolution) if isinstance(options.resolution, tuple) else options.resolution
    )
    data["target_frames"] = list(options.target_frames)
    return data
