"""Counterpart generation with FLUX.1 Kontext [dev]: set A in, set B out (Qt-free, torch-free here).

The model card built its "sparse" set B by running every "dense" frame of set A through Kontext
with one instruction (:data:`DEFAULT_PROMPT`). :func:`generate_counterparts` does that batch with a
diffusers ``FluxKontextPipeline`` loaded once from a local diffusers-format folder
(:mod:`difflora_gui.dataset.kontext_pipeline` holds the torch side):

* each source gets ``<out>/<same stem>.png``, written through a temporary file and one rename;
* item ``i`` (its place in the sorted source list) uses seed ``seed + i``; the seed, the settings
  and the seconds it took are recorded in ``<out>/kontext-manifest.json``;
* resumable: an output that exists, is a complete PNG and has its source's size is skipped;
* progress per step and per item with an ETA; a cancel stops mid-item (nothing half written);
* every finished pair is reported as an ``image`` artifact and, when the pair checks are
  installed, scored at once (an ``ssim`` metric and its flags).

Output size: Kontext works on multiples of 16 px (two VAE factors). A source larger than the
working area (``max_area``, 1024² by default, Kontext's own) is first scaled down keeping its exact
aspect; the (scaled) image is then padded at the right and bottom with its mirrored edge up to the
next multiple of 16, generated at that size, the padding cropped off, and scaled back to the exact
source size. No stretching, so B stays aligned with A pixel for pixel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.dataset.kontext_params import (
    DEFAULT_GUIDANCE,
    DEFAULT_MAX_AREA,
    DEFAULT_PROMPT,
    DEFAULT_STEPS,
    KONTEXT_PARAMS,
    KONTEXT_SCHEMA,
    MANIFEST_NAME,
    KontextParams,
    WorkingSize,
    check_model_folder,
    model_folder_problem,
    resolve_model_folder,
    working_size,
)
from difflora_gui.dataset.model import IMAGE_SUFFIXES, media_kind
from difflora_gui.errors import BadFileError, UserError
from difflora_gui.jobs.context import JobContext, NullContext, format_duration

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_MAX_AREA",
    "DEFAULT_PROMPT",
    "DEFAULT_STEPS",
    "KONTEXT_PARAMS",
    "MANIFEST_NAME",
    "KontextParams",
    "KontextResult",
    "WorkingSize",
    "check_model_folder",
    "generate_counterparts",
    "list_sources",
    "model_folder_problem",
    "run",
    "working_size",
]


# --- the batch ----------------------------------------------------------------------------------


@dataclass
class KontextResult:
    """What a batch did; :meth:`to_json` is the job's summary dict."""

    out_dir: str
    generated: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    #: sources that were not used: {"path", "reason"}
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: output name -> {"ssim", "flags"} where the pair checks ran
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds_per_item: float | None = None
    load_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = f", {self.seconds_per_item:.2f} s per image" if self.seconds_per_item is not None else ""
        lines = [
            f"{len(self.generated)} generated, {len(self.skipped_existing)} already done, "
            f"{len(self.skipped)} skipped{rate} -> {self.out_dir}"
        ]
        lines += [f"skipped {item['path']}: {item['reason']}" for item in self.skipped]
        return "\n".join(lines)


