"""A cheap picture of the latents while a render denoises: no VAE, one matrix product.

The latent channels map to RGB through a fixed linear projection, applied to the first latent
frame only and enlarged by the VAE's spatial factor by repeating pixels, so the picture has the
clip's size. Two layouts are known, told apart by their channel count: Wan2.1's VAE (16 channels,
8× spatial; Wan2.1 and Wan2.2 A14B) and Wan2.2's VAE (48 channels, 16× spatial; TI2V-5B). The
factors are the ones ComfyUI uses for its latent previews (``comfy/latent_formats.py``, classes
``Wan21`` and ``Wan22``, in comfyanonymous/ComfyUI and Comfy-Org/ComfyUI); they are fitted to the
normalised latents that a sampler denoises, which is also what diffusers' WanPipeline hands the
step callback (it un-normalises only before the VAE decode). Any other channel count gets no
preview. Qt-free, numpy only (a torch tensor is read through ``.detach().float().cpu()``).
"""

from __future__ import annotations

import numpy as np

#: (16, 3): latent channel → R, G, B (ComfyUI ``latent_formats.Wan21.latent_rgb_factors``)
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

#: (48, 3): the Wan2.2 VAE's latent channel → R, G, B (ComfyUI ``latent_formats.Wan22.latent_rgb_factors``)
WAN22_RGB_FACTORS = np.array(
    [
        [0.0119, 0.0103, 0.0046],
        [-0.1062, -0.0504, 0.0165],
        [0.0140, 0.0409, 0.0491],
        [-0.0813, -0.0677, 0.0607],
        [0.0656, 0.0851, 0.0808],
        [0.0264, 0.0463, 0.0912],
        [0.0295, 0.0326, 0.0590],
        [-0.0244, -0.0270, 0.0025],
        [0.0443, -0.0102, 0.0288],
        [-0.0465, -0.0090, -0.0205],
        [0.0359, 0.0236, 0.0082],
        [-0.0776, 0.0854, 0.1048],
        [0.0564, 0.0264, 0.0561],
        [0.0006, 0.0594, 0.0418],
        [-0.0319, -0.0542, -0.0637],
        [-0.0268, 0.0024, 0.0260],
        [0.0539, 0.0265, 0.0358],
        [-0.0359, -0.0312, -0.0287],
        [-0.0285, -0.1032, -0.1237],
        [0.1041, 0.0537, 0.0622],
        [-0.0086, -0.0374, -0.0051],
        [0.0390, 0.0670, 0.2863],
        [0.0069, 0.0144, 0.0082],
        [0.0006, -0.0167, 0.0079],
        [0.0313, -0.0574, -0.0232],
        [-0.1454, -0.0902, -0.0481],
        [0.0714, 0.0827, 0.0447],
        [-0.0304, -0.0574, -0.0196],
        [0.0401, 0.0384, 0.0204],
        [-0.0758, -0.0297, -0.0014],
        [0.0568, 0.1307, 0.1372],
        [-0.0055, -0.0310, -0.0380],
        [0.0239, -0.0305, 0.0325],
        [-0.0663, -0.0673, -0.0140],
        [-0.0416, -0.0047, -0.0023],
        [0.0166, 0.0112, -0.0093],
        [-0.0211, 0.0011, 0.0331],
        [0.1833, 0.1466, 0.2250],
        [-0.0368, 0.0370, 0.0295],
        [-0.3441, -0.3543, -0.2008],
        [-0.0479, -0.0489, -0.0420],
        [-0.0660, -0.0153, 0.0800],
        [-0.0101, 0.0068, 0.0156],
        [-0.0690, -0.0452, -0.0927],
        [-0.0145, 0.0041, 0.0015],
        [0.0421, 0.0451, 0.0373],
        [0.0504, -0.0483, -0.0356],
        [-0.0837, 0.0168, 0.0055],
    ],
    dtype=np.float32,
)
WAN22_RGB_BIAS = np.array([0.0317, -0.0878, -0.1388], dtype=np.float32)

#: latent channels → (factors, bias, the VAE's spatial factor)
LAYOUTS: dict[int, tuple[np.ndarray, np.ndarray, int]] = {
    16: (WAN21_RGB_FACTORS, WAN21_RGB_BIAS, 8),
    48: (WAN22_RGB_FACTORS, WAN22_RGB_BIAS, 16),
}


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


def latent_rgb(latents, *, upscale: int | None = None) -> np.ndarray | None:
    """The first latent frame as an ``(h·upscale, w·upscale, 3)`` uint8 RGB picture, or None when
    the channel count is neither Wan2.1's 16 nor Wan2.2's 48. ``upscale`` defaults to the
    layout's VAE factor (8 or 16), which gives the clip's own width and height."""
    frame = _first_frame(latents)
    layout = LAYOUTS.get(frame.shape[0]) if frame is not None else None
    if layout is None:
        return None
    factors, bias, factor = layout
    rgb = np.einsum("chw,cr->hwr", frame, factors) + bias
    rgb = np.nan_to_num((rgb + 1.0) * 0.5, nan=0.0).clip(0.0, 1.0)
    image = (rgb * 255.0 + 0.5).astype(np.uint8)
    upscale = factor if upscale is None else int(upscale)
    if upscale > 1:
        image = np.repeat(np.repeat(image, upscale, axis=0), upscale, axis=1)
    return np.ascontiguousarray(image)


def preview_every(total_steps: int, *, previews: int = 8) -> int:
    """Send a latent preview every this many steps (about ``previews`` per render, and the last)."""
    return max(1, round(int(total_steps) / max(1, previews)))
