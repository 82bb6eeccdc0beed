"""Write canonical modules as a LoRA file that Wan loaders accept.

Formats (``--format``):

``comfy`` (default)
    ``diffusion_model.blocks.N.<original name>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``.
    Loads in ComfyUI core, WanVideoWrapper (its block edit too: it parses ``blocks.N.`` after
    ``diffusion_model.``), diffusers (its tolerant converter: partial files are fine) and musubi
    (``convert_lora.py --target default``). Modules outside the blocks get no ``.alpha``: diffusers'
    converter only consumes alphas of block modules and rejects any left over, so their scale is
    baked into the factors; so is a zero or negative scale (alpha must stay positive). Full-weight
    modules are written as ``.diff`` (``.diff_b`` for biases): ComfyUI and WanVideoWrapper apply
    them, diffusers ignores them (a warning says so).
``musubi``
    ``lora_unet_blocks_N_<name with _>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``.
    diffusers' musubi converter is strict: it needs every attention and FFN module of every block
    0..N-1 and nothing outside the blocks, so a partial file (attention only, a block subset)
    fails there with a KeyError; a warning says so. WanVideoWrapper's block edit ignores these keys.
``diffusers``
    PEFT keys ``transformer.blocks.N.attn1.to_q.lora_A.weight`` / ``lora_B`` with alpha baked in
    (PEFT has no alpha key); biases as ``lora_B.bias``.

Files are written atomically (temp file beside the target, then one rename), never over an input,
and never over an existing file unless ``overwrite``. The safetensors container is serialised
here rather than by ``safetensors.torch.save_file`` because that orders the metadata differently
on every run; writing it ourselves makes the same inputs give the same bytes (a merge recipe
re-run reproduces its file) and streams one tensor at a time. Every file carries sd-scripts'
``sshs_model_hash``/``sshs_legacy_hash`` (:func:`addnet_hashes`), which A1111-style UIs read
instead of hashing the file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from difflora_gui import __version__
from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_output, sha256_file
from difflora_gui.lora import wan_layout
from difflora_gui.lora.model import LoraModule, ModelInfo

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FORMATS = ("comfy", "musubi", "diffusers")
FORMAT_HELP = {
    "comfy": "diffusion_model.blocks.N.<name>.lora_down/lora_up + .alpha: loads in ComfyUI, WanVideoWrapper "
    "(block edit too), diffusers and musubi, also for partial files (default)",
    "musubi": "lora_unet_blocks_N_<name>.lora_down/lora_up + .alpha (musubi-tuner's own format); diffusers "
    "rejects partial files in this format and WanVideoWrapper's block edit ignores it",
    "diffusers": "transformer.blocks.N.attn1.to_q.lora_A/lora_B (PEFT), alpha baked in",
}
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
METADATA_PREFIX = "difflora."


def normalize_dtype(dtype: str) -> str:
    try:
        return DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise UserError(f"unknown output dtype {dtype!r} (use float32, float16 or bfloat16)") from None


def normalize_format(format: str) -> str:
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown LoRA format {format!r} (use {', '.join(FORMATS)})")
    return fmt


# --- state dict ----------------------------------------------------------------------------------


def _check_module(module: LoraModule) -> None:
    if not wan_layout.is_known_module(module.name):
        raise UserError(f"cannot write module {module.name!r}: not a Wan module name")
    if module.down is None and module.up is None and module.dense is None and module.bias is None:
        raise UserError(f"cannot write module {module.name}: it has no weights")
    if (module.down is None) != (module.up is None):
        raise UserError(f"cannot write module {module.name}: it has only one of down/up")
    if (
        module.down is not None
        and module.up is not None
        and (module.down.ndim != 2 or module.up.ndim != 2 or module.down.shape[0] != module.up.shape[1])
    ):
        raise UserError(
            f"cannot write module {module.name}: down {tuple(module.down.shape)} and "
            f"up {tuple(module.up.shape)} do not form a LoRA pair"
        )


def _split_scale(scale: float) -> tuple[float, float]:
    """Split ``scale`` into (down, up) factors whose product is ``scale``, moving powers of two to
    keep both near 1 (what diffusers does), so that baking it in adds no rounding for 2^k scales."""
    if scale == 0:
        return 0.0, 1.0
    down, up = scale, 1.0
    while abs(down) * 2 < up:
        down *= 2
        up /= 2
    return down, up


def _alpha_for(module: LoraModule) -> float:
    """The alpha to store so that alpha/rank == module.scale (keeps the file's own alpha if it fits)."""
    rank = module.rank
    if (
        module.alpha is not None
        and module.alpha != 0
        and abs(module.alpha / rank - module.scale) <= 1e-7 * abs(module.scale)
    ):
        return float(module.alpha)
    return float(module.scale) * rank


def _with_alpha(module: LoraModule) -> tuple[float, float, float]:
    """(down factor, up factor, alpha) for formats that store an alpha.

    A zero or negative scale is baked into the factors with alpha = rank: kohya/musubi read alpha 0
    as alpha = rank, and diffusers' power-of-two alpha split never ends for an alpha ≤ 0.
    """
    if module.scale > 0:
        return 1.0, 1.0, _alpha_for(module)
    down, up = _split_scale(module.scale)
    return down, up, float(module.rank)


def to_state_dict(
    modules: Iterable[LoraModule], *, format: str = "comfy", dtype: str = "float32"
) -> dict[str, torch.Tensor]:
    """The tensors of a LoRA file in ``format``, in deterministic (model) order."""
    import torch

    fmt = normalize_format(format)
    torch_dtype = getattr(torch, normalize_dtype(dtype))
    ordered = _ordered_modules(modules)
    out: dict[str, torch.Tensor] = {}

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device="cpu", dtype=torch_dtype).contiguous()

    def scaled(t: torch.Tensor, factor: float) -> torch.Tensor:
        if factor == 1.0:
            return cast(t)
        return cast(t.detach().to(device="cpu", dtype=torch.float32) * factor)

    for module in ordered:
        name = module.name
        in_block = wan_layout.block_index(name) is not None
        low_rank = module.down is not None and module.up is not None
        if fmt in ("musubi", "diffusers") and module.dense is not None:
            raise UserError(
                f"cannot write module {name} as {fmt}: it is a full-weight ({module.kind}) change, which only "
                "the comfy format can hold (.diff); use --format comfy"
            )
        if fmt == "diffusers" and not low_rank:
            raise UserError(
                f"cannot write module {name} as diffusers: it has only a bias change; use --format comfy"
            )
        if fmt == "musubi" and module.bias is not None:
            raise UserError(f"cannot write module {name} as musubi: the format has no bias (.diff_b) entries")
        if fmt == "comfy":
            base = f"diffusion_model.{name}"
            if module.dense is not None:
                # ComfyUI keeps one patch per weight (a .diff replaces a LoRA pair), so a module with
                # both is written as its whole ΔW
                out[f"{base}.diff"] = cast(module.delta(dtype=torch.float32, device="cpu"))
            elif low_rank and in_block:
                s_down, s_up, alpha = _with_alpha(module)
                out[f"{base}.lora_down.weight"] = scaled(module.down, s_down)
                out[f"{base}.lora_up.weight"] = scaled(module.up, s_up)
                out[f"{base}.alpha"] = torch.tensor(alpha, dtype=torch.float32)
            elif low_rank:
                s_down, s_up = _split_scale(module.scale)
                out[f"{base}.lora_down.weight"] = scaled(module.down, s_down)
                out[f"{base}.lora_up.weight"] = scaled(module.up, s_up)
            if module.bias is not None:
                out[f"{base}.diff_b"] = cast(module.bias)
        elif fmt == "musubi":
            base = wan_layout.to_musubi(name)
            s_down, s_up, alpha = _with_alpha(module)
            out[f"{base}.lora_down.weight"] = scaled(module.down, s_down)
            out[f"{base}.lora_up.weight"] = scaled(module.up, s_up)
            out[f"{base}.alpha"] = torch.tensor(alpha, dtype=torch.float32)
        else:
            base = f"transformer.{wan_layout.to_diffusers(name)}"
            if low_rank:
                s_down, s_up = _split_scale(module.scale)
                out[f"{base}.lora_A.weight"] = scaled(module.down, s_down)
                out[f"{base}.lora_B.weight"] = scaled(module.up, s_up)
            if module.bias is not None:
                out[f"{base}.lora_B.bias"] = cast(module.bias)
    return out


