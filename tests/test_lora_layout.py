"""The Wan layout tables against diffusers' own WanTransformer3DModel (built on the meta device: no memory)."""

from __future__ import annotations

import pytest

from difflora_gui.lora import wan_layout
from difflora_gui.lora.wan_layout import VARIANTS

# diffusers configs of the released sizes (scripts/convert_wan_to_diffusers.py)
_DIFFUSERS_CONFIGS = {
    ("1.3B", "t2v"): dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30),
    ("14B", "t2v"): dict(num_attention_heads=40, attention_head_dim=128, ffn_dim=13824, num_layers=40),
    ("14B", "i2v"): dict(
        num_attention_heads=40,
        attention_head_dim=128,
        ffn_dim=13824,
        num_layers=40,
        in_channels=36,
        image_dim=1280,
        added_kv_proj_dim=5120,
    ),
    ("5B", "ti2v"): dict(
        num_attention_heads=24,
        attention_head_dim=128,
        ffn_dim=14336,
        num_layers=30,
        in_channels=48,
        out_channels=48,
    ),
}


def _diffusers_params(config: dict) -> dict[str, tuple[int, ...]]:
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    with init_empty_weights():
        model = WanTransformer3DModel(**config)
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _canonical_params(params: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """diffusers parameter → canonical module name and the shape of its weight."""
    result = {}
    for name, shape in params.items():
        if name.endswith(".bias"):
            continue
        module = name.removesuffix(".weight")
        canonical = wan_layout.from_diffusers(module)
        assert canonical is not None, f"diffusers parameter {name} has no canonical name"
        result[canonical] = shape
    return result


@pytest.mark.parametrize(("variant", "task"), list(_DIFFUSERS_CONFIGS))
def test_shapes_and_names_match_diffusers_model(variant, task):
    layout = VARIANTS[variant]
    canonical = _canonical_params(_diffusers_params(_DIFFUSERS_CONFIGS[(variant, task)]))
    for name, shape in canonical.items():
        expected = wan_layout.expected_shape(name, layout.dims())
        assert expected is not None, name
        assert all(e is None or e == s for e, s in zip(expected, shape, strict=True)), (name, expected, shape)
    layer_task = "i2v" if task == "i2v" else "t2v"
    names = layout.module_names(layer_task, outside=True)
    assert set(names) <= set(canonical)
    assert len([n for n in names if wan_layout.block_index(n) is not None]) == layout.num_blocks * (
        12 if task == "i2v" else 10
    )
    for name in names:
        assert layout.shape(name) == canonical[name]


def test_tiny_variant_is_the_feasibility_transformer():
    canonical = _canonical_params(_diffusers_params(wan_layout.tiny_transformer_config("i2v")))
    tiny = VARIANTS["tiny"]
    for name in tiny.module_names("i2v", outside=True):
        assert tiny.shape(name) == canonical[name]


def test_name_spellings_round_trip():
    layout = VARIANTS["14B"]
    for name in layout.module_names("i2v", outside=True) + [
        "blocks.3.modulation",
        "blocks.0.norm3",
        "head.modulation",
    ]:
        assert wan_layout.from_diffusers(wan_layout.to_diffusers(name)) == name
        musubi = wan_layout.to_musubi(name)
        assert musubi.startswith("lora_unet_") and "." not in musubi
        assert wan_layout.from_musubi(musubi.removeprefix("lora_unet_")) == name


def test_known_diffusers_names():
    assert wan_layout.to_diffusers("blocks.7.self_attn.o") == "blocks.7.attn1.to_out.0"
    assert wan_layout.to_diffusers("blocks.0.cross_attn.k_img") == "blocks.0.attn2.add_k_proj"
    assert wan_layout.to_diffusers("blocks.2.ffn.0") == "blocks.2.ffn.net.0.proj"
    assert wan_layout.to_diffusers("blocks.2.norm3") == "blocks.2.norm2"
    assert wan_layout.to_diffusers("head.head") == "proj_out"
    assert wan_layout.to_diffusers("time_projection.1") == "condition_embedder.time_proj"
    assert wan_layout.to_musubi("blocks.12.cross_attn.v_img") == "lora_unet_blocks_12_cross_attn_v_img"


def test_canonical_order_and_groups():
    names = [
        "head.head",
        "blocks.10.ffn.2",
        "blocks.2.self_attn.q",
        "text_embedding.0",
        "blocks.2.cross_attn.k_img",
        "blocks.2.ffn.0",
    ]
    assert wan_layout.sorted_names(names) == [
        "text_embedding.0",
        "blocks.2.self_attn.q",
        "blocks.2.cross_attn.k_img",
        "blocks.2.ffn.0",
        "blocks.10.ffn.2",
        "head.head",
    ]
    assert wan_layout.layer_group("blocks.2.cross_attn.k_img") == "cross_attn"
    assert wan_layout.layer_group("blocks.2.self_attn.norm_q") == "other"
    assert wan_layout.layer_group("head.head") == "other"
    assert wan_layout.block_index("blocks.31.ffn.0") == 31
    assert wan_layout.block_index("time_embedding.0") is None
