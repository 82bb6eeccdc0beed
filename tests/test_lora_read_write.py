"""Reading every trainer's format into canonical form, writing every format, and the ΔW they keep."""

from __future__ import annotations

import json
import math

import pytest
import torch

from difflora_gui.errors import UserError
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.wan_layout import VARIANTS, WanVariant
from difflora_gui.lora.writer import (
    InputFile,
    build_metadata,
    save_safetensors,
    to_state_dict,
    write_lora,
)

FORMATS = ("comfy", "musubi", "diffusers")


def _deltas(modules) -> dict[str, torch.Tensor]:
    return {m.name: m.delta(dtype=torch.float64) for m in modules}


def _assert_same_deltas(got: dict, expected: dict, rtol: float = 1e-6) -> None:
    assert list(got) == list(expected)
    for name, delta in expected.items():
        err = float((got[name] - delta).norm()) / max(float(delta.norm()), 1e-30)
        assert err <= rtol, f"{name}: relative error {err:.2e}"


def _read_all(path) -> dict[str, torch.Tensor]:
    with open_lora(path) as lora:
        return _deltas(lora.modules())


def _ranks(name: str) -> int:
    # non-uniform ranks: 2..5 depending on the layer
    return 2 + (len(name) % 4)


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("target", FORMATS)
def test_round_trip_every_format_keeps_delta(tmp_path, source, target):
    modules = make_wan_lora("tiny", task="i2v", rank=_ranks, alpha=3.0, outside=True, seed=7)
    expected = _deltas(modules)
    first = write_lora(tmp_path / f"a.{source}.safetensors", modules, format=source)
    with open_lora(first) as lora:
        assert lora.format == source
        canonical = list(lora.modules())
    _assert_same_deltas(_deltas(canonical), expected)
    second = write_lora(tmp_path / f"b.{target}.safetensors", canonical, format=target)
    _assert_same_deltas(_read_all(second), expected)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_output_dtype(tmp_path, dtype, fmt):
    modules = make_wan_lora("tiny", rank=4, alpha=1.0, seed=3)
    path = write_lora(tmp_path / "x.safetensors", modules, format=fmt, dtype=dtype)
    with open_lora(path) as lora:
        assert {lora.dtype(n) for n in lora.names()} == {dtype}
        got = _deltas(lora.modules())
    _assert_same_deltas(got, _deltas(modules), rtol=2e-2 if dtype == "bfloat16" else 2e-3)


def _comfy_sd(modules, **kw):
    return to_state_dict(modules, format="comfy", **kw)


def _rename(sd: dict, fn) -> dict:
    return {fn(k): v for k, v in sd.items()}


def _bake_alpha(sd: dict) -> dict:
    """Like ai-toolkit/diffusion-pipe/musubi 'other': no alpha key, scale folded into the factors."""
    out = {}
    for key, value in sd.items():
        if key.endswith(".alpha"):
            continue
        if key.endswith(".lora_up.weight"):
            base = key.removesuffix(".lora_up.weight")
            rank = value.shape[1]
            alpha_key = f"{base}.alpha"
            scale = float(sd[alpha_key]) / rank if alpha_key in sd else 1.0
            value = value * scale
        out[key] = value
    return out


def _to_diffusers_names(key: str) -> str:
    from difflora_gui.lora.keys import split_suffix
    from difflora_gui.lora.wan_layout import to_diffusers

    body, _role, _style = split_suffix(key)
    suffix = key[len(body) :]
    return to_diffusers(body.removeprefix("diffusion_model.")) + suffix


def _wan_fun_key(key: str) -> str:
    from difflora_gui.lora.keys import split_suffix

    body = split_suffix(key)[0]
    return "lora_unet__" + body.removeprefix("diffusion_model.").replace(".", "_") + key[len(body) :]


