"""Module access shared by an opened LoRA file and its per-expert parts (the LoraSource API).

A subclass holds ``path``, ``_entries`` (canonical name → :class:`~.entries.ModuleEntry`) and
``_alphas`` (None until first asked), and implements ``_read(key, name, check_finite=...)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from difflora_gui.errors import BadFileError
from difflora_gui.lora.entries import LOHA, ModuleEntry
from difflora_gui.lora.model import LoraModule

if TYPE_CHECKING:
    import torch


class ModuleReader(ABC):
    """names/entry/shape/rank/kind/dtype/alpha/scale/load over ``_entries``; loads may run in threads."""

    path: Path
    _entries: dict[str, ModuleEntry]
    _alphas: dict[str, float | None] | None = None

    @abstractmethod
    def _read(self, key: str, name: str, *, check_finite: bool = True) -> torch.Tensor:
        """One tensor's bytes as a tensor (the file reads at its offset; a part through its file)."""

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

            w1a, w1b, w2a, w2b = (read(r).to(torch.float32) for r in LOHA)
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
