"""The scheduler of a preview render: UniPC or Euler on Wan's flow-matching schedule.

Both follow diffusers' Wan documentation: UniPC with ``prediction_type="flow_prediction"``,
``use_flow_sigmas=True`` and the request's ``flow_shift`` (Wan's own sampler; 3.0 suits 480p, 5.0
720p), and ``FlowMatchEulerDiscreteScheduler(shift=flow_shift)`` (what step-distilled accelerator
LoRAs are sampled with). A new scheduler per render: schedulers keep per-run state (step index,
UniPC's history), and building one costs microseconds.
"""

from __future__ import annotations

from difflora_gui.errors import UserError
from difflora_gui.preview.request import SAMPLERS


def make_scheduler(sampler: str, flow_shift: float, *, num_train_timesteps: int = 1000):
    """A fresh diffusers scheduler for ``sampler`` ("unipc" | "euler") at ``flow_shift``."""
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r} (use one of {', '.join(SAMPLERS)})")
    if not flow_shift > 0:
        raise UserError(f"flow shift must be above 0, got {flow_shift}")
    if sampler == "unipc":
        from diffusers import UniPCMultistepScheduler

        return UniPCMultistepScheduler(
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            num_train_timesteps=num_train_timesteps,
            flow_shift=float(flow_shift),
        )
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=float(flow_shift))


def scheduler_for(pipe, request):
    """The scheduler for ``request`` with the pipeline's training timestep count."""
    train_steps = int(getattr(pipe.scheduler, "config", {}).get("num_train_timesteps", 1000))
    return make_scheduler(request.sampler, request.flow_shift, num_train_timesteps=train_steps)