def _ordered_modules(modules: Iterable[LoraModule]) -> list[LoraModule]:
    by_name: dict[str, LoraModule] = {}
    for module in modules:
        _check_module(module)
        if module.name in by_name:
            raise UserError(f"cannot write module {module.name} twice")
        by_name[module.name] = module
    if not by_name:
        raise UserError("nothing to write: no modules")
    return [by_name[n] for n in wan_layout.sorted_names(by_name)]


def portability_warnings(
    names: Iterable[str], format: str, *, task: str | None = None, dense: Iterable[str] = ()
) -> list[str]:
    """What a loader will refuse or ignore in a file of ``names`` written as ``format``
    (``dense``: the modules written as full-weight ``.diff`` entries)."""
    names = list(names)
    dense = list(dense)
    fmt = normalize_format(format)
    warnings: list[str] = []
    image = {wan_layout.block_local_name(n) for n in names} & set(wan_layout.CROSS_ATTN_IMAGE)
    if fmt in ("comfy", "diffusers") and len(image) == 1:
        warnings.append(
            f"only {image.pop()} of the image cross-attention pair: diffusers loads k_img/v_img only when "
            "both are present and rejects the file"
        )
    if fmt == "musubi":
        blocks = sorted({b for b in (wan_layout.block_index(n) for n in names) if b is not None})
        has_image = any(wan_layout.block_local_name(n) in wan_layout.CROSS_ATTN_IMAGE for n in names)
        layers = wan_layout.block_linear_layers("i2v" if (has_image or task == "i2v") else "t2v")
        expected = {f"blocks.{b}.{local}" for b in range(len(blocks)) for local in layers}
        outside = [n for n in names if wan_layout.block_index(n) is None]
        extra = [n for n in names if wan_layout.block_index(n) is not None and n not in expected]
        if not expected <= set(names) or outside or extra:
            warnings.append(
                "partial musubi-format file (not every attention and FFN module of blocks 0..N-1, or modules "
                "outside the blocks): diffusers' musubi loader rejects it with a KeyError and WanVideoWrapper's "
                "block edit ignores musubi keys; the comfy format loads everywhere"
            )
        elif blocks:
            warnings.append(
                "musubi-format keys are ignored by WanVideoWrapper's block edit (comfy format is not)"
            )
    if fmt == "comfy" and dense:
        warnings.append(
            f"{len(dense)} full-weight (.diff) modules such as {dense[0]}: ComfyUI and WanVideoWrapper apply "
            "them, diffusers ignores them"
        )
    return warnings


# --- metadata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """An input of a merge, as recorded in ``difflora.inputs``."""

    name: str
    sha256: str
    role: str = ""

    @classmethod
    def from_path(cls, path: str | Path, role: str = "", *, sha256: str | None = None) -> InputFile:
        path = Path(path)
        return cls(path.name, sha256 or sha256_file(path), role)

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256, "role": self.role}


def _number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def network_dim_alpha(modules: Iterable[LoraModule]) -> tuple[str, str]:
    """``ss_network_dim`` / ``ss_network_alpha``: the numbers when uniform, ``Dynamic`` otherwise."""
    ranks, alphas = set(), set()
    for module in modules:
        if module.down is None or module.up is None:
            continue
        ranks.add(module.rank)
        alphas.add(round(_alpha_for(module), 6))
    dim = _number(next(iter(ranks))) if len(ranks) == 1 else "Dynamic"
    alpha = _number(next(iter(alphas))) if len(alphas) == 1 else "Dynamic"
    return dim, alpha


def build_metadata(
    *,
    modules: Iterable[LoraModule] | None = None,
    title: str | None = None,
    model: ModelInfo | None = None,
    inputs: Iterable[InputFile | Mapping[str, str] | str | Path] = (),
    strategy: str | None = None,
    params: Mapping[str, Any] | None = None,
    selector: str | None = None,
    created: str | datetime | None = None,
    description: str | None = None,
    author: str | None = None,
    extra: Mapping[str, str] | None = None,
    network_dim: str | int | None = None,
    network_alpha: str | float | None = None,
    expert: str | None = None,
) -> dict[str, str]:
    """Metadata for a written LoRA: kohya ``ss_*``, SAI ``modelspec.*`` and our ``difflora.*`` provenance.

    ``inputs``: :class:`InputFile` items (name, sha256, role), mappings of the same keys, or paths
    (hashed here). ``created`` (ISO-8601 text or a datetime) defaults to now; pass the recorded value to reproduce
    a file bit for bit. ``ss_network_dim``/``ss_network_alpha`` come from ``modules`` (``Dynamic``
    when ranks or alphas differ) unless given; without either, :func:`write_lora` fills them in
    from the modules it writes. ``expert`` ("high"/"low"): the Wan2.2 A14B expert the file is for,
    stored as ``difflora_expert`` (read back by :func:`~difflora_gui.lora.experts.expert_from_metadata`).
    """
    if expert is not None and expert not in ("high", "low"):
        raise ValueError(f"unknown expert {expert!r} (use 'high' or 'low')")
    if created is None:
        created_dt = datetime.now(timezone.utc).replace(microsecond=0)
    elif isinstance(created, datetime):
        created_dt = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    else:
        try:
            created_dt = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"bad creation time {created!r}: use ISO-8601 like 2026-01-31T12:00:00Z"
            ) from None
    created_text = created_dt.isoformat()
    dim: str | None = None
    alpha: str | None = None
    if modules is not None:
        dim, alpha = network_dim_alpha(list(modules))
    if network_dim is not None:
        dim = str(network_dim)
    if network_alpha is not None:
        alpha = network_alpha if isinstance(network_alpha, str) else _number(network_alpha)
    input_list = []
    for item in inputs:
        if isinstance(item, (str, Path)):
            item = InputFile.from_path(item)  # hashes the file
        input_list.append(item.to_json() if isinstance(item, InputFile) else dict(item))
    metadata: dict[str, str] = {"ss_network_module": "networks.lora_wan"}
    if dim is not None:
        metadata["ss_network_dim"] = dim
    if alpha is not None:
        metadata["ss_network_alpha"] = alpha
    metadata.update(
        {
            "ss_base_model_version": "wan",
            # musubi writes "wan2.1/lora" for every Wan size and generation; loaders key on it.
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": "wan2.1/lora",
            "modelspec.implementation": "https://github.com/Wan-Video/Wan2.1",
            "modelspec.title": title or "DiffLoRA",
            "modelspec.date": created_text,
        }
    )
    if description:
        metadata["modelspec.description"] = description
    if author:
        metadata["modelspec.author"] = author
    if input_list:
        metadata["modelspec.merged_from"] = ", ".join(i.get("name", "") for i in input_list)
    if strategy:
        metadata["ss_training_comment"] = f"made by DiffLoRA Studio {__version__}: {strategy}"
    metadata[f"{METADATA_PREFIX}version"] = __version__
    metadata[f"{METADATA_PREFIX}created"] = created_text
    if model is not None:
        metadata[f"{METADATA_PREFIX}model"] = model.label
    if expert is not None:
        from difflora_gui.lora.experts import EXPERT_METADATA_KEY

        metadata[EXPERT_METADATA_KEY] = expert
    if input_list:
        metadata[f"{METADATA_PREFIX}inputs"] = json.dumps(input_list, ensure_ascii=False)
    if strategy:
        metadata[f"{METADATA_PREFIX}strategy"] = strategy
    if params is not None:
        metadata[f"{METADATA_PREFIX}params"] = json.dumps(dict(params), sort_keys=True, ensure_ascii=False)
    if selector is not None:
        metadata[f"{METADATA_PREFIX}selector"] = str(selector)
    for key, value in (extra or {}).items():
        metadata[str(key)] = str(value)
    return metadata


