"""The project: a small JSON index (``NAME.difflora``) and its workspace folder (Qt-free).

* :mod:`~difflora_gui.project.model` — :class:`Project`: sections, records, change notification, the file.
* :mod:`~difflora_gui.project.records` — typed records with ids and lineage.
* :mod:`~difflora_gui.project.workspace` — ``NAME.difflora.d/``: per-record folders and event logs.
* :mod:`~difflora_gui.project.paths` — paths stored relative to the project file; missing files.
* :mod:`~difflora_gui.project.versions` — per-section schema versions and their migrations.
"""

from difflora_gui.project.model import (
    DEFAULT_NAME,
    DIRTY_KEY,
    NAME_KEY,
    OUTPUT_DIR_KEY,
    PROJECT_FORMAT,
    PROJECT_SUFFIX,
    RECORDS_KEY,
    Project,
    with_suffix,
)
from difflora_gui.project.paths import MissingFile, register_section_paths
from difflora_gui.project.records import (
    DatasetRecord,
    LoraUse,
    MergeRecord,
    Record,
    RenderRecord,
    RunRecord,
    new_record_id,
)
from difflora_gui.project.versions import (
    MIGRATIONS,
    PROJECT_VERSION,
    SECTION_VERSIONS,
    register_migration,
)
from difflora_gui.project.workspace import KINDS, Workspace

__all__ = [
    "DEFAULT_NAME",
    "DIRTY_KEY",
    "KINDS",
    "MIGRATIONS",
    "NAME_KEY",
    "OUTPUT_DIR_KEY",
    "PROJECT_FORMAT",
    "PROJECT_SUFFIX",
    "PROJECT_VERSION",
    "RECORDS_KEY",
    "SECTION_VERSIONS",
    "DatasetRecord",
    "LoraUse",
    "MergeRecord",
    "MissingFile",
    "Project",
    "Record",
    "RenderRecord",
    "RunRecord",
    "Workspace",
    "new_record_id",
    "register_migration",
    "register_section_paths",
    "with_suffix",
]
