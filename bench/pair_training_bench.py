"""The pair-training experiment: how much of a differential LoRA is the concept and how much is noise (not a test).

    python bench/pair_training_bench.py                    # 8 pairs, 400 steps, seeds 1 and 2, all modes
    python bench/pair_training_bench.py --steps 800 --json table.json
    python bench/pair_training_bench.py --smoke            # seconds: proves the path still runs

Dataset: ``--pairs`` pairs of 64×64 smooth random colour fields (``tests/wan_tiny.py
write_images``); A has a fixed planted pattern (a black-and-white checker over the top-left
quarter), B is the same image without it. So A − B is the pattern and nothing else: a clean
differential LoRA learns exactly "add the pattern" and has nothing to learn elsewhere.

Each mode trains the pair twice, with seeds 1 and 2, with the built-in trainer (``run_builtin``,
the ``quick-test`` preset: AdamW lr 1e-3, rank 4 on every block Linear, empty captions, float32 on
the CPU) on the tiny random Wan model loaded from disk:

* ``independent``: A and B as two ordinary runs (each its own item order, noise and timesteps);
* ``synchronised``: A and B see pair i with the same ε_i and t_i at step i (and the same LoRA init);
* ``slider``: one LoRA trained at +1 on the A item and at −1 on the B item, shared ε and t.

Every result is read back with our reader; ΔW = up @ down × alpha/rank per module. The
*differential* of a repeat is ΔW_A − ΔW_B (pair modes) or 2·ΔW (slider: the change from −1 to +1,
the same strength as A − B), all modules flattened into one vector. The table per mode:

* ``cos(repeats)``: the cosine between the two seeds' differentials. If a differential is the
  concept c plus noise n_s that differs between seeds, cos ≈ ‖c‖² / (‖c‖² + ‖n‖²): the share of
  its energy that is the concept;
* ``‖diff‖`` and, for pair modes, ``‖diff‖/‖ΔW_A‖`` (how much of what A learned cancels in A − B);
* the differential's effect on the base model's prediction, on held-out pairs (new images, both
  the A and the B version as x0, noise fixed, t = 0.25, 0.5, 0.75): Δpred = v(W + diff) − v(W).
  The ideal change is −(z_A − z_B)/t (z: the VAE latents; the velocity is (x_t − E[x0|x_t])/t, and
  A's model expects the pattern in x0). ``cos(ideal)`` is the cosine of Δpred with it;
  ``out share`` is the share of Δpred's energy outside the planted quarter of the latent grid
  (beside it, the ideal's own share: the VAE spreads the pattern a little); ``‖out‖/‖ideal‖`` is the
  norm of Δpred outside the quarter relative to the ideal change's norm: the off-pattern effect;
  ``cos pred(rep)`` the cosine between the two seeds' Δpred;
* ``trained``: how the two trained models differ on the same inputs, v(W + ΔW_A) − v(W + ΔW_B)
  (slider: v(W + ΔW) − v(W − ΔW), what it was trained to do), against the same ideal. For a
  slider the differential on the base (W + 2·ΔW) extrapolates beyond the ±1 it was trained at;
  where the two readings differ, its ΔW acts far from linearly.

Two base models (``--bases``), one table each: ``random`` is the tiny model as
``tests/wan_tiny.py`` builds it; ``pretrained`` is the same model first fine-tuned in full
(``--pretrain-steps`` of the bare loop on ``--pretrain-images`` pattern-free images of the same
kind) so that, as with a real Wan, the base already models what both sets share and the LoRAs
have mostly the pair's difference left to learn. On the random base, every LoRA must first learn
the images' common content; a slider (W ± ΔW) can only reach an even, common change through
second-order terms, which shows in its ΔW.

A tiny model trained for a few hundred steps learns little; read the figures against each other,
not as absolute ones. The table is printed whatever it shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_bench_support import (  # noqa: E402
    cosine,
    empty_prompt_embedding,
    encode_images,
    image_paths,
    load_transformer,
    machine_note,
    write_pair_dataset,
)

MODES = ("independent", "synchronised", "slider")
BASES = ("pretrained", "random")
TIMESTEPS = (0.25, 0.5, 0.75)


def train_config(mode: str, seed: int, args) -> dict:
    from difflora_gui.train.presets import preset_values

    config = preset_values("quick-test")
    config.update(
        pair_mode=mode,
        seed=seed,
        max_train_steps=args.steps,
        save_every_n_steps=0,
        save_state=False,
        network_dim=args.rank,
        network_alpha=float(args.rank),
        learning_rate=args.lr,
        resolution=str(args.size),
    )
    return config


def train_pair(mode: str, seed: int, args, a_dir: Path, b_dir: Path, model_dir: Path, out_dir: Path) -> dict:
    """Train one repeat of ``mode``; ``{side: {"lora": path, "avr_loss": last running loss}}``."""
    from difflora_gui.jobs.recording import RecordingContext
    from difflora_gui.train.builtin.job import run_builtin
    from difflora_gui.train.plan import plan_pair

    runs = plan_pair(
        train_config(mode, seed, args),
        a_dir,
        b_dir,
        out_dir,
        f"{mode}-seed{seed}",
        backend="builtin",
        backend_config={"model": str(model_dir), "device": "cpu"},
    )
    out = {}
    for run in runs:
        run.device = "cpu"
        ctx = RecordingContext()
        result = run_builtin(run, ctx)
        losses = [value for name, value, _ in ctx.metrics if name == "avr_loss"]
        out[run.side] = {"lora": result.lora, "avr_loss": losses[-1] if losses else float("nan")}
    return out


def read_delta(path: str) -> dict:
    """{canonical module name: ΔW = up @ down × alpha/rank (float32)} of a LoRA file, via our reader."""
    import torch

    from difflora_gui.lora.reader import open_lora

    out = {}
    with open_lora(path) as lora:
        for name in lora.names():
            module = lora.load(name)
            alpha = module.alpha if module.alpha is not None else module.rank
            delta = module.up.float() @ module.down.float() * (alpha / module.rank)
            if not torch.allclose(delta, module.delta(torch.float32), rtol=1e-5, atol=1e-8):
                raise SystemExit(f"{path} {name}: up@down×alpha/rank differs from the reader's ΔW")
            out[name] = delta
    return out


def flatten(deltas: dict):
    import torch

    return torch.cat([deltas[name].flatten() for name in sorted(deltas)])


class Probe:
    """The base model's velocity prediction on fixed held-out inputs, with a weight change added."""

    def __init__(self, model_dir: Path, test_a: list, test_b: list):
        import torch

        self.model = load_transformer(model_dir).eval()
        self.context = empty_prompt_embedding(model_dir)[None]
        generator = torch.Generator("cpu").manual_seed(1234)
        x0, noise, ts, ideal = [], [], [], []
        for za, zb in zip(test_a, test_b, strict=True):
            for t in TIMESTEPS:
                for z in (za, zb):  # the concept's change asked of both versions of the pair
                    x0.append(z)
                    noise.append(torch.randn(z.shape, generator=generator))
                    ts.append(t)
                    ideal.append(-(za - zb) / t)
        self.x0, self.noise = torch.stack(x0), torch.stack(noise)
        self.t = torch.tensor(ts)
        self.ideal = torch.stack(ideal)
        height, width = self.x0.shape[-2:]
        self.inside = torch.zeros(self.x0.shape[-2:], dtype=torch.bool)
        self.inside[: height // 2, : width // 2] = True  # the planted quarter on the latent grid
        self.base = self.predict({})

    def predict(self, deltas: dict):
        import torch

        from difflora_gui.lora import wan_layout

        view = self.t.view(-1, 1, 1, 1, 1)
        noisy = (1 - view) * self.x0 + view * self.noise
        saved = {}
        with torch.no_grad():
            try:
                for name, delta in deltas.items():
                    weight = self.model.get_submodule(wan_layout.to_diffusers(name)).weight
                    saved[name] = weight.detach().clone()
                    weight += delta
                out = []
                for start in range(0, len(noisy), 8):
                    out.append(
                        self.model(
                            hidden_states=noisy[start : start + 8],
                            timestep=self.t[start : start + 8] * 1000.0,
                            encoder_hidden_states=self.context.expand(len(noisy[start : start + 8]), -1, -1),
                            return_dict=False,
                        )[0]
                    )
                return torch.cat(out)
            finally:
                for name, weight in saved.items():
                    self.model.get_submodule(wan_layout.to_diffusers(name)).weight.copy_(weight)

    def outside_share(self, field) -> float:
        total = float(field.pow(2).sum())
        return float(field[..., ~self.inside].pow(2).sum()) / total if total > 0 else float("nan")

    def between(self, plus: dict, minus: dict) -> dict:
        """How the two trained models differ: v(W + plus) − v(W + minus), against the ideal."""
        change = self.predict(plus) - self.predict(minus)
        return {
            "cos_ideal": cosine(change.flatten(), self.ideal.flatten()),
            "norm_rel": float(change.norm()) / float(self.ideal.norm()),
        }

    def effect(self, deltas: dict) -> dict:
        change = self.predict(deltas) - self.base
        ideal_norm = float(self.ideal.norm())
        return {
            "change": change,
            "cos_ideal": cosine(change.flatten(), self.ideal.flatten()),
            "out_share": self.outside_share(change),
            "out_norm_rel": float(change[..., ~self.inside].norm()) / ideal_norm,
            "norm_rel": float(change.norm()) / ideal_norm,
        }


def sides(mode: str, files: dict) -> tuple[dict, dict]:
    """The weight changes of the A model and of the B model: (ΔW_A, ΔW_B), or (ΔW, −ΔW) for a slider."""
    if mode == "slider":
        delta = read_delta(files["slider"]["lora"])
        return delta, {n: -d for n, d in delta.items()}
    return read_delta(files["a"]["lora"]), read_delta(files["b"]["lora"])


def _mean(values) -> float:
    return statistics.fmean(values)


def analyse(mode: str, repeats: dict, probe: Probe) -> dict:
    diffs, norms, a_norms, effects, trained, losses = {}, [], [], [], [], []
    for seed, files in repeats.items():
        plus, minus = sides(mode, files)
        diff = {n: plus[n] - minus[n] for n in plus}  # slider: 2·ΔW, the change from −1 to +1
        diffs[seed] = flatten(diff)
        norms.append(float(diffs[seed].norm()))
        if mode != "slider":
            a_norms.append(float(flatten(plus).norm()))
        effects.append(probe.effect(diff))
        trained.append(probe.between(plus, minus))
        losses.extend(side["avr_loss"] for side in files.values())
    pairs = list(itertools.combinations(sorted(diffs), 2))
    return {
        "cos_repeats": _mean(cosine(diffs[s], diffs[u]) for s, u in pairs),
        "diff_norm": _mean(norms),
        "diff_over_a": _mean(n / a for n, a in zip(norms, a_norms, strict=True)) if a_norms else None,
        "cos_ideal": _mean(e["cos_ideal"] for e in effects),
        "out_share": _mean(e["out_share"] for e in effects),
        "out_norm_rel": _mean(e["out_norm_rel"] for e in effects),
        "norm_rel": _mean(e["norm_rel"] for e in effects),
        "cos_pred_repeats": _mean(
            cosine(effects[i]["change"].flatten(), effects[j]["change"].flatten())
            for i, j in itertools.combinations(range(len(effects)), 2)
        ),
        "trained_cos_ideal": _mean(t["cos_ideal"] for t in trained),
        "trained_norm_rel": _mean(t["norm_rel"] for t in trained),
        "final_avr_loss": _mean(losses),
    }


def print_table(results: dict, ideal_out_share: float) -> None:
    print("weights (the differential: ΔW_A − ΔW_B, slider 2·ΔW; all modules as one vector)")
    header = f"{'mode':13s} {'cos(repeats)':>12s} {'‖diff‖':>8s} {'‖diff‖/‖ΔW_A‖':>14s} {'avr_loss':>8s}"
    print(header)
    print("-" * len(header))
    for mode, row in results.items():
        over_a = "—" if row["diff_over_a"] is None else f"{row['diff_over_a']:.3f}"
        print(
            f"{mode:13s} {row['cos_repeats']:12.3f} {row['diff_norm']:8.4f} {over_a:>14s} "
            f"{row['final_avr_loss']:8.4f}"
        )
    print("predictions on held-out pairs: the differential LoRA on the base (Δpred = v(W + diff) − v(W));")
    print(
        "  trained: how the two trained models differ (v(W + ΔW_A) − v(W + ΔW_B); slider v(W + ΔW) − v(W − ΔW))"
    )
    header = (
        f"{'mode':13s} {'cos(ideal)':>10s} {'out share':>9s} {'‖out‖/‖ideal‖':>13s} {'‖Δpred‖/‖ideal‖':>15s} "
        f"{'cos pred(rep)':>13s} {'trained cos(ideal)':>18s} {'trained ‖Δ‖/‖ideal‖':>19s}"
    )
    print(header)
    print("-" * len(header))
    for mode, row in results.items():
        print(
            f"{mode:13s} {row['cos_ideal']:10.3f} {row['out_share']:9.3f} {row['out_norm_rel']:13.4f} "
            f"{row['norm_rel']:15.4f} {row['cos_pred_repeats']:13.3f} {row['trained_cos_ideal']:18.3f} "
            f"{row['trained_norm_rel']:19.4f}"
        )
    print(f"(the ideal change's own out share: {ideal_out_share:.3f})")


def pretrain_base(model_dir: Path, root: Path, args) -> dict:
    """Fine-tune the whole tiny transformer on pattern-free images (the bare loop, every parameter),
    so the base already models the kind of image both sets share, as a pretrained Wan does."""
    from train_bench_support import bare_train
    from wan_tiny import write_images

    names = [f"base {index:03d}" for index in range(args.pretrain_images)]
    folder = write_images(root / "pretrain", names, size=(args.size, args.size), seed=7, pattern=False)
    latents = encode_images(model_dir, image_paths(folder))
    embedding = empty_prompt_embedding(model_dir)
    transformer = load_transformer(model_dir).requires_grad_(True)
    config = {
        "max_train_steps": args.pretrain_steps,
        "optimizer": "adamw",
        "learning_rate": 1e-3,
        "lr_scheduler": "constant",
        "lr_warmup_steps": 0,
        "discrete_flow_shift": 3.0,
        "max_grad_norm": 1.0,
    }
    losses: list[float] = []
    bare_train(transformer, list(transformer.parameters()), latents, embedding, config, seed=7, losses=losses)
    transformer.save_pretrained(model_dir / "transformer")  # the bench's own temp folder
    window = max(1, min(50, len(losses) // 4))
    return {"loss_first": _mean(losses[:window]), "loss_last": _mean(losses[-window:])}


def run_base(base: str, root: Path, args, data: tuple[Path, Path, Path, Path]) -> tuple[dict, float, dict]:
    from wan_tiny import save_tiny_wan

    a_dir, b_dir, test_a_dir, test_b_dir = data
    model_dir = save_tiny_wan(root / f"tiny wan {base}")
    pretrain = {}
    if base == "pretrained":
        pretrain_start = time.perf_counter()
        pretrain = pretrain_base(model_dir, root / base, args)
        pretrain["seconds"] = time.perf_counter() - pretrain_start
        print(
            f"  base pretrained: {args.pretrain_steps} full fine-tuning steps on {args.pretrain_images} pattern-free "
            f"images, loss {pretrain['loss_first']:.3f} → {pretrain['loss_last']:.3f} ({pretrain['seconds']:.0f} s)",
            flush=True,
        )
    probe = Probe(
        model_dir,
        encode_images(model_dir, image_paths(test_a_dir)),
        encode_images(model_dir, image_paths(test_b_dir)),
    )
    out_dir = root / f"runs {base}"
    out_dir.mkdir()
    results = {}
    for mode in args.modes:
        mode_start = time.perf_counter()
        repeats = {
            seed: train_pair(mode, seed, args, a_dir, b_dir, model_dir, out_dir) for seed in args.seeds
        }
        results[mode] = analyse(mode, repeats, probe)
        results[mode]["seconds"] = time.perf_counter() - mode_start
        print(f"  base {base}, {mode}: trained and measured in {results[mode]['seconds']:.0f} s", flush=True)
    return results, probe.outside_share(probe.ideal), pretrain


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--test-pairs", type=int, default=4, help="held-out pairs for the prediction probe")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=64, help="square image side (a multiple of 16)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--bases",
        nargs="+",
        choices=BASES,
        default=list(BASES),
        help="pretrained: the tiny model first fine-tuned on pattern-free images; random: as built",
    )
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--pretrain-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--smoke", action="store_true", help="2 pairs, 4 steps (a check, not a figure)")
    parser.add_argument("--json", type=Path, help="write the table to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs, args.test_pairs, args.steps, args.pretrain_steps, args.pretrain_images = 2, 1, 4, 4, 2
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least two seeds (the cosine is between repeats)")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(f"machine: {machine_note()}")
    print(
        f"{args.pairs} training pairs and {args.test_pairs} held-out pairs at {args.size}×{args.size} "
        f"(latents 16×1×{args.size // 8}×{args.size // 8}), {args.steps} steps, rank {args.rank}, lr {args.lr}, "
        f"seeds {args.seeds}"
    )
    tables = {}
    with tempfile.TemporaryDirectory(prefix="difflora pair bench ") as tmp:
        root = Path(tmp)
        size = (args.size, args.size)
        data = (
            *write_pair_dataset(root / "train", args.pairs, size, seed=0),
            *write_pair_dataset(root / "test", args.test_pairs, size, seed=99),
        )
        for base in args.bases:
            results, ideal_out, pretrain = run_base(base, root, args, data)
            tables[base] = {"results": results, "ideal_out_share": ideal_out, "pretrain": pretrain}
    for base, table in tables.items():
        print(f"\nbase model: {base}")
        print_table(table["results"], table["ideal_out_share"])
    print(f"\nload after: {machine_note().split('load ')[1]}; bench took {time.perf_counter() - start:.0f} s")
    if args.smoke:
        print("(smoke run: too few steps for a figure)")
    if args.json:
        payload = {
            "tables": tables,
            "seconds": time.perf_counter() - start,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": machine_note(),
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
