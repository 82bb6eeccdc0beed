"""``inspect``: the summary of a file (table, JSON, GUI card), including our own provenance keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from difflora_gui import cli
from difflora_gui.lora.inspect import delta_norm, summarize
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.writer import InputFile, build_metadata, save_safetensors, to_state_dict, write_lora
from tests.app_process import run_main


def _merged_file(tmp_path: Path) -> Path:
    """A file like the merge writes: a selection, non-uniform ranks, our provenance metadata."""
    modules = make_wan_lora("tiny", task="i2v", rank=lambda n: 4 if "ffn" in n else 2, alpha=2.0, seed=9)
    modules = [m for m in modules if not m.name.startswith("blocks.1.ffn")]
    metadata = build_metadata(
        modules=modules,
        title="closed eyes slider",
        strategy="factored-svd",
        params={"rank": 4, "weight_b": -1.0},
        selector="all exclude=blocks\\.1\\.ffn",
        inputs=[
            InputFile("eyes A.safetensors", "a" * 64, "A"),
            InputFile("eyes B.safetensors", "b" * 64, "B"),
        ],
        created="2026-04-05T06:07:08Z",
    )
    return write_lora(tmp_path / "slider.safetensors", modules, metadata=metadata, dtype="bfloat16")


def test_summary_facts(tmp_path):
    summary = summarize(_merged_file(tmp_path))
    assert summary.model.label == "unknown Wan-like (I2V, dim 24, 2 blocks)"
    assert summary.format == "comfy"
    assert len(summary.modules) == 22 and summary.num_tensors == 66
    assert summary.blocks == [0, 1] and summary.missing_blocks == []
    assert summary.modules_per_block == {0: 12, 1: 10}
    assert summary.groups == {"self_attn": 8, "cross_attn": 12, "ffn": 2}
    assert summary.ranks == {2: 20, 4: 2}
    assert summary.alphas == {"2": 22} and summary.scales == {"0.5": 2, "1": 20}
    assert summary.dtypes == {"bfloat16": 44, "float32": 22}
    assert summary.values_checked and all(m.norm is not None and m.norm > 0 for m in summary.modules)
    provenance = summary.provenance
    assert provenance["strategy"] == "factored-svd" and provenance["created"] == "2026-04-05T06:07:08+00:00"
    assert provenance["inputs"][0] == {"name": "eyes A.safetensors", "sha256": "a" * 64, "role": "A"}
    assert provenance["params"] == {"rank": 4, "weight_b": -1.0}
    assert provenance["selector"] == "all exclude=blocks\\.1\\.ffn"
    card = dict(summary.card())
    assert card["model"].startswith("unknown Wan-like")
    assert card["rank"] == "2: 20, 4: 2 (value: modules)"
    assert "strategy factored-svd" in card["made by"] and "A: eyes A.safetensors" in card["made by"]


def test_json_is_complete_and_machine_readable(tmp_path, capsys):
    path = _merged_file(tmp_path)
    assert cli.main(["inspect", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["file_name"] == "slider.safetensors" and data["file_size"] == path.stat().st_size
    assert data["model"]["task"] == "i2v" and data["model"]["dim"] == 24
    assert data["ranks"] == {"2": 20, "4": 2}
    assert data["metadata"]["ss_network_dim"] == "Dynamic" and data["metadata"]["ss_network_alpha"] == "2"
    assert data["provenance"]["inputs"][1]["role"] == "B"
    assert len(data["modules"]) == 22
    first = data["modules"][0]
    assert (
        first["name"] == "blocks.0.self_attn.q"
        and first["shape"] == [24, 24]
        and first["group"] == "self_attn"
    )
    assert set(data["block_norms"]) == {"0", "1"}


def test_table_output(tmp_path, capsys):
    path = _merged_file(tmp_path)
    assert cli.main(["inspect", str(path), "--modules"]) == 0
    out = capsys.readouterr().out
    for fragment in (
        "model         unknown Wan-like (I2V, dim 24, 2 blocks) (2 blocks, dim 24, ffn 32)",
        "format        comfy (diffusion_model.; lora_down/lora_up; alpha)",
        "blocks        0-1 (2 of 2); modules per block differ",
        "layer groups  self_attn 8, cross_attn 12, ffn 2",
        "values        all finite; largest ‖ΔW‖",
        "difflora.strategy",
        "modelspec.architecture",
        "wan2.1/lora",
        "blocks.0.cross_attn.k_img",
    ):
        assert fragment in out, fragment


def test_released_size_notes_and_missing_blocks(tmp_path):
    path = tmp_path / "14b.safetensors"
    make_wan_lora("14B", rank=1, select="attn blocks=0-3,39", path=path, dtype="bfloat16")
    summary = summarize(path, check_values=False)
    assert summary.model.label == "Wan 14B T2V (2.1, or 2.2 A14B)" and summary.missing_blocks == list(range(4, 39))
    assert not summary.values_checked and all(m.norm is None for m in summary.modules)
    assert any("Wan2.2" in note for note in summary.notes)
    assert dict(summary.card())["blocks"].startswith("0-3,39 (5 of 40); missing 4-38")


def test_foreign_metadata_and_musubi_notes(tmp_path):
    modules = make_wan_lora("tiny", rank=2, select="attn")
    state_dict = to_state_dict(modules, format="musubi")
    state_dict["lora_unet_blocks_0_self_attn_q.alpha"] = torch.tensor(0.0)
    metadata = {"ss_network_module": "networks.lora_wan", "ss_datasets": json.dumps([{"x": "y" * 300}])}
    save_safetensors(path := tmp_path / "musubi.safetensors", state_dict, metadata)
    summary = summarize(path)
    notes = " ".join(summary.notes)
    assert "alpha 0 in 1 modules" in notes and "diffusers' musubi loader rejects it" in notes
    assert summary.provenance == {}
    text = summary.to_text()
    assert "ss_datasets" in text and "…" in text  # long values are shortened in the table


def test_delta_norm_from_factors_matches_dense():
    for module in make_wan_lora("1.3B", rank=8, alpha=3.0, select="blocks=0 include=ffn|self_attn\\.q"):
        dense = float(module.delta(dtype=torch.float64).norm())
        assert math.isclose(delta_norm(module), dense, rel_tol=1e-9)


def test_inspect_runs_as_a_real_process(tmp_path):
    path = tmp_path / "a file with spaces é.safetensors"
    make_wan_lora("tiny", path=path)
    result = run_main("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "a file with spaces é.safetensors" in result.stdout and "Wan-like" in result.stdout
