"""The canonical form every LoRA is read into, whatever trainer wrote it.

Module names are the original Wan names (``blocks.3.self_attn.q``, ``blocks.0.cross_attn.k_img``,
``blocks.7.ffn.0``; outside the blocks ``head.head``, ``text_embedding.0`` ...). Per module the
weight change is::

    ΔW = scale · up @ down  (+ dense)        ΔW has shape (out_features, in_features)

with ``down`` r×in, ``up`` out×r and ``scale`` = alpha/r (1.0 when the file has no alpha).
``dense`` carries modules that are not a plain low-rank pair (``.diff`` full-weight deltas,
LoHa, LoKr) so that nothing is dropped silently; ``bias`` carries ``.diff_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import torch


@dataclass
class LoraModule:
    """One module's weight change in canonical form (tensors as stored, not yet upcast)."""

    name: str
    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    scale: float = 1.0
    dense: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    kind: str = "lora"  # lora | diff | loha | lokr
    alpha: float | None = None  # as stored in the file (None: absent)

    @property
    def rank(self) -> int:
        return 0 if self.down is None else int(self.down.shape[0])

    @property
    def is_low_rank(self) -> bool:
        """True when ΔW is exactly ``scale·up@down`` (the merge can stay factored)."""
        return self.dense is None and self.down is not None and self.up is not None

    @property
    def shape(self) -> tuple[int, ...]:
        if self.dense is not None:
            return tuple(self.dense.shape)
        if self.up is not None and self.down is not None:
            return (int(self.up.shape[0]), int(self.down.shape[1]))
        if self.bias is not None:
            return tuple(self.bias.shape)
        return ()

    def delta(self, dtype=None, device=None) -> torch.Tensor:
        """The dense ΔW (for tests, analysis of small modules and the dense merge path)."""
        import torch

        dtype = dtype or torch.float32
        result = None
        if self.down is not None and self.up is not None:
            up = self.up.to(device=device, dtype=dtype)
            down = self.down.to(device=device, dtype=dtype)
            result = (up @ down) * self.scale
        if self.dense is not None:
            dense = self.dense.to(device=device, dtype=dtype)
            result = dense if result is None else result + dense
        if result is None:
            raise ValueError(f"{self.name}: module has no weight change (bias only)")
        return result


@dataclass(frozen=True)
class ModelInfo:
    """What a LoRA was trained for, derived from its key names and shapes (and, for experts, its name)."""

    family: str  # "wan" (others are refused with a clear error)
    variant: str  # "1.3B", "14B", "5B" (Wan2.2 TI2V-5B) or "unknown" (a consistent Wan-like layout)
    task: str  # "t2v", "i2v" (has image cross-attention k_img/v_img) or "ti2v" (5B)
    num_blocks: int  # blocks of the model (30 / 40 / 30; for "unknown": highest block index + 1)
    dim: int  # hidden size (1536 / 5120 / 3072)
    ffn_dim: int | None = None  # 8960 / 13824 / 14336 when an ffn module is present
    #: the Wan2.2 A14B expert: "high"/"low" (one expert), "combo" (both, in one file) or None
    expert: str | None = None

    @property
    def label(self) -> str:
        """Short, for cards and one-line messages (:attr:`description` says more)."""
        if self.expert in ("high", "low"):
            return f"Wan2.2 A14B {self.expert}-noise expert"
        if self.expert == "combo":
            return "Wan2.2 A14B, both experts"
        if self.variant == "unknown":
            return f"unknown Wan-like ({self.task.upper()}, dim {self.dim}, {self.num_blocks} blocks)"
        if self.variant == "5B":
            return "Wan2.2 TI2V-5B"
        if self.task == "i2v":
            return f"Wan2.1 I2V {self.variant}"
        if self.variant == "14B":
            # Wan2.1 T2V-14B and both Wan2.2 A14B experts (T2V and I2V) share these keys and shapes
            return "Wan 14B T2V (2.1, or 2.2 A14B)"
        return f"Wan {self.variant} {self.task.upper()}"

    @property
    def description(self) -> str:
        """One sentence on what the shapes (and name) say and what they cannot say."""
        if self.variant == "unknown":
            return (
                f"a Wan-like layout of no released size ({self.task.upper()}, dim {self.dim}, "
                f"{self.num_blocks} blocks)"
            )
        if self.variant == "5B":
            return "Wan2.2 TI2V-5B (dim 3072, 30 blocks, ffn 14336)"
        if self.task == "i2v":
            return f"Wan2.1 I2V {self.variant} (image cross-attention k_img/v_img; Wan2.2 I2V has none)"
        if self.expert in ("high", "low"):
            return f"Wan2.2 A14B {self.expert}-noise expert (14B shapes; the expert comes from the file, not the shapes)"
        if self.expert == "combo":
            return "Wan2.2 A14B, both experts in one file (transformer_1 high-noise, transformer_2 low-noise)"
        if self.variant == "14B":
            return (
                "Wan 14B T2V (Wan2.1 T2V, or Wan2.2 A14B T2V/I2V): without image cross-attention "
                "(k_img/v_img) the keys and shapes cannot tell them apart"
            )
        return f"Wan2.1 {self.variant} {self.task.upper()}"


class LoraSource(Protocol):
    """An opened LoRA file, read lazily (module by module): memory stays near what is loaded.

    Opened files (:class:`~difflora_gui.lora.reader.LoraFile`) and a combo file's per-expert views
    (:class:`~difflora_gui.lora.expert_part.ExpertPart`) also have ``expert_role``
    (:class:`~difflora_gui.lora.experts.ExpertRole`), ``experts_in_file`` (``("high", "low")`` for a
    combo file, else ``()``) and ``part(expert)`` (a combo file's expert; any other source itself).
    """

    path: Path
    format: str
    model: ModelInfo
    metadata: dict[str, str]

    def names(self) -> list[str]:
        """Canonical module names, sorted by block then layer order."""

    def load(self, name: str) -> LoraModule:
        """Read one module's tensors (stored dtype)."""

    def shape(self, name: str) -> tuple[int, ...]:
        """(out, in) of the module's ΔW without reading tensors."""

    def close(self) -> None: ...
