"""The built-in trainer's step schedule: a pure function of (seed, stream, step), Musubi's samplers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from difflora_gui.train.builtin.schedule import Schedule, make_noise, noise_hash, shift_timestep


def test_a_plan_depends_only_on_the_step_not_on_what_was_drawn_before():
    schedule = Schedule(seed=3, item_count=5)
    forward = [schedule.plan(i) for i in range(12)]
    fresh = Schedule(seed=3, item_count=5)
    assert fresh.plan(11) == forward[11] and fresh.plan(4) == forward[4]
    assert Schedule(seed=4, item_count=5).plan(4) != forward[4]


def test_streams_share_nothing_but_the_seed():
    shared, side_a, side_b = (Schedule(seed=3, item_count=5, stream=s) for s in (0, 1, 2))
    plans = [[s.plan(i) for i in range(6)] for s in (shared, side_a, side_b)]
    for i in range(6):
        assert len({p[i].noise_seeds for p in plans}) == 3
        assert len({p[i].timesteps for p in plans}) == 3


def test_every_epoch_is_a_shuffle_of_the_items_repeated():
    schedule = Schedule(seed=1, item_count=3, repeats=2, batch_size=1)
    assert schedule.steps_per_epoch == 6
    for epoch in range(3):
        items = [schedule.plan(epoch * 6 + b).items[0] for b in range(6)]
        assert Counter(items) == {0: 2, 1: 2, 2: 2}
        assert {schedule.plan(epoch * 6 + b).epoch for b in range(6)} == {epoch}
    batched = Schedule(seed=1, item_count=4, batch_size=3)
    assert batched.steps_per_epoch == 2
    assert [len(batched.plan(i).items) for i in range(4)] == [3, 1, 3, 1]
    assert sorted(batched.plan(0).items + batched.plan(1).items) == [0, 1, 2, 3]


def test_shift_and_samplers():
    assert shift_timestep(0.5, 3.0) == pytest.approx(0.75)
    assert shift_timestep(0.0, 3.0) == 0.0 and shift_timestep(1.0, 3.0) == 1.0
    draws = {
        mode: np.array([Schedule(seed=0, item_count=1, sampling=mode).timestep(i, 0) for i in range(3000)])
        for mode in ("uniform", "sigmoid", "shift", "sigma")
    }
    assert draws["uniform"].mean() == pytest.approx(0.5, abs=0.02)
    assert (
        draws["sigmoid"].mean() == pytest.approx(0.5, abs=0.02)
        and draws["sigmoid"].std() < draws["uniform"].std()
    )
    # shift 3 pushes toward high noise: the median of U(0,1) shifted is shift(0.5) = 0.75
    assert np.median(draws["sigma"]) == pytest.approx(0.75, abs=0.03)
    assert np.median(draws["shift"]) == pytest.approx(0.75, abs=0.03)
    assert all(d.min() >= 0.0 and d.max() <= 1.0 for d in draws.values())


def test_an_expert_window_keeps_the_shape_of_the_distribution_inside_it():
    free = np.array([Schedule(seed=0, item_count=1).timestep(i, 0) for i in range(6000)])
    low = np.array([Schedule(seed=0, item_count=1, window=(0, 875)).timestep(i, 0) for i in range(3000)])
    high = np.array([Schedule(seed=0, item_count=1, window=(875, 1000)).timestep(i, 0) for i in range(3000)])
    assert low.max() <= 0.875 and high.min() >= 0.875
    inside_low, inside_high = free[free <= 0.875], free[free >= 0.875]
    assert low.mean() == pytest.approx(inside_low.mean(), abs=0.015)  # rejection, not a linear squeeze
    assert high.mean() == pytest.approx(inside_high.mean(), abs=0.005)
    with pytest.raises(ValueError):
        Schedule(seed=0, item_count=1, window=(900, 100))


def test_noise_is_the_same_tensor_for_the_same_seed():
    a, b = make_noise(12345, (16, 1, 4, 4)), make_noise(12345, (16, 1, 4, 4))
    assert torch.equal(a, b) and noise_hash(a) == noise_hash(b)
    assert noise_hash(make_noise(12346, (16, 1, 4, 4))) != noise_hash(a)
    assert a.std() == pytest.approx(1.0, abs=0.15)
