"""Wan's rectified-flow objective on one step's items.

x_t = (1 − t)·x0 + t·ε, the model predicts the velocity ε − x0 at timestep t·1000 (what
diffusers' ``WanPipeline`` passes at inference), loss = MSE. Items of the same latent shape are
batched into one forward pass; a step whose items fall in different buckets runs one pass per
shape, each weighted by its share of the step's items, so the gradient is the batch mean either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Sample:
    """One item of a step: its clean latent, noise, timestep and text embedding (on the device)."""

    latent: Any  # (C, F, H, W)
    noise: Any  # same shape
    t: float
    embedding: Any  # (L, D)


def shape_groups(samples: Sequence[Sample]) -> list[list[Sample]]:
    by_shape: dict[tuple, list[Sample]] = {}
    for sample in samples:
        by_shape.setdefault(tuple(sample.latent.shape), []).append(sample)
    return list(by_shape.values())


def prediction(transformer, noisy, t, context, autocast: Callable[[], Any]):
    """The model's velocity prediction at timesteps ``t`` (in [0, 1])."""
    with autocast():
        return transformer(
            hidden_states=noisy,
            timestep=t * 1000.0,
            encoder_hidden_states=context,
            return_dict=False,
        )[0]


def group_losses(
    transformer, samples: Sequence[Sample], autocast: Callable[[], Any], weight: float = 1.0
) -> Iterator[Any]:
    """One loss tensor per shape group (with its graph), weighted so that they sum to ``weight``·mean.

    The caller runs ``backward`` on each before asking for the next, so only one group's
    activations are alive at a time.
    """
    import torch
    import torch.nn.functional as F

    total = len(samples)
    for group in shape_groups(samples):
        if len(group) == 1:  # the usual batch of one: views and a scalar t, no copies (per-step cost)
            (sample,) = group
            x0, noise, context = sample.latent[None], sample.noise[None], sample.embedding[None]
            noisy = (1.0 - sample.t) * x0 + sample.t * noise
            t = torch.tensor([sample.t], dtype=torch.float32, device=x0.device)
        else:
            x0 = torch.stack([s.latent for s in group])
            noise = torch.stack([s.noise for s in group])
            t = torch.tensor([s.t for s in group], dtype=torch.float32, device=x0.device)
            view = t.view(-1, *([1] * (x0.ndim - 1)))
            noisy = (1.0 - view) * x0 + view * noise
            context = torch.stack([s.embedding for s in group])
        predicted = prediction(transformer, noisy, t, context, autocast)
        loss = F.mse_loss(predicted.float(), (noise - x0).float())
        share = weight * len(group) / total
        yield loss if share == 1.0 else loss * share