TRAINER_SPELLINGS = {
    # ai-toolkit / diffusion-pipe: original names, lora_A/lora_B, no alpha
    "ai-toolkit": lambda sd: _rename(
        _bake_alpha(sd), lambda k: k.replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B.")
    ),
    # musubi convert_lora.py --target other --diffusers_prefix transformer
    "musubi-other": lambda sd: _rename(
        _bake_alpha(sd),
        lambda k: (
            k.replace("diffusion_model.", "transformer.")
            .replace(".lora_down.", ".lora_A.")
            .replace(".lora_up.", ".lora_B.")
        ),
    ),
    # raw PEFT: diffusers names, no prefix
    "peft-raw": lambda sd: _rename(
        _bake_alpha(sd),
        lambda k: _to_diffusers_names(k).replace(".lora_down.", ".lora_A.").replace(".lora_up.", ".lora_B."),
    ),
    # PEFT state dict of a wrapped model
    "peft-default": lambda sd: _rename(
        _bake_alpha(sd),
        lambda k: (
            "base_model.model."
            + _to_diffusers_names(k)
            .replace(".lora_down.weight", ".lora_A.default.weight")
            .replace(".lora_up.weight", ".lora_B.default.weight")
        ),
    ),
    # diffusers names with kohya suffixes and alpha kept
    "diffusers-kohya-alpha": lambda sd: _rename(sd, lambda k: "transformer." + _to_diffusers_names(k)),
    # Wan-Fun: lora_unet__ with a double underscore
    "wan-fun": lambda sd: _rename(sd, _wan_fun_key),
}


@pytest.mark.parametrize("spelling", list(TRAINER_SPELLINGS))
def test_other_trainers_spellings_read_to_the_same_delta(tmp_path, spelling):
    modules = make_wan_lora("tiny", task="i2v", rank=_ranks, alpha=2.0, seed=11)
    sd = TRAINER_SPELLINGS[spelling](_comfy_sd(modules))
    path = tmp_path / f"{spelling}.safetensors"
    save_safetensors(path, sd, {})
    with open_lora(path) as lora:
        assert lora.model.task == "i2v"
        assert len(lora) == len(modules)
        got = _deltas(lora.modules())
    _assert_same_deltas(got, _deltas(modules))


def test_a_and_b_in_different_formats_ranks_alphas_and_dtypes(tmp_path):
    a = make_wan_lora(
        "tiny", rank=8, alpha=1.0, dtype="bfloat16", seed=1, path=tmp_path / "a.safetensors", format="musubi"
    )
    b = make_wan_lora(
        "tiny",
        rank=4,
        alpha=None,
        dtype="float16",
        seed=2,
        path=tmp_path / "b.safetensors",
        format="diffusers",
    )
    with open_lora(tmp_path / "a.safetensors") as la, open_lora(tmp_path / "b.safetensors") as lb:
        assert la.model == lb.model
        assert la.names() == lb.names()
        assert (la.format, lb.format) == ("musubi", "diffusers")
        name = "blocks.1.ffn.0"
        assert (la.rank(name), lb.rank(name)) == (8, 4)
        assert la.scale(name) == 1 / 8 and lb.scale(name) == 1.0 and lb.alpha(name) is None
        ma, mb = la.load(name), lb.load(name)
        assert (ma.down.dtype, mb.down.dtype) == (torch.bfloat16, torch.float16)  # stored dtype
        assert torch.allclose(ma.delta(), [m for m in a if m.name == name][0].delta(), rtol=1e-5, atol=1e-7)
        assert torch.allclose(mb.delta(), [m for m in b if m.name == name][0].delta(), rtol=1e-5, atol=1e-7)


def test_alpha_conventions(tmp_path):
    base = make_wan_lora("tiny", rank=4, seed=5, select="blocks=0 self_attn")
    sd = _comfy_sd(base)
    sd["diffusion_model.blocks.0.self_attn.q.alpha"] = torch.tensor(0.0)  # kohya/musubi: 0 means alpha = rank
    del sd["diffusion_model.blocks.0.self_attn.k.alpha"]  # missing: scale 1
    sd["diffusion_model.blocks.0.self_attn.v.alpha"] = torch.tensor(16.0)  # scale 4
    path = tmp_path / "alphas.safetensors"
    save_safetensors(path, sd, {})
    with open_lora(path) as lora:
        assert (lora.alpha("blocks.0.self_attn.q"), lora.scale("blocks.0.self_attn.q")) == (0.0, 1.0)
        assert (lora.alpha("blocks.0.self_attn.k"), lora.scale("blocks.0.self_attn.k")) == (None, 1.0)
        assert lora.scale("blocks.0.self_attn.v") == 4.0
        assert "alpha on some modules" in lora.format_detail


