"""The Wan pipeline kept loaded between preview renders, with its LoRA stack as PEFT adapters.

:func:`get_resident` hands out one process-wide :class:`ResidentPipeline` per device: the same
model options (and unchanged files) reuse it, anything else releases that device's first and loads
the new one (a grid spread over two GPUs keeps a model loaded on each; a device lane runs one job
at a time, so a pipeline is never released while a render uses it). A render
(:meth:`ResidentPipeline.generate`) applies the request's LoRA stack through
:class:`~difflora_gui.preview.adapters.AdapterStack` — a new strength or block weight rewrites
per-module scales, a new file loads only that adapter — then runs diffusers' ``WanPipeline`` with a
fresh scheduler (:mod:`.samplers`), a seeded CPU generator (the same seed gives the same noise on
any device) and a per-step callback that reports progress and may cancel.

Dtype on the CPU: measured here (2 cores with AVX512-BF16/AMX), a Wan-VAE-sized conv3d takes
7.6 ms in bfloat16 against 101 ms in float32 and a 1536-wide Linear 4.6 against 24 ms, so bf16/fp16
are kept where oneDNN runs them natively and fall back to float32, with a log line, where it does not
(emulated bf16 conv3d is many times slower). The VAE always decodes in float32 (diffusers' Wan docs).
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.preview.adapters import AdapterStack, describe_stack
from difflora_gui.preview.model_files import ModelSettings, check_model, model_facts, size_problem
from difflora_gui.preview.request import LoraEntry, PreviewRequest
from difflora_gui.preview.samplers import scheduler_for

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_lock = threading.Lock()
#: device → its loaded pipeline
_residents: dict[str, ResidentPipeline] = {}


def compute_dtype(name: str, device: str) -> tuple[str, str]:
    """(torch dtype name, a reason when it differs from ``name``) for ``device``."""
    wanted = _TORCH_DTYPES[name]
    if not device.startswith("cpu") or name == "fp32":
        return wanted, ""
    import torch

    supported = {
        "bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported,
        "fp16": torch.ops.mkldnn._is_mkldnn_fp16_supported,
    }[name]
    try:
        native = bool(supported())
    except (AttributeError, RuntimeError):
        native = False
    if native:
        return wanted, ""
    return "float32", (
        f"{name} is emulated on this CPU (no AVX512-BF16/AMX): its conv3d and matmuls would be many "
        "times slower than float32, so the preview computes in float32"
    )


@contextlib.contextmanager
def _quiet_progress_bars():
    """No tqdm bars from diffusers/transformers while loading: the job reports its own progress."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = []
    for module in (diffusers_logging, transformers_logging):
        if module.is_progress_bar_enabled():
            module.disable_progress_bar()
            restore.append(module)
    try:
        yield
    finally:
        for module in restore:
            module.enable_progress_bar()


def _load_dit(path: str, folder: Path, subfolder: str, dtype):
    from diffusers import WanTransformer3DModel

    try:
        return WanTransformer3DModel.from_single_file(
            str(Path(path).expanduser()),
            config=str(folder),
            subfolder=subfolder,
            dtype=dtype,
            local_files_only=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: cannot load it as the Wan {subfolder} ({first})") from exc


def _load_component(what: str, folder: Path, load):
    try:
        return load()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{folder}: cannot load it as the Wan {what} ({first})") from exc


def _component_overrides(settings: ModelSettings, dtype) -> dict:
    """The VAE (float32, as the folder's own would be) and the text encoder (with its tokenizer
    when the folder holds one) from the folders set instead of the model folder's subfolders."""
    import torch

    extra = {}
    if settings.vae_dir:
        from diffusers import AutoencoderKLWan

        folder = settings.vae_folder
        extra["vae"] = _load_component(
            "VAE",
            folder,
            lambda: AutoencoderKLWan.from_pretrained(
                str(folder), torch_dtype=torch.float32, local_files_only=True
            ),
        )
    if settings.text_encoder_dir:
        from transformers import UMT5EncoderModel

        from difflora_gui.train.builtin.model_loading import load_tokenizer

        folder = settings.text_encoder_folder
        extra["text_encoder"] = _load_component(
            "text encoder (UMT5)",
            folder,
            lambda: UMT5EncoderModel.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True),
        )
        tokens = settings.tokenizer_folder
        if tokens == folder:
            extra["tokenizer"] = _load_component(
                "tokenizer", tokens, lambda: load_tokenizer(settings.folder, tokens)
            )
    return extra


