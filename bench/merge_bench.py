"""Benchmark of the differential merge on a Wan2.1-14B-shaped LoRA pair (not a test).

    python bench/merge_bench.py                 # 14B, rank 16 → 4, full_svd on the CPU
    python bench/merge_bench.py --variant 1.3B --dense-samples 0

It generates a synthetic rank-16 pair with real key names (all 400 modules of the 14B T2V model,
bfloat16, musubi format), then measures, each in a fresh process so peak memory is the merge's own:

* the merge: wall time and peak RSS (``run_merge``, rank 4, full_svd, device cpu);
* the I/O floor: reading both inputs whole (one sequential read each) and writing an output of
  the same tensors as the merge's output with the same writer;
* the field's method, a dense ``torch.linalg.svd`` of the out×in difference, timed on sample modules
  and extrapolated to all of them.

Targets (2-core CPU): wall ≤ 5 s, wall ≤ 1.5× the I/O floor, ≥ 1000× faster than dense per
module, peak RSS ≤ 2× the inputs' size.

The merge and the I/O floor are measured twice (``--cache both``, the default):

* warm: the inputs are in the operating system's page cache (just written), so "reading" them is a
  memory copy and the floor is the smallest it can be;
* cold: before every run the inputs are dropped from the page cache (``posix_fadvise``
  DONTNEED; Linux), so both the merge and the floor read them from the disk, as a merge of LoRAs
  that were not just written does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PEAK_RSS = """
def peak_rss_mb():
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024
    except ImportError:  # Windows
        import psutil
        return psutil.Process().memory_info().peak_wset / 2**20
def rss_mb():
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")
"""

MERGE_CHILD = (
    "import json, sys, threading, time\n"
    + _PEAK_RSS
    + """
def rss_parts():
    # Linux: resident anonymous (private) memory and resident file-backed pages (mapped files)
    try:
        with open("/proc/self/status") as status:
            lines = dict(line.split(":", 1) for line in status if line.startswith(("RssAnon", "RssFile")))
        return {k: int(v.split()[0]) / 1024 for k, v in lines.items()}
    except OSError:
        return {}
peaks = {}
running = True
def sample():
    while running:
        for key, value in rss_parts().items():
            peaks[key] = max(peaks.get(key, 0.0), value)
        time.sleep(0.01)
import torch
from difflora_gui.merge.engine import run_merge
from difflora_gui.merge.params import MergeParams
params = MergeParams.from_json(json.loads(sys.argv[1]))
base_rss = rss_mb()
base_parts = rss_parts()
base_peak = peak_rss_mb()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
result = run_merge(params)
wall = time.perf_counter() - start
running = False
sampler.join()
print(json.dumps({"wall": wall, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base_rss, "base_peak_mb": base_peak,
                  "anon_added_mb": peaks.get("RssAnon", 0) - base_parts.get("RssAnon", 0) if base_parts else None,
                  "file_added_mb": peaks.get("RssFile", 0) - base_parts.get("RssFile", 0) if base_parts else None,
                  "merged": result.merged, "ranks": {str(k): v for k, v in result.ranks.items()},
                  "energy": result.retained_energy_mean}))
"""
)

IO_CHILD = (
    "import json, os, sys, time\n"
    + _PEAK_RSS
    + """
import torch
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.writer import write_lora
from difflora_gui.lora.reader import open_lora
inputs, like, out = sys.argv[1:3], sys.argv[3], sys.argv[4]
# the output's tensors, prepared before the clock starts (only the writing is timed)
with open_lora(like) as f:
    modules = [f.load(n) for n in f.names()]
    modules = [LoraModule(m.name, down=m.down.clone(), up=m.up.clone(), scale=1.0, alpha=float(m.rank)) for m in modules]
    dtype = str(modules[0].up.dtype).removeprefix("torch.")