def test_full_weight_diff_loha_and_lokr_are_read_as_dense(tmp_path):
    g = torch.Generator().manual_seed(0)
    dim, ffn = 24, 32
    w1a, w1b = torch.randn(dim, 2, generator=g), torch.randn(2, dim, generator=g)
    w2a, w2b = torch.randn(dim, 2, generator=g), torch.randn(2, dim, generator=g)
    k1 = torch.randn(4, 4, generator=g)
    k2a, k2b = torch.randn(8, 3, generator=g), torch.randn(3, 6, generator=g)  # kron: (4·8)×(4·6) = ffn×dim
    diff = torch.randn(dim, dim, generator=g)
    diff_b = torch.randn(dim, generator=g)
    modulation = torch.randn(1, 6, dim, generator=g)
    sd = {
        "diffusion_model.blocks.0.self_attn.q.hada_w1_a": w1a,
        "diffusion_model.blocks.0.self_attn.q.hada_w1_b": w1b,
        "diffusion_model.blocks.0.self_attn.q.hada_w2_a": w2a,
        "diffusion_model.blocks.0.self_attn.q.hada_w2_b": w2b,
        "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(1.0),
        "diffusion_model.blocks.0.ffn.0.lokr_w1": k1,
        "diffusion_model.blocks.0.ffn.0.lokr_w2_a": k2a,
        "diffusion_model.blocks.0.ffn.0.lokr_w2_b": k2b,
        "diffusion_model.blocks.0.ffn.0.alpha": torch.tensor(6.0),
        "diffusion_model.blocks.1.cross_attn.o.diff": diff,
        "diffusion_model.blocks.1.cross_attn.o.diff_b": diff_b,
        "diffusion_model.blocks.1.modulation.diff": modulation,
    }
    path = tmp_path / "dense.safetensors"
    save_safetensors(path, sd, {})
    with open_lora(path) as lora:
        assert lora.model.ffn_dim == ffn and lora.model.dim == dim
        loha = lora.load("blocks.0.self_attn.q")
        assert loha.kind == "loha" and loha.dense is not None and not loha.is_low_rank
        torch.testing.assert_close(loha.delta(), (w1a @ w1b) * (w2a @ w2b) * (1.0 / 2))
        lokr = lora.load("blocks.0.ffn.0")
        assert lokr.kind == "lokr" and lokr.shape == (ffn, dim)
        torch.testing.assert_close(lokr.delta(), torch.kron(k1, k2a @ k2b) * (6.0 / 3))
        full = lora.load("blocks.1.cross_attn.o")
        assert full.kind == "diff" and lora.rank("blocks.1.cross_attn.o") == 0
        torch.testing.assert_close(full.delta(), diff)
        torch.testing.assert_close(full.bias, diff_b)
        assert lora.load("blocks.1.modulation").dense.shape == (1, 6, dim)
    # the comfy format holds them (.diff/.diff_b); musubi and diffusers refuse
    with open_lora(path) as lora:
        modules = list(lora.modules())
    out = write_lora(tmp_path / "dense_out.safetensors", modules, format="comfy")
    with open_lora(out) as lora:
        torch.testing.assert_close(lora.load("blocks.0.ffn.0").delta(), torch.kron(k1, k2a @ k2b) * 2.0)
        torch.testing.assert_close(lora.load("blocks.1.cross_attn.o").bias, diff_b)
    for fmt in ("musubi", "diffusers"):
        with pytest.raises(UserError, match="full-weight"):
            write_lora(tmp_path / f"dense.{fmt}.safetensors", modules, format=fmt)
        assert not (tmp_path / f"dense.{fmt}.safetensors").exists()


def test_identifies_released_sizes_from_shapes(tmp_path):
    # full-size shapes generated from factors; only a few modules, so the files stay small
    cases = [
        ("1.3B", "t2v", "blocks=0,29", ("1.3B", "t2v", 30, 1536, 8960)),
        ("14B", "t2v", "attn blocks=39", ("14B", "t2v", 40, 5120, None)),
        ("14B", "i2v", "cross_attn blocks=0", ("14B", "i2v", 40, 5120, None)),
        ("5B", "t2v", "ffn blocks=3", ("5B", "ti2v", 30, 3072, 14336)),
    ]
    for variant, task, select, expected in cases:
        path = tmp_path / f"{variant}-{task}.safetensors"
        make_wan_lora(variant, task=task, rank=1, select=select, path=path, dtype="bfloat16")
        with open_lora(path) as lora:
            m = lora.model
            assert (m.variant, m.task, m.num_blocks, m.dim, m.ffn_dim) == expected, path.name
            assert m.family == "wan"
    assert VARIANTS["14B"].num_blocks == 40


