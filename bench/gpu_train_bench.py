"""The built-in trainer on a full-size Wan2.1-1.3B transformer (random weights, bf16, 192p) against a bare loop, on CUDA.

    python bench/gpu_train_bench.py                 # on a CUDA machine: ~3 GB disk, a few minutes
    python bench/gpu_train_bench.py --steps 50 --rounds 3 --json gpu.json
    python bench/gpu_train_bench.py --dry-check     # on the CPU, 2 blocks: proves the code path
    python bench/gpu_train_bench.py --smoke         # the dry check on a narrow model (the smoke test)

Run it from the repository root with the project's environment (torch with CUDA, diffusers, peft,
lion-pytorch); about 8 GB of host memory while the model is built, 3 GB of disk. It needs no
download: the model folder is built from configs. On a lent device machine:
``python bench/gpu_train_bench.py --json $OUT/gpu_train_bench.json`` (build ≈ 1 min, then four
training processes of ~30 s each: budget 5–6 minutes). The figures go to
stdout (``--json`` writes them too): seconds per step (median and mean, wall, after a CUDA
synchronise) and peak VRAM (``torch.cuda.max_memory_allocated`` over the whole training process,
and the reserved peak) for the built-in trainer and the bare loop, and their ratios.

What it builds (``--folder``, default a temp folder; ``--keep`` keeps it for the next run):
a diffusers Wan folder whose ``transformer/`` is ``WanTransformer3DModel`` with Wan2.1-T2V-1.3B's
config (dim 1536 = 12 heads × 128, 30 layers, ffn 8960, text_dim 4096, in/out 16 channels, patch
(1, 2, 2), freq_dim 256, cross_attn_norm, rms_norm_across_heads qk norm) and random weights saved in
bf16; a tiny random VAE with Wan's latent layout (16 channels, 8× spatial) and a one-layer random
UMT5 with d_model 4096 (so the cached text embedding has the real width); a ByT5 tokenizer. The
VAE and T5 only run once, before the first step, on both sides alike; what is measured is the
transformer's training step. Images: ``--images`` random colour fields at 336×192 (the model
card's 192p bucket), latents 16×1×24×42 (252 tokens), empty caption.

Training, both sides: the model card's settings (Lion from lion-pytorch, lr 2e-5,
constant_with_warmup with 50 warm-up steps, rank 16, alpha 16, batch size 1, grad clipping 1.0),
every block Linear, bf16 weights with bf16 autocast and float32 LoRA weights, gradient
checkpointing. The built-in side is ``run_builtin`` through the job machinery (event log, metrics,
a checkpoint and a resumable state every ``--save-every`` steps); the bare side is the loop of
``bench/train_bench_support.py``. Each run is its own process (its peak VRAM is its own, its CUDA
context fresh), in interleaved rounds (built-in, bare, bare, built-in, …). Setup (model load,
caching) and step 1 are excluded from the per-step figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bench_support import ROOT, machine_note, step_intervals, summary  # noqa: E402

WAN_1_3B = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}
WIDTH, HEIGHT = 336, 192


def bench_config(steps: int, save_every: int) -> dict:
    from difflora_gui.train.presets import preset_values

    config = preset_values("model-card")
    config.update(
        task="t2v-1.3B",
        max_train_steps=steps,
        save_every_n_steps=save_every,
        resolution=f"{WIDTH}x{HEIGHT}",
        pair_mode="independent",
        gradient_checkpointing=True,
        mixed_precision="bf16",
    )
    return config


# --- children (each in its own process) -------------------------------------------------------


#: ``--smoke``: the dry check's code path on a narrow model (seconds; the smoke test's)
NARROW = {"num_attention_heads": 2, "attention_head_dim": 12, "ffn_dim": 32}


def build_folder(folder: Path, layers: int, device: str, narrow: bool = False) -> dict:
    """The Wan folder of the module docstring; random weights initialised on ``device``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel
    from wan_tiny import tiny_vae

    torch.manual_seed(0)
    with torch.device(device):  # initialising 1.3B parameters on the GPU takes seconds, not minutes
        transformer = WanTransformer3DModel(
            **{**WAN_1_3B, "num_layers": layers, **(NARROW if narrow else {})}
        )
    # saved in bf16 (half the disk and load time; the weights are random): both sides load it with
    # from_pretrained(torch_dtype=bfloat16), which keeps diffusers' float32 modules in float32
    transformer = (
        transformer.to("cpu") if device == "cpu" else transformer.to(device="cpu", dtype=torch.bfloat16)
    )
    tokenizer = ByT5Tokenizer()
    encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=WAN_1_3B["text_dim"],
            d_kv=64,
            d_ff=256,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        vae=tiny_vae(0),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return {
        "parameters": sum(p.numel() for p in transformer.parameters()),
        "layers": layers,
        "narrow": narrow,
    }


