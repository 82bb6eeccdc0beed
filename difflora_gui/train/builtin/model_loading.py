"""Loading a diffusers-format Wan folder for training: its layout checked first, one clear line per problem.

The folder is what ``WanPipeline.save_pretrained`` writes (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``):
``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``. Wan2.2 A14B
folders add ``transformer_2/`` and ``boundary_ratio``: in diffusers' convention ``transformer`` is
the high-noise expert (it denoises while t ≥ boundary) and ``transformer_2`` the low-noise one, so a
per-expert run loads the subfolder of its expert. The VAE and the text encoder may come from
folders of their own instead (Settings ▸ Training ▸ Wan VAE folder / Wan text encoder folder: a
download's ``vae/`` or ``text_encoder/`` kept elsewhere, shared by several models); the tokenizer
is then the one inside the text encoder folder when it holds one, else the model folder's
``tokenizer/``. Components load with the same ``from_pretrained`` calls a user's own script would make.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError

#: the transformer subfolder of each Wan2.2 expert (diffusers' WanPipeline convention)
EXPERT_SUBFOLDERS = {None: "transformer", "high": "transformer", "low": "transformer_2"}
#: what a component subfolder must hold (a config, and weights in one of these forms)
_WEIGHT_GLOBS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")
#: a tokenizer saved with save_pretrained always writes this one
TOKENIZER_MARKER = "tokenizer_config.json"
#: how a message names a component folder set in the Settings
_OVERRIDE_LABELS = {"vae": "Wan VAE folder", "text_encoder": "Wan text encoder folder"}


def component_dir(folder: str | Path, name: str, override: str | Path | None = None) -> Path:
    """Where component ``name`` (vae, text_encoder) is read from: ``override`` when set, else the
    model folder's subfolder."""
    if override and str(override).strip():
        return Path(str(override).strip()).expanduser()
    return Path(folder) / name


def tokenizer_dir(folder: str | Path, text_encoder_dir: str | Path | None = None) -> Path:
    """The text encoder folder when it holds a tokenizer, else the model folder's ``tokenizer/``."""
    if text_encoder_dir and str(text_encoder_dir).strip():
        own = Path(str(text_encoder_dir).strip()).expanduser()
        if (own / TOKENIZER_MARKER).is_file():
            return own
    return Path(folder) / "tokenizer"


def override_problem(name: str, override: str | Path) -> str | None:
    """One line when the folder set for component ``name`` cannot serve as it (None: it can)."""
    sub = Path(str(override).strip()).expanduser()
    label = _OVERRIDE_LABELS.get(name, name)
    if not sub.is_dir():
        return f"{sub}: the {label} does not exist (Settings ▸ Training ▸ {label})"
    if not (sub / "config.json").is_file():
        return f"{sub}: the {label} has no config.json (Settings ▸ Training ▸ {label})"
    if not any(any(sub.glob(pattern)) for pattern in _WEIGHT_GLOBS):
        return f"{sub}: the {label} has no weights (*.safetensors)"
    return None


def transformer_subfolder(expert: str | None) -> str:
    try:
        return EXPERT_SUBFOLDERS[expert]
    except KeyError:
        raise UserError(f"unknown expert {expert!r} (use high or low)") from None


def read_model_index(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: the Wan model folder does not exist (Settings ▸ Wan diffusers folder)")
    index = folder / "model_index.json"
    if not index.is_file():
        raise UserError(
            f"{folder}: no model_index.json; the built-in trainer needs a diffusers-format Wan folder "
            "(like Wan-AI/Wan2.1-T2V-1.3B-Diffusers), not single .safetensors files"
        )
    try:
        return json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{index}: cannot be read as JSON ({exc})") from None


def has_two_experts(index: dict[str, Any]) -> bool:
    """Whether model_index.json names a low-noise ``transformer_2`` (Wan2.1 folders write ``[null, null]``)."""
    entry = index.get("transformer_2")
    return isinstance(entry, list) and bool(entry) and entry[0] is not None


def _component_problem(folder: Path, name: str, *, weights: bool = True) -> str | None:
    sub = folder / name
    if not sub.is_dir():
        return f"{folder}: no {name}/ folder"
    if weights:
        if not (sub / "config.json").is_file():
            return f"{sub}: no config.json"
        if not any(any(sub.glob(pattern)) for pattern in _WEIGHT_GLOBS):
            return f"{sub}: no weights (*.safetensors)"
    return None


def layout_problems(
    folder: str | Path,
    expert: str | None,
    *,
    need_text: bool = True,
    vae_dir: str | Path | None = None,
    text_encoder_dir: str | Path | None = None,
) -> list[str]:
    """One sentence per thing the folder (and the VAE and text encoder folders set instead of its
    own) lacks for a run of ``expert`` (empty: it can train)."""
    folder = Path(folder)
    try:
        index = read_model_index(folder)
    except UserError as exc:
        return [str(exc)]
    problems = []
    subfolder = transformer_subfolder(expert)
    if expert is not None and not has_two_experts(index):
        problems.append(
            f"{folder}: a Wan2.2 A14B per-expert run needs transformer_2 (the low-noise expert) and "
            "boundary_ratio in model_index.json; this folder has one transformer (a Wan2.1 model?)"
        )
    overrides = {"vae": vae_dir, "text_encoder": text_encoder_dir}
    components = [subfolder, "vae"] + (["text_encoder", "tokenizer"] if need_text else [])
    for name in components:
        override = overrides.get(name)
        if override and str(override).strip():
            problem = override_problem(name, override)
        elif name == "tokenizer" and tokenizer_dir(folder, text_encoder_dir) != folder / "tokenizer":
            problem = None  # the text encoder folder brings its own
        else:
            problem = _component_problem(folder, name, weights=name != "tokenizer")
        if problem:
            problems.append(problem)
    return problems


def check_layout(
    folder: str | Path,
    expert: str | None,
    *,
    need_text: bool = True,
    vae_dir: str | Path | None = None,
    text_encoder_dir: str | Path | None = None,
) -> None:
    problems = layout_problems(
        folder, expert, need_text=need_text, vae_dir=vae_dir, text_encoder_dir=text_encoder_dir
    )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)


