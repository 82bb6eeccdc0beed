"""Open a Wan LoRA file of any trainer's format, lazily, and hand out canonical modules.

``open_lora(path)`` checks the whole file up front from its header alone (format, pairs, ranks,
shapes, model size) and reads tensors only when a module is loaded: each tensor's bytes are read
straight into its buffer at the offset the header gives (one read per tensor, no memory map, so
memory stays near the size of what is loaded). Every problem with the
file is a :class:`~difflora_gui.errors.BadFileError` naming the file and the problem; pickles
(``.ckpt``/``.pt``) are recognised by their bytes or suffix and never unpickled.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from difflora_gui.errors import BadFileError
from difflora_gui.lora import keys as lora_keys
from difflora_gui.lora import wan_layout
from difflora_gui.lora.model import LoraModule, ModelInfo

if TYPE_CHECKING:
    import torch

#: Suffixes of PyTorch pickle checkpoints; refused unless the bytes are a valid safetensors file.
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"})
#: A safetensors header larger than this is treated as corrupt (real LoRA headers are < 1 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

# safetensors dtype code → (torch dtype name, bytes per element)
_DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})

FORMAT_OF_NAMING = {"musubi": "musubi", "original": "comfy", "diffusers": "diffusers"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it (nothing read yet)."""

    dtype_code: str
    shape: tuple[int, ...]
    #: where the bytes are, counted from the start of the data section
    begin: int = 0

    @property
    def dtype(self) -> str:
        return _DTYPES.get(self.dtype_code, (self.dtype_code.lower(), 0))[0]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class SafetensorsHeader:
    path: Path
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    #: file offset of the data section (8 + the header's length)
    data_start: int = 0


# --- the header ----------------------------------------------------------------------------------


def _pickle_problem(path: Path) -> str:
    return (
        f"is a PyTorch pickle checkpoint ({path.suffix or 'no suffix'}): pickles can run code when loaded, "
        "so they are never opened; use a .safetensors LoRA (convert it with a tool you trust)"
    )


