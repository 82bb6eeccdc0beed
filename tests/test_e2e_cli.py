"""Headless, end to end: the whole path through the CLI alone, as a user runs it —
``dataset check`` → ``train pair`` (the built-in trainer, A and B synchronised) → ``merge`` (exact SVD
of A − B on the attention of one block) → ``inspect`` → ``preview`` → ``grid`` — each step a real
``python main.py`` subprocess on CI-sized inputs (the tiny Wan, 64² pairs, one training step, 32²
clips of 5 frames in 2 steps), every artifact checked with the app's readers and PyAV."""

from __future__ import annotations

import json
import math

import pytest

from tests.e2e_helpers import StepRunner, VideoProbe, probe_video, write_paired_dataset

PAIRS = 6
#: the tiny Wan's two blocks each hold 4 self-attention, 4 cross-attention and 2 FFN modules
ALL_MODULES = {
    f"blocks.{block}.{group}.{layer}"
    for block in (0, 1)
    for group, layers in (("self_attn", "qkvo"), ("cross_attn", "qkvo"), ("ffn", "02"))
    for layer in layers
}
TARGETS = "attn 1"  # the attention of block 1 only
TARGETED = {name for name in ALL_MODULES if name.startswith("blocks.1.") and "_attn." in name}
RENDER = ["--frames", "5", "--steps", "2", "--size", "32x32", "--fps", "8", "--dtype", "fp32"]


def _differ(path_a, path_b) -> list[str]:
    """The modules whose ΔW differs between two LoRA files (read by the app's reader)."""
    import torch

    from difflora_gui.lora.reader import open_lora

    with open_lora(path_a) as a, open_lora(path_b) as b:
        assert set(a.names()) == set(b.names()) == ALL_MODULES
        return [name for name in a.names() if not torch.equal(a.load(name).delta(), b.load(name).delta())]