class ResidentPipeline:
    """A loaded ``WanPipeline`` and its adapters; one render at a time (:attr:`lock`)."""

    #: how many pipelines were loaded from disk in this process
    loads = 0

    def __init__(self, settings: ModelSettings, *, log: Callable[[str], None] | None = None):
        self.settings = settings
        self.log: Callable[[str], None] = log or (lambda text: None)
        self.lock = threading.RLock()
        self.file_reads: Counter = Counter()
        check_model(settings)
        self.facts = model_facts(settings)
        self.fingerprint = settings.fingerprint()
        self._sizes_checked: dict[tuple[int, int], str | None] = {}
        self._prompt_cache: tuple[tuple, tuple] | None = None
        self.pipe = self._load()
        self.adapters = AdapterStack(
            self.pipe, two_experts=self.facts.two_experts, file_reads=self.file_reads, log=self._log
        )

    def _log(self, text: str) -> None:
        self.log(text)

    def _load(self):
        import torch
        from diffusers import WanPipeline

        settings = self.settings
        device = settings.device
        dtype_name, why = compute_dtype(settings.dtype, device)
        if why:
            self.log(why)
        dtype = getattr(torch, dtype_name)
        started = time.perf_counter()
        folder = settings.folder
        extra = {}
        if settings.dit_file:
            sub = "transformer_2" if self.facts.two_experts else "transformer"
            extra[sub] = _load_dit(settings.dit_file, folder, sub, dtype)
        if settings.dit_high_file:
            extra["transformer"] = _load_dit(settings.dit_high_file, folder, "transformer", dtype)
        extra.update(_component_overrides(settings, dtype))
        try:
            with _quiet_progress_bars():
                pipe = WanPipeline.from_pretrained(
                    str(folder),
                    dtype={"vae": torch.float32, "default": dtype},
                    local_files_only=True,
                    **extra,
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{folder}: cannot load the Wan pipeline ({first})") from exc
        pipe.set_progress_bar_config(disable=True)
        cuda = device.startswith("cuda")
        if settings.offload != "none" and not cuda:
            self.log(
                f"{settings.offload} offload moves weights between the GPU and RAM: on {device} it does nothing"
            )
        try:
            if settings.offload == "model" and cuda:
                pipe.enable_model_cpu_offload(device=device)
            elif settings.offload == "group" and cuda:
                pipe.enable_group_offload(
                    onload_device=torch.device(device),
                    offload_device=torch.device("cpu"),
                    offload_type="leaf_level",
                    use_stream=True,
                )
            else:
                pipe.to(device)
        except torch.cuda.OutOfMemoryError:
            del pipe
            _free_device_memory()
            raise UserError(
                f"{self.facts.label} does not fit in the memory of {device}: set Settings ▸ Preview "
                "offload to model (or group, the least memory)"
            ) from None
        if settings.vae_tiling:
            pipe.vae.enable_tiling()
        if settings.vae_slicing:
            pipe.vae.enable_slicing()
        ResidentPipeline.loads += 1
        self.log(
            f"{self.facts.label}: loaded in {time.perf_counter() - started:.1f} s ({dtype_name} on {device})"
        )
        return pipe

    # --- rendering -------------------------------------------------------------------------------

    def apply_loras(self, entries: Sequence[LoraEntry]) -> None:
        """Set the adapters to ``entries`` (loads only files not loaded yet; never re-reads one)."""
        with self.lock:
            self.adapters.apply(entries)

    def _embeds(self, request: PreviewRequest):
        """The prompt's text embeddings, kept for the next render of the same prompt."""
        cfg = request.guidance > 1.0
        key = (request.prompt, request.negative_prompt if cfg else None, cfg)
        if self._prompt_cache is not None and self._prompt_cache[0] == key:
            return self._prompt_cache[1]
        pipe = self.pipe
        positive, negative = pipe.encode_prompt(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt if cfg else None,
            do_classifier_free_guidance=cfg,
            num_videos_per_prompt=1,
            device=pipe._execution_device,
        )
        self._prompt_cache = (key, (positive, negative))
        return positive, negative

    def generate(self, request: PreviewRequest, *, on_step=None):
        """Render ``request``: float32 frames (F, H, W, 3) in [0, 1].

        ``on_step(step, total, latents)`` runs after each denoising step (step counts from 1); it
        may raise :class:`~difflora_gui.errors.JobCancelled`, which ends the render and leaves the
        pipeline ready for the next one. A size the model cannot render (TI2V-5B: not a multiple of
        32) is a :class:`UserError` before anything runs, where diffusers would crop it silently.
        """
        import numpy as np
        import torch

        with self.lock:
            size = (int(request.width), int(request.height))
            if size not in self._sizes_checked:
                self._sizes_checked[size] = size_problem(*size, self.settings)
            if self._sizes_checked[size]:
                raise UserError(self._sizes_checked[size])
            self.apply_loras(request.loras)
            pipe = self.pipe
            pipe.scheduler = scheduler_for(pipe, request)
            positive, negative = self._embeds(request)
            total = int(request.steps)

            def step_end(_pipe, index, _t, tensors):
                if on_step is not None:
                    on_step(index + 1, total, tensors["latents"])
                return {}

            extra = {"guidance_scale_2": float(request.guidance)} if self.facts.two_experts else {}
            self.log(
                f"render {request.width}×{request.height}, {request.frames} frames, {total} steps: "
                f"{describe_stack(request.loras)}"
            )
            finished = False
            try:
                output = pipe(
                    prompt_embeds=positive,
                    negative_prompt_embeds=negative,
                    height=int(request.height),
                    width=int(request.width),
                    num_frames=int(request.frames),
                    num_inference_steps=total,
                    guidance_scale=float(request.guidance),
                    generator=torch.Generator("cpu").manual_seed(int(request.seed)),
                    output_type="np",
                    callback_on_step_end=step_end,
                    **extra,
                )
                finished = True
            except torch.cuda.OutOfMemoryError:
                _free_device_memory()
                raise UserError(
                    f"out of GPU memory rendering {request.width}×{request.height}, {request.frames} frames: "
                    "lower the size or the frames, or set Settings ▸ Preview offload to model or group and "
                    "switch on VAE tiling"
                ) from None
            finally:
                pipe._current_timestep = None
                pipe._interrupt = False
                if not finished:
                    pipe.maybe_free_model_hooks()  # offloaded weights go back as after a whole render
            return np.ascontiguousarray(np.asarray(output.frames[0], dtype=np.float32))

    def release(self) -> None:
        with self.lock:
            self.adapters = None
            self.pipe = None
            self._prompt_cache = None


def _log_of(ctx) -> Callable[[str], None] | None:
    return getattr(ctx, "log", None) if ctx is not None else None


def get_resident(settings: ModelSettings, ctx=None) -> ResidentPipeline:
    """The process-wide pipeline for ``settings`` on its device: reused when the options and the
    files' sizes and times are unchanged, else that device's old one is released and the new one
    loaded."""
    settings = ModelSettings.from_json(settings)
    log = _log_of(ctx)
    device = str(settings.device)
    with _lock:
        current = _residents.get(device)
        if (
            current is not None
            and current.pipe is not None
            and current.settings == settings
            and current.fingerprint == settings.fingerprint()
        ):
            if log is not None:
                current.log = log
            return current
        _release_locked(device)
        status = getattr(ctx, "status", None) if ctx is not None else None
        if status is not None:
            status("loading the Wan model")
        _residents[device] = ResidentPipeline(settings, log=log)
        return _residents[device]


def _free_device_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _release_locked(device: str | None = None) -> None:
    """Release ``device``'s pipeline (None: every device's)."""
    devices = list(_residents) if device is None else [device]
    released = False
    for name in devices:
        current = _residents.pop(name, None)
        if current is not None:
            current.release()
            del current
            released = True
    if released:
        _free_device_memory()


def release_resident() -> None:
    """Drop the loaded pipelines and free their memory (the next render loads again)."""
    with _lock:
        _release_locked()
