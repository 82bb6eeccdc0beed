"""The Wan transformer's module names, shapes and layer groups, and their names in each LoRA format.

Canonical names are the original Wan names (``Wan-Video/Wan2.1`` ``wan/modules/model.py``):
``blocks.N.self_attn.q`` … ``blocks.N.ffn.2`` inside the blocks and ``text_embedding.0``,
``head.head`` … outside them. Three spellings exist in LoRA files:

* original (ComfyUI, diffusion-pipe, ai-toolkit, WanVideoWrapper): ``blocks.3.self_attn.q``
* musubi/kohya: ``lora_unet_`` + the original name with dots replaced by underscores
* diffusers (PEFT): ``blocks.3.attn1.to_q`` (``scripts/convert_wan_to_diffusers.py`` renames)

Shapes are given symbolically (``"dim"``, ``"ffn"`` …) so that one table serves every model size,
including a Wan-like layout of unknown size (see :func:`expected_shape`). Pure Python: no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --- module tables -------------------------------------------------------------------------------

#: Linear layers of a block that LoRA trainers target, in model order (musubi writes these 10/12).
SELF_ATTN = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o")
CROSS_ATTN_TEXT = ("cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o")
CROSS_ATTN_IMAGE = ("cross_attn.k_img", "cross_attn.v_img")  # I2V (CLIP image tokens) only
FFN = ("ffn.0", "ffn.2")

#: Every parameterised layer of a block in model order. Norms and the modulation table are not
#: Linear layers; some LoRAs still ship full-weight ``.diff`` entries for them.
BLOCK_LAYERS = (
    *SELF_ATTN,
    "self_attn.norm_q",
    "self_attn.norm_k",
    "norm3",
    *CROSS_ATTN_TEXT,
    *CROSS_ATTN_IMAGE,
    "cross_attn.norm_q",
    "cross_attn.norm_k",
    "cross_attn.norm_k_img",
    *FFN,
    "modulation",
)
_BLOCK_LAYER_ORDER = {name: i for i, name in enumerate(BLOCK_LAYERS)}

#: Parameterised modules outside the blocks, in model order (before and after the blocks).
OUTSIDE_BEFORE = (
    "patch_embedding",
    "text_embedding.0",
    "text_embedding.2",
    "time_embedding.0",
    "time_embedding.2",
    "time_projection.1",
)
OUTSIDE_AFTER = (
    "head.head",
    "head.modulation",
    "img_emb.proj.0",
    "img_emb.proj.1",
    "img_emb.proj.3",
    "img_emb.proj.4",
    "img_emb.emb_pos",
)
OUTSIDE = OUTSIDE_BEFORE + OUTSIDE_AFTER
_OUTSIDE_ORDER = {name: i for i, name in enumerate(OUTSIDE)}

#: Linear layers outside the blocks (the ones a LoRA pair can target).
OUTSIDE_LINEAR = (
    "text_embedding.0",
    "text_embedding.2",
    "time_embedding.0",
    "time_embedding.2",
    "time_projection.1",
    "head.head",
    "img_emb.proj.1",
    "img_emb.proj.3",
)

# --- layer groups --------------------------------------------------------------------------------

#: Layer groups of the selector grammar, with what the GUI shows for them.
LAYER_GROUPS: dict[str, str] = {
    "self_attn": "self-attention q, k, v, o",
    "cross_attn": "cross-attention q, k, v, o (and k_img, v_img for I2V)",
    "ffn": "feed-forward ffn.0, ffn.2",
    "other": "everything else: norms, modulation, embeddings, time projection, head",
}
#: Names that stand for several groups.
GROUP_ALIASES: dict[str, frozenset[str]] = {
    "attn": frozenset({"self_attn", "cross_attn"}),
    "all": frozenset(LAYER_GROUPS),
}


def layer_group(name: str) -> str:
    """``self_attn``, ``cross_attn``, ``ffn`` or ``other`` for a canonical module name."""
    local = block_local_name(name)
    if local in SELF_ATTN:
        return "self_attn"
    if local in CROSS_ATTN_TEXT or local in CROSS_ATTN_IMAGE:
        return "cross_attn"
    if local in FFN:
        return "ffn"
    return "other"


_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def split_block(name: str) -> tuple[int | None, str]:
    """``("blocks.7.ffn.0")`` → ``(7, "ffn.0")``; names outside the blocks → ``(None, name)``."""
    match = _BLOCK_RE.match(name)
    if match is None:
        return None, name
    return int(match.group(1)), match.group(2)


def block_index(name: str) -> int | None:
    return split_block(name)[0]


def block_local_name(name: str) -> str:
    return split_block(name)[1]


def is_known_module(name: str) -> bool:
    """True for a canonical Wan module name (any block index)."""
    block, local = split_block(name)
    if block is None:
        return local in _OUTSIDE_ORDER
    return local in _BLOCK_LAYER_ORDER


def sort_key(name: str) -> tuple[int, int, int, str]:
    """Model order: modules before the blocks, then block by block in layer order, then the head."""
    block, local = split_block(name)
    if block is not None:
        return (1, block, _BLOCK_LAYER_ORDER.get(local, len(_BLOCK_LAYER_ORDER)), local)
    position = _OUTSIDE_ORDER.get(local, len(_OUTSIDE_ORDER))
    section = 0 if local in OUTSIDE_BEFORE else 2
    return (section, 0, position, local)


def sorted_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=sort_key)


# --- name spellings ------------------------------------------------------------------------------

_BLOCK_TO_DIFFUSERS = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "norm3": "norm2",  # diffusers swaps norm2/norm3; original norm2 has no weights
    "modulation": "scale_shift_table",
}
_OUTSIDE_TO_DIFFUSERS = {
    "patch_embedding": "patch_embedding",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "img_emb.emb_pos": "condition_embedder.image_embedder.pos_embed",
}
_BLOCK_FROM_DIFFUSERS = {v: k for k, v in _BLOCK_TO_DIFFUSERS.items()}
_OUTSIDE_FROM_DIFFUSERS = {v: k for k, v in _OUTSIDE_TO_DIFFUSERS.items()}
_BLOCK_FROM_MUSUBI = {k.replace(".", "_"): k for k in BLOCK_LAYERS}
_OUTSIDE_FROM_MUSUBI = {k.replace(".", "_"): k for k in OUTSIDE}
_MUSUBI_BLOCK_RE = re.compile(r"^blocks_(\d+)_(.+)$")


def to_diffusers(name: str) -> str:
    """Canonical (original) name → diffusers module name (``blocks.0.attn1.to_q``)."""
    block, local = split_block(name)
    if block is None:
        return _OUTSIDE_TO_DIFFUSERS[local]
    return f"blocks.{block}.{_BLOCK_TO_DIFFUSERS[local]}"


def from_diffusers(name: str) -> str | None:
    """diffusers module name → canonical name, or None when it is no Wan module."""
    block, local = split_block(name)
    if block is None:
        return _OUTSIDE_FROM_DIFFUSERS.get(local)
    original = _BLOCK_FROM_DIFFUSERS.get(local)
    return None if original is None else f"blocks.{block}.{original}"


def from_original(name: str) -> str | None:
    """An original-spelling name → itself when it is a Wan module, else None."""
    return name if is_known_module(name) else None


def to_musubi(name: str, prefix: str = "lora_unet_") -> str:
    """Canonical name → musubi/kohya module name (``lora_unet_blocks_0_self_attn_q``)."""
    return prefix + name.replace(".", "_")


def from_musubi(body: str) -> str | None:
    """Musubi module name *without* its ``lora_unet_`` prefix → canonical name, or None."""
    match = _MUSUBI_BLOCK_RE.match(body)
    if match is not None:
        local = _BLOCK_FROM_MUSUBI.get(match.group(2))
        return None if local is None else f"blocks.{int(match.group(1))}.{local}"
    return _OUTSIDE_FROM_MUSUBI.get(body)


# --- model variants and shapes -------------------------------------------------------------------


@dataclass(frozen=True)
class WanVariant:
    """One Wan model size. ``tiny`` is the config-built test transformer (no download)."""

    name: str
    num_blocks: int
    dim: int
    ffn_dim: int
    num_heads: int
    text_dim: int = 4096
    freq_dim: int = 256
    out_dim: int = 16
    image_dim: int = 1280  # CLIP image features (I2V img_emb)
    patch_size: tuple[int, int, int] = (1, 2, 2)
    tasks: tuple[str, ...] = ("t2v", "i2v")
    title: str = ""

    @property
    def head_out(self) -> int:
        p = self.patch_size
        return self.out_dim * p[0] * p[1] * p[2]

    def dims(self) -> dict[str, int]:
        """Bindings for the shape symbols of :data:`_SHAPES`."""
        return {
            "dim": self.dim,
            "ffn": self.ffn_dim,
            "text": self.text_dim,
            "freq": self.freq_dim,
            "head_out": self.head_out,
            "img": self.image_dim,
        }

    def block_layers(self, task: str = "t2v") -> tuple[str, ...]:
        """The LoRA-able Linear layers of one block, in model order."""
        return block_linear_layers(task)

    def module_names(self, task: str = "t2v", *, outside: bool = False) -> list[str]:
        """Every LoRA-able Linear module in model order (``outside``: also those outside the blocks)."""
        names = [f"blocks.{b}.{local}" for b in range(self.num_blocks) for local in self.block_layers(task)]
        if outside:
            extra = [n for n in OUTSIDE_LINEAR if task == "i2v" or not n.startswith("img_emb.")]
            names += extra
        return sorted_names(names)

    def shape(self, name: str) -> tuple[int, ...]:
        """(out, in) of a Linear module (or the parameter shape of a norm/modulation)."""
        shape = expected_shape(name, self.dims())
        if shape is None or any(s is None for s in shape):
            raise KeyError(f"{name}: no fixed shape in Wan {self.name}")
        return tuple(int(s) for s in shape)  # type: ignore[arg-type]


def block_linear_layers(task: str = "t2v") -> tuple[str, ...]:
    if task == "i2v":
        return (*SELF_ATTN, *CROSS_ATTN_TEXT, *CROSS_ATTN_IMAGE, *FFN)
    return (*SELF_ATTN, *CROSS_ATTN_TEXT, *FFN)


VARIANTS: dict[str, WanVariant] = {
    "1.3B": WanVariant("1.3B", num_blocks=30, dim=1536, ffn_dim=8960, num_heads=12, title="Wan2.1 1.3B"),
    "14B": WanVariant("14B", num_blocks=40, dim=5120, ffn_dim=13824, num_heads=40, title="Wan2.1/2.2 14B"),
    "5B": WanVariant(
        "5B",
        num_blocks=30,
        dim=3072,
        ffn_dim=14336,
        num_heads=24,
        out_dim=48,
        tasks=("ti2v",),
        title="Wan2.2 TI2V-5B",
    ),
    # The tiny transformer of feasibility.md §1 (diffusers' own test config), for tests and demos.
    "tiny": WanVariant(
        "tiny",
        num_blocks=2,
        dim=24,
        ffn_dim=32,
        num_heads=2,
        text_dim=32,
        image_dim=48,
        title="tiny Wan-like",
    ),
}
#: The sizes a real LoRA file is matched against (``tiny`` reads as "unknown Wan-like").
KNOWN_VARIANTS = ("1.3B", "14B", "5B")


def get_variant(name: str) -> WanVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown Wan variant {name!r} (known: {', '.join(VARIANTS)})") from None


def tiny_transformer_config(task: str = "t2v", *, num_layers: int | None = None) -> dict:
    """Keyword arguments for ``diffusers.WanTransformer3DModel`` matching the ``tiny`` variant."""
    tiny = VARIANTS["tiny"]
    config = {
        "patch_size": tiny.patch_size,
        "num_attention_heads": tiny.num_heads,
        "attention_head_dim": tiny.dim // tiny.num_heads,
        "in_channels": 16,
        "out_channels": tiny.out_dim,
        "text_dim": tiny.text_dim,
        "freq_dim": tiny.freq_dim,
        "ffn_dim": tiny.ffn_dim,
        "num_layers": num_layers or tiny.num_blocks,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "rope_max_seq_len": 32,
    }
    if task == "i2v":
        config.update(image_dim=tiny.image_dim, added_kv_proj_dim=tiny.dim)
    return config


# Symbolic parameter shapes. Symbols: dim, ffn, text (text encoder width), freq (sinusoidal time
# features), head_out (out_dim·prod(patch)), img (CLIP width); "6dim" is 6·dim; "*" is free.
_BLOCK_SHAPES: dict[str, tuple] = {
    **{local: ("dim", "dim") for local in (*SELF_ATTN, *CROSS_ATTN_TEXT, *CROSS_ATTN_IMAGE)},
    "ffn.0": ("ffn", "dim"),
    "ffn.2": ("dim", "ffn"),
    "self_attn.norm_q": ("dim",),
    "self_attn.norm_k": ("dim",),
    "cross_attn.norm_q": ("dim",),
    "cross_attn.norm_k": ("dim",),
    "cross_attn.norm_k_img": ("dim",),
    "norm3": ("dim",),
    "modulation": (1, 6, "dim"),
}
_OUTSIDE_SHAPES: dict[str, tuple] = {
    "patch_embedding": ("dim", "*", 1, 2, 2),
    "text_embedding.0": ("dim", "text"),
    "text_embedding.2": ("dim", "dim"),
    "time_embedding.0": ("dim", "freq"),
    "time_embedding.2": ("dim", "dim"),
    "time_projection.1": ("6dim", "dim"),
    "head.head": ("head_out", "dim"),
    "head.modulation": (1, 2, "dim"),
    "img_emb.proj.0": ("img",),
    "img_emb.proj.1": ("img", "img"),
    "img_emb.proj.3": ("dim", "img"),
    "img_emb.proj.4": ("dim",),
    "img_emb.emb_pos": (1, "*", "img"),
}


def symbolic_shape(name: str) -> tuple | None:
    """The symbolic shape of a canonical module (see the symbols above), or None if unknown."""
    block, local = split_block(name)
    return (_BLOCK_SHAPES if block is not None else _OUTSIDE_SHAPES).get(local)


def expected_shape(name: str, dims: Mapping[str, int]) -> tuple[int | None, ...] | None:
    """The shape of ``name`` under the bindings ``dims``; unbound symbols come back as None."""
    symbolic = symbolic_shape(name)
    if symbolic is None:
        return None
    return tuple(_resolve(s, dims) for s in symbolic)


def _resolve(symbol, dims: Mapping[str, int]) -> int | None:
    if isinstance(symbol, int):
        return symbol
    if symbol == "6dim":
        return 6 * dims["dim"] if "dim" in dims else None
    return dims.get(symbol)


def unify_shape(
    name: str, shape: tuple[int, ...], bindings: dict[str, int], *, bias: bool = False
) -> str | None:
    """Bind the symbols of ``name``'s shape to ``shape``; return a reason when it cannot fit.

    ``bias``: ``shape`` is a bias (``.diff_b``), which matches the first (output) dimension only.
    """
    symbolic = symbolic_shape(name)
    if symbolic is None:
        return None
    if bias:
        symbolic = symbolic[:1]
    if len(symbolic) != len(shape):
        return f"has {len(shape)} dimensions, a Wan {name.split('.')[-1]} has {len(symbolic)}"
    for symbol, size in zip(symbolic, shape, strict=True):
        if symbol == "*":
            continue
        if symbol == "6dim":
            if size % 6:
                return f"size {size} is not 6·dim"
            symbol, size = "dim", size // 6
        if isinstance(symbol, int):
            if size != symbol:
                return f"size {size} where Wan has {symbol}"
            continue
        bound = bindings.get(symbol)
        if bound is None:
            bindings[symbol] = size
        elif bound != size:
            return f"{symbol} is {size} here but {bound} elsewhere in the file"
    return None


def format_shape(shape: Iterable[int | None]) -> str:
    return "×".join("?" if s is None else str(s) for s in shape)
