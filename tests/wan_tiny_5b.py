"""A tiny random Wan2.2 TI2V-5B-shaped model saved as a diffusers folder (tests; no download).

The layout of ``Wan-AI/Wan2.2-TI2V-5B-Diffusers`` at toy widths: ``model_index.json`` with
``expand_timesteps: true`` (a timestep per latent token), a ``WanTransformer3DModel`` with 48 input
and output channels, and the Wan2.2 VAE (``AutoencoderKLWan(z_dim=48, is_residual=True,
patch_size=2, scale_factor_spatial=16)``: 12 channels in and out after its 2×2 pixel patching), as
in diffusers' own ``Wan225BPipelineFastTests``. The text encoder, tokenizer and transformer widths
are the tiny Wan model's (:mod:`tests.wan_tiny`), so only what makes a 5B a 5B differs.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.lora.wan_layout import VARIANTS, WanVariant, tiny_transformer_config
from tests.wan_tiny import NUM_LAYERS, tiny_text_encoder

LATENT_CHANNELS = 48
#: the VAE's spatial factor times the transformer's 2×2 patch: the 5B renders multiples of 32
SIZE_MULTIPLE = 32


def tiny_ti2v_transformer(seed: int = 0, num_layers: int = NUM_LAYERS):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    config = tiny_transformer_config(num_layers=num_layers)
    config.update(in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS)
    return WanTransformer3DModel(**config)


def tiny_ti2v_vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    # base_dim 16 rather than diffusers' 3: the decoded clip then follows the latents closely
    # enough for a LoRA to move it visibly, and it decodes faster on the CPU
    return AutoencoderKLWan(
        base_dim=16,
        z_dim=LATENT_CHANNELS,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )


def tiny_ti2v_pipeline(seed: int = 0, *, num_layers: int = NUM_LAYERS):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    encoder, tokenizer = tiny_text_encoder(seed)
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        vae=tiny_ti2v_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=tiny_ti2v_transformer(seed, num_layers),
        expand_timesteps=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_ti2v(folder: str | Path, seed: int = 0, *, num_layers: int = NUM_LAYERS) -> Path:
    """Write a tiny random TI2V-5B-shaped diffusers folder to ``folder`` and return it."""
    folder = Path(folder)
    tiny_ti2v_pipeline(seed, num_layers=num_layers).save_pretrained(folder)
    return folder


def ti2v_lora_variant(num_layers: int = NUM_LAYERS) -> WanVariant:
    """The LoRA layout of :func:`tiny_ti2v_transformer` for ``make_wan_lora``: the tiny widths and
    the 5B's 48-channel head (``head.head`` is 48·2·2 = 192 wide), so a LoRA that reaches outside
    the blocks fits this model and no 16-channel one."""
    tiny = VARIANTS["tiny"]
    return WanVariant(
        "tiny-ti2v",
        num_blocks=num_layers,
        dim=tiny.dim,
        ffn_dim=tiny.ffn_dim,
        num_heads=tiny.num_heads,
        text_dim=tiny.text_dim,
        freq_dim=tiny.freq_dim,
        out_dim=LATENT_CHANNELS,
        tasks=("ti2v",),
        title="tiny TI2V-5B-shaped",
    )
