"""A tiny random FLUX.1 Kontext pipeline built from configs, offline (tests only).

Real diffusers/transformers classes at toy sizes: ``FluxTransformer2DModel`` (1 double + 1 single
block), ``AutoencoderKL`` with four blocks (so the VAE factor is 8 and the size step 16, as in
the real model), a 2-layer ``CLIPTextModel`` and ``T5EncoderModel``, and their tokenizers built
in-process from a character vocabulary (no vocab files or Hub downloads). ``save_pretrained`` of
the result is a diffusers-format folder that ``FluxKontextPipeline.from_pretrained`` loads like the
real one (about 0.6 MB).
"""

from __future__ import annotations

import string
from pathlib import Path

_CHARS = string.ascii_lowercase + string.digits + ".,'!?-"


def tiny_kontext_pipeline(seed: int = 0):
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5Tokenizer,
    )

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _CHARS:
        vocab[char] = len(vocab)
        vocab[f"{char}</w>"] = len(vocab)
    clip_tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in _CHARS] + [(f"▁{c}", -1.5) for c in _CHARS]
    t5_tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)

    torch.manual_seed(seed)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    ).eval()
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=32,
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
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=8,  # 2 latent channels packed 2×2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,  # Kontext [dev] is guidance-distilled: the guidance is an input
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[4, 4, 4, 4],
        layers_per_block=1,
        latent_channels=2,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    return FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def save_tiny_kontext(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline to ``folder`` (diffusers format) and return it."""
    folder = Path(folder)
    tiny_kontext_pipeline(seed).save_pretrained(str(folder))
    return folder
