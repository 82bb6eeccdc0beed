"""Open a Wan LoRA file of any trainer's format, lazily, and hand out canonical modules.

``open_lora(path)`` checks the whole file up front from its header alone (format, pairs, ranks,
shapes, model size, Wan2.2 expert) and reads tensors only when a module is loaded: each tensor's
bytes are read straight into its buffer at the offset the header gives (one read per tensor, no
memory map, so memory stays near the size of what is loaded). Every problem with the file is a
:class:`~difflora_gui.errors.BadFileError` naming the file and the problem; pickles
(``.ckpt``/``.pt``) are recognised by their bytes or suffix and never unpickled.

A Wan2.2 A14B "combo" file (``transformer_1.``/``transformer_2.`` key prefixes) holds two experts:
its :meth:`LoraFile.part` views (:mod:`.expert_part`) hand out each expert's modules; the file's
own :meth:`~LoraFile.names`/:meth:`~LoraFile.load` refuse, so that no caller mixes the experts.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from difflora_gui.errors import BadFileError
from difflora_gui.lora import experts as lora_experts
from difflora_gui.lora import keys as lora_keys
from difflora_gui.lora.entries import (
    FORMAT_OF_NAMING,
    ModuleEntry,
    ModuleSet,
    collect_modules,
    describe_format,
)
from difflora_gui.lora.experts import EXPERTS, ExpertRole
from difflora_gui.lora.model import ModelInfo
from difflora_gui.lora.module_reader import ModuleReader
from difflora_gui.lora.safetensors_header import (
    DTYPES,
    MAX_HEADER_BYTES,
    PICKLE_SUFFIXES,
    SafetensorsHeader,
    TensorInfo,
    read_header,
)

if TYPE_CHECKING:
    import torch

    from difflora_gui.lora.expert_part import ExpertPart

__all__ = [
    "FORMAT_OF_NAMING",
    "MAX_HEADER_BYTES",
    "PICKLE_SUFFIXES",
    "LoraFile",
    "ModuleEntry",
    "SafetensorsHeader",
    "TensorInfo",
    "open_lora",
    "read_header",
]


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


def _split_by_expert(
    path: Path, items: list[lora_keys.ParsedKey]
) -> dict[str | None, list[lora_keys.ParsedKey]]:
    """Parsed keys by the expert their prefix names (None: no marker)."""
    groups: dict[str | None, list[lora_keys.ParsedKey]] = {}
    for item in items:
        groups.setdefault(item.expert, []).append(item)
    plain = groups.get(None)
    if plain and len(groups) > 1:
        # diffusers' pipeline names the high-noise expert "transformer" and the low-noise "transformer_2"
        if set(groups) == {None, "low"} and all(i.prefix == "transformer." for i in plain):
            groups["high"] = groups.pop(None)
        else:
            marked = next(i.key for e, g in groups.items() if e is not None for i in g)
            raise BadFileError(
                path,
                f"mixes keys with a per-expert prefix ({marked!r}) and keys without one ({plain[0].key!r}): "
                "a combo file keys every module transformer_1.… or transformer_2.…",
            )
    return groups


class LoraFile(ModuleReader):
    """An opened Wan LoRA (implements :class:`~difflora_gui.lora.model.LoraSource`).

    Use as a context manager, or call :meth:`close` (on Windows an open file cannot be replaced).
    Modules may be loaded from several threads at once. A combo file (both Wan2.2 experts) hands
    out its modules through :meth:`part` only.
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
        self._parts: dict[str, ExpertPart] = {}
        path = self.path

        items: list[lora_keys.ParsedKey] = []
        unknown: list[str] = []
        for key in header.tensors:
            item = lora_keys.parse_key(key)
            if item is None:
                unknown.append(key)
            else:
                items.append(item)
        if not items:
            raise _reject_non_wan(path, list(header.tensors))
        if unknown:
            family = lora_keys.detect_family(unknown)
            what = f" (they look like {family} keys)" if family else ""
            raise BadFileError(path, f"has keys that are not Wan LoRA tensors{what}: {_sample(unknown)}")

        groups = _split_by_expert(path, items)
        sets = {expert: collect_modules(path, group, header.tensors) for expert, group in groups.items()}
        prefix_experts = tuple(e for e in EXPERTS if e in sets)
        if len(prefix_experts) == 2:
            first = self._check_combo(sets["high"], sets["low"])
        else:
            first = next(iter(sets.values()))
        model = first.model
        self.expert_role: ExpertRole = lora_experts.resolve_role(
            path, self.metadata, variant=model.variant, task=model.task, prefix_experts=prefix_experts
        )
        if self.expert_role.role in EXPERTS:
            model = dataclasses.replace(model, expert=self.expert_role.role)
        elif self.expert_role.role == "combo":
            model = dataclasses.replace(model, expert="combo")
        self.model: ModelInfo = model
        self.format: str = first.format
        if len(prefix_experts) == 2:
            from difflora_gui.lora.expert_part import ExpertPart

            self._entries = {}
            self._parts = {e: ExpertPart(self, e, sets[e]) for e in EXPERTS}
            namings = Counter(sets["high"].naming_counts) + Counter(sets["low"].naming_counts)
            styles = Counter([*sets["high"].key_styles, *sets["low"].key_styles])
            prefixes = Counter([*sets["high"].prefixes, *sets["low"].prefixes])
            self.naming_counts = dict(namings)
            self.key_styles = sorted(styles)
            self.prefixes = sorted(prefixes)
            entries = [*sets["high"].entries.values(), *sets["low"].entries.values()]
            self.format_detail = describe_format(first.format, entries, namings, styles, prefixes)
        else:
            self._entries = first.entries
            self.naming_counts = first.naming_counts
            self.key_styles = first.key_styles
            self.prefixes = first.prefixes
            self.format_detail = first.format_detail
        self._check_layout()  # fail here, not on the first load

    def _check_combo(self, high: ModuleSet, low: ModuleSet) -> ModuleSet:
        """Both experts of a combo file must be for the same model, and that model must have experts."""
        a, b = high.model, low.model
        # block counts may differ (one expert trained on fewer blocks); ffn is known only with ffn modules
        if (a.variant, a.dim, a.task) != (b.variant, b.dim, b.task) or (
            high.model.ffn_dim and low.model.ffn_dim and high.model.ffn_dim != low.model.ffn_dim
        ):
            raise BadFileError(
                self.path,
                f"its high-noise expert (transformer_1 keys) is for {high.model.label} but its low-noise expert "
                f"(transformer_2 keys) is for {low.model.label}: the two experts of a combo file must match",
            )
        if high.model.variant in lora_experts.NO_EXPERT_VARIANTS or high.model.task == "i2v":
            raise BadFileError(
                self.path,
                f"has per-expert key prefixes (transformer_1/transformer_2) but is for {high.model.label}: "
                "only Wan2.2 A14B (14B) has two experts",
            )
        return high

    # --- Wan2.2 experts --------------------------------------------------------------------------

    @property
    def experts_in_file(self) -> tuple[str, ...]:
        """``("high", "low")`` for a combo file (both experts, read one at a time with :meth:`part`), else ``()``."""
        return tuple(self._parts)

    @property
    def is_combo(self) -> bool:
        return bool(self._parts)

    def part(self, expert: str) -> LoraFile | ExpertPart:
        """One expert's modules of a combo file (a LoraSource view); any other file is its own part."""
        if expert not in EXPERTS:
            raise ValueError(f"unknown expert {expert!r} (use 'high' or 'low')")
        return self._parts.get(expert, self)

    def _combo_error(self) -> BadFileError:
        return BadFileError(
            self.path,
            "holds both Wan2.2 A14B experts (transformer_1 keys: high-noise, transformer_2 keys: low-noise); "
            "read one expert at a time (part('high') / part('low'))",
        )

    def names(self) -> list[str]:
        if self._parts:
            raise self._combo_error()
        return super().names()

    def entry(self, name: str) -> ModuleEntry:
        if self._parts:
            raise self._combo_error()
        return super().entry(name)

    def __len__(self) -> int:
        if self._parts:
            return sum(len(p) for p in self._parts.values())
        return super().__len__()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # --- reading ---------------------------------------------------------------------------------

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
        count = info.numel * DTYPES[info.dtype_code][1]
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
