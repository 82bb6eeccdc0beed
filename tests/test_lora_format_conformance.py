"""Format-conformance tests (not loader tests): ComfyUI, WanVideoWrapper and musubi cannot run here, so
the key structure of our files is checked against how those loaders parse keys, as documented in
``shared/reference/lora-formats-and-merge-anchors.md`` (§2.2, §4.1, §4.2). The rules are restated
here from that description; the loaders' code is not used."""

from __future__ import annotations

import re

import pytest
import torch

from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.wan_layout import VARIANTS
from difflora_gui.lora.writer import to_state_dict, write_lora

# ComfyUI LoRAAdapter: (up suffix, down suffix) pairs it looks for after a module key (§4.1)
_COMFY_PAIRS = (
    (".lora_up.weight", ".lora_down.weight"),
    ("_lora.up.weight", "_lora.down.weight"),
    (".lora_B.weight", ".lora_A.weight"),
    (".lora.up.weight", ".lora.down.weight"),
)


def _comfy_key_map(task: str) -> dict[str, str]:
    """ComfyUI ``model_lora_keys_unet`` for a Wan model: each weight ``diffusion_model.X.weight`` is
    reachable as ``diffusion_model.X`` and as ``lora_unet_<X with . → _>`` (original Wan names)."""
    tiny = VARIANTS["tiny"]
    modules = tiny.module_names(task, outside=True)
    key_map = {}
    for name in modules:
        key_map[f"diffusion_model.{name}"] = f"{name}.weight"
        key_map["lora_unet_" + name.replace(".", "_")] = f"{name}.weight"
    return key_map


def _comfy_apply(state_dict: dict[str, torch.Tensor], key_map: dict[str, str]) -> tuple[dict, list[str]]:
    """The weight change ComfyUI applies at strength 1, and the keys it would log as 'not loaded'."""
    loaded: set[str] = set()
    patches: dict[str, torch.Tensor] = {}
    for lora_key, weight_key in key_map.items():
        for up_suffix, down_suffix in _COMFY_PAIRS:
            up_key, down_key = lora_key + up_suffix, lora_key + down_suffix
            if up_key in state_dict and down_key in state_dict:
                up, down = state_dict[up_key].float(), state_dict[down_key].float()
                alpha_key = lora_key + ".alpha"
                scale = float(state_dict[alpha_key]) / down.shape[0] if alpha_key in state_dict else 1.0
                patches[weight_key] = scale * (up @ down)
                loaded |= {up_key, down_key} | ({alpha_key} if alpha_key in state_dict else set())
        diff_key = lora_key + ".diff"
        if diff_key in state_dict:  # one patch per weight: a .diff replaces a LoRA pair
            patches[weight_key] = state_dict[diff_key].float()
            loaded.add(diff_key)
        if lora_key + ".diff_b" in state_dict:
            patches[weight_key.removesuffix(".weight") + ".bias"] = state_dict[lora_key + ".diff_b"].float()
            loaded.add(lora_key + ".diff_b")
    not_loaded = [k for k in state_dict if k not in loaded]
    return patches, not_loaded


@pytest.mark.parametrize("fmt", ["comfy", "musubi"])
@pytest.mark.parametrize(
    ("task", "select", "outside"), [("i2v", "all", True), ("t2v", "attn", False), ("t2v", "blocks=1", False)]
)
def test_comfyui_core_finds_every_key_and_applies_alpha_over_rank(fmt, task, select, outside):
    modules = make_wan_lora("tiny", task=task, rank=3, alpha=5.0, select=select, outside=outside, seed=1)
    state_dict = to_state_dict(modules, format=fmt)
    patches, not_loaded = _comfy_apply(state_dict, _comfy_key_map(task))
    assert not_loaded == []  # ComfyUI would print "lora key not loaded: ..." for these
    assert set(patches) == {f"{m.name}.weight" for m in modules}
    for module in modules:
        torch.testing.assert_close(patches[f"{module.name}.weight"], module.delta(), rtol=1e-5, atol=1e-7)


def test_comfyui_reads_full_weight_and_bias_entries(tmp_path):
    modules = make_wan_lora("tiny", rank=2, select="ffn blocks=0", seed=2)
    modules[0].bias = torch.linspace(-1, 1, 32)
    modules[1].dense, modules[1].down, modules[1].up = modules[1].delta(), None, None
    modules[1].kind = "diff"
    state_dict = to_state_dict(modules, format="comfy")
    assert (
        "diffusion_model.blocks.0.ffn.2.diff" in state_dict
        and "diffusion_model.blocks.0.ffn.0.diff_b" in state_dict
    )
    patches, not_loaded = _comfy_apply(state_dict, _comfy_key_map("t2v"))
    assert not_loaded == []
    torch.testing.assert_close(patches["blocks.0.ffn.0.bias"], modules[0].bias)
    torch.testing.assert_close(patches["blocks.0.ffn.2.weight"], modules[1].dense)


_WVW_BLOCK = re.compile(r"^diffusion_model\.blocks\.(\d+)\.")


