"""The modules of a LoRA file from its header: which keys make each module, its kind, shape and rank,
and which Wan model the shapes fit. No tensor is read here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from difflora_gui.errors import BadFileError
from difflora_gui.lora import keys as lora_keys
from difflora_gui.lora import wan_layout
from difflora_gui.lora.model import ModelInfo
from difflora_gui.lora.safetensors_header import FLOAT_CODES, TensorInfo


@dataclass
class ModuleEntry:
    """One canonical module of a file: which keys hold its parts, its kind, ΔW shape and rank."""

    name: str
    keys: dict[str, str] = field(default_factory=dict)  # role → tensor key
    kind: str = "lora"  # lora | diff | loha | lokr
    shape: tuple[int, ...] = ()
    rank: int = 0
    dtype: str = ""
    naming: str = ""

    @property
    def has_alpha(self) -> bool:
        return "alpha" in self.keys


LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


def _fmt(shape) -> str:
    return wan_layout.format_shape(shape)


def build_entry(path: Path, name: str, roles: dict[str, str], tensors: dict[str, TensorInfo]) -> ModuleEntry:
    entry = ModuleEntry(name, dict(roles))

    def info(role: str) -> TensorInfo:
        return tensors[roles[role]]

    def bad(problem: str) -> BadFileError:
        return BadFileError(path, f"module {name}: {problem}")

    for role, key in roles.items():
        # alpha may be an integer (musubi's convert_lora.py writes torch.tensor(rank)); weights may not
        if role != "alpha" and tensors[key].dtype_code not in FLOAT_CODES:
            raise bad(f"{key} has non-float dtype {tensors[key].dtype}")
    if "dora_scale" in roles:
        raise bad("DoRA (dora_scale) is not supported: its weight change depends on the base model")
    if "mid" in roles or "hada_t1" in roles or "hada_t2" in roles or "lokr_t2" in roles:
        raise bad("convolution (Tucker/mid) factors are not supported for Wan")
    has_lora = "down" in roles or "up" in roles
    has_loha = any(r.startswith("hada_") for r in roles)
    has_lokr = any(r.startswith("lokr_") for r in roles)
    if has_lora + has_loha + has_lokr > 1:
        raise bad("mixes LoRA, LoHa and LoKr tensors")
    shape: tuple[int, ...] | None = None
    if has_lora:
        for role, other, word in (("down", "up", "lora_down/lora_A"), ("up", "down", "lora_up/lora_B")):
            if role not in roles:
                present = "lora_up/lora_B" if word.startswith("lora_down") else "lora_down/lora_A"
                raise bad(f"has {present} ({roles[other]}) but no {word}")
        down, up = info("down"), info("up")
        if len(down.shape) != 2 or len(up.shape) != 2:
            raise bad(f"factors are not matrices (down {_fmt(down.shape)}, up {_fmt(up.shape)})")
        if down.shape[0] != up.shape[1]:
            raise bad(
                f"rank mismatch: down is {_fmt(down.shape)} (rank {down.shape[0]}) "
                f"but up is {_fmt(up.shape)} (rank {up.shape[1]})"
            )
        if down.shape[0] == 0:
            raise bad("rank 0")
        entry.kind, entry.rank = "lora", down.shape[0]
        shape = (up.shape[0], down.shape[1])
        entry.dtype = down.dtype
    elif has_loha:
        missing = [r for r in LOHA if r not in roles]
        if missing:
            raise bad(f"LoHa module lacks {', '.join(missing)}")
        w1a, w1b, w2a, w2b = (info(r).shape for r in LOHA)
        if any(len(s) != 2 for s in (w1a, w1b, w2a, w2b)):
            raise bad("LoHa factors are not matrices")
        if w1a[1] != w1b[0] or w2a[1] != w2b[0] or (w1a[0], w1b[1]) != (w2a[0], w2b[1]):
            raise bad(f"LoHa factor shapes do not fit: {_fmt(w1a)}, {_fmt(w1b)}, {_fmt(w2a)}, {_fmt(w2b)}")
        entry.kind, entry.rank = "loha", w1b[0]
        shape = (w1a[0], w1b[1])
        entry.dtype = info("hada_w1_a").dtype
    elif has_lokr:
        parts = []
        for side in ("w1", "w2"):
            full, a, b = f"lokr_{side}", f"lokr_{side}_a", f"lokr_{side}_b"
            if full in roles:
                s = info(full).shape
            elif a in roles and b in roles:
                sa, sb = info(a).shape, info(b).shape
                if len(sa) != 2 or len(sb) != 2 or sa[1] != sb[0]:
                    raise bad(f"LoKr {side} factors do not fit: {_fmt(sa)}, {_fmt(sb)}")
                s = (sa[0], sb[1])
                entry.rank = sb[0]  # like ComfyUI: alpha is divided by the w2 (else w1) rank
            else:
                raise bad(f"LoKr module lacks {full} (or {a} and {b})")
            if len(s) != 2:
                raise bad("LoKr factors are not matrices")
            parts.append(s)
        entry.kind = "lokr"
        shape = (parts[0][0] * parts[1][0], parts[0][1] * parts[1][1])
        entry.dtype = info(next(r for r in roles if r.startswith("lokr_"))).dtype
    if "diff" in roles:
        dense = info("diff").shape
        if shape is not None and tuple(dense) != tuple(shape):
            raise bad(f"full-weight diff {_fmt(dense)} does not match the low-rank shape {_fmt(shape)}")
        shape = tuple(dense)
        entry.dtype = entry.dtype or info("diff").dtype
        if not (has_lora or has_loha or has_lokr):
            entry.kind = "diff"
    if "diff_b" in roles:
        bias = info("diff_b").shape
        if len(bias) != 1:
            raise bad(f"bias diff has shape {_fmt(bias)}, expected a vector")
        if shape is not None and bias[0] != shape[0]:
            raise bad(f"bias diff has {bias[0]} values but the layer has {shape[0]} outputs")
        if shape is None:
            shape = bias
            entry.kind = "diff"
        entry.dtype = entry.dtype or info("diff_b").dtype
    if shape is None:
        raise bad("has an alpha but no weights")
    if "alpha" in roles and info("alpha").numel != 1:
        raise bad(f"alpha has shape {_fmt(info('alpha').shape)}, expected a single number")
    entry.shape = tuple(shape)
    return entry


def identify_model(path: Path, entries: dict[str, ModuleEntry]) -> ModelInfo:
    """Model size and task from the modules' shapes: a known Wan size, or a consistent Wan-like one."""
    attention = [e for e in entries.values() if wan_layout.layer_group(e.name) in ("self_attn", "cross_attn")]
    bindings: dict[str, int] = {}
    # Bind dim to the most common attention width first, so that the odd one out is the one named.
    widths = Counter(e.shape[0] for e in attention if len(e.shape) == 2)
    if widths:
        bindings["dim"] = widths.most_common(1)[0][0]
    for entry in entries.values():
        only_bias = entry.kind == "diff" and "diff" not in entry.keys
        problem = wan_layout.unify_shape(entry.name, entry.shape, bindings, bias=only_bias)
        if problem:
            raise BadFileError(
                path,
                f"module {entry.name} is {_fmt(entry.shape)}: {problem}; the shapes fit no Wan layout "
                "(1.3B, 14B, 5B) and are not internally consistent",
            )
    if "dim" not in bindings:
        raise BadFileError(path, "cannot tell the model size: no module has a Wan-sized shape")
    blocks = {b for b in (wan_layout.block_index(n) for n in entries) if b is not None}
    needed_blocks = max(blocks) + 1 if blocks else 0
    has_image = any(
        wan_layout.block_local_name(n) in (*wan_layout.CROSS_ATTN_IMAGE, "cross_attn.norm_k_img")
        or n.startswith("img_emb.")
        for n in entries
    )
    for name in wan_layout.KNOWN_VARIANTS:
        variant = wan_layout.VARIANTS[name]
        known = variant.dims()
        if needed_blocks <= variant.num_blocks and all(
            known[k] == v for k, v in bindings.items() if k in known
        ):
            task = "ti2v" if "ti2v" in variant.tasks else ("i2v" if has_image else "t2v")
            return ModelInfo("wan", name, task, variant.num_blocks, variant.dim, bindings.get("ffn"))
    return ModelInfo(
        "wan", "unknown", "i2v" if has_image else "t2v", needed_blocks, bindings["dim"], bindings.get("ffn")
    )


