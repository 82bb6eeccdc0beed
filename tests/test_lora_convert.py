"""``convert``: another format, dtype or selection of the same weight changes; safe output rules."""

from __future__ import annotations

import json

import torch

from difflora_gui import cli
from difflora_gui.fileio import sha256_file
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora


def test_convert_musubi_to_comfy_with_a_selection(tmp_path, capsys):
    source = tmp_path / "trained by musubi.safetensors"
    modules = make_wan_lora(
        "tiny",
        task="i2v",
        rank=4,
        alpha=1.0,
        dtype="bfloat16",
        path=source,
        format="musubi",
        metadata={"ss_network_module": "networks.lora_wan", "ss_seed": "42", "modelspec.title": "eyes"},
    )
    target = tmp_path / "attn.safetensors"
    assert cli.main(["convert", str(source), str(target), "--select", "attn blocks=1"]) == 0
    assert "wrote" in capsys.readouterr().out
    expected = {m.name: m.delta() for m in modules if m.name.startswith("blocks.1.") and "ffn" not in m.name}
    with open_lora(target) as lora:
        assert lora.format == "comfy" and lora.names() == list(expected)
        assert {lora.dtype(n) for n in lora.names()} == {"bfloat16"}  # --dtype keep
        for name, delta in expected.items():
            torch.testing.assert_close(lora.load(name).delta(), delta)
        md = lora.metadata
    assert md["ss_seed"] == "42" and md["modelspec.title"] == "eyes"  # the trainer's metadata is kept
    assert md["difflora.selector"] == "attn blocks=1" and md["difflora.strategy"] == "convert"
    assert json.loads(md["difflora.inputs"]) == [
        {"name": source.name, "sha256": sha256_file(source), "role": "source"}
    ]
    assert (md["ss_network_dim"], md["ss_network_alpha"]) == ("4", "1")


def test_convert_refuses_existing_output_and_input(tmp_path, capsys):
    source = tmp_path / "in.safetensors"
    make_wan_lora("tiny", path=source)
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"keep me")
    assert cli.main(["convert", str(source), str(target), "--format", "diffusers"]) == 2
    assert "already exists (use --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert cli.main(["convert", str(source), str(source), "--overwrite"]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "convert",
                str(source),
                str(target),
                "--format",
                "diffusers",
                "--dtype",
                "float16",
                "--overwrite",
            ]
        )
        == 0
    )
    with open_lora(target) as lora:
        assert lora.format == "diffusers" and lora.dtype("blocks.0.ffn.0") == "float16"


def test_convert_empty_selection_and_partial_musubi_warning(tmp_path, capsys):
    source = tmp_path / "in.safetensors"
    make_wan_lora("tiny", select="attn", path=source)
    assert cli.main(["convert", str(source), str(tmp_path / "x.safetensors"), "--select", "ffn"]) == 2
    err = capsys.readouterr().err
    assert "selects nothing: none of the 16 modules is in ffn (present: attn)" in err
    assert not (tmp_path / "x.safetensors").exists()
    assert cli.main(["convert", str(source), str(tmp_path / "m.safetensors"), "--format", "musubi"]) == 0
    assert "warning: partial musubi-format file" in capsys.readouterr().err


def test_convert_refuses_block_weights_instead_of_dropping_them(tmp_path, capsys):
    source = tmp_path / "a.safetensors"
    make_wan_lora("tiny", rank=2, path=source)
    target = tmp_path / "out.safetensors"
    assert cli.main(["convert", str(source), str(target), "--select", "attn blocks=0@0.5,1"]) == 2
    err = capsys.readouterr().err
    assert "block weights" in err and err.count("\n") == 1
    assert not target.exists()