def _wvw_block_edit(keys: list[str], selected_blocks: set[int], layer_filter: list[str]) -> list[str]:
    """WanVideoWrapper's block edit on standardised keys: drop keys containing a layer_filter
    substring; keep a key whose ``blocks.N.`` (after ``diffusion_model.``) is selected; keep keys
    outside the blocks. Musubi ``lora_unet_`` keys are not standardised, so they never match."""
    kept = []
    for key in keys:
        if any(f and f in key for f in layer_filter):
            continue
        match = _WVW_BLOCK.match(key)
        if match is None or int(match.group(1)) in selected_blocks:
            kept.append(key)
    return kept


def test_wanvideowrapper_block_edit_sees_every_block_of_a_comfy_file():
    modules = make_wan_lora("tiny", task="i2v", rank=2, outside=True)
    keys = list(to_state_dict(modules, format="comfy"))
    block_keys = [k for k in keys if "blocks." in k]
    assert block_keys and all(_WVW_BLOCK.match(k) for k in block_keys)
    kept = _wvw_block_edit(keys, selected_blocks={1}, layer_filter=[])
    assert not any(k.startswith("diffusion_model.blocks.0.") for k in kept)
    assert any(k.startswith("diffusion_model.blocks.1.") for k in kept)
    assert "diffusion_model.head.head.lora_up.weight" in kept
    # Kijai's attention-only filter keeps exactly our 'attn' selection
    attn_only = _wvw_block_edit(
        keys, {0, 1}, ["embedding", "time_projection", "head.head", "img_emb", "ffn", ".diff"]
    )
    expected = set(to_state_dict(make_wan_lora("tiny", task="i2v", rank=2, select="attn"), format="comfy"))
    assert set(attn_only) == expected


def test_wanvideowrapper_block_edit_cannot_see_musubi_keys():
    keys = list(to_state_dict(make_wan_lora("tiny", rank=2), format="musubi"))
    assert _wvw_block_edit(keys, selected_blocks=set(), layer_filter=[]) == keys  # nothing filtered (#611)


def _musubi_convert_from_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """musubi ``convert_lora.py --target default`` (§2.2): prefix.body → lora_unet_body with '_';
    lora_A/lora_down → .lora_down., lora_B/lora_up → .lora_up., _alpha → .alpha; alpha = rank when missing."""
    out = {}
    for key, value in state_dict.items():
        prefix, body = key.split(".", 1)
        assert prefix in ("diffusion_model", "transformer"), key
        new = ("lora_unet_" + body).replace(".", "_")
        new = new.replace("_lora_A_", ".lora_down.").replace("_lora_B_", ".lora_up.")
        new = new.replace("_lora_down_", ".lora_down.").replace("_lora_up_", ".lora_up.")
        if new.endswith("_alpha"):
            new = new.replace("_alpha", ".alpha")
        out[new] = value
    for key, value in list(out.items()):
        if ".lora_down." in key:
            out.setdefault(key.split(".")[0] + ".alpha", torch.tensor(float(value.shape[0])))
    return out


@pytest.mark.parametrize("select", ["all", "attn blocks=1"])
def test_musubi_conversion_of_a_comfy_file_gives_our_musubi_file(tmp_path, select):
    modules = make_wan_lora("tiny", task="i2v", rank=3, alpha=1.0, select=select, seed=3)
    converted = _musubi_convert_from_diffusers(to_state_dict(modules, format="comfy"))
    ours = to_state_dict(modules, format="musubi")
    assert set(converted) == set(ours)
    for key in ours:
        torch.testing.assert_close(converted[key], ours[key])
    # and musubi's own module naming: "lora_unet" + "." + original name, dots → underscores
    assert "lora_unet_blocks_1_cross_attn_k_img.lora_down.weight" in ours
    path = write_lora(tmp_path / "m.safetensors", modules, format="musubi")
    with open_lora(path) as lora:
        assert lora.format == "musubi" and lora.names() == [m.name for m in modules]


def test_module_with_pair_and_full_weight_is_written_as_one_diff():
    modules = make_wan_lora("tiny", rank=2, alpha=2.0, select="blocks=0 include=self_attn\\.q", seed=4)
    module = modules[0]
    module.dense = torch.full(module.shape, 0.01)
    state_dict = to_state_dict(modules, format="comfy")
    assert list(state_dict) == ["diffusion_model.blocks.0.self_attn.q.diff"]
    patches, not_loaded = _comfy_apply(state_dict, _comfy_key_map("t2v"))
    assert not_loaded == []
    torch.testing.assert_close(patches["blocks.0.self_attn.q.weight"], module.delta())


@pytest.mark.parametrize("fmt", ["comfy", "musubi"])
@pytest.mark.parametrize("scale", [-0.75, 0.0])
def test_alpha_stays_positive_for_negative_or_zero_scale(fmt, scale):
    modules = make_wan_lora("tiny", rank=4, select="ffn", seed=5)
    for module in modules:
        module.scale, module.alpha = scale, None
    state_dict = to_state_dict(modules, format=fmt)
    alphas = [float(v) for k, v in state_dict.items() if k.endswith(".alpha")]
    assert alphas and all(a == 4.0 for a in alphas)  # alpha = rank, the scale is in the factors
    patches, not_loaded = _comfy_apply(state_dict, _comfy_key_map("t2v"))
    assert not_loaded == []
    for module in modules:
        torch.testing.assert_close(patches[f"{module.name}.weight"], module.delta())
