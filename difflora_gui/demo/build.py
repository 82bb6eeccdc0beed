"""Building the demo project: the paired dataset, the tiny model and the project file, as one job.

``build_demo(params, ctx)`` is a plain job (``python main.py demo build``, Help ▸ Open demo
project). It writes into ``params["folder"]`` (default :func:`default_demo_folder`, the per-user
data folder's ``demo/``)::

    demo/
      dataset/a/scene_01.png …   set A: the scenes with small detail and texture
      dataset/b/scene_01.png …   set B: the same scenes, simplified
      dataset/pairs.json         the pair list the Dataset section opens
      tiny-random-wan (demo)/    the tiny random Wan diffusers folder (README.txt says what it is)
      DiffLoRA demo.difflora     the project: the dataset, and the built-in trainer on the model
      demo.json                  what was built (seed, pair count, format)

Every file is written atomically (a temporary file renamed into place; the model as a whole
folder), so an interrupted build leaves only complete files. A second build reuses what is there
and rewrites nothing: a pair whose two images exist is skipped, a complete model is kept, and
``pairs.json`` and the project file are never replaced once written (the user may have edited
them in the app). It returns ``{"folder", "dataset", "model", "project", "pairs", "built", "reused"}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.demo import dataset as demo_dataset
from difflora_gui.demo import tiny_model
from difflora_gui.errors import UserError

DEMO_FORMAT = "difflora-demo"
DEMO_VERSION = 1
MANIFEST_NAME = "demo.json"
DATASET_FOLDER = "dataset"
PROJECT_NAME = "DiffLoRA demo"
PROJECT_FILE = f"{PROJECT_NAME}.difflora"
DATASET_NAME = "Demo: small detail (A) vs simplified (B)"
#: rough time of a first build on a laptop CPU (the model's imports dominate), for the offer's text
TYPICAL_BUILD_S = 15


def default_demo_folder() -> Path:
    """``<per-user data folder>/demo`` (``DIFFLORA_DATA_DIR`` overrides the data folder)."""
    from difflora_gui.settings import data_dir

    return data_dir() / "demo"


def demo_paths(folder: str | Path | None = None) -> dict[str, Path]:
    """Where the parts of a demo built in ``folder`` (default: the per-user one) are."""
    root = Path(folder) if folder else default_demo_folder()
    return {
        "folder": root,
        "dataset": root / DATASET_FOLDER,
        "model": root / tiny_model.MODEL_FOLDER_NAME,
        "project": root / PROJECT_FILE,
        "manifest": root / MANIFEST_NAME,
    }


def is_built(folder: str | Path | None = None) -> bool:
    """Whether a whole demo is in ``folder``: its manifest, the project file, the model."""
    paths = demo_paths(folder)
    return (
        paths["manifest"].is_file() and paths["project"].is_file() and tiny_model.is_complete(paths["model"])
    )


def _check_manifest(path: Path, seed: int, count: int) -> None:
    """A folder holding another build (another seed or pair count) is refused, never mixed into."""
    import json

    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"the demo folder's {MANIFEST_NAME} cannot be read ({exc})", path=path) from None
    if not isinstance(data, dict) or data.get("format") != DEMO_FORMAT:
        raise UserError(f"not a DiffLoRA demo folder ({MANIFEST_NAME} is something else)", path=path)
    if data.get("seed") != seed or data.get("pairs") != count:
        raise UserError(
            f"this folder holds a demo built with seed {data.get('seed')} and {data.get('pairs')} pairs; "
            "choose another folder for a different one",
            path=path.parent,
        )


def _write_pairs(dataset: Path, seed: int, count: int, ctx) -> int:
    """Draw and write every pair whose images are not there yet; returns how many were written."""
    from difflora_gui.fileio import atomic_write_bytes

    written = 0
    for number in range(1, count + 1):
        ctx.raise_if_cancelled()
        ctx.progress(number - 1, count + 2, f"writing pair {number} of {count}")
        path_a, path_b = demo_dataset.image_paths(dataset, number)
        if path_a.is_file() and path_b.is_file():
            continue
        image_a, image_b = demo_dataset.draw_pair(number, seed)
        for path, image in ((path_a, image_a), (path_b, image_b)):
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, demo_dataset.encode_png(image), overwrite=False)
        written += 1
    return written


def _write_project(paths: dict[str, Path], count: int) -> bool:
    """The pair list and the project file, each only when missing; True when anything was written."""
    from difflora_gui.dataset import store
    from difflora_gui.project import DatasetRecord, Project

    dataset, project_path = paths["dataset"], paths["project"]
    if project_path.is_file() and (dataset / store.PAIRS_FILE).is_file():
        return False
    project = Project(PROJECT_NAME, output_dir=str(paths["folder"] / "outputs"), path=project_path)
    pair_set = demo_dataset.demo_pair_set(dataset, count)
    pair_set.name = DATASET_NAME
    if (dataset / store.PAIRS_FILE).is_file():  # kept as it is: the user's edits live there
        record = DatasetRecord(
            name=DATASET_NAME,
            location=os.path.abspath(dataset),
            sources=[os.path.abspath(s) for s in pair_set.sources.values()],
            pair_count=len(store.load_pair_set(dataset).pairs),
        )
        project.add_record(record)
    else:
        record = store.create_dataset(project, pair_set, name=DATASET_NAME, location=dataset)
    if project_path.is_file():  # the project is the user's now; only the pair list was missing
        return True
    project.set_section("dataset", {"dataset_id": record.id, "rule": pair_set.rule})
    project.set_section("train", {"form": train_form(paths)})
    project.set_section("preview", {"form": render_form()})
    project.set_section("compare", {"form": render_form(), "axes": grid_axes()})
    project.save(project_path)
    return True


#: what the demo renders: small and short, so a preview takes seconds on a CPU (the tiny model
#: renders noise-like clips at any size)
DEMO_RENDER = {
    "prompt": "a room full of small objects and textures",
    "width": 128,
    "height": 80,
    "frames": 17,
    "steps": 10,
    "fps": 16,
}


def render_form() -> dict[str, Any]:
    """The Preview and Compare sections' render settings for the demo."""
    return dict(DEMO_RENDER)