def list_sources(source_dir: str | Path) -> tuple[list[Path], list[dict[str, str]]]:
    """The images of a folder (sorted by name, not recursive) and the files left out, with why."""
    folder = Path(source_dir)
    if not str(source_dir) or not folder.is_dir():
        raise UserError(f"source folder not found: {folder}")
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise UserError(f"cannot list the source folder: {exc.strerror or exc}", path=folder) from None
    images, skipped = [], []
    for entry in entries:
        if entry.name.startswith(".") or entry.is_dir():
            continue
        kind = media_kind(entry)
        if kind == "image":
            images.append(entry)
        elif kind == "video":
            skipped.append(
                {"path": str(entry), "reason": "a video; extract its frames first (dataset extract-frames)"}
            )
        else:
            skipped.append({"path": str(entry), "reason": f"not an image ({', '.join(IMAGE_SUFFIXES)})"})
    return images, skipped


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header; BadFileError for a bad file."""
    try:
        from difflora_gui.dataset.media import probe
    except ImportError:  # pragma: no cover - D1's reader missing: decode instead
        image = _decode(path)
        return image.shape[1], image.shape[0]
    info = probe(path)
    if info.kind != "image":
        raise BadFileError(path, "not an image")
    return int(info.width), int(info.height)


def _decode(path: Path):
    try:
        from difflora_gui.dataset.media import read_image
    except ImportError:  # pragma: no cover
        import cv2
        import numpy as np

        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise BadFileError(path, "the image does not decode") from None
        return image
    return read_image(path)


def _complete_output(path: Path, size: tuple[int, int]) -> str:
    """'' if ``path`` is a finished output of ``size``; else why not ('missing' if absent)."""
    if not path.exists():
        return "missing"
    try:
        found = _image_size(path)
    except BadFileError as exc:
        return f"damaged ({exc.problem})"
    if found != size:
        return f"size {found[0]}×{found[1]}, expected {size[0]}×{size[1]}"
    return ""


@dataclass
class _Item:
    index: int
    source: Path
    output: Path
    size: tuple[int, int]


def _plan(sources: Sequence[Path], out_dir: Path, result: KontextResult, ctx: JobContext) -> list[_Item]:
    """Which sources to generate: bad sources, name clashes and finished outputs are set aside."""
    todo: list[_Item] = []
    stems: dict[str, Path] = {}
    for index, source in enumerate(sources):
        source = Path(source)
        ctx.raise_if_cancelled()
        key = source.stem.casefold()  # a.jpg and A.png would be one file on Windows and macOS
        if key in stems:
            result.skipped.append(
                {
                    "path": str(source),
                    "reason": f"same name as {stems[key].name}: one output {source.stem}.png",
                }
            )
            continue
        stems[key] = source
        try:
            size = _image_size(source)
        except BadFileError as exc:
            result.skipped.append({"path": str(source), "reason": exc.problem})
            continue
        output = out_dir / f"{source.stem}.png"
        state = _complete_output(output, size)
        if not state:
            result.skipped_existing.append(output.name)
        elif state == "missing":
            todo.append(_Item(index, source, output, size))
        elif state.startswith("damaged"):
            ctx.log(f"{output}: {state}; generating it again")
            todo.append(_Item(index, source, output, size))
        else:
            result.skipped.append(
                {"path": str(source), "reason": f"{output.name} exists with {state}; delete it to redo"}
            )
    return todo


#: the settings that change what an output looks like (device and offload do not)
_COMPARED = ("model", "prompt", "seed", "steps", "guidance", "dtype", "max_area", "max_sequence_length")


class _Manifest:
    """``kontext-manifest.json``: the settings and, per output, its source, seed and time."""

    def __init__(self, out_dir: Path, params: KontextParams, model: str):
        self.path = out_dir / MANIFEST_NAME
        self.data: dict[str, Any] = {"version": 1, "items": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict) and isinstance(loaded.get("items"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass  # a damaged manifest is rewritten; the images themselves decide what is done
        self.previous = self.data.get("settings")
        self.data["settings"] = {**params.settings_json(), "model": str(model)}

    def differs(self) -> list[str]:
        if not isinstance(self.previous, dict):
            return []
        now = self.data["settings"]
        return sorted(k for k in _COMPARED if k in now and self.previous.get(k) != now[k])

    def record(self, item: _Item, seed: int, seconds: float, work: WorkingSize) -> None:
        from difflora_gui.fileio import atomic_write_json

        self.data["items"][item.output.name] = {
            "source": str(item.source),
            "index": item.index,
            "seed": seed,
            "seconds": round(seconds, 3),
            "size": list(item.size),
            "generated_at": list(work.padded),
            "settings": self.data["settings"],
        }
        atomic_write_json(self.path, self.data)


def _score(source: Path, output: Path, resolution: int) -> dict[str, Any] | None:
    """The pair checks' SSIM and flags for a finished pair (None when the checks are absent)."""
    if resolution <= 0:
        return None
    try:
        from difflora_gui.dataset.check_config import CheckThresholds
        from difflora_gui.dataset.checks import check_pair
    except ImportError:
        return None
    scores = check_pair(source, output, resolution, CheckThresholds(resolution=resolution))
    flags = [getattr(f, "code", str(f)) for f in getattr(scores, "flags", [])]
    texts = [getattr(f, "text", str(f)) for f in getattr(scores, "flags", [])]
    return {"ssim": float(scores.ssim), "flags": flags, "flag_texts": texts}


