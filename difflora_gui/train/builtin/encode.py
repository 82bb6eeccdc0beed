"""Encoding once, before training: VAE latents of every clip and the T5 embedding of every caption.

Latents are normalised as diffusers' ``WanPipeline`` does (``(z − latents_mean) / latents_std`` of
the VAE's config) from the encoder's mode (deterministic). Captions are embedded like
``WanPipeline._get_t5_prompt_embeds``: tokens up to 512, the hidden states cut at the prompt's
length (zero-padded back to 512 when training). With ``latent_cache`` the results are kept in the
output folder's ``.builtin-cache/`` under a hash of what they depend on (the file's path, size and
time, the bucket, the frames, the VAE or text encoder files), written atomically; a resume or a
second run of the same set reads them instead of encoding again. The VAE and text encoder are
freed afterwards.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from difflora_gui.fileio import atomic_output
from difflora_gui.train.builtin.data import Clip, clip_pixels

CACHE_DIR = ".builtin-cache"
TEXT_LENGTH = 512  # Wan's text_len: the embedding is zero-padded to it


def _stat_key(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _component_key(folder: Path) -> list:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:32]


class TensorCache:
    """safetensors files in ``folder`` keyed by a hash; ``folder=None`` keeps nothing."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str):
        if self.folder is None:
            return None
        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            return load_file(path)["tensor"]
        except Exception:  # a damaged cache file is re-encoded, never trusted
            return None

    def put(self, key: str, tensor) -> None:
        if self.folder is None:
            return
        from safetensors.torch import save_file

        path = self.folder / f"{key}.safetensors"
        try:
            with atomic_output(path, overwrite=True) as tmp:
                save_file({"tensor": tensor.detach().to("cpu").contiguous()}, str(tmp))
        except OSError:
            # the cache only saves time: a full disk, or the other run of a pair writing the same
            # key at once (Windows refuses to replace an open file), must not stop the training
            pass


def encode_latents(
    model_dir: Path,
    clips: list[Clip],
    resolution: Any,
    *,
    device: str,
    cache: TensorCache,
    check_cancel: Callable[[], None],
    report: Callable[[int, int], None],
    vae_dir: str | Path | None = None,
) -> dict[str, Any]:
    """``{clip key path: latent (16, F', H', W') float32 on the CPU}``, each clip encoded once;
    the VAE is ``vae_dir`` when set, else the model folder's ``vae/``."""
    import torch

    from difflora_gui.train.builtin.model_loading import component_dir, load_vae

    vae_key = _component_key(component_dir(model_dir, "vae", vae_dir))
    out: dict[str, Any] = {}
    todo = []
    for clip in clips:
        key = _digest(
            {"clip": _stat_key(clip.path), "frames": clip.frames, "res": str(resolution), "vae": vae_key}
        )
        cached = cache.get(key)
        if cached is not None:
            out[clip_id(clip)] = cached
        else:
            todo.append((clip, key))
    if not todo:
        return out
    vae = load_vae(model_dir, vae_dir).to(device)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(-1, 1, 1, 1)
    try:
        for done, (clip, key) in enumerate(todo):
            check_cancel()
            pixels, _bucket = clip_pixels(clip, resolution)
            video = torch.from_numpy(pixels)[None].to(device)
            with torch.no_grad():
                latent = vae.encode(video).latent_dist.mode()[0].float().cpu()
            latent = (latent - mean) / std
            cache.put(key, latent)
            out[clip_id(clip)] = latent
            report(done + 1, len(todo))
    finally:
        del vae
        _free(device)
    return out


def clip_id(clip: Clip) -> str:
    return f"{clip.path}|{clip.frames}"


def encode_captions(
    model_dir: Path,
    captions: list[str],
    *,
    device: str,
    cache: TensorCache,
    check_cancel: Callable[[], None],
    text_encoder_dir: str | Path | None = None,
) -> dict[str, Any]:
    """``{caption: embedding (length, dim) float32 on the CPU}``, each distinct caption once; the
    text encoder is ``text_encoder_dir`` when set, else the model folder's ``text_encoder/``."""
    import torch

    from difflora_gui.train.builtin.model_loading import component_dir, load_text_encoder

    # keyed on the files actually read: another text encoder folder must not reuse these embeddings
    te_key = _component_key(component_dir(model_dir, "text_encoder", text_encoder_dir))
    out: dict[str, Any] = {}
    todo = []
    for caption in dict.fromkeys(captions):
        key = _digest({"caption": caption, "text_encoder": te_key, "len": TEXT_LENGTH})
        cached = cache.get(key)
        if cached is not None:
            out[caption] = cached
        else:
            todo.append((caption, key))
    if not todo:
        return out
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    tokenizer, encoder = load_text_encoder(model_dir, dtype=dtype, text_encoder_dir=text_encoder_dir)
    encoder = encoder.to(device)
    try:
        for caption, key in todo:
            check_cancel()
            tokens = tokenizer(
                [prompt_clean(caption)],
                padding="max_length",
                max_length=TEXT_LENGTH,
                truncation=True,
                add_special_tokens=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            length = int(tokens.attention_mask.gt(0).sum())
            with torch.no_grad():
                hidden = encoder(
                    tokens.input_ids.to(device), tokens.attention_mask.to(device)
                ).last_hidden_state
            embedding = hidden[0, :length].float().cpu()
            cache.put(key, embedding)
            out[caption] = embedding
    finally:
        del encoder
        _free(device)
    return out


def padded(embedding, length: int = TEXT_LENGTH):
    """(length, dim): the embedding followed by zeros, as WanPipeline feeds it."""
    import torch

    pad = embedding.new_zeros(length - embedding.shape[0], embedding.shape[1])
    return torch.cat([embedding[:length], pad]) if embedding.shape[0] < length else embedding[:length]


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