def transformer_config(folder: str | Path, expert: str | None) -> dict[str, Any]:
    """The transformer's config.json (sizes, in_channels) without loading weights."""
    path = Path(folder) / transformer_subfolder(expert) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None


def _loading(what: str, folder: Path, load):
    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{folder}: cannot load the {what}: {first}") from exc


def load_transformer(folder: str | Path, expert: str | None, *, dtype: str = "float32"):
    """``WanTransformer3DModel`` of the run's expert, frozen, in ``dtype`` (on the CPU)."""
    import torch
    from diffusers import WanTransformer3DModel

    folder = Path(folder)
    subfolder = transformer_subfolder(expert)
    model = _loading(
        f"{subfolder} ({'the ' + expert + '-noise expert' if expert else 'the Wan transformer'})",
        folder,
        lambda: WanTransformer3DModel.from_pretrained(
            folder, subfolder=subfolder, torch_dtype=getattr(torch, dtype)
        ),
    )
    model.requires_grad_(False)
    return model


def load_vae(folder: str | Path, vae_dir: str | Path | None = None):
    """``AutoencoderKLWan`` in float32 (encoding runs once, before training), from ``vae_dir``
    when set, else the folder's ``vae/``."""
    import torch
    from diffusers import AutoencoderKLWan

    source = component_dir(folder, "vae", vae_dir)
    vae = _loading(
        "VAE",
        source,
        lambda: AutoencoderKLWan.from_pretrained(source, torch_dtype=torch.float32, local_files_only=True),
    )
    return vae.eval().requires_grad_(False)


def load_tokenizer(folder: str | Path, tokens: str | Path):
    """The tokenizer in ``tokens``, of the class the model folder's model_index.json names (as
    ``WanPipeline.from_pretrained`` loads it): ``AutoTokenizer`` would follow the UMT5 config.json
    beside a tokenizer kept in the text encoder folder and pick a tokenizer class of its own."""
    import transformers

    entry = read_model_index(folder).get("tokenizer")
    name = entry[1] if isinstance(entry, list) and len(entry) == 2 and entry[0] == "transformers" else None
    cls = getattr(transformers, str(name), None) if name else None
    return (cls or transformers.AutoTokenizer).from_pretrained(str(tokens))


def load_text_encoder(
    folder: str | Path, *, dtype: str = "float32", text_encoder_dir: str | Path | None = None
):
    """(tokenizer, UMT5 encoder in ``dtype``) from ``text_encoder/`` (or ``text_encoder_dir``) and
    the tokenizer :func:`tokenizer_dir` names.

    The real UMT5-XXL has 5.7B parameters: load it in bfloat16 for a GPU (11 GB, not 23).
    """
    import torch
    from transformers import UMT5EncoderModel

    source = component_dir(folder, "text_encoder", text_encoder_dir)
    tokens = tokenizer_dir(folder, text_encoder_dir)
    tokenizer = _loading("tokenizer", tokens, lambda: load_tokenizer(folder, tokens))
    encoder = _loading(
        "text encoder (UMT5)",
        source,
        lambda: UMT5EncoderModel.from_pretrained(source, torch_dtype=getattr(torch, dtype)),
    )
    return tokenizer, encoder.eval().requires_grad_(False)
