"""The demo's tiny random Wan model: a diffusers folder built from configs on this computer.

It has the layout of ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` (``model_index.json``, ``transformer/``,
``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), so the built-in trainer, the
diffusers preview backend and Settings ▸ Wan diffusers folder take it like a real model — but its
weights are random and it is about a megabyte: it trains in seconds on the CPU and renders
noise-like clips. It exists so every part of the app can be tried without a 30 GB download.

* The text encoder is a two-layer UMT5 (the architecture of Wan's T5) with ByT5's byte-level
  tokenizer, which needs no vocabulary file: built and loaded offline.
* The folder holds a ``README.txt`` saying what it is; its name says so too
  (:data:`MODEL_FOLDER_NAME`).

torch, diffusers and transformers are imported only when the model is built.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MODEL_FOLDER_NAME = "tiny-random-wan (demo)"
README_NAME = "README.txt"
LABEL = "DiffLoRA demo — tiny random Wan model, renders noise-like clips"
README_TEXT = f"""{LABEL}

This folder is a Wan2.1-style diffusers model with random weights, built on this computer by
DiffLoRA Studio for its demo project (no download). It has the layout of
Wan-AI/Wan2.1-T2V-1.3B-Diffusers but is tiny: it trains in seconds on the CPU and its previews
are noise-like clips, not pictures. Use it to try the app's steps (dataset checks, training,
merging, previews), never to judge a LoRA.

For real results point Settings ▸ Wan diffusers folder at a real Wan diffusers folder (for
example Wan-AI/Wan2.1-T2V-1.3B-Diffusers), and see "Configure real models" in the app's README
for the Wan files Musubi Tuner trains on, your Musubi Tuner checkout and ComfyUI servers.
"""

#: the components' sizes (small, but each a real Wan/UMT5 architecture)
TEXT_DIM = 32
TRANSFORMER_CONFIG = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": TEXT_DIM,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    # Wan's own table size: a smaller one fails at sides over 512 px (832 / 8 / 2 = 52 tokens)
    "rope_max_seq_len": 1024,
}
VAE_CONFIG = {
    "base_dim": 16,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
TEXT_ENCODER_CONFIG = {
    "d_model": TEXT_DIM,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
SCHEDULER_SHIFT = 3.0
#: what a complete folder holds (a build is reused only when all of it is there)
REQUIRED_FILES = (
    "model_index.json",
    "transformer/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
    README_NAME,
)
_WEIGHTS = ("transformer", "vae", "text_encoder")


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a whole tiny model (configs, weights and the README)."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in REQUIRED_FILES):
        return False
    return all(any((folder / sub).glob("*.safetensors")) for sub in _WEIGHTS)


def tiny_pipeline(seed: int = 0):
    """The random ``WanPipeline`` (CPU, float32) the folder is saved from."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    tokenizer = ByT5Tokenizer()
    torch.manual_seed(seed)
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), **TEXT_ENCODER_CONFIG)).eval()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**VAE_CONFIG)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**TRANSFORMER_CONFIG)
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=SCHEDULER_SHIFT),
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_model(folder: str | Path, *, seed: int = 0, ctx=None) -> Path:
    """Write the tiny model to ``folder`` (reused as it is when already complete); returns it.

    The model is saved into a temporary folder beside ``folder`` and renamed into place, so an
    interrupted build never leaves a half-written model that looks whole.
    """
    folder = Path(folder)
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    if ctx is not None:
        ctx.raise_if_cancelled()
    scratch = Path(tempfile.mkdtemp(prefix=".tiny-wan-", suffix=".tmp", dir=folder.parent))
    try:
        tiny_pipeline(seed).save_pretrained(scratch)
        (scratch / README_NAME).write_text(README_TEXT, encoding="utf-8")
        if ctx is not None:
            ctx.raise_if_cancelled()
        if folder.exists():  # an incomplete earlier build (never a complete one: see above)
            shutil.rmtree(folder)
        os.replace(scratch, folder)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder
