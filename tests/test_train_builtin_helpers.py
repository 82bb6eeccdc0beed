"""Shared fixtures of the built-in trainer tests (this module holds no tests itself).

A tiny random Wan folder saved with ``save_pretrained`` and loaded back through the same
``from_pretrained`` calls a user's model goes through, a few 32×32 images, a quick config (AdamW,
rank 4, float32 on the CPU) and a fixed evaluation of the flow-matching loss on the training
latents, so "the loss went down" is measured on the same noise and timesteps before and after.
"""

from __future__ import annotations

from pathlib import Path

import torch

from difflora_gui.jobs.recording import RecordingContext, run_sync
from difflora_gui.train.config import TRAIN_CONFIG
from difflora_gui.train.plan import TrainRun, plan_pair, plan_single
from tests.wan_tiny import save_tiny_wan, write_images

JOB = "difflora_gui.train.builtin.job:run_builtin"
NAMES = ["p0", "p1", "p2", "p3"]


def quick_config(**overrides) -> dict:
    values = TRAIN_CONFIG.defaults() | {
        "task": "t2v-1.3B",
        "max_train_steps": 30,
        "save_every_n_steps": 0,
        "optimizer": "adamw",
        "learning_rate": 2e-3,
        "lr_scheduler": "constant",
        "lr_warmup_steps": 0,
        "resolution": "32",
        "network_dim": 4,
        "network_alpha": 4.0,
        "mixed_precision": "no",
        "seed": 7,
    }
    values.update(overrides)
    return TRAIN_CONFIG.to_recipe(values)


def setup_folders(tmp_path: Path, *, two_experts: bool = False, pair: bool = False) -> dict[str, Path]:
    """A model folder, set A (and B: A with a planted pattern) and an output folder with spaces and non-ASCII."""
    torch.set_num_threads(2)
    root = tmp_path / "built in é"
    model = save_tiny_wan(root / "wan model", two_experts=two_experts)
    folders = {"model": model, "a": write_images(root / "set A", NAMES, size=(32, 32), seed=1)}
    if pair:
        folders["b"] = write_images(root / "set B", NAMES, size=(32, 32), seed=1, pattern=True)
    folders["out"] = root / "out ö"
    folders["out"].mkdir(parents=True)
    return folders


def single_run(folders, config=None, name="lora", **backend) -> TrainRun:
    backend_config = {"model": str(folders["model"]), "device": "cpu", **backend}
    return plan_single(
        config or quick_config(),
        folders["a"],
        folders["out"],
        name,
        backend="builtin",
        backend_config=backend_config,
    )[0]


def pair_runs(folders, config, name="pair") -> list[TrainRun]:
    backend_config = {"model": str(folders["model"]), "device": "cpu"}
    return plan_pair(
        config,
        folders["a"],
        folders["b"],
        folders["out"],
        name,
        backend="builtin",
        backend_config=backend_config,
    )


def train(run, ctx=None):
    outcome = run_sync(JOB, run, ctx or RecordingContext())
    assert outcome.status == "done", outcome.traceback
    return outcome


def metric(ctx, name):
    return [(step, value) for metric_name, value, step in ctx.metrics if metric_name == name]


def latents_of(folders, folder_key="a"):
    """The normalised VAE latents of a set, encoded like the trainer does (one per item, by stem)."""
    from difflora_gui.train.builtin import data, encode
    from difflora_gui.train.dataset_folder import list_items

    clips = [data.Clip(item, 1, item.stem) for item in list_items(folders[folder_key])]
    latents = encode.encode_latents(
        folders["model"],
        clips,
        32,
        device="cpu",
        cache=encode.TensorCache(None),
        check_cancel=lambda: None,
        report=lambda *_: None,
    )
    return {clip.key: latents[encode.clip_id(clip)] for clip in clips}


def empty_embedding(folders):
    from difflora_gui.train.builtin import encode

    emb = encode.encode_captions(
        folders["model"], [""], device="cpu", cache=encode.TensorCache(None), check_cancel=lambda: None
    )[""]
    return encode.padded(emb)


def load_transformer(folders, subfolder="transformer"):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel.from_pretrained(folders["model"], subfolder=subfolder).eval()


def with_lora(transformer, path, multiplier=1.0):
    """The transformer with a LoRA file loaded through diffusers (its comfy-format converter)."""
    from diffusers import WanPipeline

    state = WanPipeline.lora_state_dict(str(path))
    transformer.load_lora_adapter(state, prefix="transformer", adapter_name="x")
    transformer.set_adapters(["x"], weights=[multiplier])
    return transformer


def fixed_eval_errors(transformer, latents, embedding, targets=None, draws=6, seed=123):
    """Mean squared error of the velocity prediction against ``targets`` (default: each latent's own),
    over fixed noise and timesteps: {stem: error}."""
    generator = torch.Generator().manual_seed(seed)
    errors = {}
    with torch.no_grad():
        for stem, x0 in latents.items():
            total = 0.0
            for _ in range(draws):
                noise = torch.randn(x0.shape, generator=generator)
                t = torch.rand((), generator=generator).item() * 0.9 + 0.05
                noisy = (1 - t) * x0 + t * noise
                target_x0 = (targets or latents)[stem]
                pred = transformer(
                    hidden_states=noisy[None],
                    timestep=torch.tensor([t * 1000.0]),
                    encoder_hidden_states=embedding[None],
                    return_dict=False,
                )[0][0]
                total += float(((pred - (noise - target_x0)) ** 2).mean())
            errors[stem] = total / draws
    return errors
