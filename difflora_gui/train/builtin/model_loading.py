"""Loading a diffusers-format Wan folder for training: its layout checked first, one clear line per problem.

The folder is what ``WanPipeline.save_pretrained`` writes (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``):
``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``, ``tokenizer/``. Wan2.2 A14B
folders add ``transformer_2/`` and ``boundary_ratio``: in diffusers' convention ``transformer`` is
the high-noise expert (it denoises while t ≥ boundary) and ``transformer_2`` the low-noise one, so a
per-expert run loads the subfolder of its expert. Components load with the same ``from_pretrained``
calls a user's own script would make.
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


def layout_problems(folder: str | Path, expert: str | None, *, need_text: bool = True) -> list[str]:
    """One sentence per thing the folder lacks for a run of ``expert`` (empty: it can train)."""
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
    components = [subfolder, "vae"] + (["text_encoder", "tokenizer"] if need_text else [])
    for name in components:
        problem = _component_problem(folder, name, weights=name != "tokenizer")
        if problem:
            problems.append(problem)
    return problems


def check_layout(folder: str | Path, expert: str | None, *, need_text: bool = True) -> None:
    problems = layout_problems(folder, expert, need_text=need_text)
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


def load_vae(folder: str | Path):
    """``AutoencoderKLWan`` in float32 (encoding runs once, before training)."""
    import torch
    from diffusers import AutoencoderKLWan

    folder = Path(folder)
    vae = _loading(
        "VAE",
        folder,
        lambda: AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32),
    )
    return vae.eval().requires_grad_(False)


def load_text_encoder(folder: str | Path, *, dtype: str = "float32"):
    """(tokenizer, UMT5 encoder in ``dtype``) from ``tokenizer/`` and ``text_encoder/``.

    The real UMT5-XXL has 5.7B parameters: load it in bfloat16 for a GPU (11 GB, not 23).
    """
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = Path(folder)
    tokenizer = _loading("tokenizer", folder, lambda: AutoTokenizer.from_pretrained(folder / "tokenizer"))
    encoder = _loading(
        "text encoder (UMT5)",
        folder,
        lambda: UMT5EncoderModel.from_pretrained(folder / "text_encoder", torch_dtype=getattr(torch, dtype)),
    )
    return tokenizer, encoder.eval().requires_grad_(False)
