"""The torch side of counterpart generation: one ``FluxKontextPipeline``, loaded once, one image a call.

:class:`KontextGenerator` loads a local diffusers-format folder (never the Hub), picks the device
and dtype (bfloat16 on CUDA, float32 on the CPU, unless told otherwise), offloads to the CPU when
the GPU is small, and :meth:`KontextGenerator.generate` turns one BGR image into its counterpart at
the same size (scaled to the working area, padded to the multiple, generated, cropped and scaled
back: see :mod:`difflora_gui.dataset.kontext`). The pipeline's ``callback_on_step_end`` reports each
step and is where a cancel stops the item. Imports torch and diffusers; the batch logic stays in
:mod:`difflora_gui.dataset.kontext`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from difflora_gui.errors import UserError

#: GPUs with less memory than this get ``enable_model_cpu_offload`` when offload is ``auto``
OFFLOAD_BELOW_GIB = 40.0
_DTYPES = {"bfloat16", "float16", "float32"}


def pick_device(device: str) -> str:
    """``auto`` → ``cuda:0`` when CUDA is there, else ``cpu``; ``cuda`` → ``cuda:0``; checked."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = "cuda:0"
    if device == "cpu":
        return device
    index = device.removeprefix("cuda:")
    if not (device.startswith("cuda:") and index.isdigit()):
        raise UserError(f"unknown device {device!r}: expected auto, cpu or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"device {device} asked for, but CUDA is not available here (use --device cpu)")
    if int(index) >= torch.cuda.device_count():
        raise UserError(
            f"device {device} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return device


def pick_dtype(dtype: str, device: str) -> str:
    if dtype in (None, "", "auto"):
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype {dtype!r}: expected auto, {', '.join(sorted(_DTYPES))}")
    return dtype


def _offload_mode(offload: str, device: str) -> str:
    if not device.startswith("cuda") or offload == "none":
        return "none"
    if offload in ("model", "sequential"):
        return offload
    import torch

    total = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    return "model" if total < OFFLOAD_BELOW_GIB else "none"


def _dtype_kwargs(torch_dtype) -> dict[str, Any]:
    """``dtype=`` for diffusers that has it (``torch_dtype`` is deprecated there), else ``torch_dtype=``."""
    from diffusers.utils import deprecation_utils

    if hasattr(deprecation_utils, "_resolve_dtype"):
        return {"dtype": torch_dtype}
    return {"torch_dtype": torch_dtype}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """diffusers' and transformers' own progress bars and warnings off for a while (the job reports
    progress itself; "CLIP truncated the prompt" is said once by :func:`clip_truncation_note`)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    saved = [
        (lib, lib.get_verbosity(), lib.is_progress_bar_enabled())
        for lib in (diffusers_logging, transformers_logging)
    ]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


class KontextGenerator:
    """A loaded ``FluxKontextPipeline`` on one device; :attr:`multiple` is its size step (16 for Flux)."""

    def __init__(
        self, folder: str | Path, *, device: str = "auto", dtype: str = "auto", offload: str = "auto"
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the Hub for anything
        import torch

        with quiet_libraries():
            from diffusers import FluxKontextPipeline

        self.device = pick_device(device)
        self.dtype_name = pick_dtype(dtype, self.device)
        torch_dtype = getattr(torch, self.dtype_name)
        try:
            with quiet_libraries():
                pipe = FluxKontextPipeline.from_pretrained(
                    str(folder), local_files_only=True, **_dtype_kwargs(torch_dtype)
                )
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"cannot load FluxKontextPipeline: {type(exc).__name__}: {first}", path=folder
            ) from None
        self.offload = _offload_mode(offload, self.device)
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=torch.device(self.device))
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=torch.device(self.device))
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.multiple = int(pipe.vae_scale_factor) * 2
        self._embeds: tuple[tuple[str, int], Any] | None = None

    def prompt_embeds(self, prompt: str, max_sequence_length: int):
        """``(prompt_embeds, pooled_prompt_embeds)``, encoded once per batch (the prompt is the same)."""
        key = (prompt, int(max_sequence_length))
        if self._embeds is None or self._embeds[0] != key:
            import torch

            with torch.inference_mode(), quiet_libraries():
                embeds, pooled, _ = self.pipe.encode_prompt(
                    prompt=prompt,
                    prompt_2=None,
                    device=self.pipe._execution_device,
                    max_sequence_length=int(max_sequence_length),
                )
            self._embeds = (key, (embeds, pooled))
        return self._embeds[1]

    def generate(
        self, image_bgr: np.ndarray, work, params, seed: int, on_step: Callable[[int], None]
    ) -> np.ndarray:
        """The counterpart of ``image_bgr`` (uint8 BGR) at its own size; ``on_step(n)`` after step n
        (it may raise ``JobCancelled``, which stops the pipeline mid-item)."""
        import torch
        from PIL import Image

        sw, sh = work.scaled
        pw, ph = work.padded
        if (image_bgr.shape[1], image_bgr.shape[0]) != (sw, sh):
            image_bgr = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        padded = pad_to(image_bgr, pw, ph)
        condition = Image.fromarray(cv2.cvtColor(padded, cv2.COLOR_BGR2RGB))

        def callback(pipe, step_index, timestep, callback_kwargs):
            on_step(step_index + 1)
            return callback_kwargs

        try:
            output = self._call(condition, params, seed, pw, ph, callback)
        except torch.OutOfMemoryError:
            raise UserError(
                f"out of GPU memory generating {pw}×{ph} on {self.device}: try --offload model (or "
                "sequential) or a smaller --max-area"
            ) from None
        rgb = np.clip(np.rint(np.asarray(output[0], dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        rgb = rgb[:sh, :sw]
        if (sw, sh) != (work.width, work.height):
            rgb = cv2.resize(rgb, (work.width, work.height), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _call(self, condition, params, seed: int, pw: int, ph: int, callback):
        import torch

        embeds, pooled = self.prompt_embeds(params.prompt, params.max_sequence_length)
        with torch.inference_mode(), quiet_libraries():
            return self.pipe(
                image=condition,
                prompt_embeds=embeds,
                pooled_prompt_embeds=pooled,
                height=ph,
                width=pw,
                max_area=pw * ph,  # the pipeline re-derives its size from this: keep it ours exactly
                _auto_resize=False,  # no snapping to Kontext's preferred sizes: the size is the source's
                num_inference_steps=params.steps,
                guidance_scale=params.guidance,
                max_sequence_length=params.max_sequence_length,
                generator=torch.Generator(device="cpu").manual_seed(int(seed)),
                output_type="np",
                callback_on_step_end=callback,
            ).images

    def clip_truncation_note(self, prompt: str) -> str:
        """A note when CLIP sees only the start of the instruction ('' otherwise); T5 reads it all."""
        tokenizer = getattr(self.pipe, "tokenizer", None)
        if tokenizer is None:
            return ""
        limit = int(getattr(self.pipe, "tokenizer_max_length", 77))
        with quiet_libraries():
            count = len(tokenizer(prompt, truncation=False).input_ids)
        if count <= limit:
            return ""
        return (
            f"the instruction is {count} CLIP tokens: CLIP reads the first {limit}, T5 all of it "
            "(as in every Flux pipeline)"
        )

    def close(self) -> None:
        self.pipe = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def pad_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` padded at the right and bottom to ``width`` × ``height`` with its mirrored edge."""
    h, w = image.shape[:2]
    right, bottom = width - w, height - h
    if right == 0 and bottom == 0:
        return image
    mirror = right < w and bottom < h  # a mirror needs that many pixels to reflect
    border = cv2.BORDER_REFLECT_101 if mirror else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(image, 0, bottom, 0, right, border)


def write_png(path: Path, image_bgr: np.ndarray) -> Path:
    """Encode and write ``path`` through a temporary file and one rename (replaces a damaged file)."""
    from difflora_gui.fileio import atomic_write_bytes

    ok, data = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError(f"PNG encoding failed for {path}")
    return atomic_write_bytes(path, data.tobytes(), overwrite=True)
