"""A run's training items staged for Musubi Tuner, and its dataset TOML.

Musubi reads a folder per dataset, skips an image that has no caption file (an empty caption needs
an empty ``.txt``) and writes its caches into a cache folder. So each run gets a work folder of its
own, ``<output_dir>/.musubi/<run name>/``::

    data/images/   data/videos/    the items (hard links where the drive allows, else copies),
                                   lower-case suffixes, a caption file beside every item
    cache/images/  cache/videos/   Musubi's latent and text-encoder caches
    dataset.toml                   the dataset config (images and videos as separate datasets)
    stage.json                     what was staged; caches of a different staging are cleared

The input folder is only read. A pair run stages only the items both folders hold, so A and B
train on the same pairs.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.dataset.musubi_export import MusubiOptions, parse_resolution, render_dataset_toml
from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_write_text
from difflora_gui.train.dataset_folder import TrainItem, list_items, matched_items
from difflora_gui.train.plan import TrainRun

WORK_FOLDER = ".musubi"
TOML_NAME = "dataset.toml"
MANIFEST_NAME = "stage.json"
CAPTION_EXTENSION = ".txt"
KIND_FOLDERS = {"image": "images", "video": "videos"}


def work_dir(run: TrainRun) -> Path:
    """The run's own folder for Musubi's inputs and caches."""
    return Path(run.output_dir) / WORK_FOLDER / run.name


def data_dir(run: TrainRun, kind: str) -> Path:
    return work_dir(run) / "data" / KIND_FOLDERS[kind]


def cache_dir(run: TrainRun, kind: str) -> Path:
    return work_dir(run) / "cache" / KIND_FOLDERS[kind]


def toml_path(run: TrainRun) -> Path:
    return work_dir(run) / TOML_NAME


def run_items(run: TrainRun) -> list[TrainItem]:
    """The items the run trains: all of its folder, or for a pair run those with a partner.

    Two items with one name (``a.png`` and ``a.jpg``) would share a caption and a cache file in
    Musubi, so they are refused."""
    if run.pair_dataset:
        items = [own for own, _partner in matched_items(run.dataset, run.pair_dataset)]
    else:
        items = list_items(run.dataset)
    seen: dict[str, TrainItem] = {}
    for item in items:
        key = item.stem.lower()  # Windows folders are case-insensitive
        if key in seen:
            raise UserError(
                f"{run.dataset}: {seen[key].path.name} and {item.path.name} have the same name; "
                "Musubi Tuner would give them one caption and one cache file (rename one)"
            )
        seen[key] = item
    return items


def dataset_options(config: dict[str, Any]) -> MusubiOptions:
    return MusubiOptions.from_values(
        resolution=parse_resolution(config["resolution"]),
        num_repeats=int(config.get("repeats", 1)),
        batch_size=int(config.get("batch_size", 1)),
        caption_extension=CAPTION_EXTENSION,
        target_frames=tuple(int(f) for f in config.get("target_frames") or [1]),
    )


def kinds_of(items: list[TrainItem]) -> list[str]:
    return [kind for kind in ("image", "video") if any(item.kind == kind for item in items)]


def dataset_toml(run: TrainRun, items: list[TrainItem] | None = None) -> str:
    """The dataset config text for ``run`` (nothing is written)."""
    items = run_items(run) if items is None else items
    options = dataset_options(run.config)
    entries = []
    for kind in kinds_of(items):
        if kind == "image":
            entry: dict[str, Any] = {
                "image_directory": str(data_dir(run, kind)),
                "cache_directory": str(cache_dir(run, kind)),
            }
        else:
            entry = {
                "video_directory": str(data_dir(run, kind)),
                "cache_directory": str(cache_dir(run, kind)),
                **options.video_table(),
            }
        entries.append(entry)
    counts = ", ".join(f"{sum(1 for i in items if i.kind == kind)} {kind}s" for kind in kinds_of(items))
    return render_dataset_toml(
        options.general_table(),
        entries,
        (
            f"Musubi Tuner dataset config of run {run.name}: {counts} from {run.dataset}.",
            "Written by DiffLoRA Studio; the items are staged copies, the input folder is untouched.",
        ),
    )


def staged_name(item: TrainItem) -> str:
    return item.path.stem + item.path.suffix.lower()


def caption_text(item: TrainItem, captions: str) -> str:
    return item.caption() if captions == "files" else ""


@dataclass
class StagedDataset:
    toml: Path
    counts: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    cache_cleared: bool = False

    @property
    def items(self) -> int:
        return sum(self.counts.values())


def _link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link ``source`` at ``target`` (True), or copy it when the drive cannot link (False)."""
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copy2(source, target)
        return False


def _manifest(run: TrainRun, items: list[TrainItem], toml_text: str) -> dict[str, Any]:
    """What the caches depend on: the items' files and captions, the dataset config, the model
    side of the latents (task: I2V caches more; VAE, CLIP, T5 files)."""
    entries = []
    for item in items:
        stat = item.path.stat()
        entries.append(
            [
                staged_name(item),
                str(item.path),
                stat.st_size,
                stat.st_mtime_ns,
                caption_text(item, run.config["captions"]),
            ]
        )
    backend = run.backend_config
    return {
        "items": entries,
        "toml": toml_text,
        "task": run.config["task"],
        "models": [str(backend.get(key) or "") for key in ("vae", "clip", "t5", "fp8_t5")],
    }


def _replace_folder(new: Path, old: Path) -> None:
    """Put the complete folder ``new`` where ``old`` is (both are the run's own folders)."""
    if old.exists():
        trash = old.with_name(f".{old.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(old, trash)
        os.replace(new, old)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(new, old)


def stage(run: TrainRun, ctx=None) -> StagedDataset:
    """Stage the run's items and write its dataset TOML (again on every launch: a resume or a
    retry sees the folder as it is now). Caches stay when nothing they depend on changed."""
    items = run_items(run)
    toml_text = dataset_toml(run, items)
    root = work_dir(run)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".data-{uuid.uuid4().hex[:8]}"
    linked = 0
    try:
        for item in items:
            folder = staging / KIND_FOLDERS[item.kind]
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / staged_name(item)
            linked += _link_or_copy(item.path, target)
            caption = folder / (item.path.stem + CAPTION_EXTENSION)
            caption.write_text(caption_text(item, run.config["captions"]), encoding="utf-8", newline="\n")
            if ctx is not None:
                ctx.raise_if_cancelled()
        _replace_folder(staging, root / "data")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest = _manifest(run, items, toml_text)
    manifest_file = root / MANIFEST_NAME
    cleared = False
    try:
        previous = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    cache_root = root / "cache"
    if previous != manifest and cache_root.exists():
        shutil.rmtree(cache_root)  # caches of another staging: Musubi's skip_existing would reuse them
        cleared = True
    counts = {kind: sum(1 for i in items if i.kind == kind) for kind in kinds_of(items)}
    for kind in counts:
        cache_dir(run, kind).mkdir(parents=True, exist_ok=True)
    atomic_write_text(toml_path(run), toml_text)
    atomic_write_text(manifest_file, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    if ctx is not None:
        what = ", ".join(f"{n} {kind}s" for kind, n in counts.items())
        how = f"{linked} hard-linked, {len(items) - linked} copied"
        ctx.log(f"staged {what} for Musubi Tuner in {root / 'data'} ({how})")
        if cleared:
            ctx.log(
                "the items or the dataset settings changed since the last caching: the caches are made again"
            )
    return StagedDataset(toml=toml_path(run), counts=counts, linked=linked, cache_cleared=cleared)