# one buffer for both files, its pages touched before the clock starts: only the reading is timed
buffer = bytearray(max(os.path.getsize(p) for p in inputs))
buffer[:] = b"\1" * len(buffer)
start = time.perf_counter()
count = 0
for path in inputs:  # the least work that brings every byte into memory: one sequential read per file
    with open(path, "rb", buffering=0) as handle:
        count += handle.readinto(memoryview(buffer)[: os.path.getsize(path)])
read = time.perf_counter() - start
start = time.perf_counter()
write_lora(out, modules, format="comfy", dtype=dtype, overwrite=True)
write = time.perf_counter() - start
print(json.dumps({"read": read, "write": write, "bytes": count}))
"""
)

ARITHMETIC_CHILD = """
import json, os, sys, time
import torch
from difflora_gui.jobs.pipeline import WorkerPool
from difflora_gui.lora.reader import open_lora
from difflora_gui.merge.api import ModuleDelta
from difflora_gui.merge.runtime import merge_worker_threads, merge_workers, numpy_blas_single_threaded
path_a, path_b = sys.argv[1], sys.argv[2]
with open_lora(path_a) as fa, open_lora(path_b) as fb:  # every factor in memory before the clock starts
    pairs = [(n, fa.load(n), fb.load(n)) for n in fa.names()]
def grams(item):
    name, a, b = item
    delta = ModuleDelta(name, 0, a.shape, ups=[a.up, b.up], downs=[a.down, b.down], coefs=[a.scale, -b.scale],
                        dtype=torch.float32, device=torch.device("cpu"))
    delta.export_grams()  # the float64 stacks and their two Gram matrices, nothing else
workers = merge_workers()  # as many as the merge uses, with the merge's thread settings
times = []
with numpy_blas_single_threaded(), WorkerPool(workers, thread_context=merge_worker_threads) as pool:
    for _ in range(3):
        start = time.perf_counter()
        list(pool.ordered(grams, pairs))
        times.append(time.perf_counter() - start)
print(json.dumps({"grams": min(times), "workers": workers}))
"""

DENSE_CHILD = """
import json, sys, time
import torch
from difflora_gui.lora.reader import open_lora
path_a, path_b, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
times = {}
torch.linalg.svd(torch.randn(512, 512), full_matrices=False)  # warm-up: LAPACK and thread start-up are not timed
with open_lora(path_a) as fa, open_lora(path_b) as fb:
    for name in names:
        dense = fa.load(name).delta(torch.float32) - fb.load(name).delta(torch.float32)
        start = time.perf_counter()
        u, s, vh = torch.linalg.svd(dense, full_matrices=False)
        low = (u[:, :4] * s[:4]) @ vh[:4]  # the rank-4 truncation the field's scripts keep
        times[name] = time.perf_counter() - start