def _cuda_peaks(device: str) -> dict:
    if not device.startswith("cuda"):
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    import torch

    return {
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
    }


def child_builtin(spec: dict) -> dict:
    from train_bench_support import run_builtin_timed

    from difflora_gui.train.plan import plan_single

    device = spec["device"]
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (run,) = plan_single(
        spec["config"],
        spec["dataset"],
        out_dir,
        "gpu-bench",
        backend="builtin",
        backend_config={"model": spec["model"], "device": device},
    )
    run.device = device
    start = time.perf_counter()
    result, ctx, ends = run_builtin_timed(run, sync_cuda=device.startswith("cuda"))
    return {
        "wall_s": step_intervals(ends, 0),
        "setup_s": ends[0][0] - start,
        "checkpoints": sum(1 for e in ctx.events if getattr(e, "kind", None) == "checkpoint"),
        "lora": result.lora,
        **_cuda_peaks(device),
    }


def child_bare(spec: dict) -> dict:
    import torch
    from train_bench_support import (
        add_lora,
        bare_train,
        empty_prompt_embedding,
        encode_images,
        image_paths,
        load_transformer,
    )

    device, config = spec["device"], spec["config"]
    cuda = device.startswith("cuda")
    model_dir = Path(spec["model"])
    start = time.perf_counter()
    latents = encode_images(model_dir, image_paths(Path(spec["dataset"])), device)
    embedding = empty_prompt_embedding(model_dir, device)
    # the built-in trainer's precision: bf16 weights + bf16 autocast on CUDA, float32 on the CPU;
    # gradient checkpointing on CUDA only
    transformer = load_transformer(model_dir, "bfloat16" if cuda else "float32").to(device)
    if cuda and config["gradient_checkpointing"]:
        transformer.enable_gradient_checkpointing()
    params = add_lora(transformer, config["network_dim"], config["network_alpha"], seed=config["seed"])
    ends = bare_train(
        transformer,
        params,
        latents,
        embedding,
        config,
        device=device,
        autocast_dtype=torch.bfloat16 if cuda else None,
        seed=config["seed"],
    )
    return {
        "wall_s": step_intervals(ends, 0),
        "setup_s": ends[0][0] - start,
        "modules": sum(1 for n, _ in transformer.named_modules() if n.endswith(".lora_A")),
        **_cuda_peaks(device),
    }


def child_result(kind: str, spec: dict) -> dict:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    if kind == "build":
        return build_folder(Path(spec["folder"]), spec["layers"], spec["device"], spec.get("narrow", False))
    if kind == "builtin":
        return child_builtin(spec)
    return child_bare(spec)


# --- the parent -------------------------------------------------------------------------------


def run_child(kind: str, spec: dict, *, in_process: bool = False) -> dict:
    if in_process:  # the smoke test: the same functions without three interpreter start-ups
        return json.loads(json.dumps(child_result(kind, spec)))
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, HF_HUB_OFFLINE="1", DIFFLORA_DISABLE_PLUGIN_AUTOLOAD="1")
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"the {kind} step failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _gib(value) -> str:
    return "n/a (CPU)" if value is None else f"{value:.2f} GiB"


