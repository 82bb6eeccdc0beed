"""A tiny random Wan model saved as a diffusers folder, loaded like a real one (tests and benches).

``save_tiny_wan(folder)`` writes ``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``
(a tiny UMT5 built from a config), ``tokenizer/`` (ByT5: byte-level, needs no vocabulary file) and
``scheduler/``: the layout of ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``. ``two_experts=True`` adds
``transformer_2`` and ``boundary_ratio`` like Wan2.2 A14B. Everything is built offline from configs.
"""

from __future__ import annotations

from pathlib import Path

TEXT_DIM = 32
NUM_LAYERS = 2


def tiny_transformer(seed: int = 0, num_layers: int = NUM_LAYERS):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def tiny_vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    # base_dim=16: the decoded video depends on the latents enough to tell settings apart
    return AutoencoderKLWan(
        base_dim=16,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def tiny_text_encoder(seed: int = 0):
    import torch
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    tokenizer = ByT5Tokenizer()
    torch.manual_seed(seed)
    encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()
    return encoder, tokenizer


def tiny_pipeline(seed: int = 0, *, two_experts: bool = False, num_layers: int = NUM_LAYERS):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    encoder, tokenizer = tiny_text_encoder(seed)
    extra = {}
    if two_experts:
        extra = {"transformer_2": tiny_transformer(seed + 1, num_layers), "boundary_ratio": 0.875}
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        vae=tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=tiny_transformer(seed, num_layers),
        **extra,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_wan(
    folder: str | Path, seed: int = 0, *, two_experts: bool = False, num_layers: int = NUM_LAYERS
) -> Path:
    """Write a tiny random Wan diffusers folder to ``folder`` and return it."""
    folder = Path(folder)
    tiny_pipeline(seed, two_experts=two_experts, num_layers=num_layers).save_pretrained(folder)
    return folder


def write_images(
    folder: str | Path,
    names: list[str],
    *,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
    pattern: bool = False,
) -> Path:
    """PNG images ``<name>.png`` of smooth random colour fields; ``pattern=True`` plants a bright
    checker square in the top-left quarter (the "concept" of a planted-pattern pair)."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for index, name in enumerate(names):
        rng = np.random.default_rng(seed * 1000 + index)
        base = rng.uniform(0, 255, size=(height // 8 + 1, width // 8 + 1, 3))
        image = np.kron(base, np.ones((8, 8, 1)))[:height, :width]
        if pattern:
            checker = (np.indices((height // 2, width // 2)).sum(axis=0) // 4) % 2
            image[: height // 2, : width // 2] = np.where(checker[..., None] == 1, 255.0, 0.0)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{name}.png")
    return folder