def generate_counterparts(
    sources: Sequence[str | Path],
    out_dir: str | Path,
    params: KontextParams | Mapping[str, Any],
    ctx: JobContext | None = None,
    *,
    generator_factory: Callable[..., Any] | None = None,
    skipped: Sequence[Mapping[str, str]] = (),
) -> KontextResult:
    """Run Kontext over ``sources`` into ``out_dir`` (see the module docstring). ``JobCancelled``
    on a cancel: what is finished stays, the item in progress leaves nothing behind.

    ``generator_factory(folder, device=, dtype=, offload=)`` makes the pipeline wrapper (default
    :class:`difflora_gui.dataset.kontext_pipeline.KontextGenerator`); ``skipped`` lists files
    already left out by the caller (``{"path", "reason"}``), reported with the others.
    """
    ctx = ctx or NullContext()
    if not isinstance(params, KontextParams):
        params = KontextParams.from_values(params)
    model = resolve_model_folder(params.model)
    check_model_folder(model)
    out = Path(out_dir)
    if not str(out_dir):
        raise UserError("no output folder given (--out)")
    sources = [Path(s) for s in sources]
    for source in sources:
        if out.exists() and source.parent.exists() and _same_dir(source.parent, out):
            raise UserError(
                "the output folder is the source folder; choose another (sources are never changed)", path=out
            )
    if out.exists() and not out.is_dir():
        raise UserError("output path is a file, not a folder", path=out)
    out.mkdir(parents=True, exist_ok=True)
    result = KontextResult(str(out), skipped=[dict(item) for item in skipped])
    ctx.status(f"checking {len(sources)} source images")
    todo = _plan(sources, out, result, ctx)
    for item in result.skipped:
        ctx.log(f"skipped {item['path']}: {item['reason']}")
    if result.skipped_existing:
        ctx.log(f"{len(result.skipped_existing)} already done in {out}; skipped")
    manifest = _Manifest(out, params, model)
    if result.skipped_existing and (changed := manifest.differs()):
        ctx.log(
            f"note: the finished outputs were made with other settings ({', '.join(changed)}); they are kept"
        )
    if not todo:
        ctx.progress(1, 1, "nothing to generate")
        return result
    if generator_factory is None:
        from difflora_gui.dataset.kontext_pipeline import KontextGenerator as generator_factory
    ctx.status(f"loading Kontext from {model}")
    started = time.monotonic()
    generator = generator_factory(model, device=params.device, dtype=params.dtype, offload=params.offload)
    result.load_seconds = time.monotonic() - started
    ctx.log(f"Kontext loaded in {result.load_seconds:.1f} s on {generator.device} ({generator.dtype_name})")
    note = getattr(generator, "clip_truncation_note", None)
    if note is not None and (text := note(params.prompt)):
        ctx.log(text)
    try:
        _run_items(todo, generator, params, manifest, result, ctx)
    finally:
        close = getattr(generator, "close", None)
        if close is not None:
            close()
    return result


def _same_dir(a: Path, b: Path) -> bool:
    from difflora_gui.fileio import same_file

    return same_file(a, b)


def _run_items(
    todo, generator, params: KontextParams, manifest: _Manifest, result: KontextResult, ctx
) -> None:
    from difflora_gui.dataset.kontext_pipeline import write_png

    steps, total = params.steps, len(todo)
    spent: list[float] = []
    for number, item in enumerate(todo):
        ctx.raise_if_cancelled()
        seed = params.seed + item.index
        work = working_size(*item.size, multiple=generator.multiple, max_area=params.max_area)
        label = f"{number + 1}/{total} {item.source.name}"
        per_item = sum(spent) / len(spent) if spent else None

        began = time.monotonic()

        def on_step(step: int, label=label, number=number, per_item=per_item, began=began):
            ctx.raise_if_cancelled()
            fraction = step / steps
            if per_item is None and step > 0:
                eta = (time.monotonic() - began) / fraction * (total - number - fraction)
            elif per_item is not None:
                eta = per_item * (total - number - fraction)
            else:
                eta = None
            ctx.progress(
                number * steps + step,
                total * steps,
                f"{label} step {step}/{steps} ETA {format_duration(eta)}",
            )

        on_step(0)
        try:
            image = _decode(item.source)
        except BadFileError as exc:  # passed the header check but does not decode, or vanished
            result.skipped.append({"path": str(item.source), "reason": exc.problem})
            ctx.log(f"skipped {item.source}: {exc.problem}")
            continue
        pixels = generator.generate(image, work, params, seed, on_step)
        ctx.raise_if_cancelled()
        write_png(item.output, pixels)
        seconds = time.monotonic() - began
        spent.append(seconds)
        result.generated.append(item.output.name)
        result.seconds_per_item = sum(spent) / len(spent)
        manifest.record(item, seed, seconds, work)
        ctx.artifact(
            "image",
            item.output,
            source=str(item.source),
            seed=seed,
            index=item.index,
            seconds=round(seconds, 3),
        )
        _report_scores(item, params, result, ctx)
        ctx.progress((number + 1) * steps, total * steps, f"{label} done in {seconds:.1f} s")


def _report_scores(item: _Item, params: KontextParams, result: KontextResult, ctx) -> None:
    try:
        scores = _score(item.source, item.output, params.check_resolution)
    except Exception as exc:  # a scoring failure must not stop the batch
        ctx.log(f"{item.output.name}: the pair check failed ({exc})")
        return
    if scores is None:
        return
    result.scores[item.output.name] = scores
    ctx.metric("ssim", scores["ssim"], step=item.index)
    flags = "; ".join(scores["flag_texts"]) or "no flags"
    ctx.log(f"{item.output.name}: SSIM {scores['ssim']:.3f} at {params.check_resolution}, {flags}")


def run(params: Mapping[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The job (the plugin's ``run``): ``params`` as :data:`KONTEXT_PARAMS`, plus an optional
    ``sources`` list that replaces listing ``source_dir``. Returns :meth:`KontextResult.to_json`."""
    values = dict(params)
    sources = values.pop("sources", None)
    resolved = KONTEXT_SCHEMA.resolve(values, owner="kontext counterparts")
    skipped: list[dict[str, str]] = []
    if sources is None:
        sources, skipped = list_sources(resolved["source_dir"])
    if not resolved["out_dir"]:
        raise UserError("no output folder given")
    params_ = KontextParams.from_values(resolved)
    return generate_counterparts(sources, resolved["out_dir"], params_, ctx, skipped=skipped).to_json()
