"""A cheap picture of the latents while a render denoises: no VAE, one matrix product.

Wan's 16 latent channels map to RGB through a fixed linear projection (the factors ComfyUI uses
for its Wan 2.1 latent previews; they are fitted to the normalised latents the pipeline denoises),
applied to the first latent frame only and enlarged 8× (the VAE's spatial factor) by repeating
pixels. Other latent layouts (TI2V-5B's 48 channels) get no preview. Qt-free, numpy only
(a torch tensor is read through ``.detach().float().cpu()``).
"""

from __future__ import annotations

import numpy as np

#: (16, 3): latent channel → R, G, B
WAN21_RGB_FACTORS = np.array(
    [
        [-0.1299, -0.1692, 0.2932],
        [0.0671, 0.0406, 0.0442],
        [0.3568, 0.2548, 0.1747],
        [0.0372, 0.2344, 0.1420],
        [0.0313, 0.0189, -0.0328],
        [0.0296, -0.0956, -0.0665],
        [-0.3477, -0.4059, -0.2925],
        [0.0166, 0.1902, 0.1975],
        [-0.0412, 0.0267, -0.1364],
        [-0.1293, 0.0740, 0.1636],
        [0.0680, 0.3019, 0.1128],
        [0.0032, 0.0581, 0.0639],
        [-0.1251, 0.0927, 0.1699],
        [0.0060, -0.0633, 0.0005],
        [0.3477, 0.2275, 0.2950],
        [0.1984, 0.0913, 0.1861],
    ],
    dtype=np.float32,
)
WAN21_RGB_BIAS = np.array([-0.1835, -0.0868, -0.3360], dtype=np.float32)
UPSCALE = 8


def _first_frame(latents) -> np.ndarray | None:
    """``(C, h, w)`` float32 of the first latent frame of ``(B, C, F, h, w)`` or ``(C, F, h, w)``."""
    shape = tuple(getattr(latents, "shape", ()))
    if len(shape) == 5:
        frame = latents[0, :, 0]
    elif len(shape) == 4:
        frame = latents[:, 0]
    else:
        return None
    if hasattr(frame, "detach"):
        frame = frame.detach().float().cpu().numpy()
    return np.asarray(frame, dtype=np.float32)


def latent_rgb(latents, *, upscale: int = UPSCALE) -> np.ndarray | None:
    """The first latent frame as an ``(h·upscale, w·upscale, 3)`` uint8 RGB picture, or None when
    the latents are not Wan 2.1's 16-channel layout."""
    frame = _first_frame(latents)
    if frame is None or frame.shape[0] != WAN21_RGB_FACTORS.shape[0]:
        return None
    rgb = np.einsum("chw,cr->hwr", frame, WAN21_RGB_FACTORS) + WAN21_RGB_BIAS
    rgb = np.nan_to_num((rgb + 1.0) * 0.5, nan=0.0).clip(0.0, 1.0)
    image = (rgb * 255.0 + 0.5).astype(np.uint8)
    if upscale > 1:
        image = np.repeat(np.repeat(image, upscale, axis=0), upscale, axis=1)
    return np.ascontiguousarray(image)


def preview_every(total_steps: int, *, previews: int = 8) -> int:
    """Send a latent preview every this many steps (about ``previews`` per render, and the last)."""
    return max(1, round(int(total_steps) / max(1, previews)))