print(json.dumps(times))
"""


def child(code: str, *args: str) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, HF_HUB_OFFLINE="1", DIFFLORA_DISABLE_PLUGIN_AUTOLOAD="1")
    completed = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def can_evict() -> bool:
    return hasattr(os, "posix_fadvise") and hasattr(os, "POSIX_FADV_DONTNEED")


def evict(*paths: Path) -> None:
    """Drop the files' pages from the page cache, so the next read comes from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def generate(folder: Path, variant: str, rank: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT))
    from difflora_gui.lora.synthetic import make_wan_lora

    paths = folder / "concept_a.safetensors", folder / "concept_b.safetensors"
    for seed, path in enumerate(paths, start=1):
        make_wan_lora(
            variant,
            rank=rank,
            alpha=1.0,
            dtype="bfloat16",
            seed=seed,
            path=path,
            format="musubi",
            overwrite=True,
        )
    if hasattr(
        os, "sync"
    ):  # flush the new files now, so the kernel's write-back does not run during the timing
        os.sync()
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="14B", help="Wan variant shapes (14B, 1.3B)")
    parser.add_argument("--rank-in", type=int, default=16, help="rank of the two inputs")
    parser.add_argument("--rank", type=int, default=4, help="output rank")
    parser.add_argument("--strategy", default="full_svd")
    parser.add_argument("--device", default="cpu", help="where the merge computes: cpu, cuda, cuda:N")
    parser.add_argument(
        "--repeats", type=int, default=3, help="merge runs per cache state (the best is reported)"
    )
    parser.add_argument(
        "--cache",
        choices=("both", "warm", "cold"),
        default="both",
        help="inputs in the page cache (warm), read from disk (cold), or both",
    )
    parser.add_argument(
        "--dense-samples", type=int, default=1, help="attention modules timed with a dense SVD (0: skip)"
    )
    parser.add_argument(
        "--dense-ffn", action="store_true", help="also time one ffn.0 module densely (about 3 min)"
    )
    parser.add_argument("--workdir", help="folder for the generated files (default: a temporary folder)")
    args = parser.parse_args(argv)

    folder = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="difflora-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating a Wan {args.variant} rank-{args.rank_in} bf16 pair in {folder} ...", flush=True)
    path_a, path_b = generate(folder, args.variant, args.rank_in)
    inputs_mb = (path_a.stat().st_size + path_b.stat().st_size) / 2**20
    output = folder / "merged.safetensors"

    from difflora_gui.merge.params import MergeParams

    params = MergeParams(
        lora_a=str(path_a),
        lora_b=str(path_b),
        output=str(output),
        rank=args.rank,
        strategy=args.strategy,
        device=args.device,
        overwrite=True,
        created="2026-01-01T00:00:00+00:00",
    )
    caches = ["warm", "cold"] if args.cache == "both" else [args.cache]
    if "cold" in caches and not can_evict():
        print("cold-cache runs need os.posix_fadvise (Linux); measuring warm only")
        caches = ["warm"]
    measured = {}
    for cache in caches:
        runs, io_runs = [], []
        for _ in range(max(1, args.repeats)):
            if cache == "cold":
                evict(path_a, path_b)
            runs.append(child(MERGE_CHILD, json.dumps(params.to_json())))
        for _ in range(3):
            if cache == "cold":
                evict(path_a, path_b)
            io_runs.append(
                child(IO_CHILD, str(path_a), str(path_b), str(output), str(folder / "io_floor.safetensors"))
            )
        measured[cache] = (runs, min(io_runs, key=lambda r: r["read"] + r["write"]))
    runs = [r for cache_runs, _ in measured.values() for r in cache_runs]
    best = min(measured["warm"][0], key=lambda r: r["wall"])

    import torch

    from difflora_gui.lora.reader import open_lora

    with open_lora(path_a) as f:
        names = f.names()
        shapes = {n: f.shape(n) for n in names}
    attn = [n for n in names if ".ffn." not in n]
    ffn = [n for n in names if ".ffn." in n]
    # the least arithmetic an exact merge must do: float64 Grams of every module's stacked factors
    arithmetic = child(ARITHMETIC_CHILD, str(path_a), str(path_b))
    dense = {}
    if args.dense_samples > 0:
        sample = attn[: args.dense_samples] + (ffn[:1] if args.dense_ffn else [])
        print(
            f"timing a dense SVD of {len(sample)} module(s) (the field's method; minutes for 14B) ...",
            flush=True,
        )
        dense = child(DENSE_CHILD, str(path_a), str(path_b), json.dumps(sample))

    print()
    print(
        f"Wan {args.variant}: {len(names)} modules, rank {args.rank_in} → {args.rank}, {args.strategy} on {args.device}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs"
    )
    print(f"inputs: 2 × {inputs_mb / 2:.1f} MB; output {output.stat().st_size / 2**20:.1f} MB")
    floor_rows = []
    for cache, (cache_runs, io) in measured.items():
        cache_best = min(cache_runs, key=lambda r: r["wall"])
        io_total = io["read"] + io["write"]
        walls = ", ".join(f"{r['wall']:.2f}" for r in cache_runs)
        read_rate = inputs_mb / io["read"] if io["read"] > 0 else float("inf")
        print(
            f"{cache} cache: merge wall time (best of {len(cache_runs)}) {cache_best['wall']:.2f} s  (runs: {walls}); "
            f"I/O floor: read {io['read']:.3f} s ({read_rate:,.0f} MB/s) + write {io['write']:.3f} s = {io_total:.3f} s"
        )
        ratio = cache_best["wall"] / io_total
        floor_rows.append((f"wall / I/O floor ({cache})", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5))
    print(
        f"exact arithmetic alone (float64 stacks and Grams of every module, inputs already in memory, "
        f"{arithmetic['workers']} workers): {arithmetic['grams']:.3f} s"
    )
    for cache, (_, io) in measured.items():
        io_total = io["read"] + io["write"]
        floor_rows.append(
            (
                f"  (Grams alone / I/O floor, {cache})",
                f"{arithmetic['grams'] / io_total:.2f}×",
                "",
                None,
            )
        )
    worst = max(runs, key=lambda r: r["peak_rss_mb"])
    print(
        f"peak RSS (highest of the runs; it varies with thread scheduling): {worst['peak_rss_mb']:.0f} MB "
        f"(process after imports: {worst['base_rss_mb']:.0f} MB; added by the merge: "
        f"{worst['peak_rss_mb'] - worst['base_rss_mb']:.0f} MB)"
    )
    if worst.get("anon_added_mb") is not None:
        print(
            f"  of which private memory (RssAnon): +{worst['anon_added_mb']:.0f} MB; file-backed pages "
            f"(RssFile: libraries loaded during the merge): +{worst['file_added_mb']:.0f} MB"
        )
    rows = [
        ("wall time (warm)", f"{best['wall']:.2f} s", "≤ 5 s", best["wall"] <= 5.0),
        *floor_rows,
        (
            "peak RSS / inputs",
            f"{worst['peak_rss_mb'] / inputs_mb:.2f}×",
            "≤ 2×",
            worst["peak_rss_mb"] / inputs_mb <= 2.0,
        ),
        (
            "  (added by the merge / inputs)",
            f"{(worst['peak_rss_mb'] - worst['base_rss_mb']) / inputs_mb:.2f}×",
            "",
            None,
        ),
    ]
    if worst.get("anon_added_mb") is not None:
        rows.append(("  (private memory / inputs)", f"{worst['anon_added_mb'] / inputs_mb:.2f}×", "", None))
    if dense:
        per_module_ours = best["wall"] / len(names)
        attn_times = [t for n, t in dense.items() if ".ffn." not in n]
        attn_time = sum(attn_times) / len(attn_times)
        ffn_times = [t for n, t in dense.items() if ".ffn." in n]
        if ffn_times:
            ffn_time = sum(ffn_times) / len(ffn_times)
            ffn_note = "measured"
        else:  # thin SVD costs O(m·n²): scale the attention time by the shapes
            m, n = shapes[ffn[0]] if ffn else (1, 1)
            ma, na = shapes[attn[0]]
            ffn_time = attn_time * (max(m, n) * min(m, n) ** 2) / (max(ma, na) * min(ma, na) ** 2)
            ffn_note = "scaled from attention by m·n²"
        dense_total = attn_time * len(attn) + ffn_time * len(ffn)
        ratio = dense_total / best["wall"]
        print(f"dense SVD per attention module: {attn_time:.1f} s; ffn: {ffn_time:.1f} s ({ffn_note})")
        print(
            f"dense SVD, all {len(names)} modules (extrapolated): {dense_total / 60:.1f} min; "
            f"ours: {per_module_ours * 1e3:.2f} ms per module (whole merge incl. I/O)"
        )
        rows.insert(2, ("speed-up vs dense SVD", f"{ratio:,.0f}×", "≥ 1000×", ratio >= 1000))
    print()
    for label, value, target, ok in rows:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        print(f"  {label:36s} {value:>10s}   target {target:8s} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