# --- the file ------------------------------------------------------------------------------------


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    import torch

    flat = tensor.reshape(-1)
    if flat.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the same bits
        flat = flat.view(torch.int16)
    return memoryview(flat.numpy()).cast("B")


def _header(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The 8-byte length and the JSON header of a safetensors file holding ``tensors`` in their order."""
    codes = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    offset = 0
    for key, tensor in tensors.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in codes:
            raise UserError(f"cannot write {key}: dtype {dtype} is not supported")
        size = tensor.numel() * tensor.element_size()
        header[key] = {
            "dtype": codes[dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
    return len(raw).to_bytes(8, "little") + raw


def _data(tensors: Mapping[str, torch.Tensor]) -> Iterator[memoryview]:
    """The data section, tensor by tensor, as raw little-endian bytes."""
    for tensor in tensors.values():
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.numel():
            yield _tensor_bytes(tensor)


def addnet_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """``(sshs_model_hash, sshs_legacy_hash)`` of the file these tensors make, as sd-scripts computes them.

    sd-scripts' ``precalculate_safetensors_hashes``: the model hash is the sha256 of the data section
    (what sd-webui-additional-networks computes from the file itself, and reads from the metadata
    instead when it is there); the legacy hash is the first 8 hex digits of the sha256 of the 64 KiB
    at offset 1 MiB of the same file written with only its ``ss_*`` metadata.
    """
    model = hashlib.sha256()
    legacy = hashlib.sha256()
    start, end = 0x100000, 0x110000
    position = 0
    training_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    for chunk in itertools.chain([memoryview(_header(tensors, training_only))], _data(tensors)):
        if position:  # everything after the header
            model.update(chunk)
        low, high = max(start, position), min(end, position + len(chunk))
        if low < high:
            legacy.update(chunk[low - position : high - position])
        position += len(chunk)
    return model.hexdigest(), legacy.hexdigest()[:8]


def save_safetensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """Serialise ``tensors`` (in their order) and ``metadata`` (sorted) as a safetensors file."""
    import sys

    header = _header(tensors, metadata)
    if sys.byteorder != "little":  # safetensors data is little-endian; so are Windows, Linux and macOS hosts
        raise UserError("writing LoRA files needs a little-endian machine")
    with open(path, "wb") as handle:
        handle.write(header)
        for chunk in _data(tensors):
            handle.write(chunk)


#: values checked per batch by :func:`_all_finite` (bounds its temporary memory to a few MB)
_FINITE_BATCH = 1 << 22


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when no value is NaN or Inf, checked on the exponent bits, a few MB at a time.

    A thousand small ``isfinite()`` calls (one per LoRA tensor) cost far more than the data, and
    torch's bfloat16 ``isfinite`` is slow; an all-ones exponent field is exactly NaN or Inf.
    """
    import torch

    exponent = {
        torch.bfloat16: (torch.int16, 0x7F80),
        torch.float16: (torch.int16, 0x7C00),
        torch.float32: (torch.int32, 0x7F800000),
        torch.float64: (torch.int64, 0x7FF0000000000000),
    }

    def batch_finite(parts: list[torch.Tensor]) -> bool:
        flat = torch.cat(parts) if len(parts) > 1 else parts[0]
        if flat.dtype not in exponent:
            return bool(torch.isfinite(flat).all())
        int_dtype, mask = exponent[flat.dtype]
        return not bool(((flat.view(int_dtype) & mask) == mask).any())

    pending: dict = {}
    for tensor in tensors:
        parts, size = pending.get(tensor.dtype, ([], 0))
        parts.append(tensor.detach().reshape(-1))
        size += tensor.numel()
        if size >= _FINITE_BATCH:
            if not batch_finite(parts):
                return False
            parts, size = [], 0
        pending[tensor.dtype] = (parts, size)
    return all(batch_finite(parts) for parts, _ in pending.values() if parts)


def _check_finite(tensors: Mapping[str, torch.Tensor]) -> None:
    import torch

    floats = [t for t in tensors.values() if t.is_floating_point() and t.numel()]
    if _all_finite(floats):
        return
    for key, tensor in tensors.items():  # only on failure: find and name the tensor
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            hint = ""
            if tensor.dtype == torch.float16 and bool(torch.isinf(tensor).any()):
                hint = " (values beyond float16's range of ±65504: write bfloat16 or float32)"
            raise UserError(f"refusing to write {key}: it contains NaN or Inf values{hint}")


def write_lora(
    path: str | Path,
    modules: Iterable[LoraModule],
    *,
    format: str = "comfy",
    dtype: str = "float32",
    metadata: Mapping[str, str] | None = None,
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write ``modules`` to ``path`` atomically and return the path.

    ``metadata``: usually from :func:`build_metadata`; None writes the default metadata (creation
    time now). ``sshs_model_hash``/``sshs_legacy_hash`` are always computed here. Refuses (``UserError``, nothing written) to overwrite one of ``inputs``, an existing
    file unless ``overwrite``, unknown module names, NaN/Inf values, and full-weight modules in the
    musubi/diffusers formats. Portability problems of the chosen format go to ``warn`` (default:
    logged as warnings).
    """
    from difflora_gui.fileio import check_output_path

    path = Path(path)
    inputs = list(inputs)
    check_output_path(path, inputs=inputs, overwrite=overwrite)  # fail before any work
    fmt = normalize_format(format)
    modules = list(modules)
    tensors = to_state_dict(modules, format=fmt, dtype=dtype)
    _check_finite(tensors)
    metadata = dict(metadata) if metadata is not None else build_metadata(modules=modules)
    if "ss_network_dim" not in metadata or "ss_network_alpha" not in metadata:
        dim, alpha = network_dim_alpha(modules)
        metadata.setdefault("ss_network_dim", dim)
        metadata.setdefault("ss_network_alpha", alpha)
    # always recomputed: metadata copied from an input carries that input's hashes
    metadata["sshs_model_hash"], metadata["sshs_legacy_hash"] = addnet_hashes(tensors, metadata)
    names = sorted({_module_of_key(k) for k in tensors}, key=wan_layout.sort_key)
    dense = [_module_of_key(k) for k in tensors if k.endswith(".diff")]
    for warning in portability_warnings(names, fmt, dense=dense):
        if warn is not None:
            warn(warning)
        else:
            log.warning("%s: %s", path.name, warning)
    with atomic_output(path, inputs=inputs, overwrite=overwrite) as tmp:
        save_safetensors(tmp, tensors, metadata)
    return path


def _module_of_key(key: str) -> str:
    from difflora_gui.lora.keys import parse_key

    parsed = parse_key(key)
    return parsed.module if parsed is not None else key
