"""One expert of a Wan2.2 A14B combo file, as a LoraSource of its own.

ai-toolkit's combo file (``split_multistage_loras: false``) keys the high-noise expert
``diffusion_model.transformer_1.…`` and the low-noise one ``diffusion_model.transformer_2.…``. An
:class:`ExpertPart` shows one of them with the API of :class:`~difflora_gui.lora.reader.LoraFile`:
canonical names (``blocks.0.self_attn.q``, no expert prefix), shapes, ranks, alphas and loads, read
through the file's own handle (so loads are thread-safe as the file's are).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from difflora_gui.lora.entries import ModuleSet
from difflora_gui.lora.experts import EXPERT_TITLES, ExpertRole
from difflora_gui.lora.module_reader import ModuleReader

if TYPE_CHECKING:
    import torch

    from difflora_gui.lora.reader import LoraFile
    from difflora_gui.lora.safetensors_header import TensorInfo

_MARKERS = {"high": "transformer_1", "low": "transformer_2"}


class ExpertPart(ModuleReader):
    """The modules of one expert (``"high"``/``"low"``) of a combo file."""

    thread_safe_loads = True

    def __init__(self, file: LoraFile, expert: str, modules: ModuleSet):
        self.file = file
        self.expert = expert
        self.path = file.path
        self.file_size = file.file_size
        self.metadata = file.metadata
        self._entries = modules.entries
        self._alphas = None
        self.model = dataclasses.replace(modules.model, expert=expert)
        self.format = modules.format
        self.format_detail = modules.format_detail
        self.naming_counts = modules.naming_counts
        self.key_styles = modules.key_styles
        self.prefixes = modules.prefixes
        self.expert_role = ExpertRole(
            expert, "prefix", f"from the key prefix {_MARKERS[expert]} of a combo file holding both experts"
        )

    @property
    def experts_in_file(self) -> tuple[str, ...]:
        return ()

    @property
    def is_combo(self) -> bool:
        return False

    @property
    def title(self) -> str:
        """``a.safetensors (high-noise expert)``: how messages name this part."""
        return f"{self.path.name} ({EXPERT_TITLES[self.expert]})"

    def part(self, expert: str) -> ModuleReader:
        """This part for its own expert, the file's other part for the other."""
        return self if expert == self.expert else self.file.part(expert)

    def _read(self, key: str, name: str, *, check_finite: bool = True) -> torch.Tensor:
        return self.file._read(key, name, check_finite=check_finite)

    @property
    def tensor_infos(self) -> dict[str, TensorInfo]:
        keys = {k for entry in self._entries.values() for k in entry.keys.values()}
        return {k: v for k, v in self.file.tensor_infos.items() if k in keys}

    def close(self) -> None:
        """Closes the file's handle (a later load opens it again)."""
        self.file.close()

    def __enter__(self) -> ExpertPart:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ExpertPart {self.title}: {self.model.label}, {self.format}, {len(self)} modules>"
