"""Pairs with the built-in trainer: synchronised runs share noise and timesteps, slider mode trains the
difference, Wan2.2 per-expert runs train their own transformer inside their timestep window."""

from __future__ import annotations

import json

import pytest
import torch

from difflora_gui.lora.reader import open_lora
from difflora_gui.train.builtin.job import describe_builtin
from difflora_gui.train.builtin.outputs import read_schedule
from difflora_gui.train.builtin.schedule import make_noise
from tests.test_train_builtin_helpers import (
    empty_embedding,
    fixed_eval_errors,
    latents_of,
    load_transformer,
    metric,
    pair_runs,
    quick_config,
    setup_folders,
    single_run,
    train,
    with_lora,
)


def _schedules(runs):
    for run in runs:
        train(run)
    return [read_schedule(run.output_path().with_suffix("").with_suffix(".schedule.jsonl")) for run in runs]


def test_synchronised_runs_draw_the_same_items_noise_and_timesteps_and_independent_ones_do_not(tmp_path):
    folders = setup_folders(tmp_path, pair=True)
    sync = pair_runs(folders, quick_config(max_train_steps=8, pair_mode="synchronised"), name="sync")
    assert [run.side for run in sync] == ["a", "b"]
    a, b = _schedules(sync)
    assert len(a) == len(b) == 8
    for key in ("step", "items", "noise_seeds", "noise_hashes", "t"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    assert len({r["items"][0] for r in a}) == 4  # every pair seen, in the same order
    # both sides start from the same LoRA and differ only by their data: files differ
    lora_a, lora_b = (open_lora(run.output_path()) for run in sync)
    assert not torch.equal(lora_a.load("blocks.0.ffn.0").up, lora_b.load("blocks.0.ffn.0").up)

    indep = pair_runs(folders, quick_config(max_train_steps=8, pair_mode="independent"), name="indep")
    c, d = _schedules(indep)
    assert [r["noise_seeds"] for r in c] != [r["noise_seeds"] for r in d]
    assert all(rc["t"] != rd["t"] for rc, rd in zip(c, d, strict=True))
    assert [r["noise_hashes"] for r in c] != [r["noise_hashes"] for r in a]


def test_slider_mode_moves_the_prediction_toward_a_at_plus_one_and_toward_b_at_minus_one(tmp_path):
    folders = setup_folders(tmp_path, pair=True)
    (run,) = pair_runs(folders, quick_config(max_train_steps=40, pair_mode="slider"), name="slide")
    assert run.side == "slider" and run.name == "slide_slider"
    outcome = train(run)
    assert len(metric(outcome.context, "loss")) == 40
    records = read_schedule(run.output_dir + "/slide_slider.schedule.jsonl")
    assert {r["items"][0] for r in records} == {f"p{i}|p{i}" for i in range(4)}
    lora = open_lora(run.output_path())
    assert len(lora.names()) == 20 and lora.metadata["ss_network_dim"] == "4"

    embedding = empty_embedding(folders)
    latents = {"a": latents_of(folders, "a"), "b": latents_of(folders, "b")}
    errors, predictions = {}, {}
    for multiplier in (1.0, 0.0, -1.0):
        model = with_lora(load_transformer(folders), run.output_path(), multiplier)
        for side in ("a", "b"):
            per_item = fixed_eval_errors(model, latents[side], embedding)
            errors[side, multiplier] = sum(per_item.values()) / len(per_item)
        predictions[multiplier] = _predictions(model, latents, embedding)
    # the A items are predicted better at +1 than at -1
    assert errors["a", 1.0] < errors["a", -1.0], errors
    # relative to B, the prediction moves toward A as the multiplier goes from -1 over 0 to +1
    preference = {m: errors["a", m] - errors["b", m] for m in (1.0, 0.0, -1.0)}
    assert preference[1.0] < preference[0.0] < preference[-1.0], preference
    # what +1 adds over -1 points along target A - target B (= x0_B - x0_A); a random direction gives ~0.01
    change = (predictions[1.0] - predictions[-1.0]).flatten()
    concept = torch.cat(
        [(latents["b"][s] - latents["a"][s]).flatten() for s in sorted(latents["a"]) for _ in range(8)]
    )
    cosine = float(torch.nn.functional.cosine_similarity(change, concept, dim=0))
    print("slider cosine", cosine)
    assert cosine > 0.1, cosine


def _predictions(model, latents, embedding, draws=4, seed=5):
    """Predictions on the noisy A and B items of every pair (the same noise and t for both)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for stem in sorted(latents["a"]):
            per_stem = []
            for _ in range(draws):
                noise = torch.randn(latents["a"][stem].shape, generator=generator)
                t = torch.rand((), generator=generator).item() * 0.9 + 0.05
                for side in ("a", "b"):
                    noisy = (1 - t) * latents[side][stem] + t * noise
                    per_stem.append(
                        model(
                            hidden_states=noisy[None],
                            timestep=torch.tensor([t * 1000.0]),
                            encoder_hidden_states=embedding[None],
                            return_dict=False,
                        )[0][0]
                    )
            out.append(torch.stack(per_stem))
    return torch.stack(out)


@pytest.mark.parametrize(
    "expert, subfolder, window",
    [("high", "transformer", (0.875, 1.0)), ("low", "transformer_2", (0.0, 0.875))],
)
def test_wan22_per_expert_runs_train_their_transformer_inside_their_window(
    tmp_path, expert, subfolder, window
):
    folders = setup_folders(tmp_path, two_experts=True)
    config = quick_config(task="t2v-A14B", expert_mode="per_expert", max_train_steps=12)
    from difflora_gui.train.plan import plan_single

    runs = plan_single(
        config,
        folders["a"],
        folders["out"],
        "wan22",
        backend="builtin",
        backend_config={"model": str(folders["model"]), "device": "cpu"},
    )
    run = next(r for r in runs if r.expert == expert)
    assert run.name == f"wan22_{expert}_noise"
    assert describe_builtin(run).plan["transformer"] == subfolder
    outcome = train(run)
    records = read_schedule(run.output_dir + f"/{run.name}.schedule.jsonl")
    assert all(window[0] <= t <= window[1] for r in records for t in r["t"])
    lora = open_lora(run.output_path())
    assert lora.metadata["difflora_expert"] == expert
    assert json.loads(lora.metadata["difflora.train"])["expert"] == expert
    assert lora.metadata["modelspec.timestep_range"] == {"high": "875,1000", "low": "0,875"}[expert]

    # step 1 trains from a zero LoRA up-projection: its loss is the base expert's own loss on the
    # recorded item, noise and timestep — computed here with each transformer of the folder
    first = records[0]
    x0 = latents_of(folders)[first["items"][0]]
    noise = make_noise(int(first["noise_seeds"][0]), x0.shape)
    t = first["t"][0]
    embedding = empty_embedding(folders)

    def loss_of(name):
        model = load_transformer(folders, name)
        with torch.no_grad():
            pred = model(
                hidden_states=((1 - t) * x0 + t * noise)[None],
                timestep=torch.tensor([t * 1000.0]),
                encoder_hidden_states=embedding[None],
                return_dict=False,
            )[0][0]
        return float(((pred - (noise - x0)) ** 2).mean())

    recorded = metric(outcome.context, "loss")[0][1]
    other = "transformer_2" if subfolder == "transformer" else "transformer"
    assert recorded == pytest.approx(loss_of(subfolder), rel=1e-5)
    assert recorded != pytest.approx(loss_of(other), rel=1e-3)


def test_a_joint_wan22_run_and_an_i2v_task_are_refused_before_launch(tmp_path):
    from difflora_gui.train.builtin.job import validate_builtin

    folders = setup_folders(tmp_path, two_experts=True)
    joint = single_run(folders, quick_config(task="t2v-A14B", expert_mode="joint"))
    assert joint.expert is None
    assert any("per expert" in issue.text for issue in validate_builtin(joint) if issue.level == "error")
    i2v = single_run(folders, quick_config(task="i2v-14B"))
    assert any("Musubi" in issue.text for issue in validate_builtin(i2v) if issue.level == "error")
