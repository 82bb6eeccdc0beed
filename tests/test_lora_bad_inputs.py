"""The bad-input corpus: each file gives one line naming the file and the problem, exit code 2 on the
command line, and no output; pickles are refused without ever being unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from difflora_gui import cli
from difflora_gui.errors import BadFileError
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.writer import save_safetensors, to_state_dict
from tests.app_process import run_main


def _valid_state_dict(**kw) -> dict[str, torch.Tensor]:
    return to_state_dict(make_wan_lora("tiny", rank=2, alpha=1.0, **kw))


def _write(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    save_safetensors(path, tensors, metadata or {})
    return path


def _lora_keys(prefix: str, names: list[str], rank: int = 2, size: int = 8) -> dict[str, torch.Tensor]:
    sd = {}
    for name in names:
        sd[f"{prefix}{name}.lora_down.weight"] = torch.zeros(rank, size)
        sd[f"{prefix}{name}.lora_up.weight"] = torch.zeros(size, rank)
    return sd


def make_zero_bytes(d: Path) -> Path:
    (p := d / "empty.safetensors").write_bytes(b"")
    return p


def make_truncated(d: Path) -> Path:
    full = _write(d / "full.safetensors", _valid_state_dict())
    data = full.read_bytes()
    full.unlink()
    (p := d / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return p


def make_truncated_header(d: Path) -> Path:
    full = _write(d / "full.safetensors", _valid_state_dict())
    data = full.read_bytes()
    full.unlink()
    (p := d / "cut header.safetensors").write_bytes(data[:40])
    return p


def make_corrupt_header(d: Path) -> Path:
    header = (
        b'{"__metadata__": {"a": "b"}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]'  # no }
    )
    (p := d / "corrupt.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    return p


def make_trailing_garbage(d: Path) -> Path:
    path = _write(d / "trailing.safetensors", _valid_state_dict())
    with open(path, "ab") as handle:
        handle.write(b"garbage")
    return path


def make_not_safetensors(d: Path) -> Path:
    (p := d / "notes.safetensors").write_text("this is a text file, not a LoRA\n" * 10, encoding="utf-8")
    return p


def make_torch_zip_pickle(d: Path) -> Path:
    torch.save({"blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 8)}, p := d / "lora.pt")
    return p


def make_legacy_pickle_ckpt(d: Path) -> Path:
    (p := d / "model.ckpt").write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    return p


def make_pickle_named_safetensors(d: Path) -> Path:
    torch.save({"w": torch.zeros(2)}, p := d / "renamed.safetensors")
    return p


def make_full_wan_checkpoint(d: Path) -> Path:
    sd = {
        "blocks.0.self_attn.q.weight": torch.zeros(24, 24),
        "blocks.0.self_attn.q.bias": torch.zeros(24),
        "head.head.weight": torch.zeros(64, 24),
    }
    return _write(d / "wan_model.safetensors", sd)


def make_full_diffusers_checkpoint(d: Path) -> Path:
    sd = {
        "blocks.0.attn1.to_q.weight": torch.zeros(24, 24),
        "proj_out.weight": torch.zeros(64, 24),
        "blocks.0.scale_shift_table": torch.zeros(1, 6, 24),
    }
    return _write(d / "diffusion_pytorch_model.safetensors", sd)


def make_sd15_lora(d: Path) -> Path:
    sd = _lora_keys(
        "", ["lora_unet_down_blocks_0_attentions_0_proj_in", "lora_te_text_model_encoder_layers_0_mlp_fc1"]
    )
    return _write(d / "sd15.safetensors", sd)


def make_sdxl_lora(d: Path) -> Path:
    sd = _lora_keys(
        "", ["lora_unet_input_blocks_4_1_proj_in", "lora_te1_text_model_encoder_layers_0_mlp_fc1"]
    )
    return _write(d / "sdxl.safetensors", sd)


def make_flux_lora(d: Path) -> Path:
    sd = _lora_keys(
        "lora_unet_", ["double_blocks_0_img_attn_qkv", "double_blocks_0_img_mlp_0", "single_blocks_3_linear1"]
    )
    return _write(d / "flux.safetensors", sd)


def make_flux_diffusers_lora(d: Path) -> Path:
    sd = {
        f"transformer.single_transformer_blocks.0.attn.to_q.lora_{ab}.weight": torch.zeros(2, 2)
        for ab in "AB"
    }
    sd.update(
        {
            f"transformer.transformer_blocks.0.ff_context.net.2.lora_{ab}.weight": torch.zeros(2, 2)
            for ab in "AB"
        }
    )
    return _write(d / "flux_diffusers.safetensors", sd)


def make_hunyuan_lora(d: Path) -> Path:
    sd = _lora_keys(
        "diffusion_model.",
        ["double_blocks.0.img_attn_qkv", "double_blocks.0.img_mlp.fc1", "single_blocks.1.linear1"],
    )
    return _write(d / "hunyuan.safetensors", sd)


def make_rank_mismatch(d: Path) -> Path:
    sd = _valid_state_dict()
    sd["diffusion_model.blocks.1.cross_attn.v.lora_up.weight"] = torch.zeros(24, 3)
    return _write(d / "rank_mismatch.safetensors", sd)


def make_missing_up(d: Path) -> Path:
    sd = _valid_state_dict()
    del sd["diffusion_model.blocks.0.ffn.2.lora_up.weight"]
    return _write(d / "missing_up.safetensors", sd)


def make_missing_down(d: Path) -> Path:
    sd = to_state_dict(make_wan_lora("tiny", rank=2), format="musubi")
    del sd["lora_unet_blocks_1_self_attn_o.lora_down.weight"]
    return _write(d / "missing_down.safetensors", sd)


def make_nan(d: Path) -> Path:
    sd = _valid_state_dict()
    sd["diffusion_model.blocks.1.ffn.0.lora_down.weight"][0, 3] = float("nan")
    return _write(d / "nan.safetensors", sd)


def make_inf(d: Path) -> Path:
    sd = _valid_state_dict(dtype="bfloat16")
    sd["diffusion_model.blocks.0.cross_attn.k.lora_up.weight"][5, 0] = float("inf")
    return _write(d / "inf.safetensors", sd)


def make_inconsistent_shapes(d: Path) -> Path:
    sd = _valid_state_dict()
    sd["diffusion_model.blocks.0.self_attn.k.lora_down.weight"] = torch.zeros(2, 40)
    sd["diffusion_model.blocks.0.self_attn.k.lora_up.weight"] = torch.zeros(40, 2)
    return _write(d / "inconsistent.safetensors", sd)


def make_wrong_known_size(d: Path) -> Path:
    # 1.3B attention width, but an ffn that is not square-compatible: ffn.0 and ffn.2 disagree
    sd = _lora_keys("diffusion_model.", ["blocks.0.self_attn.q"], size=1536)
    sd["diffusion_model.blocks.0.ffn.0.lora_down.weight"] = torch.zeros(2, 1536)
    sd["diffusion_model.blocks.0.ffn.0.lora_up.weight"] = torch.zeros(8960, 2)
    sd["diffusion_model.blocks.0.ffn.2.lora_down.weight"] = torch.zeros(2, 7000)
    sd["diffusion_model.blocks.0.ffn.2.lora_up.weight"] = torch.zeros(1536, 2)
    return _write(d / "ffn_mismatch.safetensors", sd)


def make_extra_keys(d: Path) -> Path:
    sd = _valid_state_dict()
    sd["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(2, 8)
    return _write(d / "extra.safetensors", sd)


def make_dora(d: Path) -> Path:
    sd = _valid_state_dict()
    sd["diffusion_model.blocks.0.self_attn.q.dora_scale"] = torch.ones(1, 24)
    return _write(d / "dora.safetensors", sd)


def make_no_tensors(d: Path) -> Path:
    return _write(d / "nothing.safetensors", {}, {"ss_network_module": "networks.lora_wan"})


def make_integer_weights(d: Path) -> Path:
    from safetensors.torch import save_file  # our writer writes floats only; safetensors takes integers

    sd = _valid_state_dict()
    sd["diffusion_model.blocks.0.self_attn.q.lora_down.weight"] = torch.zeros(2, 24, dtype=torch.int8)
    save_file(sd, str(path := d / "int8.safetensors"))
    return path


CORPUS = {
    make_zero_bytes: "empty file (0 bytes)",
    make_truncated: "truncated: the tensors need",
    make_truncated_header: "truncated: the header needs",
    make_corrupt_header: "corrupt safetensors header (not valid JSON",
    make_trailing_garbage: "corrupt safetensors file: ",
    make_not_safetensors: "not a safetensors file",
    make_torch_zip_pickle: "is a PyTorch pickle checkpoint (.pt)",
    make_legacy_pickle_ckpt: "is a PyTorch pickle checkpoint (.ckpt)",
    make_pickle_named_safetensors: "is a PyTorch pickle checkpoint (.safetensors)",
    make_full_wan_checkpoint: "is a full Wan model checkpoint",
    make_full_diffusers_checkpoint: "is a full Wan model checkpoint",
    make_sd15_lora: "is a LoRA for Stable Diffusion 1.x/2.x, not for Wan",
    make_sdxl_lora: "is a LoRA for SDXL, not for Wan",
    make_flux_lora: "is a LoRA for Flux, not for Wan",
    make_flux_diffusers_lora: "is a LoRA for Flux, not for Wan",
    make_hunyuan_lora: "is a LoRA for HunyuanVideo, not for Wan",
    make_rank_mismatch: "module blocks.1.cross_attn.v: rank mismatch: down is 2×24 (rank 2) but up is 24×3 (rank 3)",
    make_missing_up: "module blocks.0.ffn.2: has lora_down/lora_A",
    make_missing_down: "module blocks.1.self_attn.o: has lora_up/lora_B",
    make_nan: "module blocks.1.ffn.0: diffusion_model.blocks.1.ffn.0.lora_down.weight contains NaN or Inf",
    make_inf: "module blocks.0.cross_attn.k: diffusion_model.blocks.0.cross_attn.k.lora_up.weight contains NaN or Inf",
    make_inconsistent_shapes: "module blocks.0.self_attn.k is 40×40: dim is 40 here but 24 elsewhere",
    make_wrong_known_size: "module blocks.0.ffn.2 is 1536×7000: ffn is 7000 here but 8960 elsewhere",
    make_extra_keys: "has keys that are not Wan LoRA tensors (they look like Stable Diffusion 1.x/2.x keys)",
    make_dora: "module blocks.0.self_attn.q: DoRA (dora_scale) is not supported",
    make_no_tensors: "contains no tensors",
    make_integer_weights: "module blocks.0.self_attn.q: diffusion_model.blocks.0.self_attn.q.lora_down.weight has non-float dtype int8",
}


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load / pickle.load must never be called on user files")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def _open_and_use(path: Path) -> None:
    """What the merge does: open, then read every module (values are checked as they load)."""
    with open_lora(path) as lora:
        for name in lora.names():
            lora.load(name)


@pytest.mark.parametrize("make", list(CORPUS), ids=lambda f: f.__name__.removeprefix("make_"))
def test_bad_file_is_one_line_naming_file_and_problem(tmp_path, make, no_unpickling):
    path = make(tmp_path)
    with pytest.raises(BadFileError) as info:
        _open_and_use(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert CORPUS[make] in message, message
    assert info.value.path == path


@pytest.mark.parametrize("make", list(CORPUS), ids=lambda f: f.__name__.removeprefix("make_"))
def test_cli_inspect_exits_2_with_one_line_and_writes_nothing(tmp_path, make, capsys, no_unpickling):
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = cli.main(["inspect", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and CORPUS[make] in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "make", [make_truncated, make_legacy_pickle_ckpt, make_nan, make_hunyuan_lora, make_rank_mismatch]
)
def test_cli_convert_exits_2_and_writes_no_output(tmp_path, make, capsys, no_unpickling):
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = cli.main(["convert", str(path), str(tmp_path / "out.safetensors")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and str(path) in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temp file


def test_inspect_without_value_check_shows_header_facts_of_a_nan_file(tmp_path, capsys):
    path = make_nan(tmp_path)
    assert cli.main(["inspect", str(path), "--no-check"]) == 0
    assert "values        not checked" in capsys.readouterr().out


def test_unknown_wan_like_file_is_accepted(tmp_path):
    # the consistent counterpart of make_inconsistent_shapes: every attention module 40×40
    sd = _lora_keys(
        "diffusion_model.",
        [f"blocks.{b}.{m}" for b in (0, 5) for m in ("self_attn.q", "cross_attn.o")],
        size=40,
    )
    path = _write(tmp_path / "odd.safetensors", sd)
    with open_lora(path) as lora:
        assert lora.model.label == "unknown Wan-like (T2V, dim 40, 6 blocks)"


def test_integer_alpha_is_accepted(tmp_path):
    from safetensors.torch import save_file

    sd = _valid_state_dict()
    sd["diffusion_model.blocks.0.self_attn.q.alpha"] = torch.tensor(
        4
    )  # musubi convert_lora.py: int64 alpha = rank
    save_file(sd, str(path := tmp_path / "int_alpha.safetensors"))
    with open_lora(path) as lora:
        assert lora.alpha("blocks.0.self_attn.q") == 4.0 and lora.scale("blocks.0.self_attn.q") == 2.0


def test_real_subprocess_exit_code_and_message(tmp_path):
    bad = make_legacy_pickle_ckpt(tmp_path)
    result = run_main("inspect", bad)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: " + result.stderr.split(f"{bad}: ", 1)[1].strip()
    ]
    assert "pickle" in result.stderr


def test_missing_file_and_folder(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "nope.safetensors")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.safetensors'}: file not found"
    assert cli.main(["inspect", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_inspect_json_of_good_file(tmp_path, capsys):
    path = tmp_path / "good.safetensors"
    make_wan_lora("tiny", path=path)
    assert cli.main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_modules"] == 20


def test_file_truncated_after_opening_fails_cleanly(tmp_path):
    """The file shrinks between opening and loading (another program rewrote it): one clear error."""
    path = tmp_path / "shrinks.safetensors"
    make_wan_lora("tiny", rank=4, path=path)
    with open_lora(path) as lora:
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - 8)
        with pytest.raises(BadFileError) as info:
            for name in lora.names():
                lora.load(name)
    message = str(info.value)
    assert "shrinks.safetensors" in message and "missing" in message and "\n" not in message
