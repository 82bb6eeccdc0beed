"""The built-in trainer end to end on a tiny random Wan folder (CPU): it learns, and its file loads everywhere."""

from __future__ import annotations

import json

import pytest
import torch

from difflora_gui.jobs.events import Artifact
from difflora_gui.lora.reader import open_lora
from tests.test_train_builtin_helpers import (
    empty_embedding,
    fixed_eval_errors,
    latents_of,
    load_transformer,
    metric,
    quick_config,
    setup_folders,
    single_run,
    train,
    with_lora,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folders = setup_folders(tmp_path_factory.mktemp("train"))
    run = single_run(folders, quick_config(save_every_n_steps=10))
    outcome = train(run)
    return folders, run, outcome


def test_loss_on_fixed_noise_and_timesteps_goes_down_over_30_steps(trained):
    folders, run, _outcome = trained
    latents, embedding = latents_of(folders), empty_embedding(folders)
    before = fixed_eval_errors(load_transformer(folders), latents, embedding)
    after = fixed_eval_errors(with_lora(load_transformer(folders), run.output_path()), latents, embedding)
    mean_before = sum(before.values()) / len(before)
    mean_after = sum(after.values()) / len(after)
    assert mean_after < 0.9 * mean_before, (before, after)
    assert sum(after[k] < before[k] for k in before) >= 3


def test_events_follow_the_backend_conventions(trained):
    _folders, run, outcome = trained
    ctx, result = outcome.context, outcome.result
    losses = metric(ctx, "loss")
    assert [step for step, _ in losses] == list(range(1, 31))
    assert len(metric(ctx, "avr_loss")) == 30 and len(metric(ctx, "lr")) == 30
    assert metric(ctx, "lr")[0][1] == pytest.approx(2e-3)
    assert [value for _, value in metric(ctx, "epoch")] == [
        float(e) for e in range(1, 9)
    ]  # 4 items, 30 steps
    assert ctx.progress_reports[-1].done == 30 and ctx.progress_reports[-1].total == 30
    artifacts = [e for e in ctx.events if isinstance(e, Artifact)]
    kinds = [(a.kind, a.meta.get("step")) for a in artifacts]
    assert kinds == [("checkpoint", 10), ("state", 10), ("checkpoint", 20), ("state", 20), ("lora", 30)]
    out = run.output_path().parent
    assert result.lora == str(run.output_path())
    assert result.checkpoints == [
        str(out / "lora-step00000010.safetensors"),
        str(out / "lora-step00000020.safetensors"),
    ]
    assert result.state == str(out / "lora-step00000020-state")
    assert result.steps_done == result.total_steps == 30
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_the_file_reads_back_through_our_reader_with_its_metadata(trained):
    folders, run, _outcome = trained
    lora = open_lora(run.output_path())
    assert lora.format == "comfy"
    assert len(lora.names()) == 2 * 10  # two blocks × (self_attn q k v o, cross_attn q k v o, ffn.0, ffn.2)
    module = lora.load("blocks.1.self_attn.q")
    assert module.rank == 4 and module.alpha == 4.0 and module.scale == 1.0
    meta = lora.metadata
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4"
    assert meta["ss_base_model_version"] == "wan" and meta["modelspec.architecture"] == "wan2.1/lora"
    info = json.loads(meta["difflora.train"])
    assert info["step"] == 30 and info["seed"] == 7 and info["backend"] == "builtin"
    assert info["config"]["network_dim"] == 4 and info["expert"] is None
    checkpoint = open_lora(run.output_path().parent / "lora-step00000010.safetensors")
    assert json.loads(checkpoint.metadata["difflora.train"])["step"] == 10


def test_diffusers_loads_the_same_delta_and_the_pipeline_output_changes(trained):
    from diffusers import WanPipeline

    folders, run, _outcome = trained
    lora = open_lora(run.output_path())
    transformer = with_lora(load_transformer(folders), run.output_path())
    layer = dict(transformer.named_modules())["blocks.0.attn1.to_q"]
    peft_delta = layer.lora_B["x"].weight @ layer.lora_A["x"].weight * layer.scaling["x"]
    ours = lora.load("blocks.0.self_attn.q").delta()
    assert torch.allclose(peft_delta, ours, atol=1e-6) and ours.abs().max() > 0

    pipe = WanPipeline.from_pretrained(folders["model"])
    pipe.set_progress_bar_config(disable=True)

    def render():
        return pipe(
            prompt="",
            height=32,
            width=32,
            num_frames=1,
            num_inference_steps=2,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).frames

    base = render()
    pipe.load_lora_weights(str(run.output_path()), adapter_name="trained")
    assert (render() - base).abs().max() > 1e-3


def test_targets_and_caption_files(tmp_path):
    folders = setup_folders(tmp_path)
    for index, image in enumerate(sorted(folders["a"].glob("*.png"))):
        image.with_suffix(".txt").write_text(f"caption {index} ü", encoding="utf-8")
    config = quick_config(max_train_steps=4, targets="attn blocks=1", captions="files")
    run = single_run(folders, config, name="attn only")
    train(run)
    names = open_lora(run.output_path()).names()
    assert names == [
        f"blocks.1.{layer}"
        for layer in (
            "self_attn.q",
            "self_attn.k",
            "self_attn.v",
            "self_attn.o",
            "cross_attn.q",
            "cross_attn.k",
            "cross_attn.v",
            "cross_attn.o",
        )
    ]
    cache = run.output_path().parent / ".builtin-cache"
    assert len(list(cache.glob("*.safetensors"))) == 4 + 4  # four latents, four distinct captions

    # a second run of the same set reads the cache (no encoding) and gives torch its threads back
    threads = torch.get_num_threads()
    again = single_run(
        folders, quick_config(max_train_steps=1, captions="files"), name="again", num_threads=1
    )
    outcome = train(again)
    assert not [p for p in outcome.context.progress_reports if p.text.startswith("encoding")]
    assert torch.get_num_threads() == threads
