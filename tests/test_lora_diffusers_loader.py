"""Real loader tests: files we write go through diffusers' own LoRA loading into a tiny
``WanTransformer3DModel`` built from a config (no download); the fused weight change of every
Linear must equal the ΔW we meant, and every other weight must stay bit-identical."""

from __future__ import annotations

import pytest
import torch

from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.lora.wan_layout import tiny_transformer_config, to_diffusers
from difflora_gui.lora.writer import write_lora

pytest.importorskip("diffusers")


def _tiny_transformer(task: str):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(**tiny_transformer_config(task)).eval()


def _tiny_pipeline(task: str):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    return WanPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=_tiny_transformer(task),
    )


def _weight_change(transformer, load) -> dict[str, torch.Tensor]:
    """Load a LoRA with ``load``, fuse it at strength 1, unload the adapter: the change of each weight."""
    before = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    load()
    transformer.fuse_lora(lora_scale=1.0)
    transformer.unload_lora()
    after = transformer.state_dict()
    assert set(after) == set(before)
    return {k: after[k] - before[k] for k in before}


def _assert_change_is(change: dict[str, torch.Tensor], modules, *, rtol: float = 1e-5) -> None:
    expected = {to_diffusers(m.name) + ".weight": m.delta() for m in modules}
    expected.update({to_diffusers(m.name) + ".bias": m.bias.float() for m in modules if m.bias is not None})
    assert expected, "nothing to compare"
    for key, delta in change.items():
        if key in expected:
            want = expected[key]
            err = float((delta - want).norm()) / float(want.norm())
            assert err <= rtol, f"{key}: relative error {err:.2e}"
        else:
            assert torch.count_nonzero(delta) == 0, f"{key} changed but is not in the LoRA"


def _load_file_into(transformer, path):
    from diffusers import WanPipeline

    def load():
        state_dict = WanPipeline.lora_state_dict(str(path))
        transformer.load_lora_adapter(state_dict, prefix="transformer", adapter_name="test")

    return load


@pytest.mark.parametrize(
    ("task", "select", "outside"),
    [
        ("t2v", "all", False),
        ("i2v", "all", True),  # image cross-attention and the modules outside the blocks
        ("t2v", "attn", False),  # attention only
        ("t2v", "blocks=1", False),  # block subset
        ("i2v", "cross_attn blocks=0", False),
    ],
)
def test_comfy_format_loads_in_diffusers(tmp_path, task, select, outside):
    modules = make_wan_lora("tiny", task=task, rank=3, alpha=2.0, select=select, outside=outside, seed=1)
    path = write_lora(tmp_path / "comfy.safetensors", modules, format="comfy")
    transformer = _tiny_transformer(task)
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), modules)


def test_comfy_file_through_pipeline_load_lora_weights(tmp_path):
    modules = make_wan_lora("tiny", rank=4, alpha=3.0, select="attn blocks=0", seed=2)  # scale 0.75
    path = write_lora(tmp_path / "slider file.safetensors", modules)
    pipe = _tiny_pipeline("t2v")
    change = _weight_change(
        pipe.transformer, lambda: pipe.load_lora_weights(str(path), adapter_name="slider")
    )
    _assert_change_is(change, modules)


def test_diffusers_format_loads_with_alpha_baked_in(tmp_path):
    modules = make_wan_lora("tiny", task="i2v", rank=4, alpha=1.0, outside=True, seed=3)  # scale 1/4
    path = write_lora(tmp_path / "peft.safetensors", modules, format="diffusers")
    transformer = _tiny_transformer("i2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), modules)


def test_musubi_format_loads_when_complete_and_is_rejected_by_diffusers_when_partial(tmp_path):
    modules = make_wan_lora("tiny", rank=4, alpha=1.0, seed=4)
    path = write_lora(tmp_path / "musubi.safetensors", modules, format="musubi")
    transformer = _tiny_transformer("t2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), modules)
    # the pitfall the writer warns about: diffusers' musubi converter needs every module of every block
    partial = write_lora(
        tmp_path / "partial.safetensors", make_wan_lora("tiny", select="attn"), format="musubi"
    )
    with pytest.raises(KeyError):
        _load_file_into(_tiny_transformer("t2v"), partial)()


def test_bfloat16_file_loads_with_the_rounded_factors(tmp_path):
    modules = make_wan_lora("tiny", rank=4, alpha=4.0, select="ffn", seed=5)
    path = write_lora(tmp_path / "bf16.safetensors", modules, dtype="bfloat16")
    with open_lora(path) as lora:
        stored = list(lora.modules())  # what the file holds: bf16 factors
    transformer = _tiny_transformer("t2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), stored)


def test_merged_lora_read_back_and_rewritten_loads_the_same(tmp_path):
    """A musubi file read into canonical form and re-written as comfy gives diffusers the same ΔW."""
    modules = make_wan_lora(
        "tiny", rank=2, alpha=1.0, seed=6, path=tmp_path / "in.safetensors", format="musubi"
    )
    with open_lora(tmp_path / "in.safetensors") as lora:
        canonical = list(lora.modules())
    out = write_lora(
        tmp_path / "out.safetensors", canonical, format="comfy", inputs=[tmp_path / "in.safetensors"]
    )
    transformer = _tiny_transformer("t2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, out)), modules)


@pytest.mark.parametrize("fmt", ["comfy", "diffusers"])
def test_bias_change_loads_as_lora_bias(tmp_path, fmt):
    modules = make_wan_lora("tiny", rank=2, alpha=2.0, select="self_attn blocks=0", seed=7)
    generator = torch.Generator().manual_seed(8)
    for module in modules:
        module.bias = torch.randn(module.shape[0], generator=generator) * 0.1
    path = write_lora(tmp_path / "bias.safetensors", modules, format=fmt)
    transformer = _tiny_transformer("t2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), modules)


@pytest.mark.timeout(120)  # diffusers' alpha split loops forever on an alpha <= 0: we must never write one
@pytest.mark.parametrize("fmt", ["comfy", "musubi", "diffusers"])
def test_negative_scale_loads(tmp_path, fmt):
    """A − B differences carry signs; a negative scale must reach the model as a negative ΔW."""
    modules = make_wan_lora("tiny", rank=3, seed=9)
    for module in modules:
        module.scale, module.alpha = -0.6, None
    path = write_lora(tmp_path / "negative.safetensors", modules, format=fmt)
    transformer = _tiny_transformer("t2v")
    _assert_change_is(_weight_change(transformer, _load_file_into(transformer, path)), modules)
