"""Benchmark of the preview's LoRA re-configuration against the alternatives (not a test).

    python bench/preview_bench.py                  # Wan-14B-shaped: 40 blocks, tiny widths, CPU
    python bench/preview_bench.py --json out.json
    python bench/preview_bench.py --full-1.3b      # GPU only: full-size Wan2.1-1.3B, bf16, 480×832

On a transformer with the 14B's 40 blocks (narrow layers, so it fits anywhere) and three rank-16
adapters on every block Linear (3 × 400 LoRA layers), in one run it times:

* ours: ``AdapterStack.apply`` with new strengths and new per-block weights for all three adapters
  (every per-module PEFT scale rewritten; the selector text is new each time, so nothing is cached);
* ``set_adapters`` with the same three strengths (it cannot weight blocks except with its dict form,
  which substring-matches ``blocks.1`` into ``blocks.10``), and its side effect on our scales;
* unloading one adapter and loading it again from its file (diffusers' ``load_lora_weights``);
* reloading the transformer from disk (``from_pretrained`` of a ``save_pretrained`` folder);
* a change of the stack's files (PEFT's per-layer active adapter list rewritten).

It checks that ours is bit-exact: after several re-configurations the transformer's output equals
that of a freshly loaded transformer with freshly loaded adapters set to the same scales.
Target: ours ≤ 2 ms and bit-exact (PASS/FAIL line).

``--full-1.3b`` (CUDA only) builds the full-size Wan2.1-T2V-1.3B transformer with random weights in
bfloat16 and three rank-16 adapters, and denoises 480×832, 33 frames, 4 steps with guidance:
seconds per step, the re-configuration time at that size, and peak VRAM.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_MS = 2.0


def bench_variant(blocks: int = 40, dim: int = 64, ffn: int = 128, heads: int = 2, text_dim: int = 32):
    from difflora_gui.lora.wan_layout import WanVariant

    return WanVariant(
        f"bench{blocks}", num_blocks=blocks, dim=dim, ffn_dim=ffn, num_heads=heads, text_dim=text_dim
    )


def make_transformer(variant, seed: int = 0, dtype=None, device: str = "cpu"):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    with torch.device(device):  # a full-size model initialises on the GPU in seconds, not minutes
        model = WanTransformer3DModel(
            patch_size=variant.patch_size,
            num_attention_heads=variant.num_heads,
            attention_head_dim=variant.dim // variant.num_heads,
            in_channels=16,
            out_channels=variant.out_dim,
            text_dim=variant.text_dim,
            freq_dim=variant.freq_dim,
            ffn_dim=variant.ffn_dim,
            num_layers=variant.num_blocks,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        )
    if dtype is not None:
        model = model.to(dtype)
    return model.eval().requires_grad_(False)


def make_pipe(transformer):
    from diffusers import UniPCMultistepScheduler, WanPipeline

    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    pipe = WanPipeline(
        tokenizer=None, text_encoder=None, vae=None, scheduler=scheduler, transformer=transformer
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_stack(files, rng, num_blocks):
    """Three entries with new strengths and per-block weights (a new selector text each time)."""
    from difflora_gui.lora.selector import format_block_weights
    from difflora_gui.preview.request import LoraEntry

    entries = []
    for path in files:
        weights = {
            b: round(rng.choice([0.25, 0.5, 0.75, 1.0, 1.25, rng.uniform(0, 2)]), 4)
            for b in range(num_blocks)
        }
        strength = round(rng.uniform(-3, 3), 4)
        entries.append(
            LoraEntry(str(path), strength=strength, selector=f"blocks={format_block_weights(weights)}")
        )
    return entries


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def forward(transformer, inputs):
    import torch

    with torch.no_grad():
        return transformer(**inputs, return_dict=False)[0]


def bench_inputs(variant, device="cpu", dtype=None, frames=3, height=8, width=8, text_len=16):
    import torch

    g = torch.Generator().manual_seed(7)
    dtype = dtype or torch.float32
    return {
        "hidden_states": torch.randn(1, 16, frames, height, width, generator=g).to(device, dtype),
        "timestep": torch.tensor([500.0], device=device),
        "encoder_hidden_states": torch.randn(1, text_len, variant.text_dim, generator=g).to(device, dtype),
    }


def expected_scales(entries, names):
    """{canonical name: factor} per file, computed independently of the code under test."""
    from difflora_gui.lora.selector import parse_selector

    out = {}
    for entry in entries:
        sel = parse_selector(entry.selector)
        out[entry.file] = {n: entry.strength * (sel.weight_of(n) if sel.matches(n) else 0.0) for n in names}
    return out


def reference_output(model_dir, files, entries, inputs, names):
    """A fresh transformer from disk, fresh adapters (diffusers' own loader), scales set directly."""
    from diffusers import WanTransformer3DModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    from difflora_gui.lora import wan_layout

    transformer = WanTransformer3DModel.from_pretrained(model_dir).eval()
    pipe = make_pipe(transformer)
    adapter_names = []
    for index, path in enumerate(files):
        name = f"ref{index}"
        pipe.load_lora_weights(str(path), adapter_name=name)
        adapter_names.append(name)
    pipe.set_adapters(adapter_names, [1.0] * len(adapter_names))  # the order ours runs them in
    factors = expected_scales(entries, names)
    by_diffusers = {wan_layout.to_diffusers(n): n for n in names}
    for module_name, module in transformer.named_modules():
        if isinstance(module, BaseTunerLayer) and module_name in by_diffusers:
            for name, path in zip(adapter_names, files, strict=True):
                module.scaling[name] = factors[str(path)][by_diffusers[module_name]]
    return forward(transformer, inputs)


def run_small(args) -> dict:
    import torch

    from difflora_gui.lora.synthetic import make_wan_lora, module_names
    from difflora_gui.preview.adapters import AdapterStack

    torch.set_num_threads(args.threads)
    variant = bench_variant(args.blocks)
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="preview_bench_"))
    transformer = make_transformer(variant)
    model_dir = work / "transformer"
    transformer.save_pretrained(model_dir)
    files = []
    for index in range(3):
        path = work / f"lora{index}.safetensors"
        make_wan_lora(variant, rank=16, seed=index + 1, up_std=0.05, path=path)
        files.append(path)
    names = module_names(variant)
    pipe = make_pipe(transformer)
    stack = AdapterStack(pipe, two_experts=False)
    started = time.perf_counter()
    stack.apply(random_stack(files, rng, variant.num_blocks))
    first_load_ms = (time.perf_counter() - started) * 1000

    stacks = [random_stack(files, rng, variant.num_blocks) for _ in range(args.repeats)]
    it = iter(stacks)
    ours = timed(lambda: stack.apply(next(it)), args.repeats)

    adapter_names = list(stack.active())
    strengths = [e.strength for e in stacks[-1]]
    sa = timed(lambda: pipe.transformer.set_adapters(adapter_names, strengths), args.repeats)
    # set_adapters wrote one scale per adapter everywhere: our per-block weights are gone
    stack.apply(stacks[-1])
    sample = next(iter(stack.scales().values()))
    before = dict(sample)
    pipe.transformer.set_adapters(adapter_names, strengths)
    after = next(iter(stack.scales().values()))
    set_adapters_resets = any(before[n] != after[n] for n in before)

    inactive = timed(
        lambda: (stack.apply(stacks[-1][:2]), stack.apply(stacks[-1])), max(3, args.repeats // 10)
    )

    reload_name = "reload"
    pipe.load_lora_weights(str(files[0]), adapter_name=reload_name)

    def unload_reload():
        pipe.transformer.delete_adapters(reload_name)
        pipe.load_lora_weights(str(files[0]), adapter_name=reload_name)

    reload_ms = timed(unload_reload, args.reload_repeats)
    pipe.transformer.delete_adapters(reload_name)
    from diffusers import WanTransformer3DModel

    from_disk = timed(lambda: WanTransformer3DModel.from_pretrained(model_dir), args.reload_repeats)

    # bit-exactness: several more re-configurations, then the last stack against a fresh reference
    for entries in stacks[:5]:
        stack.apply(entries)
    final = random_stack(files, rng, variant.num_blocks)
    stack.apply(final)
    inputs = bench_inputs(variant)
    ours_out = forward(pipe.transformer, inputs)
    ref_out = reference_output(model_dir, files, final, inputs, names)
    exact = bool(torch.equal(ours_out, ref_out))
    no_lora = forward(WanTransformer3DModel.from_pretrained(model_dir).eval(), inputs)
    moved = float((ours_out - no_lora).abs().max())

    ours_ms = statistics.median(ours)
    result = {
        "shape": f"{variant.num_blocks} blocks, dim {variant.dim}, ffn {variant.ffn_dim}",
        "adapters": 3,
        "rank": 16,
        "lora_layers": 3 * len(names),
        "first_load_ms": first_load_ms,
        "ours_ms": ours_ms,
        "ours_min_ms": min(ours),
        "set_adapters_ms": statistics.median(sa),
        "set_adapters_resets_block_weights": set_adapters_resets,
        "active_set_change_ms": statistics.median(inactive) / 2,
        "unload_reload_ms": statistics.median(reload_ms),
        "transformer_reload_ms": statistics.median(from_disk),
        "bit_exact": exact,
        "lora_moves_output_by": moved,
        "target_ms": TARGET_MS,
    }
    result["pass"] = bool(exact and ours_ms <= TARGET_MS and moved > 0)
    return result


def report_small(r: dict) -> None:
    print(
        f"Wan-14B-shaped transformer ({r['shape']}), {r['adapters']} adapters of rank {r['rank']}, "
        f"{r['lora_layers']} LoRA layers"
    )
    print(
        f"  ours: new strengths + block weights, all 3 adapters  {r['ours_ms']:8.3f} ms (min {r['ours_min_ms']:.3f})"
    )
    print(
        f"  set_adapters, 3 strengths (no per-block)             {r['set_adapters_ms']:8.3f} ms"
        f"  = {r['set_adapters_ms'] / r['ours_ms']:.1f}× ours"
        f"{'  (and it reset our per-block scales)' if r['set_adapters_resets_block_weights'] else ''}"
    )
    print(f"  stack's files change (active list rewritten)         {r['active_set_change_ms']:8.3f} ms")
    print(
        f"  unload + reload one adapter from its file            {r['unload_reload_ms']:8.1f} ms"
        f"  = {r['unload_reload_ms'] / r['ours_ms']:.0f}× ours"
    )
    print(
        f"  transformer reload from disk                         {r['transformer_reload_ms']:8.1f} ms"
        f"  = {r['transformer_reload_ms'] / r['ours_ms']:.0f}× ours"
    )
    print(f"  first load of the 3 adapters                         {r['first_load_ms']:8.1f} ms")
    print(
        f"  bit-exact vs fresh adapters at the same scales: {r['bit_exact']} "
        f"(the LoRAs move the output by up to {r['lora_moves_output_by']:.3g})"
    )
    verdict = "PASS" if r["pass"] else "FAIL"
    print(
        f"{verdict}: ours {r['ours_ms']:.3f} ms (target ≤ {r['target_ms']:g} ms), bit-exact {r['bit_exact']}"
    )


# --- full size on a GPU --------------------------------------------------------------------------


def run_full(args, *, variant=None, device="cuda", height=480, width=832, frames=33, steps=4) -> dict:
    """The full-size 1.3B (or ``variant``) denoising loop: s/step, reconfigure time, peak VRAM."""
    import torch

    from difflora_gui.lora import wan_layout
    from difflora_gui.lora.synthetic import make_wan_lora
    from difflora_gui.preview.adapters import AdapterStack

    variant = variant or wan_layout.get_variant("1.3B")
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="preview_full_"))
    files = []
    for index in range(3):
        path = work / f"lora{index}.safetensors"
        make_wan_lora(variant, rank=16, seed=index + 1, up_std=0.02, dtype="bfloat16", path=path)
        files.append(path)
    started = time.perf_counter()
    transformer = make_transformer(variant, dtype=dtype, device=device)
    pipe = make_pipe(transformer)
    build_s = time.perf_counter() - started
    stack = AdapterStack(pipe, two_experts=False)
    started = time.perf_counter()
    stack.apply(random_stack(files, rng, variant.num_blocks))
    load_s = time.perf_counter() - started
    recon = timed(lambda: stack.apply(random_stack(files, rng, variant.num_blocks)), 20)
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(1, 512, variant.text_dim, generator=g).to(device, dtype)
    negative = torch.randn(1, 512, variant.text_dim, generator=g).to(device, dtype)
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_step(_pipe, index, _t, tensors):
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now
        return {}

    def denoise():
        last[0] = time.perf_counter()
        return pipe(
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            height=height,
            width=width,
            num_frames=frames,
            num_inference_steps=steps,
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
            callback_on_step_end=on_step,
        ).frames

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    denoise()  # warm-up (kernels, allocator)
    step_times.clear()
    started = time.perf_counter()
    denoise()
    total_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return {
        "model": f"{variant.title or variant.name} transformer, random weights, {str(dtype).split('.')[-1]}",
        "size": f"{width}x{height}, {frames} frames, {steps} steps, guidance 5 (2 forwards a step)",
        "device": torch.cuda.get_device_name() if cuda else device,
        "build_s": build_s,
        "adapters_load_s": load_s,
        "seconds_per_step": statistics.median(step_times),
        "denoise_s": total_s,
        "reconfigure_ms": statistics.median(recon),
        "peak_vram_gib": peak,
    }


def report_full(r: dict) -> None:
    print(f"{r['model']} on {r['device']}: {r['size']}")
    print(
        f"  {r['seconds_per_step']:.3f} s/step, {r['denoise_s']:.2f} s for the loop; "
        f"re-configure 3 adapters {r['reconfigure_ms']:.3f} ms; peak VRAM {r['peak_vram_gib']:.2f} GiB "
        f"(build {r['build_s']:.1f} s, adapters {r['adapters_load_s']:.2f} s)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--reload-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full-1.3b", dest="full", action="store_true", help="full-size 1.3B on CUDA")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    import torch

    results: dict = {}
    if args.full:
        if torch.cuda.is_available():
            results["full_1.3b"] = run_full(args)
            report_full(results["full_1.3b"])
        else:
            print(
                "--full-1.3b: CUDA is not available on this machine; the full-size run needs a GPU (skipped)"
            )
            results["full_1.3b"] = None
    results["small"] = run_small(args)
    report_small(results["small"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if results["small"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
