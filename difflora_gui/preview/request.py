"""What one preview render is: a :class:`PreviewRequest` with its LoRA stack of :class:`LoraEntry`.

A request is plain data (JSON round trip) and has a stable :meth:`PreviewRequest.cache_key`: the
same model files, settings and LoRA files (by content hash) give the same key, so a render asked
for again is replayed from the cache. A LoRA entry's ``selector`` is the selector grammar
(``docs/selectors.md``): its layer groups are the layer-group filter and its ``@w`` block weights
the per-block weights (``"attn blocks=0-9@1,10-19@0.5"``; ``"all"`` = every module at weight 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from difflora_gui.errors import UserError

EXPERT_CHOICES = ("both", "high", "low")
SAMPLERS = ("unipc", "euler")
#: the range the strength slider shows; any finite number is allowed in the field and the CLI
STRENGTH_SLIDER_RANGE = (-4.0, 4.0)


@dataclass(frozen=True)
class LoraEntry:
    """One LoRA of the stack. ``strength`` applies to every expert unless ``strength_high`` /
    ``strength_low`` set one (Wan2.2); ``expert`` limits the file to one expert's transformer."""

    file: str
    strength: float = 1.0
    selector: str = "all"
    expert: str = "both"
    strength_high: float | None = None
    strength_low: float | None = None
    #: the file's content hash (sha256 hex); filled in by :func:`with_hashes` before a render
    sha256: str = ""

    def __post_init__(self):
        if self.expert not in EXPERT_CHOICES:
            raise UserError(
                f"{self.file}: expert must be one of {', '.join(EXPERT_CHOICES)}, got {self.expert!r}"
            )
        for name in ("strength", "strength_high", "strength_low"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
            ):
                raise UserError(f"{self.file}: {name} must be a finite number, got {value!r}")

    def strength_for(self, expert: str | None) -> float:
        """The strength on ``expert`` ("high", "low", or None for a one-transformer model)."""
        if expert is not None and self.expert not in ("both", expert):
            return 0.0
        own = {"high": self.strength_high, "low": self.strength_low}.get(expert or "")
        return float(self.strength if own is None else own)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PreviewRequest:
    """A render: prompt and sampling settings, size and length, and the LoRA stack.

    ``frames`` is of the form 4N+1 (Wan's VAE); ``width``/``height`` multiples of 16, the rule
    of every Wan model; a model may need more (TI2V-5B: 32), which is checked against the model
    before a render (:func:`~difflora_gui.preview.model_files.check_size`).
    ``model`` names the model (its folder or files) and is part of the cache key.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    width: int = 832
    height: int = 480
    frames: int = 33
    fps: int = 16
    steps: int = 30
    guidance: float = 5.0
    flow_shift: float = 3.0
    sampler: str = "unipc"
    loras: tuple[LoraEntry, ...] = ()
    model: str = ""

    def __post_init__(self):
        object.__setattr__(self, "loras", tuple(_entry(item) for item in self.loras))
        problems = []
        if self.frames < 1 or (self.frames - 1) % 4:
            problems.append(f"frames must be 4N+1 (1, 5, 9 ... 81), got {self.frames}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 16 or value % 16:
                problems.append(f"{name} must be a multiple of 16, got {value}")
        if self.steps < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        if self.fps < 1:
            problems.append(f"fps must be at least 1, got {self.fps}")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if problems:
            raise UserError("bad preview request: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["loras"] = [entry.to_json() for entry in self.loras]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PreviewRequest:
        if not isinstance(data, Mapping):
            raise UserError("a preview request must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown preview request field(s): {', '.join(unknown)}")
        values = dict(data)
        values["loras"] = tuple(_entry(item) for item in values.get("loras", ()))
        return cls(**values)

    def replace(self, **changes: Any) -> PreviewRequest:
        return dataclasses.replace(self, **changes)

    def cache_key(self, model_fingerprint: str = "") -> str:
        """A hex key of everything that decides the pixels: the settings, the model (its
        ``model_fingerprint``, e.g. the files' sizes and times or hashes) and each LoRA's content
        hash (not its path: a file renamed renders the same, a file replaced does not).
        Entries at strength 0 on every expert still count (a zero entry is a different request,
        but it renders the same as none; :func:`effective_loras` drops them first for the key)."""
        data = self.to_json()
        data["loras"] = [_key_entry(entry) for entry in effective_loras(self.loras)]
        data["model"] = model_fingerprint or self.model
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _entry(item: Any) -> LoraEntry:
    if isinstance(item, LoraEntry):
        return item
    if isinstance(item, Mapping):
        names = {f.name for f in dataclasses.fields(LoraEntry)}
        unknown = sorted(set(item) - names)
        if unknown:
            raise UserError(f"unknown LoRA entry field(s): {', '.join(unknown)}")
        return LoraEntry(**item)
    raise UserError(f"a LoRA entry must be an object, got {type(item).__name__}")


def _key_entry(entry: LoraEntry) -> dict[str, Any]:
    if not entry.sha256:
        raise ValueError(f"{entry.file}: hash the LoRA files (with_hashes) before asking for a cache key")
    data = entry.to_json()
    data.pop("file")
    return data


def effective_loras(entries) -> list[LoraEntry]:
    """The entries that change anything: strength not 0 on at least one expert."""
    return [e for e in entries if any(e.strength_for(x) != 0 for x in (None, "high", "low"))]


def with_hashes(request: PreviewRequest, hash_file) -> PreviewRequest:
    """The request with every entry's ``sha256`` filled in by ``hash_file(path) -> hex`` (cached
    by the caller: a LoRA file is hashed once per size and modification time)."""
    entries = tuple(dataclasses.replace(e, sha256=e.sha256 or hash_file(e.file)) for e in request.loras)
    return dataclasses.replace(request, loras=entries)


#: accelerator LoRAs (lightx2v-style distillations) render in few steps without guidance
ACCELERATOR_PRESET = {"steps": 4, "guidance": 1.0, "flow_shift": 5.0, "sampler": "euler"}
