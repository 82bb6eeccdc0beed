"""Built-in dataset tool ``frame_extraction``: candidate frames for set A from films.

Runs :func:`difflora_gui.dataset.frames.run` on the light lane: one frame per shot (scene cuts
found by PySceneDetect in one decoding pass) or one every N seconds; dark, blank and
near-duplicate frames are skipped and listed; progress with ETA, cancel keeps the frames already
written. Each written frame is reported as an ``image`` artifact (meta ``source``: the video and
timecode). The parameters are ``videos`` and ``out_dir`` plus
:data:`difflora_gui.dataset.frame_options.FRAME_OPTIONS`. Same command: ``python main.py dataset
extract-frames VIDEO... --out DIR``.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.dataset.frame_options import FRAME_OPTIONS
from difflora_gui.params import Param
from difflora_gui.specs import DatasetToolSpec

PARAMS = (
    Param("videos", "paths", [], "the films to take frames from (only read)", title="Videos"),
    Param(
        "out_dir",
        "path",
        None,
        "the folder the frames are written to (set A; made when missing)",
        title="Output folder",
        optional=True,
    ),
    *FRAME_OPTIONS.params,
)


@hookimpl
def difflora_register_dataset_tools():
    return [
        DatasetToolSpec(
            name="frame_extraction",
            title="Extract frames from films",
            description=(
                "Candidate frames for set A: one per shot (scene cuts) or one every N seconds, "
                "skipping dark, blank and near-duplicate frames."
            ),
            params=PARAMS,
            run="difflora_gui.dataset.frames:run",
            lane="light",
        )
    ]