def test_unknown_but_consistent_wan_like_layout(tmp_path):
    # dim 1536 but 45 blocks: fits no released size, yet every shape agrees with one layout
    tall = WanVariant("tall", num_blocks=45, dim=1536, ffn_dim=8960, num_heads=12)
    path = tmp_path / "tall.safetensors"
    make_wan_lora(tall, rank=1, select="ffn blocks=0,44", path=path)
    with open_lora(path) as lora:
        assert lora.model.variant == "unknown" and lora.model.num_blocks == 45
        assert lora.model.label == "unknown Wan-like (T2V, dim 1536, 45 blocks)"
    tiny = tmp_path / "tiny.safetensors"
    make_wan_lora("tiny", path=tiny)
    with open_lora(tiny) as lora:
        assert (lora.model.variant, lora.model.dim, lora.model.ffn_dim, lora.model.num_blocks) == (
            "unknown",
            24,
            32,
            2,
        )


def test_names_are_in_model_order(tmp_path):
    modules = make_wan_lora("tiny", task="i2v", outside=True)
    shuffled = modules[::-1]
    path = write_lora(tmp_path / "x.safetensors", shuffled)
    with open_lora(path) as lora:
        assert lora.names() == [m.name for m in modules]
        assert lora.names()[0] == "text_embedding.0" and lora.names()[-1] == "img_emb.proj.3"
        assert lora.shape("blocks.0.ffn.0") == (32, 24) and lora.rank("blocks.0.ffn.0") == 4


def test_open_reads_no_tensor_until_a_module_is_loaded(tmp_path, monkeypatch):
    path = tmp_path / "x.safetensors"
    make_wan_lora("tiny", rank=4, alpha=None, path=path, format="diffusers")  # no alpha keys to read
    reads = []
    from difflora_gui.lora.reader import LoraFile

    real_read = LoraFile._read_bytes

    def counting_read(self, key):
        reads.append(key)
        return real_read(self, key)

    monkeypatch.setattr(LoraFile, "_read_bytes", counting_read)
    with open_lora(path) as lora:
        for name in lora.names():
            lora.shape(name), lora.rank(name), lora.kind(name), lora.dtype(name)
        assert reads == []
        lora.load("blocks.1.ffn.2")
        assert reads == [
            "transformer.blocks.1.ffn.net.2.lora_A.weight",
            "transformer.blocks.1.ffn.net.2.lora_B.weight",
        ]


def test_written_file_is_deterministic_and_ordered(tmp_path):
    modules = make_wan_lora("tiny", task="i2v", rank=3, alpha=2, outside=True, seed=4)
    metadata = build_metadata(
        modules=modules,
        title="slider",
        strategy="factored",
        params={"rank": 3, "b_weight": -1.0},
        selector="attn",
        inputs=[InputFile("a.safetensors", "0" * 64, "A")],
        created="2026-03-01T10:00:00Z",
    )
    one = write_lora(tmp_path / "one.safetensors", modules, metadata=metadata)
    two = write_lora(
        tmp_path / "two.safetensors", list(reversed(modules)), metadata=dict(reversed(metadata.items()))
    )
    assert one.read_bytes() == two.read_bytes()
    header = json.loads(one.read_bytes()[8 : 8 + int.from_bytes(one.read_bytes()[:8], "little")])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    keys = [k for k in header if k != "__metadata__"]
    assert keys[:2] == [
        "diffusion_model.text_embedding.0.lora_down.weight",
        "diffusion_model.text_embedding.0.lora_up.weight",
    ]
    assert keys.index("diffusion_model.blocks.0.ffn.2.alpha") < keys.index(
        "diffusion_model.blocks.1.self_attn.q.lora_down.weight"
    )
    # safetensors itself reads our container
    from safetensors.torch import load_file

    loaded = load_file(one)
    assert set(loaded) == set(keys)


