"""Shared pieces of the preview resident/adapters tests: a tiny request, renders, files.

``write_original_dit`` writes a tiny transformer as a single-file DiT in the original Wan key names
(``blocks.0.self_attn.q.weight``, ``head.modulation``), which is what ``from_single_file`` converts
(diffusers' ``convert_wan_transformer_to_diffusers`` inverted).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from difflora_gui.lora import wan_layout
from difflora_gui.preview.request import LoraEntry, PreviewRequest

#: small enough for ~0.15 s a render on two cores; big enough that a LoRA visibly moves it
REQUEST = PreviewRequest(
    prompt="a cat dancing in the rain",
    negative_prompt="blurry",
    seed=3,
    width=48,
    height=32,
    frames=5,
    steps=3,
    guidance=4.0,
    flow_shift=3.0,
)


def render(resident, *entries: LoraEntry, request: PreviewRequest = REQUEST, on_step=None) -> np.ndarray:
    return resident.generate(request.replace(loras=tuple(entries)), on_step=on_step)


def entry(path, strength: float = 1.0, selector: str = "all", **kw) -> LoraEntry:
    return LoraEntry(file=str(path), strength=strength, selector=selector, **kw)


_BLOCK_TABLE = re.compile(r"^(blocks\.\d+\.)scale_shift_table$")


def original_key(key: str) -> str:
    """A diffusers WanTransformer3DModel state-dict key in the original Wan naming."""
    if key == "scale_shift_table":
        return "head.modulation"
    match = _BLOCK_TABLE.match(key)
    if match:
        return match.group(1) + "modulation"
    module, param = key.rsplit(".", 1)
    name = wan_layout.from_diffusers(module)
    assert name is not None, key
    return f"{name}.{param}"


def write_original_dit(transformer, path: Path) -> Path:
    from safetensors.torch import save_file

    state = {original_key(k): v.detach().contiguous() for k, v in transformer.state_dict().items()}
    save_file(state, str(path))
    return path


def latents_recorder():
    """An ``on_step`` that keeps a copy of the latents after every step."""
    steps: list[np.ndarray] = []

    def on_step(step, total, latents):
        steps.append(latents.detach().float().cpu().numpy().copy())

    return steps, on_step