def grid_axes() -> dict[str, Any]:
    """The Compare section's axes for the demo: strengths −2…2 along the columns, two seeds down."""
    return {
        "0": {"kind": "strength", "texts": {"strength": "-2:2:1"}},
        "1": {"kind": "seed", "texts": {"seed": "1,2"}},
    }


def train_form(paths: Mapping[str, Path]) -> dict[str, Any]:
    """The Train section's state for the demo: the built-in trainer's quick test on the tiny model
    (its whole config: a named preset with an empty config would train the backend's defaults)."""
    from difflora_gui.train.presets import preset_values

    dataset = paths["dataset"]
    return {
        "backend": "builtin",
        "preset": "quick-test",
        "config": preset_values("quick-test"),
        "backend_settings": {"builtin": {"model": str(paths["model"]), "device": "cpu"}},
        "a_dir": str(dataset / "a"),
        "b_dir": str(dataset / "b"),
        "name": "demo-detail",
        "output_dir": str(paths["folder"] / "runs"),
        "dialog_dir": str(dataset),
    }


def _write_manifest(path: Path, seed: int, count: int) -> bool:
    from difflora_gui.fileio import atomic_write_json

    if path.is_file():
        return False
    atomic_write_json(
        path,
        {
            "format": DEMO_FORMAT,
            "version": DEMO_VERSION,
            "seed": seed,
            "pairs": count,
            "image_size": list(demo_dataset.IMAGE_SIZE),
            "shifted_pair": demo_dataset.pair_id(demo_dataset.SHIFTED_PAIR),
            "colour_cast_pair": demo_dataset.pair_id(demo_dataset.COLOUR_CAST_PAIR),
            "model": tiny_model.MODEL_FOLDER_NAME,
            "label": tiny_model.LABEL,
        },
        overwrite=False,
    )
    return True


def build_demo(params: Mapping[str, Any] | None, ctx=None) -> dict[str, Any]:
    """Build (or complete) the demo; ``params``: ``folder`` (default: per-user), ``seed``, ``pairs``."""
    from difflora_gui.jobs.context import NullContext

    ctx = ctx if ctx is not None else NullContext()
    params = dict(params or {})
    seed = int(params.get("seed", demo_dataset.DEFAULT_SEED))
    count = int(params.get("pairs", demo_dataset.PAIR_COUNT))
    if count < max(demo_dataset.SHIFTED_PAIR, demo_dataset.COLOUR_CAST_PAIR):
        raise UserError(f"the demo needs at least {demo_dataset.COLOUR_CAST_PAIR} pairs, got {count}")
    paths = demo_paths(params.get("folder") or None)
    root = paths["folder"]
    if root.exists() and not root.is_dir():
        raise UserError("the demo folder is a file", path=root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the demo folder: {exc.strerror or exc}", path=root) from None
    _check_manifest(paths["manifest"], seed, count)
    total = count + 2
    ctx.status(f"building the demo in {root}")
    pairs_written = _write_pairs(paths["dataset"], seed, count, ctx)
    ctx.progress(count, total, "building the tiny model")
    model_built = not tiny_model.is_complete(paths["model"])
    tiny_model.build_tiny_model(paths["model"], ctx=ctx)
    ctx.raise_if_cancelled()
    ctx.progress(count + 1, total, "saving the project")
    project_written = _write_project(paths, count)
    manifest_written = _write_manifest(paths["manifest"], seed, count)
    ctx.progress(total, total, "demo ready")
    built = [
        name
        for name, done in (
            (f"{pairs_written} pair(s)", pairs_written),
            ("the tiny model", model_built),
            ("the project", project_written),
            ("the manifest", manifest_written),
        )
        if done
    ]
    ctx.log(("built " + ", ".join(built)) if built else "the demo was already complete: nothing rewritten")
    ctx.artifact("file", paths["project"], what="demo project")
    return {
        "folder": str(root),
        "dataset": str(paths["dataset"]),
        "model": str(paths["model"]),
        "project": str(paths["project"]),
        "pairs": count,
        "built": built,
        "reused": not built,
        "label": tiny_model.LABEL,
    }
