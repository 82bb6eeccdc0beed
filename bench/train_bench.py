"""Benchmark of the built-in trainer's step against a bare PEFT loop on the tiny Wan model (not a test).

    python bench/train_bench.py                  # 3 interleaved rounds of 60 steps, save every 10
    python bench/train_bench.py --rounds 5 --steps 100 --json out.json
    python bench/train_bench.py --smoke          # seconds: proves both paths still run

Both sides train the same LoRA (rank 4 on every block Linear, the ``quick-test`` preset: AdamW,
lr 1e-3, constant schedule, float32, grad clipping at 1.0) on the same tiny random Wan model
(``tests/wan_tiny.py``, saved to disk and loaded with ``from_pretrained``) and the same 8 images
at 64×64 (latents 16×1×8×8, empty caption), batch size 1, in this process, one after the other:

* the built-in trainer: ``run_builtin`` through the job machinery as a real run gets it — a
  recording context with an event log attached, its progress/metric/artifact events, a checkpoint
  and a resumable state every ``--save-every`` steps, the final LoRA file;
* the reference: the bare loop of ``bench/train_bench_support.py`` (forward, MSE, backward,
  clipping, optimizer and schedule steps; nothing else).

Rounds are interleaved (built-in first in even rounds, bare first in odd ones) so a neighbour's
load hits both alike. One-off setup is **excluded from both**: the model load, the adapter, the
latent and text caching (the built-in job does them before its first step, the bench before the
bare loop's first step), and the first step itself (the built-in job's first "step 1/N" report is
the first time stamp either side gets). The per-step time is the interval between consecutive
step ends; the figure compared is the median over a run's steps (checkpoint steps are the
outliers the median leaves out), the median of the rounds' medians, and beside it the mean
(checkpoints included), which is what a whole run costs. Target: built-in ≤ 1.10× bare.

Both clocks are printed: wall time and the process's CPU time. Both sides run single-threaded
(``--threads 1``: with two threads on two shared cores a neighbour stalls every step). On a
loaded machine the CPU time is the steadier figure: ``--noise-floor`` (the bare loop on both
sides) gave, at a load of 3–4.5 on 2 cores, CPU ratios 0.98–1.04 per round in one run and
0.96–1.45 in another (medians 0.985 and 1.001), wall ratios 0.61–2.25. Read the median over
rounds, never one round. The load is printed before and after; repeat when ``uptime`` is low.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bench_support import (  # noqa: E402
    add_lora,
    bare_train,
    empty_prompt_embedding,
    encode_images,
    image_paths,
    load_transformer,
    machine_note,
    run_builtin_timed,
    step_intervals,
    summary,
    write_pair_dataset,
)

TARGET = 1.10


def bench_config(steps: int, save_every: int, rank: int, size: int) -> dict:
    from difflora_gui.train.presets import preset_values

    config = preset_values("quick-test")
    config.update(
        max_train_steps=steps,
        save_every_n_steps=save_every,
        network_dim=rank,
        network_alpha=float(rank),
        resolution=str(size),
        pair_mode="independent",
    )
    return config


def run_builtin_once(config, dataset: Path, model_dir: Path, out_dir: Path) -> dict:
    from difflora_gui.train.plan import plan_single

    (run,) = plan_single(
        config,
        dataset,
        out_dir,
        "bench",
        backend="builtin",
        backend_config={"model": str(model_dir), "device": "cpu"},
    )
    run.device = "cpu"
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result, ctx, ends = run_builtin_timed(run)
    checkpoints = sum(1 for e in ctx.events if getattr(e, "kind", None) == "checkpoint")
    return {
        "wall_ms": [v * 1e3 for v in step_intervals(ends, 0)],
        "cpu_ms": [v * 1e3 for v in step_intervals(ends, 1)],
        "run_s": time.perf_counter() - start,
        "setup_s": ends[0][0] - start,  # to the end of step 1
        "checkpoints": checkpoints,
        "lora": result.lora,
        "events": len(ctx.events),
    }


def run_bare_once(config, latents, embedding, model_dir: Path) -> dict:
    start = time.perf_counter()
    transformer = load_transformer(model_dir)
    params = add_lora(transformer, config["network_dim"], config["network_alpha"], seed=config["seed"])
    ends = bare_train(transformer, params, latents, embedding, config, seed=config["seed"])
    return {
        "wall_ms": [v * 1e3 for v in step_intervals(ends, 0)],
        "cpu_ms": [v * 1e3 for v in step_intervals(ends, 1)],
        "run_s": time.perf_counter() - start,
        "setup_s": ends[0][0] - start,
        "modules": sum(1 for n, _ in transformer.named_modules() if n.endswith(".lora_A")),
    }


def lora_module_count(path: str) -> int:
    from difflora_gui.lora.reader import open_lora

    with open_lora(path) as lora:
        return len(lora.names())


def _row_line(index: int, side: str, row: dict) -> str:
    wall, cpu = summary(row["wall_ms"]), summary(row["cpu_ms"])
    return (
        f"  round {index + 1} {side:7s}: wall median {wall['median']:7.2f} ms/step (mean {wall['mean']:7.2f}, "
        f"max {wall['max']:7.2f}); CPU median {cpu['median']:7.2f} (mean {cpu['mean']:7.2f}); "
        f"setup {row['setup_s']:.2f} s, run {row['run_s']:.2f} s"
    )


def figures_of(rows: dict, clock: str) -> dict:
    """Per clock: each side's median of round medians and mean of round means, and the ratios,
    both of those figures and per round (a round's two runs saw the same neighbours)."""
    out: dict = {}
    for side in ("builtin", "bare"):
        out[side] = {
            "median_ms": statistics.median(summary(r[clock])["median"] for r in rows[side]),
            "mean_ms": statistics.median(summary(r[clock])["mean"] for r in rows[side]),
        }
    pairs = list(zip(rows["builtin"], rows["bare"], strict=True))
    out["ratio_median"] = out["builtin"]["median_ms"] / out["bare"]["median_ms"]
    out["ratio_mean"] = out["builtin"]["mean_ms"] / out["bare"]["mean_ms"]
    out["round_ratios_median"] = [summary(b[clock])["median"] / summary(r[clock])["median"] for b, r in pairs]
    out["round_ratios_mean"] = [summary(b[clock])["mean"] / summary(r[clock])["mean"] for b, r in pairs]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--save-every", type=int, default=10, help="checkpoint + state every N steps (0: end only)"
    )
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="square image side (a multiple of 16)")
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks of the tiny model")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads for both sides (0: torch's default)"
    )
    parser.add_argument(
        "--noise-floor",
        action="store_true",
        help="the bare loop on both sides: the ratio this machine gives for identical work right now",
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 6 steps (a check, not a figure)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps, args.save_every = 1, 6, 3

    import torch
    from wan_tiny import save_tiny_wan

    if args.threads:
        torch.set_num_threads(args.threads)
    bench_start = time.perf_counter()
    print(f"machine: {machine_note()}")
    config = bench_config(args.steps, args.save_every, args.rank, args.size)
    with tempfile.TemporaryDirectory(prefix="difflora train bench ") as tmp:
        root = Path(tmp)
        model_dir = save_tiny_wan(root / "tiny wan", num_layers=args.layers)
        dataset, _ = write_pair_dataset(root / "data", args.images, (args.size, args.size))
        latents = encode_images(model_dir, image_paths(dataset))
        embedding = empty_prompt_embedding(model_dir)
        print(
            f"model: tiny Wan ({args.layers} blocks), {args.images} images {args.size}×{args.size} "
            f"→ latents {tuple(latents[0].shape)}, rank {args.rank}, {config['optimizer']} lr "
            f"{config['learning_rate']}, {args.steps} steps, checkpoint+state every {args.save_every or 'end only'}"
        )
        print("excluded from both sides: setup (model load, adapter, latent/text caching) and step 1")
        if args.noise_floor:
            print("NOISE FLOOR: the 'builtin' rows below are a second bare loop (identical work)")
        rows: dict[str, list] = {"builtin": [], "bare": []}
        for index in range(args.rounds):
            order = ("builtin", "bare") if index % 2 == 0 else ("bare", "builtin")
            for side in order:
                if side == "builtin" and not args.noise_floor:
                    row = run_builtin_once(config, dataset, model_dir, root / f"out {index}")
                else:
                    row = run_bare_once(config, latents, embedding, model_dir)
                rows[side].append(row)
                print(_row_line(index, side, row), flush=True)
        modules = (
            rows["bare"][0]["modules"] if args.noise_floor else lora_module_count(rows["builtin"][0]["lora"])
        )
        if modules != rows["bare"][0]["modules"]:
            print(
                f"WARNING: the built-in LoRA has {modules} modules, the bare loop {rows['bare'][0]['modules']}"
            )
    figures = {clock: figures_of(rows, clock) for clock in ("wall_ms", "cpu_ms")}
    for clock, name in (("wall_ms", "wall"), ("cpu_ms", "CPU")):
        f = figures[clock]
        print(
            f"{name:4s}: built-in {f['builtin']['median_ms']:.2f} ms/step vs bare {f['bare']['median_ms']:.2f} "
            f"(median of {args.rounds} rounds' medians): {f['ratio_median']:.3f}×, per round "
            f"{' '.join(f'{r:.2f}' for r in f['round_ratios_median'])}; with checkpoint steps (means) "
            f"{f['builtin']['mean_ms']:.2f} vs {f['bare']['mean_ms']:.2f}: {f['ratio_mean']:.3f}×"
        )
    wall, cpu = figures["wall_ms"]["ratio_median"], figures["cpu_ms"]["ratio_median"]
    print(
        f"target: built-in ≤ {TARGET:.2f}× bare per step (medians): wall {wall:.3f}× "
        f"{'met' if wall <= TARGET else 'NOT met'}, CPU {cpu:.3f}× {'met' if cpu <= TARGET else 'NOT met'}; "
        f"{rows['builtin'][0].get('checkpoints', 0)} checkpoints + states per run, {modules} LoRA modules"
    )
    print(
        f"load after: {machine_note().split('load ')[1]}; bench took {time.perf_counter() - bench_start:.0f} s"
    )
    if args.smoke:
        print("(smoke run: too few steps for a figure)")
    if args.json:
        payload = {
            "figures": figures,
            "target": TARGET,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine_note(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
