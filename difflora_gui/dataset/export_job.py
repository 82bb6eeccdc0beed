"""The export as a job, ``run_export(params, ctx)``: used by the CLI and by the Dataset section's tool.

``params`` (a dict) names where the pairs come from — one of:

* ``pairs``: a :class:`~difflora_gui.dataset.model.PairSet` (what the GUI has open), or its JSON;
* ``pairs_file``: a ``pairs.json`` (relative item paths are relative to its folder);
* ``dataset_folder``: a dataset's workspace folder (read with the store's ``load_pair_set``);
* ``project`` (+ ``dataset``, a record id or name, when the project has several datasets);
* ``a_dir`` and ``b_dir`` (+ ``rule``): two folders, paired here;

then ``out`` (the export folder), ``format`` (``musubi``, the default, or ``folders``),
``overwrite``, ``link`` (hard links where possible) and the Musubi options of
:class:`~difflora_gui.dataset.musubi_export.MusubiOptions` (``repeats`` for ``num_repeats``).
It returns the result's summary dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from difflora_gui.dataset.model import PairSet
from difflora_gui.errors import UserError

SOURCE_KEYS = ("pairs", "pairs_file", "dataset_folder", "project", "a_dir")
MUSUBI_OPTION_KEYS = (
    "resolution",
    "repeats",
    "num_repeats",
    "batch_size",
    "enable_bucket",
    "bucket_no_upscale",
    "caption_extension",
    "target_frames",
    "frame_extraction",
    "frame_stride",
    "frame_sample",
    "max_frames",
    "source_fps",
)


def load_pairs(path: str | Path) -> PairSet:
    """A pair list: a ``pairs.json`` or a dataset folder holding one (paths come back absolute)."""
    from difflora_gui.dataset.store import load_pair_set

    return load_pair_set(Path(path))


def load_project_dataset(project_file: str | Path, dataset: str | None = None) -> PairSet:
    """The pair set of a project's dataset: the only one, or the one named by id or name."""
    from difflora_gui.dataset.store import dataset_folder
    from difflora_gui.project.model import Project

    if not Path(project_file).is_file():
        raise UserError("no such project file", path=project_file)
    project = Project.load(project_file)
    records = project.records("dataset")
    if dataset:
        records = [r for r in records if dataset in (r.id, r.name)]
        if not records:
            raise UserError(f"the project has no dataset {dataset!r}", path=project_file)
    if not records:
        raise UserError("the project has no dataset", path=project_file)
    if len(records) > 1:
        names = ", ".join(f"{r.id} ({r.name})" if r.name else r.id for r in records)
        raise UserError(
            f"the project has several datasets; choose one with --dataset: {names}", path=project_file
        )
    return load_pairs(project.resolve_path(dataset_folder(project, records[0].id)))


def pair_set_from_params(params: dict[str, Any], ctx=None) -> tuple[PairSet, Path | None]:
    """The pairs to export and the folder relative item paths are relative to (None: as they are)."""
    given = [key for key in SOURCE_KEYS if params.get(key) not in (None, "")]
    if len(given) != 1:
        raise UserError(
            "give the pairs one way: a pair list, a dataset folder, a project, or A and B folders"
        )
    key = given[0]
    if key == "pairs":
        value = params["pairs"]
        pair_set = value if isinstance(value, PairSet) else PairSet.from_json(value)
        return pair_set, Path(params["base_dir"]) if params.get("base_dir") else None
    if key in ("pairs_file", "dataset_folder"):
        return load_pairs(params[key]), None
    if key == "project":
        return load_project_dataset(params["project"], params.get("dataset") or None), None
    if not params.get("b_dir"):
        raise UserError("give both an A folder and a B folder")
    for side in ("a_dir", "b_dir"):
        if not Path(params[side]).is_dir():
            raise UserError("not a folder", path=params[side])
    from difflora_gui.dataset.pairing import pair_folders

    if ctx is not None:
        ctx.status("pairing the folders")
    return pair_folders(params["a_dir"], params["b_dir"], rule=params.get("rule") or "stem", ctx=ctx), None


def run_export(params: dict[str, Any], ctx) -> dict[str, Any]:
    """Export the pairs the params name; returns the summary (``ExportResult.to_json()`` and the format)."""
    fmt = params.get("format") or "musubi"
    if fmt not in ("musubi", "folders"):
        raise UserError(f"export format must be musubi or folders, got {fmt!r}")
    if not params.get("out"):
        raise UserError("give the export folder (--out)")
    # everything that can be checked without the pairs first: a bad option fails at once
    from difflora_gui.dataset.folder_export import check_caption_extension, check_destination
    from difflora_gui.dataset.musubi_export import MusubiOptions, export_musubi

    overwrite = bool(params.get("overwrite", False))
    check_destination(params["out"], (), overwrite=overwrite)
    if fmt == "folders":
        caption_extension = check_caption_extension(params.get("caption_extension") or ".txt")
    else:
        options = MusubiOptions.from_values(
            **{k: params[k] for k in MUSUBI_OPTION_KEYS if params.get(k) is not None}
        )
    pair_set, base_dir = pair_set_from_params(params, ctx)
    common = {
        "link": bool(params.get("link", False)),
        "overwrite": overwrite,
        "base_dir": base_dir,
        "ctx": ctx,
    }
    if ctx is not None:
        ctx.status(f"exporting {len(pair_set.included())} pairs")
    if fmt == "folders":
        from difflora_gui.dataset.folder_export import export_folders

        result = export_folders(pair_set, params["out"], caption_extension=caption_extension, **common)
    else:
        result = export_musubi(pair_set, params["out"], options, **common)
    return {"format": fmt, **result.to_json()}