def test_metadata_keys(tmp_path):
    modules = make_wan_lora("tiny", rank=4, alpha=2.0)
    md = build_metadata(
        modules=modules,
        title="eyes slider",
        strategy="factored-svd",
        params={"rank": 4},
        selector="attn blocks=0-1",
        inputs=[
            InputFile("A.safetensors", "a" * 64, "A"),
            {"name": "B.safetensors", "sha256": "b" * 64, "role": "B"},
        ],
        created="2026-02-03T04:05:06Z",
    )
    assert md["ss_network_module"] == "networks.lora_wan"
    assert (md["ss_network_dim"], md["ss_network_alpha"]) == ("4", "2")
    assert md["ss_base_model_version"] == "wan"
    assert md["modelspec.architecture"] == "wan2.1/lora"
    assert md["modelspec.sai_model_spec"] == "1.0.0"
    assert md["modelspec.title"] == "eyes slider"
    assert md["modelspec.merged_from"] == "A.safetensors, B.safetensors"
    assert md["difflora.created"] == "2026-02-03T04:05:06+00:00" == md["modelspec.date"]
    assert json.loads(md["difflora.inputs"])[1] == {"name": "B.safetensors", "sha256": "b" * 64, "role": "B"}
    assert json.loads(md["difflora.params"]) == {"rank": 4}
    assert md["difflora.selector"] == "attn blocks=0-1" and md["difflora.strategy"] == "factored-svd"
    mixed = make_wan_lora("tiny", rank=_ranks, alpha=1.0)
    md = build_metadata(modules=mixed)
    assert md["ss_network_dim"] == "Dynamic" and md["ss_network_alpha"] == "1"
    with pytest.raises(UserError, match="bad creation time"):
        build_metadata(created="yesterday")
    # write_lora fills ss_network_dim/alpha when the caller's metadata lacks them
    path = write_lora(tmp_path / "x.safetensors", modules, metadata={"modelspec.title": "t"})
    with open_lora(path) as lora:
        hashes = {k: lora.metadata.pop(k) for k in ("sshs_model_hash", "sshs_legacy_hash")}
        assert lora.metadata == {"modelspec.title": "t", "ss_network_dim": "4", "ss_network_alpha": "2"}
    assert len(hashes["sshs_model_hash"]) == 64 and len(hashes["sshs_legacy_hash"]) == 8


