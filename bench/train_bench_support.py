"""What the training benches share: the bare PEFT loop, its own encoding, the timed job context.

The **bare loop** is the reference of ``bench/train_bench.py`` and ``bench/gpu_train_bench.py``:
the least code that trains the same LoRA on the same model with Wan's rectified-flow objective
(x_t = (1 − t)·x0 + t·ε, target ε − x0, timestep t·1000, MSE; shifted-sigmoid timesteps), the
same optimizer, schedule and gradient clipping, written straight against diffusers + PEFT, with
no events, no checkpoints and no per-step seeding. It encodes its latents and the empty-prompt
T5 embedding itself (before the clock starts), as the pipeline does, so it shares no code with
the built-in trainer beyond diffusers, PEFT and the optimizers' packages.

The **timed context** is a :class:`~difflora_gui.jobs.recording.RecordingContext` with an event
log attached (what the scheduler attaches in a real run) that stamps wall and CPU time at every
``step N/M`` progress report: the end of each training step.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from difflora_gui.jobs.recording import RecordingContext  # noqa: E402

BUILTIN_JOB = "difflora_gui.train.builtin.job:run_builtin"
TEXT_LENGTH = 512  # Wan's text_len: the prompt embedding is zero-padded to it
#: the block Linear layers the built-in trainer's ``targets = "all"`` selects (diffusers names)
BLOCK_LINEAR_RE = re.compile(
    r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0|add_k_proj|add_v_proj)|blocks\.\d+\.ffn\.net\.(0\.proj|2)"
)
_STEP_TEXT_RE = re.compile(r"step (\d+)\s*/")


def machine_note() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    import torch

    return (
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min)"
    )


# --- data -------------------------------------------------------------------------------------


def write_pair_dataset(root: Path, pairs: int, size: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    """Set A (each image with the planted checker in its top-left quarter) and set B (the same
    images without it): ``wan_tiny.write_images`` with the same seed and names."""
    from wan_tiny import write_images

    names = [f"pair {index:02d}" for index in range(pairs)]  # spaces in names, as users have
    a_dir = write_images(root / "set A", names, size=size, seed=seed, pattern=True)
    b_dir = write_images(root / "set B", names, size=size, seed=seed, pattern=False)
    return a_dir, b_dir


def image_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def encode_images(model_dir: Path, paths: list[Path], device: str = "cpu") -> list:
    """Normalised VAE latents (16, 1, H/8, W/8) of images already at their bucket size, as
    ``WanPipeline`` normalises them: (mode of the encoder − latents_mean) / latents_std."""
    import numpy as np
    import torch
    from diffusers import AutoencoderKLWan
    from PIL import Image

    vae = AutoencoderKLWan.from_pretrained(model_dir, subfolder="vae", torch_dtype=torch.float32)
    vae = vae.to(device).eval().requires_grad_(False)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(-1, 1, 1, 1)
    out = []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
        if rgb.shape[0] % 16 or rgb.shape[1] % 16:
            raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is not a bucket size (multiples of 16)")
        pixels = torch.from_numpy(rgb).permute(2, 0, 1)[:, None][None].to(device)  # 1, 3, 1, H, W
        with torch.no_grad():
            latent = vae.encode(pixels).latent_dist.mode()[0].float().cpu()
        out.append((latent - mean) / std)
    del vae
    return out


def empty_prompt_embedding(model_dir: Path, device: str = "cpu"):
    """The T5 embedding of the empty caption, zero-padded to 512 tokens: (512, text_dim) float32."""
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    encoder = UMT5EncoderModel.from_pretrained(model_dir / "text_encoder").to(device).eval()
    tokens = tokenizer(
        [""],
        padding="max_length",
        max_length=TEXT_LENGTH,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    length = int(tokens.attention_mask.gt(0).sum())
    with torch.no_grad():
        hidden = encoder(tokens.input_ids.to(device), tokens.attention_mask.to(device)).last_hidden_state
    embedding = hidden[0, :length].float().cpu()
    del encoder
    return torch.cat([embedding, embedding.new_zeros(TEXT_LENGTH - length, embedding.shape[1])])


# --- the bare loop ----------------------------------------------------------------------------


def block_linear_targets(transformer) -> list[str]:
    import torch

    return [
        name
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and BLOCK_LINEAR_RE.fullmatch(name)
    ]


def load_transformer(model_dir: Path, dtype: str = "float32"):
    import torch
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(
        model_dir, subfolder="transformer", torch_dtype=getattr(torch, dtype)
    )
    return model.requires_grad_(False)


def add_lora(transformer, rank: int, alpha: float, seed: int = 0) -> list:
    """PEFT LoRA on every block Linear (Kaiming down, zero up); the trainable params in float32."""
    import torch
    from peft import LoraConfig

    torch.manual_seed(seed)
    config = LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha),
        target_modules=block_linear_targets(transformer),
        init_lora_weights=True,
        lora_dropout=0.0,
    )
    transformer.add_adapter(config)
    params = []
    for name, param in transformer.named_parameters():
        if "lora_" in name:
            param.data = param.data.float()
            param.requires_grad_(True)
            params.append(param)
    return params


def make_optimizer(name: str, params, lr: float):
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "lion":
        from lion_pytorch import Lion

        return Lion(params, lr=lr)
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, lr=lr)
    raise ValueError(f"the bare loop knows adamw, lion and prodigy, not {name!r}")


def bare_train(
    transformer,
    params: list,
    latents: list,
    embedding,
    config: dict,
    *,
    device: str = "cpu",
    autocast_dtype=None,
    seed: int = 0,
    losses: list | None = None,
) -> list[tuple[float, float]]:
    """Train ``config["max_train_steps"]`` steps; return :func:`stamp` at the end of each step.

    ``transformer`` is on ``device`` with the adapter added (:func:`add_lora`); ``latents`` are
    (16, F, H, W) on the CPU; batch size 1. Everything before the first step is the caller's setup.
    ``losses``, when given, gets each step's loss (a ``.item()`` per step: not for the timed runs).
    """
    import contextlib

    import torch
    import torch.nn.functional as F
    from diffusers.optimization import get_scheduler

    steps = int(config["max_train_steps"])
    optimizer = make_optimizer(config["optimizer"], params, float(config["learning_rate"]))
    warmup = 0 if config["lr_scheduler"] == "constant" else int(config["lr_warmup_steps"])
    scheduler = get_scheduler(
        config["lr_scheduler"], optimizer, num_warmup_steps=warmup, num_training_steps=steps
    )
    shift = float(config["discrete_flow_shift"])
    clip = float(config["max_grad_norm"])
    generator = torch.Generator("cpu").manual_seed(seed)
    data = [latent.to(device) for latent in latents]
    context = embedding.to(device)[None]  # float32, as the trainer keeps it (autocast casts it)

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype)

    transformer.train()
    ends: list[tuple[float, float]] = []
    order: list[int] = []
    for _step in range(steps):
        if not order:
            order = torch.randperm(len(data), generator=generator).tolist()
        x0 = data[order.pop()][None]
        noise = torch.randn(x0.shape, generator=generator).to(device)
        u = torch.sigmoid(torch.randn((), generator=generator)).item()
        t = shift * u / (1.0 + (shift - 1.0) * u)  # Wan's shift of the sigmoid draw
        noisy = (1.0 - t) * x0 + t * noise
        with autocast():
            predicted = transformer(
                hidden_states=noisy,
                timestep=torch.tensor([t * 1000.0], device=device),
                encoder_hidden_states=context,
                return_dict=False,
            )[0]
        loss = F.mse_loss(predicted.float(), (noise - x0).float())
        loss.backward()
        if losses is not None:
            losses.append(loss.item())
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ends.append(stamp())
    return ends


# --- the built-in trainer, timed --------------------------------------------------------------


def stamp() -> tuple[float, float]:
    """(wall, CPU) seconds now: ``perf_counter`` and the process's CPU time (all its threads).

    On a shared machine the wall clock also counts the time a neighbour held the core; the CPU
    time does not, and for a single-threaded step it is what the wall time is on a quiet machine.
    """
    return time.perf_counter(), time.process_time()


class TimedContext(RecordingContext):
    """A recording context that stamps the end of every training step (its ``step N/M`` report)."""

    def __init__(self, *, sync_cuda: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.step_ends: dict[int, tuple[float, float]] = {}
        self._sync = sync_cuda

    def progress(self, done, total=None, text=""):
        match = _STEP_TEXT_RE.search(str(text))
        if match and int(match.group(1)) not in self.step_ends:
            if self._sync:  # the step's kernels finished, not only queued
                import torch

                torch.cuda.synchronize()
            self.step_ends[int(match.group(1))] = stamp()
        super().progress(done, total, text)


def run_builtin_timed(run, *, sync_cuda: bool = False):
    """``run_builtin(run, ctx)`` as a real run gets it (event log attached); (result, ctx, step end times)."""
    from difflora_gui.jobs.eventlog import EventLog
    from difflora_gui.specs import resolve_callable

    ctx = TimedContext(sync_cuda=sync_cuda)
    log_path = Path(run.output_dir) / f"{run.name}.events.jsonl"
    with EventLog(log_path) as log:
        ctx.attach_event_log(log)
        result = resolve_callable(BUILTIN_JOB)(run, ctx)
    # the job also reports "step <start>/N" once before its first step (the end of its setup)
    ends = [ctx.step_ends[step] for step in sorted(ctx.step_ends) if step > run.steps_done]
    if len(ends) != run.total_steps - run.steps_done:
        raise SystemExit(
            f"the built-in trainer reported {len(ends)} 'step N/M' progress lines for "
            f"{run.total_steps - run.steps_done} steps: the bench cannot time its steps"
        )
    return result, ctx, ends


# --- statistics --------------------------------------------------------------------------------


def step_intervals(ends: list[tuple[float, float]], which: int = 0) -> list[float]:
    """Seconds (``which`` 0: wall, 1: CPU) between consecutive step ends, from step 1 → 2 on:
    step 1 itself is dropped for both sides (first-call allocations, lazy imports)."""
    return [b[which] - a[which] for a, b in zip(ends[:-1], ends[1:], strict=True)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "max": max(values),
        "n": len(values),
    }


def cosine(a, b) -> float:
    import torch

    denominator = float(a.norm() * b.norm())
    return float(torch.dot(a, b)) / denominator if denominator > 0 else math.nan