def report(rows: dict, args, info: dict) -> dict:
    figures = {}
    for side, side_rows in rows.items():
        figures[side] = {
            "median_s": statistics.median(summary(r["wall_s"])["median"] for r in side_rows),
            "mean_s": statistics.median(summary(r["wall_s"])["mean"] for r in side_rows),
            "peak_allocated_gib": side_rows[0]["peak_allocated_gib"]
            and max(r["peak_allocated_gib"] for r in side_rows),
            "peak_reserved_gib": side_rows[0]["peak_reserved_gib"]
            and max(r["peak_reserved_gib"] for r in side_rows),
        }
    b, r = figures["builtin"], figures["bare"]
    print(
        f"model: Wan2.1-1.3B config{' (narrowed: smoke)' if info.get('narrow') else ''}, {info['layers']} layers, "
        f"{info['parameters'] / 1e9:.3f} B parameters, "
        f"random; {args.images} images {WIDTH}×{HEIGHT}, {args.steps} steps, save every {args.save_every}"
    )
    for side, f in figures.items():
        print(
            f"{side:8s}: {f['median_s']:.4f} s/step (median of {args.rounds} rounds' medians), mean "
            f"{f['mean_s']:.4f} with checkpoint steps; peak VRAM {_gib(f['peak_allocated_gib'])} allocated, "
            f"{_gib(f['peak_reserved_gib'])} reserved"
        )
    figures["ratio_median"] = b["median_s"] / r["median_s"]
    figures["ratio_mean"] = b["mean_s"] / r["mean_s"]
    vram = ""
    if b["peak_allocated_gib"] and r["peak_allocated_gib"]:
        figures["ratio_peak"] = b["peak_allocated_gib"] / r["peak_allocated_gib"]
        vram = f", peak VRAM {figures['ratio_peak']:.3f}×"
    print(
        f"built-in ÷ bare: {figures['ratio_median']:.3f}× per step (medians), "
        f"{figures['ratio_mean']:.3f}× (means){vram}"
    )
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--save-every", type=int, default=10, help="checkpoint + state every N steps (0: end only)"
    )
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--folder", type=Path, help="where the model folder is built (or reused with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the model folder and reuse it next time")
    parser.add_argument(
        "--dry-check", action="store_true", help="on the CPU, 2 layers, 3 steps: the code path only"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the dry check on a narrow model (2 heads of 12, ffn 32): seconds",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="with --dry-check/--smoke: no child processes (a quick check)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=("build", "builtin", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_result(args.child, json.loads(args.spec))))
        return 0
    layers, threads = WAN_1_3B["num_layers"], 0
    args.dry_check = args.dry_check or args.smoke
    if args.dry_check:
        args.device, args.steps, args.save_every, args.rounds, args.images = "cpu", 3, 2, 1, 2
        layers, threads = 2, 1
    if args.in_process and not args.dry_check:
        parser.error(
            "--in-process is for the CPU checks: on CUDA each side needs its own process (its own peak VRAM)"
        )
    if not args.dry_check and not args.device.startswith("cuda"):
        parser.error("the GPU bench runs on CUDA; use --dry-check for the CPU check of its code path")

    from wan_tiny import write_images

    start = time.perf_counter()
    print(f"machine: {machine_note()}")
    with tempfile.TemporaryDirectory(prefix="difflora gpu bench ") as tmp:
        root = Path(tmp)
        folder = args.folder or (root / "wan 1.3B random")
        built = folder / "model_index.json"
        info_path = folder / "bench_info.json"
        if args.keep and built.is_file() and info_path.is_file():
            info = json.loads(info_path.read_text(encoding="utf-8"))
            if info.get("layers") != layers or bool(info.get("narrow")) != args.smoke:
                raise SystemExit(f"{folder} holds another model ({info}); choose another --folder")
            print(f"reusing {folder}")
        else:
            if built.exists():
                raise SystemExit(
                    f"{folder} already holds a model; pass --keep to reuse it or choose another --folder"
                )
            build_start = time.perf_counter()
            info = run_child(
                "build",
                {"folder": str(folder), "layers": layers, "device": args.device, "narrow": args.smoke},
                in_process=args.in_process,
            )
            info_path.write_text(json.dumps(info), encoding="utf-8")
            print(f"built {folder} in {time.perf_counter() - build_start:.0f} s")
        names = [f"image {i:02d}" for i in range(args.images)]
        dataset = write_images(root / "data", names, size=(WIDTH, HEIGHT), seed=0)
        spec = {
            "model": str(folder),
            "dataset": str(dataset),
            "device": args.device,
            "config": bench_config(args.steps, args.save_every),
            "threads": threads,
        }
        rows: dict[str, list] = {"builtin": [], "bare": []}
        for index in range(args.rounds):
            for side in ("builtin", "bare") if index % 2 == 0 else ("bare", "builtin"):
                row = run_child(
                    side, {**spec, "out_dir": str(root / f"out {index}")}, in_process=args.in_process
                )
                rows[side].append(row)
                stats = summary(row["wall_s"])
                print(
                    f"  round {index + 1} {side:7s}: median {stats['median']:.4f} s/step, mean {stats['mean']:.4f}, "
                    f"setup {row['setup_s']:.1f} s, peak {_gib(row['peak_allocated_gib'])}",
                    flush=True,
                )
        figures = report(rows, args, info)
        if rows["bare"][0]["modules"] != _modules(rows["builtin"][0]["lora"]):
            print("WARNING: the two sides trained different module counts")
        if args.keep and args.folder is None:
            print("(--keep without --folder: the temp folder goes away anyway)")
    print(f"bench took {time.perf_counter() - start:.0f} s; load after {machine_note().split('load ')[1]}")
    if args.dry_check:
        print("(dry check on the CPU: the code path works; the figures mean nothing)")
    if args.json:
        payload = {"figures": figures, "rows": rows, "info": info, "machine": machine_note()}
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return 0


def _modules(path: str) -> int:
    from difflora_gui.lora.reader import open_lora

    with open_lora(path) as lora:
        return len(lora.names())


if __name__ == "__main__":
    raise SystemExit(main())