def _looks_like_pickle(head: bytes) -> bool:
    # torch.save writes a zip archive (PK..) since 1.6 and a bare pickle (0x80 + protocol) before.
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_header(path: str | Path) -> SafetensorsHeader:
    """Read and check a safetensors header; any problem is a one-line :class:`BadFileError`."""
    path = Path(path)
    if not path.exists():
        raise BadFileError(path, "file not found")
    if path.is_dir():
        raise BadFileError(path, "is a folder, not a LoRA file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(16)
            if size == 0:
                raise BadFileError(path, "empty file (0 bytes)")
            if _looks_like_pickle(head):
                raise BadFileError(path, _pickle_problem(path))
            if head.startswith(b"GGUF"):
                raise BadFileError(path, "is a GGUF file; LoRAs are read from .safetensors files only")
            pickle_suffix = path.suffix.lower() in PICKLE_SUFFIXES
            if size < 8:
                raise BadFileError(path, f"truncated: {size} bytes is too short for a safetensors header")
            header_len = int.from_bytes(head[:8], "little")
            starts_like_json = head[8:9] == b"{"
            if header_len < 2 or header_len > MAX_HEADER_BYTES or not starts_like_json:
                if pickle_suffix:
                    raise BadFileError(path, _pickle_problem(path))
                raise BadFileError(path, "not a safetensors file (no valid header at the start)")
            if 8 + header_len > size:
                raise BadFileError(
                    path, f"truncated: the header needs {header_len} bytes but only {size - 8} follow"
                )
            handle.seek(8)
            raw = handle.read(header_len)
    except OSError as exc:
        raise BadFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFileError(path, f"corrupt safetensors header (not valid JSON: {exc})") from None
    if not isinstance(header, dict):
        raise BadFileError(path, "corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadFileError(path, "corrupt safetensors header (metadata must map strings to strings)")
    data_size = size - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for key, entry in header.items():
        try:
            code = entry["dtype"]
            shape = tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise BadFileError(path, f"corrupt safetensors header (bad entry for {key!r})") from None
        item = _DTYPES.get(code, (None, None))[1]
        if item is None or any(s < 0 for s in shape) or not 0 <= begin <= end:
            raise BadFileError(path, f"corrupt safetensors header (bad entry for {key!r})")
        if end - begin != math.prod(shape) * item:
            raise BadFileError(path, f"corrupt safetensors header ({key!r}: size does not match its shape)")
        data_end = max(data_end, end)
        tensors[key] = TensorInfo(code, shape, begin)
    if data_end > data_size:
        raise BadFileError(
            path, f"truncated: the tensors need {data_end} bytes of data but only {data_size} are in the file"
        )
    return SafetensorsHeader(path, size, tensors, dict(metadata), 8 + header_len)


# --- modules -------------------------------------------------------------------------------------


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


_LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


def _fmt(shape) -> str:
    return wan_layout.format_shape(shape)


def _build_entry(path: Path, name: str, roles: dict[str, str], tensors: dict[str, TensorInfo]) -> ModuleEntry:
    entry = ModuleEntry(name, dict(roles))

    def info(role: str) -> TensorInfo:
        return tensors[roles[role]]

    def bad(problem: str) -> BadFileError:
        return BadFileError(path, f"module {name}: {problem}")

    for role, key in roles.items():
        # alpha may be an integer (musubi's convert_lora.py writes torch.tensor(rank)); weights may not
        if role != "alpha" and tensors[key].dtype_code not in _FLOAT_CODES:
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
        missing = [r for r in _LOHA if r not in roles]
        if missing:
            raise bad(f"LoHa module lacks {', '.join(missing)}")
        w1a, w1b, w2a, w2b = (info(r).shape for r in _LOHA)
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


def _sample(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _reject_non_wan(path: Path, all_keys: list[str]) -> BadFileError:
    """The error for a file in which no key is a Wan LoRA tensor."""
    if not all_keys:
        return BadFileError(path, "contains no tensors")
    lora_like = [k for k in all_keys if lora_keys.is_lora_key(k)]
    family = lora_keys.detect_family(all_keys)
    if not lora_like:
        wan_weights = [k for k in all_keys if lora_keys.full_model_module(k) is not None]
        if wan_weights:
            return BadFileError(
                path,
                f"is a full Wan model checkpoint ({len(all_keys)} tensors such as {wan_weights[0]!r}), "
                "not a LoRA: it has no lora_down/lora_up or lora_A/lora_B tensors",
            )
        if family:
            return BadFileError(path, f"is not a LoRA: it looks like a full model checkpoint of {family}")
        return BadFileError(
            path, f"is not a LoRA: it has no LoRA tensors ({len(all_keys)} tensors such as {all_keys[0]!r})"
        )
    if family:
        return BadFileError(path, f"is a LoRA for {family}, not for Wan (keys such as {lora_like[0]!r})")
    return BadFileError(path, f"is not a Wan LoRA: no key names a Wan module ({_sample(lora_like)})")


def _identify(path: Path, entries: dict[str, ModuleEntry]) -> ModelInfo:
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


# --- the open file -------------------------------------------------------------------------------


class LoraFile:
    """An opened Wan LoRA (implements :class:`~difflora_gui.lora.model.LoraSource`).

    Use as a context manager, or call :meth:`close` (on Windows an open file cannot be replaced).
    Modules may be loaded from several threads at once.
    """

    #: :meth:`load` may be called from several threads at once (the merge's workers read for themselves)
    thread_safe_loads = True

    def __init__(self, header: SafetensorsHeader):
        self.path = header.path
        self.file_size = header.size
        self.metadata: dict[str, str] = header.metadata
        self._tensors = header.tensors
        self._data_start = header.data_start
        self._handle = None
        self._alphas: dict[str, float | None] | None = None
        # one file handle shared by every thread that loads modules: a seek and its read go together
        self._io_lock = threading.Lock()
        path = self.path

        parsed: dict[str, dict[str, str]] = {}
        namings: Counter[str] = Counter()
        styles: Counter[str] = Counter()
        prefixes: Counter[str] = Counter()
        unknown: list[str] = []
        for key in header.tensors:
            item = lora_keys.parse_key(key)
            if item is None:
                unknown.append(key)
                continue
            roles = parsed.setdefault(item.module, {})
            if item.role in roles:
                raise BadFileError(
                    path, f"module {item.module} appears twice ({roles[item.role]!r} and {key!r})"
                )
            roles[item.role] = key
            namings[item.naming] += 1
            prefixes[item.prefix] += 1
            if item.style:
                styles[item.style] += 1
        if not parsed:
            raise _reject_non_wan(path, list(header.tensors))
        if unknown:
            family = lora_keys.detect_family(unknown)
            what = f" (they look like {family} keys)" if family else ""
            raise BadFileError(path, f"has keys that are not Wan LoRA tensors{what}: {_sample(unknown)}")

        entries = {name: _build_entry(path, name, roles, header.tensors) for name, roles in parsed.items()}
        for entry in entries.values():
            entry.naming = next(lora_keys.parse_key(k).naming for k in entry.keys.values())  # type: ignore[union-attr]
        self._entries = {name: entries[name] for name in wan_layout.sorted_names(entries)}
        self.model: ModelInfo = _identify(path, self._entries)

        naming = namings.most_common(1)[0][0]
        self.format: str = FORMAT_OF_NAMING[naming]
        self.naming_counts = dict(namings)
        self.key_styles = sorted(styles)
        self.prefixes = sorted(prefixes)
        self.format_detail = self._describe_format(namings, styles, prefixes)
        self._check_layout()  # fail here, not on the first load

    def _describe_format(self, namings: Counter, styles: Counter, prefixes: Counter) -> str:
        parts = []
        shown_prefixes = [p or "no prefix" for p in sorted(prefixes)]
        parts.append(", ".join(shown_prefixes))
        lora_styles = [s for s in sorted(styles) if s not in ("diff", "")]
        if lora_styles:
            parts.append(", ".join(lora_styles))
        if "diff" in styles:
            parts.append("full-weight .diff")
        factored = [e for e in self._entries.values() if e.kind != "diff"]
        with_alpha = sum(1 for e in factored if e.has_alpha)
        if factored:
            parts.append(
                "alpha"
                if with_alpha == len(factored)
                else ("no alpha" if not with_alpha else "alpha on some modules")
            )
        if len(namings) > 1:
            parts.append("mixed naming: " + ", ".join(f"{n} {c}" for n, c in namings.most_common()))
        return f"{self.format} ({'; '.join(parts)})"

    # --- LoraSource ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> ModuleEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path.name} has no module {name!r}") from None

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entry(name).shape

    def rank(self, name: str) -> int:
        """The stored rank (0 for full-weight ``.diff`` modules)."""
        return self.entry(name).rank

    def kind(self, name: str) -> str:
        return self.entry(name).kind

    def dtype(self, name: str) -> str:
        """The stored dtype of the module's weights (``bfloat16`` …)."""
        return self.entry(name).dtype

    def alpha(self, name: str) -> float | None:
        """The stored alpha (None when the module has none); the first call reads every module's."""
        alphas = self._alphas
        if alphas is None:
            alphas = {}
            for other, entry in self._entries.items():
                key = entry.keys.get("alpha")
                # unchecked here: a NaN alpha is refused when its own module is loaded
                alphas[other] = (
                    None if key is None else float(self._read(key, other, check_finite=False).float().item())
                )
            self._alphas = alphas
        self.entry(name)  # an unknown name is a KeyError naming the file
        return alphas[name]

    def scale(self, name: str) -> float:
        """alpha/rank as loaders apply it (1.0 without alpha; alpha 0 reads as alpha = rank)."""
        entry = self.entry(name)
        alpha = self.alpha(name)
        if alpha is None or alpha == 0 or entry.rank == 0:
            return 1.0
        return alpha / entry.rank

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def _open(self):
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
            except OSError as exc:
                raise BadFileError(self.path, f"cannot be read: {exc.strerror or exc}") from None
        return self._handle

    def _check_layout(self) -> None:
        """safetensors' own checks of the layout (offsets cover the data exactly, no overlaps)."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt"):
                pass
        except Exception as exc:  # safetensors raises its own error types
            raise BadFileError(self.path, f"corrupt safetensors file: {exc}") from None

    def _read_bytes(self, key: str) -> torch.Tensor:
        """The tensor ``key`` as stored (a new CPU tensor), read with one positioned read."""
        import torch

        info = self._tensors[key]
        dtype = getattr(torch, info.dtype)
        count = info.numel * _DTYPES[info.dtype_code][1]
        buffer = torch.empty(count, dtype=torch.uint8)
        with self._io_lock:
            handle = self._open()
            handle.seek(self._data_start + info.begin)
            got = handle.readinto(memoryview(buffer.numpy()))
        if got != count:
            raise OSError(f"{count - (got or 0)} bytes missing at the end of the file")
        return buffer.view(dtype).reshape(info.shape)

    def _read(self, key: str, name: str, *, check_finite: bool = True) -> torch.Tensor:
        try:
            tensor = self._read_bytes(key)
        except BadFileError:
            raise
        except Exception as exc:
            raise BadFileError(self.path, f"cannot read {key!r}: {exc}") from None
        if check_finite:
            import torch

            if not bool(torch.isfinite(tensor).all()):
                raise BadFileError(self.path, f"module {name}: {key} contains NaN or Inf values")
        return tensor

    def load(self, name: str, *, check_finite: bool = True) -> LoraModule:
        """Read one module (stored dtype); NaN/Inf values are refused with the module named.

        LoHa and LoKr modules come back as dense float32 ΔW (alpha already applied), so the merge
        takes them on its dense path; ``.diff`` entries come back as ``dense`` as stored.
        """
        entry = self.entry(name)

        def read(role: str) -> torch.Tensor:
            return self._read(entry.keys[role], name, check_finite=check_finite)

        alpha = self.alpha(name)
        if alpha is not None and check_finite and not math.isfinite(alpha):
            raise BadFileError(self.path, f"module {name}: alpha is {alpha}")
        module = LoraModule(name=name, kind=entry.kind, alpha=alpha)
        if entry.kind == "lora":
            module.down, module.up = read("down"), read("up")
            module.scale = self.scale(name)
        elif entry.kind == "loha":
            import torch

            w1a, w1b, w2a, w2b = (read(r).to(torch.float32) for r in _LOHA)
            scale = 1.0 if alpha is None else alpha / entry.rank
            module.dense = (w1a @ w1b) * (w2a @ w2b) * scale
        elif entry.kind == "lokr":
            import torch

            def side(s: str) -> torch.Tensor:
                if f"lokr_{s}" in entry.keys:
                    return read(f"lokr_{s}").to(torch.float32)
                return read(f"lokr_{s}_a").to(torch.float32) @ read(f"lokr_{s}_b").to(torch.float32)

            decomposed = any(r.endswith(("_a", "_b")) for r in entry.keys)
            scale = alpha / entry.rank if (alpha is not None and decomposed and entry.rank) else 1.0
            module.dense = torch.kron(side("w1"), side("w2")) * scale
        if "diff" in entry.keys:
            dense = read("diff")
            module.dense = dense if module.dense is None else module.dense + dense.to(module.dense.dtype)
        if "diff_b" in entry.keys:
            module.bias = read("diff_b")
        return module

    def modules(self, names: list[str] | None = None, *, check_finite: bool = True) -> Iterator[LoraModule]:
        """Load modules one at a time (all of them, or ``names``)."""
        for name in names if names is not None else self.names():
            yield self.load(name, check_finite=check_finite)

    def close(self) -> None:
        with self._io_lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def __enter__(self) -> LoraFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LoraFile {self.path.name}: {self.model.label}, {self.format}, {len(self)} modules>"

    # --- facts for inspect -----------------------------------------------------------------------

    @property
    def tensor_infos(self) -> dict[str, TensorInfo]:
        return dict(self._tensors)


def open_lora(path: str | Path) -> LoraFile:
    """Open and check a Wan LoRA file; raises :class:`BadFileError` for every bad input."""
    return LoraFile(read_header(path))
