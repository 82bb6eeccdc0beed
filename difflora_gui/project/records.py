"""Typed records of what happened in a project, with ids and lineage (Qt-free).

A record is small and lives in the project index; its heavy data (pair lists, event logs,
checkpoints, analysis) lives in the workspace folder named by its kind and id. Lineage is by id: a
run knows its dataset, a merge the two runs (or plain files) it used, a render its LoRA stack.

Paths in a record are absolute in memory; the project stores them relative to its file when they
are inside its folder (:meth:`Record.map_paths` is how it converts them).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

PathMap = Callable[[str], str]


def new_record_id() -> str:
    """A short random id (12 hex digits: collisions are not a concern within one project)."""
    return uuid.uuid4().hex[:12]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RecordError(ValueError):
    """A stored record that cannot be read (the project turns it into a BadFileError)."""


@dataclass(kw_only=True)
class Record:
    """What every record has: ``id``, ``created`` (UTC, ISO 8601), a ``name`` and free ``meta``."""

    kind: ClassVar[str] = ""
    #: workspace subfolder of this kind's heavy data
    folder: ClassVar[str] = ""

    id: str = field(default_factory=new_record_id)
    created: str = field(default_factory=utc_now)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    #: keys of a stored record this version does not know, kept so a round trip loses nothing
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def parent_ids(self) -> list[str]:
        """Ids of the records this one was made from (its direct ancestors)."""
        return []

    def paths(self) -> list[tuple[str, str]]:
        """``(field, path)`` for each file or folder this record refers to (all must exist)."""
        return []

    def map_paths(self, function: PathMap) -> Record:
        """A copy with ``function`` applied to every path."""
        return dataclasses.replace(self)

    # --- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = dict(self.extra)
        data["kind"] = self.kind
        for item in dataclasses.fields(self):
            if item.name != "extra":
                data[item.name] = _plain(getattr(self, item.name))
        return data

    @staticmethod
    def from_json(data: Any) -> Record:
        """The record a stored dict describes; a bad one → :class:`RecordError`."""
        if not isinstance(data, dict):
            raise RecordError("a record must be an object")
        kind = data.get("kind")
        cls = RECORD_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise RecordError(f"unknown record kind {kind!r}")
        return cls._from_fields({k: v for k, v in data.items() if k != "kind"})

    @classmethod
    def _from_fields(cls, data: dict[str, Any]) -> Record:
        known = {item.name: item for item in dataclasses.fields(cls) if item.name != "extra"}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in known:
                values[name] = cls._read_field(name, value)
        if not isinstance(values.get("id", ""), str) or not values.get("id"):
            raise RecordError(f"{cls.kind} record without an id")
        for name in ("created", "name"):
            if not isinstance(values.get(name, ""), str):
                raise RecordError(f"{cls.kind} record {values['id']}: {name!r} must be a string")
        if not isinstance(values.get("meta", {}), dict):
            raise RecordError(f"{cls.kind} record {values['id']}: 'meta' must be an object")
        record = cls(**values)
        record.extra = {k: v for k, v in data.items() if k not in known}
        return record

    @classmethod
    def _read_field(cls, name: str, value: Any) -> Any:
        return value


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _str_or_none(kind: str, name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{kind} record: {name!r} must be a string or null")
    return value or None


def _str_list(kind: str, name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RecordError(f"{kind} record: {name!r} must be a list of strings")
    return list(value)


@dataclass(kw_only=True)
class DatasetRecord(Record):
    """A paired dataset: its own folder (in the workspace or outside) and the folders it came from."""

    kind: ClassVar[str] = "dataset"
    folder: ClassVar[str] = "datasets"

    location: str = ""  # the folder holding the pair list, captions and scores
    sources: list[str] = field(default_factory=list)  # external source folders it was built from
    pair_count: int = 0

    def paths(self) -> list[tuple[str, str]]:
        found = [("location", self.location)] if self.location else []
        return found + [("sources", source) for source in self.sources]

    def map_paths(self, function: PathMap) -> DatasetRecord:
        return dataclasses.replace(
            self,
            location=function(self.location) if self.location else "",
            sources=[function(s) for s in self.sources],
        )

    @classmethod
    def _read_field(cls, name: str, value: Any) -> Any:
        if name == "sources":
            return _str_list(cls.kind, name, value)
        if name == "pair_count" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise RecordError(f"dataset record: 'pair_count' must be a whole number, got {value!r}")
        return value


@dataclass(kw_only=True)
class RunRecord(Record):
    """A training run: the dataset it trained on, its config, and the checkpoints it wrote."""

    kind: ClassVar[str] = "run"
    folder: ClassVar[str] = "runs"

    dataset_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    status: str = ""  # "", "running", "finished", "stopped", "failed"
    checkpoints: list[str] = field(default_factory=list)
    #: the backend's own settings (model files, Musubi checkout ...) the run used
    backend_config: dict[str, Any] = field(default_factory=dict)
    #: "a", "b", "slider" (one run trained as the difference) or "" (a single LoRA)
    side: str = ""
    #: Wan2.2 A14B: "high" or "low" for a per-expert run; None for one model or Musubi's joint mode
    expert: str | None = None
    #: the runs trained together (A and B, and their experts) share this id
    pair_id: str | None = None
    #: the folder it trained on, the folder it writes to, its final LoRA and its newest resumable state
    dataset_dir: str = ""
    output_dir: str = ""
    output: str = ""
    state: str = ""
    steps_done: int = 0
    total_steps: int = 0
    #: the run's event log (JSON lines: loss, progress, checkpoints), for reopening its plots
    event_log: str = ""

    def parent_ids(self) -> list[str]:
        return [self.dataset_id] if self.dataset_id else []

    def paths(self) -> list[tuple[str, str]]:
        listed = [("checkpoints", path) for path in self.checkpoints]
        return listed + [(name, getattr(self, name)) for name in ("output",) if getattr(self, name)]

    def map_paths(self, function: PathMap) -> RunRecord:
        def mapped(path: str) -> str:
            return function(path) if path else path

        return dataclasses.replace(
            self,
            checkpoints=[function(path) for path in self.checkpoints],
            dataset_dir=mapped(self.dataset_dir),
            output_dir=mapped(self.output_dir),
            output=mapped(self.output),
            state=mapped(self.state),
            event_log=mapped(self.event_log),
        )

    @classmethod
    def _read_field(cls, name: str, value: Any) -> Any:
        if name in ("dataset_id", "expert", "pair_id"):
            return _str_or_none(cls.kind, name, value)
        if name == "checkpoints":
            return _str_list(cls.kind, name, value)
        if name in ("side", "dataset_dir", "output_dir", "output", "state", "event_log") and not isinstance(
            value, str
        ):
            raise RecordError(f"run record: {name!r} must be a string")
        if name in ("steps_done", "total_steps") and (not isinstance(value, int) or isinstance(value, bool)):
            raise RecordError(f"run record: {name!r} must be a whole number")
        if name == "backend_config" and not isinstance(value, dict):
            raise RecordError("run record: 'backend_config' must be an object")
        if name == "config" and not isinstance(value, dict):
            raise RecordError("run record: 'config' must be an object")
        return value


#: the keys of a merge recipe (``MergeParams.to_json()``) that hold paths
RECIPE_PATH_KEYS = ("lora_a", "lora_b", "output")
#: the Wan2.2 per-expert input paths of a recipe
RECIPE_EXPERT_PATH_KEYS = ("lora_a_high", "lora_a_low", "lora_b_high", "lora_b_low")


@dataclass(kw_only=True)
class MergeRecord(Record):
    """A merge: LoRA A and B (files, and the records that wrote them when known), its recipe, its output.

    ``run_a``/``run_b`` are the ids of the run (or earlier merge) that wrote each input file.
    ``outputs`` lists every file written (one, or one per Wan2.2 expert; ``output`` is the first),
    ``sha256`` their hashes by path, and ``replaced`` the files that existed and were replaced after
    the user agreed. The project keeps every merge (its merge history): a record is never replaced.
    """

    kind: ClassVar[str] = "merge"
    folder: ClassVar[str] = "merges"

    lora_a: str = ""
    lora_b: str = ""
    run_a: str | None = None
    run_b: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    outputs: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.output and not self.outputs:
            self.outputs = [self.output]
        if self.outputs and not self.output:
            self.output = self.outputs[0]

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any], output: str | None = None, **values: Any) -> MergeRecord:
        """The record of a merge that ran ``recipe`` (``MergeParams.to_json()``) and wrote ``output``."""
        return cls(
            lora_a=str(recipe.get("lora_a") or ""),
            lora_b=str(recipe.get("lora_b") or ""),
            recipe=dict(recipe),
            output=str(output or recipe.get("output") or ""),
            **({"created": str(recipe["created"])} if recipe.get("created") else {}),
            **values,
        )

    @property
    def written(self) -> list[str]:
        """Every file this merge wrote."""
        return list(self.outputs) or ([self.output] if self.output else [])

    def parent_ids(self) -> list[str]:
        return [run for run in (self.run_a, self.run_b) if run]

    def paths(self) -> list[tuple[str, str]]:
        found = [(name, getattr(self, name)) for name in ("lora_a", "lora_b") if getattr(self, name)]
        return found + [("outputs", path) for path in self.written]

    def map_paths(self, function: PathMap) -> MergeRecord:
        def mapped(path: str) -> str:
            return function(path) if path else ""

        recipe = dict(self.recipe)
        for key in (
            *RECIPE_PATH_KEYS,
            *RECIPE_EXPERT_PATH_KEYS,
        ):  # a stored recipe re-runs from a moved folder
            if isinstance(recipe.get(key), str):
                recipe[key] = mapped(recipe[key])
        return dataclasses.replace(
            self,
            lora_a=mapped(self.lora_a),
            lora_b=mapped(self.lora_b),
            output=mapped(self.output),
            outputs=[mapped(path) for path in self.outputs],
            sha256={mapped(path): digest for path, digest in self.sha256.items()},
            replaced=[mapped(path) for path in self.replaced],
            recipe=recipe,
        )

    @classmethod
    def _read_field(cls, name: str, value: Any) -> Any:
        if name in ("run_a", "run_b"):
            return _str_or_none(cls.kind, name, value)
        if name in ("lora_a", "lora_b", "output") and not isinstance(value, str):
            raise RecordError(f"merge record: {name!r} must be a string")
        if name == "recipe" and not isinstance(value, dict):
            raise RecordError("merge record: 'recipe' must be an object")
        if name in ("outputs", "replaced"):
            return _str_list(cls.kind, name, value)
        if name == "sha256" and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            raise RecordError("merge record: 'sha256' must map each written file to its hash")
        return value


@dataclass(frozen=True)
class LoraUse:
    """One LoRA of a render's stack: its file, strength, and the record that made it (if any)."""

    path: str
    strength: float = 1.0
    source_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "strength": self.strength, "source_id": self.source_id}

    @staticmethod
    def from_json(data: Any) -> LoraUse:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise RecordError("render record: each LoRA needs a 'path' string")
        strength = data.get("strength", 1.0)
        if not isinstance(strength, (int, float)) or isinstance(strength, bool):
            raise RecordError(f"render record: LoRA strength must be a number, got {strength!r}")
        return LoraUse(
            data["path"], float(strength), _str_or_none("render", "source_id", data.get("source_id"))
        )


