"""The built-in trainer's items: images as one-frame clips, videos as 4N+1-frame clips, pairs by stem."""

from __future__ import annotations

import numpy as np
import pytest

from difflora_gui.errors import UserError
from difflora_gui.train.builtin import data
from difflora_gui.train.builtin.outputs import read_schedule
from tests.test_train_builtin_helpers import pair_runs, quick_config, setup_folders, single_run, train


def write_video(path, frames=9, size=(48, 32)):
    import av

    width, height = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.full((height, width, 3), 20 * index, dtype=np.uint8) + rng.integers(
                0, 30, (height, width, 3), dtype=np.uint8
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_videos_give_one_clip_per_length_they_are_long_enough_for(tmp_path):
    folders = setup_folders(tmp_path)
    write_video(folders["a"] / "clip é.mp4", frames=9)
    run = single_run(folders, quick_config(target_frames=[1, 5, 13]))
    keys = [slot[0].key for slot in data.run_clips(run, [1, 5, 13])]
    assert keys == ["clip é#1", "clip é#5", "p0", "p1", "p2", "p3"]  # 13 frames: the clip is too short
    five = data.run_clips(run, [1, 5, 13])[1][0]
    pixels, bucket = data.clip_pixels(five, 32)
    assert pixels.shape == (3, 5, bucket[1], bucket[0]) and pixels.dtype == np.float32
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    with pytest.raises(UserError, match="4N\\+1"):
        data.check_target_frames([1, 6])


def test_a_run_with_clips_of_two_lengths_in_one_batch_trains(tmp_path):
    folders = setup_folders(tmp_path)
    write_video(folders["a"] / "clip.mp4", frames=9, size=(32, 32))
    run = single_run(folders, quick_config(target_frames=[1, 5], batch_size=3, max_train_steps=4))
    train(run)
    records = read_schedule(folders["out"] / "lora.schedule.jsonl")
    seen = {key for record in records for key in record["items"]}
    assert "clip#5" in seen and all(len(r["items"]) in (3, 1) for r in records)


def test_pairs_train_only_the_items_both_sets_hold(tmp_path):
    folders = setup_folders(tmp_path, pair=True)
    (folders["b"] / "p3.png").unlink()
    a_run, b_run = pair_runs(folders, quick_config(max_train_steps=2))
    assert [slot[0].key for slot in data.run_clips(a_run, [1])] == ["p0", "p1", "p2"]
    assert [slot[0].path.parent for slot in data.run_clips(b_run, [1])] == [folders["b"]] * 3
    (slider,) = pair_runs(folders, quick_config(pair_mode="slider"), name="s")
    slots = data.run_clips(slider, [1])
    assert [(a.path.parent, b.path.parent) for a, b in slots] == [(folders["a"], folders["b"])] * 3


def test_bf16_autocast_runs_on_the_cpu_too(tmp_path):
    folders = setup_folders(tmp_path)
    run = single_run(folders, quick_config(max_train_steps=3), dtype="bfloat16")
    outcome = train(run)
    assert all(np.isfinite(v) for name, v, _ in outcome.context.metrics if name == "loss")
    assert run.output_path().is_file()


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    import torch

    from difflora_gui.train.builtin import lora_setup
    from difflora_gui.train.builtin.objective import Sample, group_losses
    from tests.test_train_builtin_helpers import empty_embedding, latents_of, load_transformer

    folders = setup_folders(tmp_path)
    latent = next(iter(latents_of(folders).values()))
    embedding = empty_embedding(folders)
    grads = []
    for checkpointing in (False, True):
        model = load_transformer(folders).requires_grad_(False)
        params = lora_setup.add_lora(model, lora_setup.select_targets(model, "all"), 4, 4.0, init_seed=1)
        with torch.no_grad():
            for p in params:
                p.add_(0.01)  # a non-zero up-projection, so every LoRA factor gets a gradient
        if checkpointing:
            model.enable_gradient_checkpointing()
        model.train()
        sample = Sample(latent, torch.ones_like(latent), 0.4, embedding)
        for loss in group_losses(model, [sample], lambda: torch.autocast("cpu", enabled=False)):
            loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]))
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