@pytest.mark.slow
def test_dataset_check_train_pair_merge_preview_grid_through_the_cli_alone(tmp_path):
    from difflora_gui.compare.grid_canvas import grid_geometry
    from difflora_gui.compare.sidecar import read_sidecar
    from difflora_gui.train.builtin.outputs import read_schedule
    from tests.wan_tiny import save_tiny_wan

    root = tmp_path / "e2e räume ü"
    a_dir, b_dir = write_paired_dataset(root / "paare", PAIRS)
    model = save_tiny_wan(root / "wan tiny")
    steps = StepRunner()

    # 1. dataset check: every pair scored, the clean set flags nothing
    scores = root / "scores ö.json"
    steps.run("dataset check", "dataset", "check", a_dir, b_dir, "--resolution", "64", "--json", scores,
              "--quiet")  # fmt: skip
    checked = json.loads(scores.read_text(encoding="utf-8"))
    assert checked["summary"]["pairs"] == checked["summary"]["checked"] == PAIRS
    assert checked["summary"]["flagged"] == 0, checked["summary"]["verdicts"]
    assert sorted(checked["pairs"]) == [f"shot {i}" for i in range(PAIRS)]
    for pair in checked["pairs"].values():
        assert pair["error"] == "" and pair["flags"] == []
        assert 0.5 < pair["ssim"] < 1.0 and 0 < pair["mad"] < 10  # the hatch: a small, real difference
        assert math.hypot(*pair["shift"]) < 0.5 and len(pair["lab_drift"]) == 3
        assert pair["size_a"] == pair["size_b"] == [64, 64]

    # 2. train pair: A and B in lockstep, one step each (the fewest the trainer takes)
    out = root / "loras ä"
    trained = steps.run_json(
        "train pair", "train", "pair", "--backend", "builtin", "--preset", "quick-test", "--a", a_dir,
        "--b", b_dir, "--output", out, "--name", "détail", "--model", model, "--device", "cpu",
        "--max_train_steps", "1", "--save_every_n_steps", "0", "--resolution", "64", "--json", "--quiet",
        "--pair_mode", "synchronised", "--backend-param", "num_threads=2",
    )  # fmt: skip
    runs = {run["name"]: run for run in trained["runs"]}
    assert sorted(runs) == ["détail_A", "détail_B"]
    assert all(r["status"] == "finished" and r["result"]["steps_done"] == 1 for r in runs.values())
    lora_a, lora_b = (out / f"détail_{side}.safetensors" for side in "AB")
    assert [runs["détail_A"]["result"]["lora"], runs["détail_B"]["result"]["lora"]] == [
        str(lora_a),
        str(lora_b),
    ]
    assert _differ(lora_a, lora_b)  # trained on different data from one start: not the same file
    schedule_a, schedule_b = (read_schedule(path.with_suffix(".schedule.jsonl")) for path in (lora_a, lora_b))
    assert len(schedule_a) == 1 and schedule_a == schedule_b  # synchronised: same item, noise and timestep

    # 3. merge, with the command the pair run printed: exact SVD of A − B on block 1's attention only
    merge_argv = trained["merge"]["argv"]
    assert merge_argv[:5] == ["merge", "--lora_a", str(lora_a), "--lora_b", str(lora_b)]
    merged = steps.run_json("merge", *merge_argv, "--targets", TARGETS, "--exclude_non_targeted",
                            "--analyze_blocks", "--json", "--quiet")  # fmt: skip
    differential = out / "détail_A-minus-détail_B.safetensors"
    assert merged["output"] == trained["merge"]["output"] == str(differential) and differential.is_file()
    assert merged["strategy"]["strategy"] == "full_svd"
    assert (merged["merged"], merged["excluded"], merged["nullified"]) == (len(TARGETED), 12, 0)
    analysis_file = differential.with_suffix(".analysis.json")
    assert str(analysis_file) in merged["analysis_files"]
    analysis = json.loads(analysis_file.read_text(encoding="utf-8"))
    assert analysis["targets"] == "attn blocks=1"
    by_status = {m["name"]: (m["status"], m["norm_out"]) for m in analysis["modules"]}
    assert set(by_status) == ALL_MODULES
    assert {name for name, (status, _n) in by_status.items() if status == "merged"} == TARGETED
    assert all(norm > 0 for name, (_s, norm) in by_status.items() if name in TARGETED)
    assert all(norm == 0 for name, (_s, norm) in by_status.items() if name not in TARGETED)

    # 4. inspect: the file holds exactly the targeted modules, its energy all in block 1's attention
    inspected = steps.run_json("inspect", "inspect", differential, "--json", "--modules")
    assert {m["name"] for m in inspected["modules"]} == TARGETED
    assert (inspected["blocks"], inspected["missing_blocks"]) == ([1], [0])
    assert inspected["layer_groups"] == {"self_attn": 4, "cross_attn": 4}
    assert list(inspected["block_norms"]) == ["1"] and inspected["block_norms"]["1"] > 0
    assert inspected["values_checked"] and inspected["metadata"]["difflora.selector"] == "attn blocks=1"

    # 5. preview: the differential LoRA on the tiny Wan, an H.264 clip of the asked frame count
    clip = root / "vorschau é.mp4"
    cache = root / "render cache"
    preview = steps.run_json(
        "preview", "preview", "--backend", "diffusers", "--model", model, "--device", "cpu",
        "--lora", f"{differential}:1", "--prompt", "a hatched scene", "--seed", "1", *RENDER,
        "--out", clip, "--cache", cache, "--json", "--quiet",
    )  # fmt: skip
    assert preview["video"] == str(clip) and not preview["cache_hit"]
    assert (preview["frames"], preview["width"], preview["height"]) == (5, 32, 32)
    assert preview["request"]["loras"][0]["file"] == str(differential)
    assert probe_video(clip) == VideoProbe("h264", 5, 32, 32)

    # 6. grid: strengths -1, 0, 1 × seeds 1, 2 — six cells, one labelled video of the canvas's size
    grid_video = root / "raster ß.mp4"
    grid = steps.run_json(
        "grid", "grid", "--backend", "diffusers", "--model", model, "--device", "cpu",
        "--lora", differential, "--strengths", "-1:1:1", "--seeds", "1,2", "--prompt", "a hatched scene",
        *RENDER, "--out", grid_video, "--cache", cache, "--json", "--quiet",
    )  # fmt: skip
    assert grid["out"] == str(grid_video) and len(grid["cells"]) == 6
    labels = {tuple(cell["labels"]) for cell in grid["cells"]}
    assert labels == {(f"strength {s}", f"seed {seed}") for s in ("-1", "0", "1") for seed in (1, 2)}
    assert all((c["frames"], c["width"], c["height"]) == (5, 32, 32) for c in grid["cells"])
    # the preview above was strength 1, seed 1: that cell is replayed from the render cache
    (replayed,) = [cell for cell in grid["cells"] if not cell["rendered"]]
    assert replayed["labels"] == ["strength 1", "seed 1"] and replayed["key"] == preview["key"]
    assert (grid["rendered"], grid["cached"]) == (5, 1)
    spec = read_sidecar(grid["sidecar"]).spec
    assert (spec.columns, spec.rows, spec.count) == (3, 2, 6)
    canvas = grid_geometry(spec, 32, 32)
    assert probe_video(grid_video) == VideoProbe("h264", 5, canvas.width, canvas.height)

    print(steps.report())  # the wall times are reported, not asserted: a busy CI machine is slower
