"""Tensor key names of LoRA files: which module and which part of it a key is, and whose file it is.

Every trainer spells a key as ``<prefix><module><suffix>``:

* prefix: ``lora_unet_`` (musubi/kohya, underscored names), ``diffusion_model.`` (ComfyUI,
  diffusion-pipe, ai-toolkit), ``transformer.`` (diffusers, musubi's ``--diffusers_prefix``),
  ``base_model.model.`` (raw PEFT), or nothing;
* an expert marker (Wan2.2 A14B "combo" files, ai-toolkit ``split_multistage_loras: false``):
  ``transformer_1.`` (high-noise) or ``transformer_2.`` (low-noise) after the prefix
  (``diffusion_model.transformer_1.blocks.0…``, ``lora_unet_transformer_2_blocks_0…``); diffusers'
  own pipeline calls the low-noise expert ``transformer_2`` beside a plain ``transformer.``;
* module: the original Wan name or the diffusers name (see :mod:`.wan_layout`);
* suffix: ``.lora_down.weight``/``.lora_up.weight`` or ``.lora_A.weight``/``.lora_B.weight`` (and the
  other spellings ComfyUI accepts), ``.alpha``, full-weight ``.diff``/``.diff_b``, LoHa ``.hada_*``
  and LoKr ``.lokr_*``.

Pure string work on the safetensors header: no tensor is read here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from difflora_gui.lora import wan_layout

# (suffix, role, style); longest suffixes first so ".lora_A.default.weight" wins over shorter ones.
_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    (".lora_linear_layer.down.weight", "down", "lora_linear_layer"),
    (".lora_linear_layer.up.weight", "up", "lora_linear_layer"),
    (".lora_A.default.weight", "down", "lora_A/lora_B"),
    (".lora_B.default.weight", "up", "lora_A/lora_B"),
    (".lora_down.weight", "down", "lora_down/lora_up"),
    (".lora_up.weight", "up", "lora_down/lora_up"),
    (".lora_mid.weight", "mid", "lora_down/lora_up"),
    (".lora.down.weight", "down", "lora.down/lora.up"),
    (".lora.up.weight", "up", "lora.down/lora.up"),
    (".lora_A.weight", "down", "lora_A/lora_B"),
    (".lora_B.weight", "up", "lora_A/lora_B"),
    (".lora_B.bias", "diff_b", "lora_A/lora_B"),
    (".dora_scale", "dora_scale", "dora"),
    (".hada_w1_a", "hada_w1_a", "loha"),
    (".hada_w1_b", "hada_w1_b", "loha"),
    (".hada_w2_a", "hada_w2_a", "loha"),
    (".hada_w2_b", "hada_w2_b", "loha"),
    (".hada_t1", "hada_t1", "loha"),
    (".hada_t2", "hada_t2", "loha"),
    (".lokr_w1_a", "lokr_w1_a", "lokr"),
    (".lokr_w1_b", "lokr_w1_b", "lokr"),
    (".lokr_w2_a", "lokr_w2_a", "lokr"),
    (".lokr_w2_b", "lokr_w2_b", "lokr"),
    (".lokr_w1", "lokr_w1", "lokr"),
    (".lokr_w2", "lokr_w2", "lokr"),
    (".lokr_t2", "lokr_t2", "lokr"),
    (".diff_b", "diff_b", "diff"),
    (".diff", "diff", "diff"),
    (".alpha", "alpha", ""),
)

#: Prefixes before original or diffusers module names (tried in this order).
_DOTTED_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "")
#: Prefixes before underscored (kohya-style) names; ``lora_unet__`` is Wan-Fun's double underscore.
_UNDERSCORE_PREFIXES = ("lora_unet__", "lora_unet_", "lycoris_")


@dataclass(frozen=True)
class ParsedKey:
    key: str
    module: str  # canonical (original Wan) module name
    role: str  # down, up, alpha, diff, diff_b, hada_*, lokr_*, mid, dora_scale
    naming: str  # "musubi", "original" or "diffusers"
    prefix: str  # the prefix as found ("" when none)
    style: str  # suffix family: "lora_down/lora_up", "lora_A/lora_B", "loha", "lokr", "diff", ""
    #: the Wan2.2 expert its prefix names ("high" for transformer_1, "low" for transformer_2), else None
    expert: str | None = None


def split_suffix(key: str) -> tuple[str, str, str] | None:
    """``key`` → ``(module part, role, style)``, or None when it has no LoRA suffix."""
    for suffix, role, style in _SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], role, style
    return None


def resolve_module(body: str) -> tuple[str, str, str] | None:
    """A module part → ``(canonical name, naming, prefix)``, or None for a non-Wan module."""
    for prefix in _UNDERSCORE_PREFIXES:
        if body.startswith(prefix):
            name = wan_layout.from_musubi(body[len(prefix) :])
            if name is not None:
                return name, "musubi", prefix
    for prefix in _DOTTED_PREFIXES:
        if not body.startswith(prefix):
            continue
        rest = body[len(prefix) :]
        name = wan_layout.from_original(rest)
        if name is not None:
            return name, "original", prefix
        name = wan_layout.from_diffusers(rest)
        if name is not None:
            return name, "diffusers", prefix
    return None


_EXPERT_OF_NUMBER = {"1": "high", "2": "low"}
_DOTTED_EXPERT = re.compile(r"^((?:model\.)?(?:diffusion_model\.)?)transformer_([12])\.")
_UNDERSCORE_EXPERT = re.compile(r"^(lora_unet_|lycoris_)transformer_([12])_")


def split_expert(body: str) -> tuple[str | None, str, str]:
    """A module part → ``(expert, body without the marker, the prefix with the marker)``.

    ``diffusion_model.transformer_1.blocks.0.ffn.0`` → ``("high", "diffusion_model.blocks.0.ffn.0",
    "diffusion_model.transformer_1.")``; a body without a marker comes back as ``(None, body, "")``.
    """
    for pattern in (_DOTTED_EXPERT, _UNDERSCORE_EXPERT):
        match = pattern.match(body)
        if match is not None:
            return _EXPERT_OF_NUMBER[match.group(2)], match.group(1) + body[match.end() :], match.group(0)
    return None, body, ""


def parse_key(key: str) -> ParsedKey | None:
    """Parse one tensor key of a Wan LoRA; None when it is not one."""
    split = split_suffix(key)
    if split is None:
        return None
    body, role, style = split
    expert, body, marked_prefix = split_expert(body)
    resolved = resolve_module(body)
    if resolved is None:
        return None
    name, naming, prefix = resolved
    if expert is not None:
        if not marked_prefix.startswith(prefix):
            return None  # "transformer_1." then an unexpected prefix ("transformer_1.transformer.")
        prefix = marked_prefix
    return ParsedKey(key, name, role, naming, prefix, style, expert)


def is_lora_key(key: str) -> bool:
    return split_suffix(key) is not None


def full_model_module(key: str) -> str | None:
    """For a plain weight key (``blocks.0.self_attn.q.weight``): the Wan module it belongs to."""
    for suffix in (".weight", ".bias"):
        if key.endswith(suffix):
            resolved = resolve_module(key[: -len(suffix)])
            return None if resolved is None else resolved[0]
    if key.endswith(("modulation", "scale_shift_table", "emb_pos", "pos_embed")):
        resolved = resolve_module(key)
        return None if resolved is None else resolved[0]
    return None


# --- other model families ------------------------------------------------------------------------

# Markers of other families' LoRAs and checkpoints, most specific first.
_FAMILY_MARKERS: tuple[tuple[str, re.Pattern], ...] = (
    (
        "HunyuanVideo",
        re.compile(r"(img|txt)_mlp[._]fc[12]|(img|txt)_mod[._]linear|modulation[._]linear|token_refiner"),
    ),
    (
        "Flux",
        re.compile(
            r"(img|txt)_mlp[._][02]\b|(img|txt)_mod[._]lin(?!ear)|modulation[._]lin(?!ear)|ff_context|x_embedder"
        ),
    ),
    ("Flux or HunyuanVideo", re.compile(r"double_blocks|single_blocks|single_transformer_blocks")),
    ("SD3", re.compile(r"joint_blocks|context_block|x_block")),
    ("Qwen-Image", re.compile(r"img_mlp\.net|txt_mlp\.net|img_mod\.1|txt_mod\.1")),
    (
        "SDXL",
        re.compile(
            r"lora_te[12]_|input_blocks|output_blocks|middle_block|text_encoder_2|conditioner\.embedders"
        ),
    ),
    (
        "Stable Diffusion 1.x/2.x",
        re.compile(r"lora_te_|down_blocks|up_blocks|mid_block|text_encoder\.|cond_stage_model"),
    ),
    ("another transformer (LTX-Video/CogVideoX-style keys)", re.compile(r"transformer_blocks")),
)


def detect_family(keys: Iterable[str]) -> str | None:
    """Name the model family of keys that are not Wan's (None when no marker matches)."""
    keys = list(keys)
    for family, marker in _FAMILY_MARKERS:
        if any(marker.search(k) for k in keys):
            return family
    return None
