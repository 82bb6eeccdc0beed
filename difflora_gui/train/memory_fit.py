"""Will a Wan LoRA training fit the GPU? A rough estimate, for a warning before launch.

The estimate adds the DiT weights the GPU holds (bytes per weight: 2 for fp16/bf16, 1 for fp8,
4 for float32; block swap keeps only the other blocks resident; Musubi's joint Wan2.2 mode also
holds the inactive expert unless it is offloaded), the activations of the training step (the
token count of one item times the model width, per block without gradient checkpointing; with
it, each block's bf16 input plus about two blocks' worth) and a fixed overhead (CUDA context, LoRA weights and optimizer state,
the allocator's slack). It is meant to tell "a 14B model in bf16 will not fit 24 GB" from "fits",
not to predict a peak to the gigabyte. Used by the Musubi backend; the built-in trainer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
#: assumed when no GPU is visible to this process (the common consumer card)
DEFAULT_GPU_GB = 24.0
#: parameters of one Wan DiT
PARAMS = {"1.3B": 1.42e9, "14B": 14.3e9}
WIDTH = {"1.3B": 1536, "14B": 5120}
BLOCKS = {"1.3B": 30, "14B": 40}
WEIGHT_BYTES = {"fp8": 1, "fp16": 2, "bf16": 2, "float32": 4}
#: activation bytes kept per token and unit of width by one block in bf16 (attention, the
#: feed-forward's wide hidden layer and their inputs for the backward pass; rough)
ACTIVATION_BYTES_PER_TOKEN_WIDTH = 36
OVERHEAD_GB = 2.5


@dataclass(frozen=True)
class MemoryEstimate:
    needed_gb: float
    available_gb: float
    weights_gb: float
    activations_gb: float
    gpu_known: bool

    @property
    def fits(self) -> bool:
        return self.needed_gb <= self.available_gb


def gpu_memory_gb(device: str = "auto") -> tuple[float, bool]:
    """(memory of the GPU torch sees — ``cuda:N`` or the first —, True), or (24 GB, False)."""
    try:
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":", 1)[1]) if str(device).startswith("cuda:") else 0
            return torch.cuda.get_device_properties(index).total_memory / GIB, True
    except Exception:  # no torch, no driver, a bad index: assume the common card
        pass
    return DEFAULT_GPU_GB, False


def tokens_per_item(width: int, height: int, frames: int = 1) -> int:
    """Transformer tokens of one item: VAE 8× in space, 4× in time (4N+1 frames), 2×2 patches."""
    latent_frames = (max(1, frames) - 1) // 4 + 1
    return (width // 16) * (height // 16) * latent_frames


def estimate(
    size: str,
    *,
    weight_dtype: str = "bf16",
    blocks_to_swap: int = 0,
    inactive_expert_on_gpu: bool = False,
    width: int = 336,
    height: int = 192,
    frames: int = 1,
    batch_size: int = 1,
    gradient_checkpointing: bool = True,
    device: str = "auto",
    available_gb: float | None = None,
) -> MemoryEstimate:
    """The GPU memory a LoRA training of a Wan ``size`` ("1.3B"/"14B") model needs, roughly."""
    blocks = BLOCKS[size]
    swap = max(0, min(int(blocks_to_swap), blocks - 1))
    weights = PARAMS[size] * WEIGHT_BYTES[weight_dtype] * (1 - 0.97 * swap / blocks)  # ~97 % is in blocks
    if inactive_expert_on_gpu:
        weights *= 2
    tokens = tokens_per_item(width, height, frames) * max(1, batch_size)
    per_block = tokens * WIDTH[size] * ACTIVATION_BYTES_PER_TOKEN_WIDTH
    if gradient_checkpointing:  # every block's input is kept, one block is recomputed at a time
        activations = per_block * 2 + tokens * WIDTH[size] * 2 * blocks
    else:
        activations = per_block * blocks
    if available_gb is None:
        available_gb, known = gpu_memory_gb(device)
    else:
        known = True
    return MemoryEstimate(
        needed_gb=(weights + activations) / GIB + OVERHEAD_GB,
        available_gb=float(available_gb),
        weights_gb=weights / GIB,
        activations_gb=activations / GIB,
        gpu_known=known,
    )
