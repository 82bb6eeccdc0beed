"""Built-in dataset tool ``export_musubi``: the pair set as two Musubi Tuner dataset TOMLs, or plain folders.

The job is :func:`difflora_gui.dataset.export_job.run_export`. The Dataset section fills in where
the pairs come from (``pairs``: the open pair set, or ``dataset_folder``), the form the rest.
The same export on the command line: ``python main.py dataset export-musubi``.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.params import Param, when
from difflora_gui.specs import DatasetToolSpec

_MUSUBI = when(format="musubi")
_VIDEO = "video clips (Musubi)"

PARAMS = (
    Param(
        "out",
        "path",
        "",
        "the export folder (new or empty; a previous export with Overwrite)",
        title="Export to",
    ),
    Param(
        "format",
        "choice",
        "musubi",
        "musubi: folders, caches and dataset_A.toml/dataset_B.toml; folders: plain A/ and B/ folders",
        choices=("musubi", "folders"),
    ),
    Param(
        "resolution",
        "str",
        "192",
        "training resolution: one size (192) or WIDTHxHEIGHT (336x192); the bucket area",
        visible_when=_MUSUBI,
    ),
    Param(
        "repeats", "int", 1, "num_repeats: times each item is seen per epoch", minimum=1, visible_when=_MUSUBI
    ),
    Param("batch_size", "int", 1, "batch size", minimum=1, visible_when=_MUSUBI),
    Param(
        "enable_bucket",
        "bool",
        True,
        "aspect buckets: items keep their aspect ratio instead of being cropped square",
        visible_when=_MUSUBI,
    ),
    Param(
        "bucket_no_upscale",
        "bool",
        False,
        "buckets never larger than the item",
        advanced=True,
        visible_when=_MUSUBI,
    ),
    Param(
        "caption_extension",
        "str",
        ".txt",
        "caption file suffix; every item gets one (empty for an empty caption: Musubi skips images without)",
        advanced=True,
    ),
    Param(
        "target_frames",
        "list",
        [1, 25, 45],
        "clip lengths in frames, each of the form 4N+1",
        item_type="int",
        minimum=1,
        group=_VIDEO,
        visible_when=_MUSUBI,
    ),
    Param(
        "frame_extraction",
        "choice",
        "head",
        "where clips are cut: head (start), chunk (back to back), slide (every frame_stride), "
        "uniform (frame_sample windows), full (up to max_frames)",
        choices=("head", "chunk", "slide", "uniform", "full"),
        group=_VIDEO,
        visible_when=_MUSUBI,
    ),
    Param(
        "frame_stride",
        "int",
        1,
        "slide: frames between windows",
        minimum=1,
        group=_VIDEO,
        visible_when=when(format="musubi", frame_extraction="slide"),
    ),
    Param(
        "frame_sample",
        "int",
        2,
        "uniform: windows per video",
        minimum=2,
        group=_VIDEO,
        visible_when=when(format="musubi", frame_extraction="uniform"),
    ),
    Param(
        "max_frames",
        "int",
        129,
        "full: at most this many frames",
        minimum=1,
        group=_VIDEO,
        visible_when=when(format="musubi", frame_extraction="full"),
    ),
    Param(
        "source_fps",
        "float",
        None,
        "the clips' frame rate (Musubi drops frames to the model's, 16 fps for Wan); empty: use every frame",
        optional=True,
        minimum=0.001,
        group=_VIDEO,
        visible_when=_MUSUBI,
    ),
    Param("link", "bool", False, "hard-link the files where the drive allows it (else copy)", advanced=True),
    Param("overwrite", "bool", False, "replace a previous export in the folder"),
    Param(
        "dataset_folder", "path", "", "the dataset's folder (filled in by the Dataset section)", form=False
    ),
)


@hookimpl
def difflora_register_dataset_tools():
    return [
        DatasetToolSpec(
            name="export_musubi",
            title="Export for Musubi Tuner",
            description=(
                "Copy the included pairs into A/ and B/ folders with matching names and a caption file each, "
                "and write dataset_A.toml and dataset_B.toml with identical settings (or plain folder pairs)."
            ),
            params=PARAMS,
            run="difflora_gui.dataset.export_job:run_export",
            lane="light",
        )
    ]
