"""Counterpart generation settings (Qt-free, import-light): the Param schema, the model folder check
and the working size.

:data:`KONTEXT_PARAMS` is the one declaration of the tool's settings (the plugin's form, the job's
checked values, the CLI's defaults); :func:`model_folder_problem` says in one line what a
FluxKontextPipeline folder lacks; :func:`working_size` is the size rule the module docstring of
:mod:`difflora_gui.dataset.kontext` explains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.fileio import read_model_index
from difflora_gui.params import Param, schema

#: the instruction the model card gave Kontext to make the sparse counterparts
DEFAULT_PROMPT = (
    "Reduce detalization of this scene by removing all small objects and clutter, such as food, "
    "kitchenware, books, posters, and decorations. Also simplify clothing elements and character "
    "accessories by removing intricate patterns, small items, or excessive detailing. Keep the "
    "characters and overall art style the same, but make the entire scene look very simple, less "
    "detailed, and minimalistic."
)
DEFAULT_STEPS = 28
#: FluxKontextPipeline's recommended guidance for Kontext [dev] (its distilled guidance embedding)
DEFAULT_GUIDANCE = 2.5
#: Kontext's working area (the pipeline's ``max_area``); larger sources are scaled down to it
DEFAULT_MAX_AREA = 1024 * 1024
MANIFEST_NAME = "kontext-manifest.json"
#: the components a FluxKontextPipeline folder needs: folder -> what it is, for the error line
REQUIRED_COMPONENTS = {
    "transformer": "the Flux transformer",
    "vae": "the VAE",
    "text_encoder": "the CLIP text encoder",
    "text_encoder_2": "the T5 text encoder",
    "tokenizer": "the CLIP tokenizer",
    "tokenizer_2": "the T5 tokenizer",
    "scheduler": "the scheduler",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
_MODEL_COMPONENTS = ("transformer", "vae", "text_encoder", "text_encoder_2")

KONTEXT_PARAMS: tuple[Param, ...] = (
    Param("source_dir", "path", "", "the folder of set A (images); it is only read", title="Set A folder"),
    Param(
        "out_dir",
        "path",
        "",
        "where the counterparts (set B) go, one <same name>.png per source; created if missing",
        title="Output folder",
    ),
    Param(
        "model",
        "path",
        "",
        "a diffusers-format FLUX.1 Kontext [dev] folder (model_index.json, transformer, vae, text "
        "encoders, tokenizers); empty: the folder set in Settings",
        title="Kontext model folder",
    ),
    Param(
        "prompt",
        "str",
        DEFAULT_PROMPT,
        "the instruction given to Kontext for every image (default: the model card's simplification prompt)",
        title="Instruction",
    ),
    Param(
        "seed", "int", 0, "random seed; item i of the sorted set uses seed + i", minimum=0, maximum=2**32 - 1
    ),
    Param("steps", "int", DEFAULT_STEPS, "denoising steps per image", minimum=1, maximum=200),
    Param(
        "guidance",
        "float",
        DEFAULT_GUIDANCE,
        "Kontext's guidance (2.5 is its default; higher follows the instruction more literally)",
        minimum=0.0,
        maximum=20.0,
        step=0.1,
    ),
    Param("device", "str", "auto", "auto (the first CUDA GPU, else the CPU), cpu or cuda:N", advanced=True),
    Param(
        "dtype",
        "choice",
        "auto",
        "weights' precision; auto = bfloat16 on CUDA, float32 on the CPU",
        choices=("auto", "bfloat16", "float16", "float32"),
        advanced=True,
    ),
    Param(
        "offload",
        "choice",
        "auto",
        "move idle parts of the model to the CPU: auto = whole models when the GPU has under 40 GiB "
        "(Kontext [dev] in bfloat16 needs ~34 GB), model, sequential (slowest, least memory) or none",
        choices=("auto", "none", "model", "sequential"),
        advanced=True,
    ),
    Param(
        "max_area",
        "int",
        DEFAULT_MAX_AREA,
        "the working area in pixels: larger sources are scaled down to it (aspect kept) and the "
        "result scaled back to the source size",
        minimum=256,
        maximum=4096 * 4096,
        advanced=True,
    ),
    Param(
        "max_sequence_length",
        "int",
        512,
        "T5 prompt tokens (512 = Kontext's)",
        minimum=16,
        maximum=512,
        advanced=True,
    ),
    Param(
        "check_resolution",
        "int",
        256,
        "each finished pair is scored by the pair checks at this short side (0 = no scoring)",
        minimum=0,
        maximum=4096,
        advanced=True,
    ),
)
KONTEXT_SCHEMA = schema(KONTEXT_PARAMS)


@dataclass(frozen=True)
class KontextParams:
    """The checked settings of one batch (see :data:`KONTEXT_PARAMS` for each field's meaning)."""

    model: str = ""
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    device: str = "auto"
    dtype: str = "auto"
    offload: str = "auto"
    max_area: int = DEFAULT_MAX_AREA
    max_sequence_length: int = 512
    check_resolution: int = 256

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> KontextParams:
        """Checked (``UserError`` naming the field); source_dir/out_dir and unknown keys are ignored."""
        names = set(cls.__dataclass_fields__)
        given = {k: v for k, v in dict(values or {}).items() if k in names and v is not None}
        resolved = KONTEXT_SCHEMA.resolve(given, owner="kontext counterparts")
        return cls(**{k: resolved[k] for k in names})

    def settings_json(self) -> dict[str, Any]:
        """What makes two runs' outputs comparable (recorded in the manifest)."""
        data = asdict(self)
        data.pop("check_resolution")
        return data


# --- the model folder ---------------------------------------------------------------------------


def model_folder_problem(folder: str | Path) -> str:
    """Why ``folder`` is not a FluxKontextPipeline folder ('' if it looks complete), one line."""
    if not str(folder):
        return "no Kontext model folder given (--model, or Settings ▸ Kontext model folder)"
    path = Path(folder)
    if path.is_file():
        return (
            f"{path} is a file: Kontext needs a diffusers-format folder (the layout of "
            "black-forest-labs/FLUX.1-Kontext-dev), not a single checkpoint"
        )
    if not path.is_dir():
        return f"Kontext model folder not found: {path}"
    data, problem = read_model_index(path)
    if data is None:
        return problem
    class_name = str(data.get("_class_name", ""))
    if class_name != "FluxKontextPipeline":
        return f"{path} holds a {class_name or 'unnamed'} pipeline, not a FluxKontextPipeline (FLUX.1 Kontext [dev])"
    missing = []
    for name, what in REQUIRED_COMPONENTS.items():
        sub = path / name
        if not sub.is_dir() or not any(sub.iterdir()):
            missing.append(f"{name}/ ({what})")
        elif name in _MODEL_COMPONENTS and not any(p.name.endswith(_WEIGHT_SUFFIXES) for p in sub.iterdir()):
            missing.append(f"{name}/ weights ({what}; an unfinished download?)")
    if missing:
        return f"{path}: incomplete FluxKontextPipeline folder, missing {', '.join(missing)}"
    return ""


def check_model_folder(folder: str | Path) -> Path:
    """``folder`` as a Path, or UserError with :func:`model_folder_problem`'s line."""
    problem = model_folder_problem(folder)
    if problem:
        raise UserError(problem)
    return Path(folder)


def resolve_model_folder(model: str) -> str:
    """``model``, or the Settings' ``kontext_model_dir`` when empty."""
    if model:
        return str(model)
    from difflora_gui.settings import AppSettings

    return getattr(AppSettings.load(), "kontext_model_dir", "") or ""


# --- sizes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkingSize:
    """How a source of ``width`` × ``height`` is generated (see the module docstring)."""

    width: int
    height: int
    #: the source scaled to the working area (equal to the source when it fits)
    scaled: tuple[int, int]
    #: ``scaled`` padded right/bottom up to the multiple: the size Kontext generates
    padded: tuple[int, int]


def working_size(
    width: int, height: int, *, multiple: int = 16, max_area: int = DEFAULT_MAX_AREA
) -> WorkingSize:
    scale = min(1.0, math.sqrt(max_area / float(width * height)))
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    pw, ph = (max(multiple, math.ceil(v / multiple) * multiple) for v in (sw, sh))
    return WorkingSize(width, height, (sw, sh), (pw, ph))
