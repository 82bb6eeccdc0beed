"""A synthetic pair of component LoRAs that behaves like a real differential pair (Qt-free).

LoRA A = shared content + a concept; LoRA B = the same shared content (slightly perturbed) + its
own small, unrelated details. Their difference is (nearly) the concept, which lives only in
``concept_blocks`` × ``concept_groups``; elsewhere A and B (nearly) cancel. The screenshot script
and the workbench tests use it to show and check that the plots find where the concept is.
Values are seeded; factors only (no dense matrices). torch is imported when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from difflora_gui.lora import wan_layout
from difflora_gui.lora.synthetic import module_names

#: trainer metadata in the style Musubi Tuner writes (kohya ``ss_*`` keys), for the input cards
DEMO_TRAINING = {
    "ss_network_module": "networks.lora_wan",
    "ss_optimizer": "Lion",
    "ss_learning_rate": "2e-05",
    "ss_lr_scheduler": "constant_with_warmup",
    "ss_max_train_steps": "5000",
    "ss_resolution": "(192, 192)",
}


def make_demo_pair(
    path_a: str | Path,
    path_b: str | Path,
    *,
    variant: str = "tiny",
    rank: int = 8,
    select: str = "attn",
    concept_blocks: Iterable[int] = (1,),
    concept_groups: Iterable[str] = ("cross_attn",),
    concept_strength: float = 1.0,
    background_strength: float = 0.08,
    noise: float = 0.02,
    seed: int = 0,
    format: str = "comfy",
    metadata_a: Mapping[str, str] | None = None,
    metadata_b: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write LoRA A and LoRA B (same rank, alpha = rank); returns their paths."""
    import torch

    from difflora_gui.lora.model import LoraModule
    from difflora_gui.lora.writer import write_lora

    layout = wan_layout.get_variant(variant)
    concept_blocks = set(concept_blocks)
    concept_groups = set(concept_groups)
    concept_rank = max(1, rank // 4)
    shared_rank = max(1, rank - concept_rank)
    generator = torch.Generator().manual_seed(int(seed))
    mods_a, mods_b = [], []

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    for name in module_names(layout, select=select):
        out_dim, in_dim = layout.shape(name)
        shared_up, shared_down = randn(out_dim, shared_rank) * 0.05, randn(shared_rank, in_dim) / in_dim**0.5
        in_concept = (
            wan_layout.block_index(name) in concept_blocks and wan_layout.layer_group(name) in concept_groups
        )
        strength = concept_strength if in_concept else background_strength
        concept_up = randn(out_dim, concept_rank) * 0.05 * strength
        concept_down = randn(concept_rank, in_dim) / in_dim**0.5
        detail_up = randn(out_dim, concept_rank) * 0.05 * background_strength
        detail_down = randn(concept_rank, in_dim) / in_dim**0.5
        r = shared_rank + concept_rank
        mods_a.append(
            LoraModule(
                name=name,
                up=torch.cat([shared_up, concept_up], 1),
                down=torch.cat([shared_down, concept_down]),
                scale=1.0,
                alpha=float(r),
            )
        )
        mods_b.append(
            LoraModule(
                name=name,
                up=torch.cat([shared_up + randn(out_dim, shared_rank) * 0.05 * noise, detail_up], 1),
                down=torch.cat([shared_down, detail_down]),
                scale=1.0,
                alpha=float(r),
            )
        )
    for path, modules, extra in ((path_a, mods_a, metadata_a), (path_b, mods_b, metadata_b)):
        metadata = {**DEMO_TRAINING, "ss_network_dim": str(rank), "ss_network_alpha": str(rank)}
        metadata.update(extra or {})
        write_lora(path, modules, format=format, metadata=metadata, warn=lambda _text: None)
    return Path(path_a), Path(path_b)