# --- the modules of one model --------------------------------------------------------------------

FORMAT_OF_NAMING = {"musubi": "musubi", "original": "comfy", "diffusers": "diffusers"}


@dataclass
class ModuleSet:
    """The modules of one model in a file (the whole file, or one expert of a combo file)."""

    entries: dict[str, ModuleEntry]
    model: ModelInfo
    format: str
    naming_counts: dict[str, int]
    key_styles: list[str]
    prefixes: list[str]
    format_detail: str


def collect_modules(
    path: Path, items: list[lora_keys.ParsedKey], tensors: dict[str, TensorInfo]
) -> ModuleSet:
    """Group parsed keys into checked modules, identify the model and describe the format."""
    parsed: dict[str, dict[str, str]] = {}
    namings: Counter[str] = Counter()
    styles: Counter[str] = Counter()
    prefixes: Counter[str] = Counter()
    naming_of: dict[str, str] = {}
    for item in items:
        roles = parsed.setdefault(item.module, {})
        if item.role in roles:
            raise BadFileError(
                path, f"module {item.module} appears twice ({roles[item.role]!r} and {item.key!r})"
            )
        roles[item.role] = item.key
        naming_of.setdefault(item.module, item.naming)
        namings[item.naming] += 1
        prefixes[item.prefix] += 1
        if item.style:
            styles[item.style] += 1
    built = {name: build_entry(path, name, roles, tensors) for name, roles in parsed.items()}
    for entry in built.values():
        entry.naming = naming_of[entry.name]
    entries = {name: built[name] for name in wan_layout.sorted_names(built)}
    model = identify_model(path, entries)
    fmt = FORMAT_OF_NAMING[namings.most_common(1)[0][0]]
    detail = describe_format(fmt, list(entries.values()), namings, styles, prefixes)
    return ModuleSet(entries, model, fmt, dict(namings), sorted(styles), sorted(prefixes), detail)


def describe_format(
    fmt: str, entries: list[ModuleEntry], namings: Counter, styles: Counter, prefixes: Counter
) -> str:
    """``comfy (diffusion_model.; lora_down/lora_up; alpha)`` and the like."""
    parts = [", ".join(p or "no prefix" for p in sorted(prefixes))]
    lora_styles = [s for s in sorted(styles) if s not in ("diff", "")]
    if lora_styles:
        parts.append(", ".join(lora_styles))
    if "diff" in styles:
        parts.append("full-weight .diff")
    factored = [e for e in entries if e.kind != "diff"]
    with_alpha = sum(1 for e in factored if e.has_alpha)
    if factored:
        parts.append(
            "alpha"
            if with_alpha == len(factored)
            else ("no alpha" if not with_alpha else "alpha on some modules")
        )
    if len(namings) > 1:
        parts.append("mixed naming: " + ", ".join(f"{n} {c}" for n, c in namings.most_common()))
    return f"{fmt} ({'; '.join(parts)})"