def _addnet_hash_safetensors(path) -> str:
    """sd-scripts' ``addnet_hash_safetensors`` (library/train_util.py), as sd-webui-additional-networks runs it."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        n = int.from_bytes(handle.read(8), "little")
        handle.seek(n + 8)
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _addnet_hash_legacy(path) -> str:
    """sd-scripts' ``addnet_hash_legacy``: sha256 of 64 KiB at offset 1 MiB, 8 hex digits."""
    import hashlib

    with open(path, "rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[0:8]


@pytest.mark.parametrize("rank", [4, 64], ids=["small-file", "over-1MiB"])
def test_sshs_hashes_are_what_sd_scripts_computes(tmp_path, rank):
    """sshs_model_hash: the file's own data hash; sshs_legacy_hash: the same file with only ss_* metadata."""
    if rank == 64:  # 1.3B block 0: about 2 MB, so sd-scripts' legacy window lies inside the data
        modules = make_wan_lora("1.3B", rank=rank, alpha=1.0, dtype="bfloat16", select="blocks=0")
    else:
        modules = make_wan_lora("tiny", rank=rank)
    metadata = build_metadata(modules=modules, title="hash check", created="2026-02-03T04:05:06Z")
    path = write_lora(tmp_path / "hashed.safetensors", modules, metadata=metadata)
    with open_lora(path) as lora:
        written = dict(lora.metadata)
    assert written["sshs_model_hash"] == _addnet_hash_safetensors(path)
    # sd-scripts hashes the file as saved with only its training (ss_*) metadata
    training_only = {k: v for k, v in written.items() if k.startswith("ss_")}
    bare = tmp_path / "bare.safetensors"
    from difflora_gui.lora.writer import save_safetensors, to_state_dict

    save_safetensors(
        bare,
        to_state_dict(modules, format="comfy", dtype="float32"),
        training_only,  # write_lora's defaults
    )
    assert written["sshs_legacy_hash"] == _addnet_hash_legacy(bare)
    assert _addnet_hash_safetensors(bare) == written["sshs_model_hash"]
    if rank == 64:
        assert bare.stat().st_size > 0x110000  # the legacy window lies inside the data


def test_converted_file_gets_its_own_sshs_hashes(tmp_path):
    """An input's hashes copied into the metadata would be stale after a conversion: they are recomputed."""
    source = tmp_path / "in.safetensors"
    make_wan_lora("tiny", rank=4, path=source, format="musubi")
    with open_lora(source) as lora:
        modules = [lora.load(n) for n in lora.names()]
        stale = dict(lora.metadata, sshs_model_hash="0" * 64, sshs_legacy_hash="00000000")
    out = write_lora(tmp_path / "out.safetensors", modules, format="comfy", metadata=stale)
    with open_lora(out) as lora:
        assert lora.metadata["sshs_model_hash"] == _addnet_hash_safetensors(out) != "0" * 64


def test_input_file_hash(tmp_path):
    path = tmp_path / "in put.safetensors"
    make_wan_lora("tiny", path=path)
    item = InputFile.from_path(path, "A")
    import hashlib

    assert item.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and item.name == "in put.safetensors"
    recorded = json.loads(build_metadata(inputs=[path])["difflora.inputs"])
    assert recorded == [{"name": "in put.safetensors", "sha256": item.sha256, "role": ""}]


def test_write_refusals_leave_nothing_behind(tmp_path):
    modules = make_wan_lora("tiny", rank=2)
    source = write_lora(tmp_path / "in.safetensors", modules)
    before = source.read_bytes()
    with pytest.raises(UserError, match="already exists"):
        write_lora(source, modules[:2])
    with pytest.raises(UserError, match="input file"):
        write_lora(source, modules[:2], inputs=[source], overwrite=True)
    assert source.read_bytes() == before
    write_lora(source, modules[:2], overwrite=True)
    with open_lora(source) as lora:
        assert len(lora) == 2
    bad = LoraModule("blocks.0.self_attn.q", down=torch.full((2, 24), math.nan), up=torch.zeros(24, 2))
    with pytest.raises(UserError, match="NaN or Inf"):
        write_lora(tmp_path / "nan.safetensors", [bad])
    big = LoraModule("blocks.0.self_attn.q", down=torch.full((2, 24), 1e5), up=torch.ones(24, 2), scale=1.0)
    with pytest.raises(UserError, match="beyond float16's range"):
        write_lora(tmp_path / "fp16.safetensors", [big], dtype="float16")
    with pytest.raises(UserError, match="not a Wan module"):
        write_lora(
            tmp_path / "odd.safetensors",
            [LoraModule("blocks.0.attn1.to_q", down=torch.ones(1, 2), up=torch.ones(2, 1))],
        )
    with pytest.raises(UserError, match="twice"):
        write_lora(tmp_path / "dup.safetensors", [modules[0], modules[0]])
    with pytest.raises(UserError, match="nothing to write"):
        write_lora(tmp_path / "empty.safetensors", [])
    with pytest.raises(UserError, match="unknown LoRA format"):
        write_lora(tmp_path / "f.safetensors", modules, format="kohya")
    with pytest.raises(UserError, match="unknown output dtype"):
        write_lora(tmp_path / "f.safetensors", modules, dtype="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.safetensors"]


def test_partial_musubi_file_warns(tmp_path, caplog):
    modules = make_wan_lora("tiny", select="attn")
    with caplog.at_level("WARNING", logger="difflora_gui.lora.writer"):
        write_lora(tmp_path / "m.safetensors", modules, format="musubi")
    assert "diffusers' musubi loader rejects it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="difflora_gui.lora.writer"):
        write_lora(tmp_path / "c.safetensors", modules, format="comfy")
    assert caplog.text == ""


def test_other_portability_warnings():
    from difflora_gui.lora.writer import portability_warnings

    lone = ["blocks.0.cross_attn.q", "blocks.0.cross_attn.k_img"]
    assert any("only cross_attn.k_img" in w for w in portability_warnings(lone, "comfy"))
    assert portability_warnings(lone + ["blocks.0.cross_attn.v_img"], "comfy") == []
    dense = portability_warnings(["blocks.0.ffn.0"], "comfy", dense=["blocks.0.ffn.0"])
    assert any("diffusers ignores them" in w for w in dense)
    full = VARIANTS["tiny"].module_names("t2v")
    assert portability_warnings(full, "musubi") == [
        "musubi-format keys are ignored by WanVideoWrapper's block edit (comfy format is not)"
    ]


def test_modules_load_from_many_threads_at_once(tmp_path):
    """The merge's workers share one open file: concurrent loads give exactly the sequential tensors."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared.safetensors"
    make_wan_lora("tiny", rank=4, alpha=2.0, seed=3, path=path)
    with open_lora(path) as lora:
        names = lora.names() * 20
        expected = {n: lora.load(n) for n in lora.names()}
        with ThreadPoolExecutor(4) as pool:
            loaded = list(pool.map(lora.load, names))
        assert lora.thread_safe_loads
    for name, module in zip(names, loaded, strict=True):
        assert torch.equal(module.up, expected[name].up) and torch.equal(module.down, expected[name].down)
        assert module.alpha == expected[name].alpha == 2.0