@dataclass(kw_only=True)
class RenderRecord(Record):
    """A rendered preview: its LoRA stack (lineage through each LoRA's source), settings, output."""

    kind: ClassVar[str] = "render"
    folder: ClassVar[str] = "renders"

    loras: list[LoraUse] = field(default_factory=list)
    prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    output: str = ""

    def parent_ids(self) -> list[str]:
        return [lora.source_id for lora in self.loras if lora.source_id]

    def paths(self) -> list[tuple[str, str]]:
        found = [("loras", lora.path) for lora in self.loras if lora.path]
        return found + ([("output", self.output)] if self.output else [])

    def map_paths(self, function: PathMap) -> RenderRecord:
        loras = [dataclasses.replace(lora, path=function(lora.path)) for lora in self.loras]
        return dataclasses.replace(self, loras=loras, output=function(self.output) if self.output else "")

    @classmethod
    def _read_field(cls, name: str, value: Any) -> Any:
        if name == "loras":
            if not isinstance(value, list):
                raise RecordError("render record: 'loras' must be a list")
            return [LoraUse.from_json(item) for item in value]
        if name == "settings" and not isinstance(value, dict):
            raise RecordError("render record: 'settings' must be an object")
        return value


#: ``{kind: record class}``
RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls for cls in (DatasetRecord, RunRecord, MergeRecord, RenderRecord)
}
