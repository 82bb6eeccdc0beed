"""The per-step plan: which items, which noise ε and which timestep t at step i — a pure function.

Everything random about a step is drawn from a counter-based seed: (the run's seed, a stream, what
is drawn, the epoch or step, the position in the batch) goes into a ``numpy.random.SeedSequence``.
No generator state is carried from step to step, so

* two synchronised runs (A and B: separate jobs, possibly on two GPUs) draw identical ε_i and t_i
  and see the pairs in the same order — the stream is the same for both;
* a resumed run continues exactly where it stopped: nothing but the step number is needed;
* ``independent`` pairs put the side in the stream: two ordinary, unrelated runs.

Item order follows Musubi: every epoch is a fresh shuffle of the items (each ``repeats`` times),
cut into batches. Timesteps follow Musubi's samplers: ``uniform`` (t ~ U(0,1)), ``sigmoid``
(t = σ(s·z), z ~ N(0,1)), ``shift`` (the sigmoid draw, then shifted) and ``sigma`` (a uniform
draw, then shifted), where the shift is Wan's t ↦ shift·t / (1 + (shift−1)·t). A per-expert window
[min, max]/1000 is kept by rejection sampling, which preserves the distribution's shape inside
the window (Musubi's ``--preserve_distribution_shape``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np

SAMPLINGS = ("shift", "sigma", "uniform", "sigmoid")
#: what a seed is drawn for (part of the SeedSequence key; never renumber: old runs resume with them)
_ORDER, _NOISE, _TIMESTEP, _INIT = 0, 1, 2, 3
#: independent pairs: each side its own stream; synchronised/slider: one shared stream
STREAMS = {"": 0, "shared": 0, "a": 1, "b": 2}
#: rejection sampling gives up after this many draws (a window of almost no probability mass)
_MAX_DRAWS = 100_000


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=tuple(key))))


def _seed63(seed: int, *key: int) -> int:
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(key)).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, stream: int, epoch: int, item_count: int, repeats: int) -> tuple[int, ...]:
    # cached: every step of an epoch reads the same shuffle (a step's plan stays a pure function)
    indices = np.repeat(np.arange(item_count), repeats)
    return tuple(int(i) for i in _rng(seed, stream, _ORDER, epoch).permutation(indices))


def shift_timestep(t: float, shift: float) -> float:
    """Wan's (and Musubi's) shift of a timestep in [0, 1]: shift·t / (1 + (shift − 1)·t)."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def noise_hash(noise) -> str:
    """A short hash of a noise tensor's float32 bytes (recorded so two runs can be compared)."""
    import torch

    data = noise.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


@dataclass(frozen=True)
class StepPlan:
    step: int  # 0-based: the step that, when done, makes ``step + 1`` steps
    epoch: int
    items: tuple[int, ...]  # indices into the run's item list
    noise_seeds: tuple[int, ...]  # one per item: torch.Generator seeds of ε
    timesteps: tuple[float, ...]  # one per item, in [0, 1]


@dataclass(frozen=True)
class Schedule:
    """The plan of every step of one run (see the module docstring)."""

    seed: int
    item_count: int
    batch_size: int = 1
    repeats: int = 1
    sampling: str = "shift"
    shift: float = 3.0
    window: tuple[int, int] | None = None  # (min, max) of 0..1000
    stream: int = 0
    sigmoid_scale: float = 1.0

    def __post_init__(self):
        if self.item_count < 1:
            raise ValueError("a schedule needs at least one item")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown timestep sampling {self.sampling!r} (use {', '.join(SAMPLINGS)})")
        if self.window is not None:
            lo, hi = self.window
            if not 0 <= lo < hi <= 1000:
                raise ValueError(f"bad timestep window {self.window!r}: need 0 <= min < max <= 1000")

    @property
    def epoch_length(self) -> int:
        """Items seen per epoch (each item ``repeats`` times)."""
        return self.item_count * self.repeats

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.epoch_length / self.batch_size)

    def epoch_order(self, epoch: int) -> tuple[int, ...]:
        """The shuffled item indices of one epoch (each item ``repeats`` times)."""
        return _epoch_order(self.seed, self.stream, int(epoch), self.item_count, self.repeats)

    def timestep(self, step: int, position: int) -> float:
        rng = _rng(self.seed, self.stream, _TIMESTEP, step, position)
        lo, hi = (0.0, 1.0) if self.window is None else (self.window[0] / 1000, self.window[1] / 1000)
        t = 0.0
        for _ in range(_MAX_DRAWS):
            t = self._draw(rng)
            if self.window is None or lo <= t <= hi:
                return t
        return lo + (hi - lo) * t  # the window holds (almost) no mass: map linearly instead

    def _draw(self, rng: np.random.Generator) -> float:
        if self.sampling == "uniform":
            return float(rng.random())
        if self.sampling == "sigmoid":
            return float(1.0 / (1.0 + math.exp(-self.sigmoid_scale * rng.standard_normal())))
        if self.sampling == "shift":
            u = 1.0 / (1.0 + math.exp(-self.sigmoid_scale * rng.standard_normal()))
        else:  # sigma: a uniform draw over the shifted schedule
            u = float(rng.random())
        return shift_timestep(u, self.shift)

    def noise_seed(self, step: int, position: int) -> int:
        return _seed63(self.seed, self.stream, _NOISE, step, position)

    def init_seed(self) -> int:
        """The seed of the LoRA's initial weights (the same for A and B of a synchronised pair)."""
        return _seed63(self.seed, self.stream, _INIT)

    def plan(self, step: int) -> StepPlan:
        epoch, batch = divmod(int(step), self.steps_per_epoch)
        order = self.epoch_order(epoch)
        items = order[batch * self.batch_size : (batch + 1) * self.batch_size]
        count = len(items)
        return StepPlan(
            step=int(step),
            epoch=epoch,
            items=tuple(items),
            noise_seeds=tuple(self.noise_seed(step, j) for j in range(count)),
            timesteps=tuple(self.timestep(step, j) for j in range(count)),
        )


def make_noise(seed: int, shape, *, device="cpu", dtype=None):
    """ε of ``shape`` from ``seed``: drawn on the CPU (the same numbers on every device), then moved."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype or torch.float32)
