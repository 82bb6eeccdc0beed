"""The preview backend contract: what a backend's ``run(job, ctx)`` gets and returns.

A backend is a :class:`~difflora_gui.specs.PreviewBackendSpec` registered through
``difflora_register_preview_backends``. Its ``run`` takes a :class:`PreviewJob` (the request, the
backend's own options, where to write) and returns a :class:`PreviewResult`; on the way it reports
progress per denoising step, checks ``ctx`` for cancel between steps, may send ``ctx.frame``
latent previews, and emits the written video and first frame as ``ctx.artifact("video" | "image",
path, request=...)``. ``model_facts(options)`` says what the model is (blocks, experts) without
loading it, so the block panel shows one control per block of the detected model;
``settings_defaults(settings)`` maps the app's Settings to the backend's options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.preview.request import PreviewRequest

PREVIEW_HOOK = "difflora_register_preview_backends"
#: artifact kinds a preview job emits
VIDEO, IMAGE = "video", "image"


@dataclass(frozen=True)
class ModelFacts:
    """What the block panel and the LoRA stack need to know about a model, read from its configs."""

    num_blocks: int
    #: Wan2.2 A14B: a high-noise ``transformer`` and a low-noise ``transformer_2``
    two_experts: bool = False
    #: "1.3B", "14B", "5B" or "unknown" (tiny test models)
    variant: str = "unknown"
    #: the timestep fraction where the low-noise expert takes over (two experts only)
    boundary_ratio: float | None = None
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PreviewJob:
    """One render as a job's params.

    ``options``: the backend's own settings (the diffusers backend: model folder or files, dtype,
    offload, VAE tiling, device). ``out``: also write the video there (never over an existing file
    unless ``overwrite``); ``frames_dir``: also write every frame there as a lossless PNG.
    ``cache_dir`` (empty: no cache) and ``cache_mb``: the render cache (least recently used evicted
    past the limit).
    """

    request: PreviewRequest
    options: Mapping[str, Any] = field(default_factory=dict)
    out: str = ""
    frames_dir: str = ""
    overwrite: bool = False
    cache_dir: str = ""
    cache_mb: int = 2048

    def __post_init__(self):
        if isinstance(self.request, Mapping):
            object.__setattr__(self, "request", PreviewRequest.from_json(self.request))
        if not isinstance(self.request, PreviewRequest):
            raise UserError("a preview job needs a PreviewRequest")
        object.__setattr__(self, "options", dict(self.options or {}))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["request"] = self.request.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PreviewJob:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown preview job field(s): {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class PreviewResult:
    """What a render wrote: the video (in the cache, or ``out``), its first frame as a PNG, the
    cache key, whether it was replayed from the cache, and its frame count and size."""

    video: str
    first_frame: str
    key: str
    cache_hit: bool
    frames: int
    width: int
    height: int
    request: PreviewRequest
    frames_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["request"] = self.request.to_json()
        return data


#: the backend a new view and the command line use: renders in this app, needs no server
DEFAULT_BACKEND = "diffusers"


def preview_backends(host) -> dict:
    """The registered preview backends by name, :data:`DEFAULT_BACKEND` first, the others by name
    (``host``: a :class:`~difflora_gui.plugin_host.PluginHost`): a chooser's first entry is the default."""
    from difflora_gui.specs import PreviewBackendSpec

    specs = {spec.name: spec for _plugin, spec in host.call_register(PREVIEW_HOOK, PreviewBackendSpec)}
    order = sorted(specs, key=lambda name: (name != DEFAULT_BACKEND, name))
    return {name: specs[name] for name in order}


def preview_backend(host, name: str):
    backends = preview_backends(host)
    if name not in backends:
        known = ", ".join(sorted(backends)) or "none"
        raise UserError(f"unknown preview backend {name!r}; registered: {known}")
    return backends[name]
