"""The trained LoRA: PEFT adapters on the modules the selector picks, and saving them as a Wan LoRA file.

Candidates are the Linear layers inside the blocks (self-attention q/k/v/o, cross-attention
q/k/v/o and k_img/v_img, ffn.0/ffn.2) — Musubi's ``networks.lora_wan`` targets with its default
exclude of the embeddings, norms and head; ``config["targets"]`` (our selector grammar, canonical
names) narrows them. PEFT's default init is Musubi's: down (``lora_A``) Kaiming-uniform, up
(``lora_B``) zeros, scale alpha/rank. The init is seeded from the run's schedule, so the A and B
runs of a synchronised pair start from the same LoRA. Files are written in the comfy format
(``diffusion_model.blocks.N.self_attn.q.lora_down.weight`` / ``lora_up`` / ``alpha``) through our
writer, which loads in ComfyUI, WanVideoWrapper, diffusers and Musubi.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.lora import wan_layout
from difflora_gui.lora.selector import parse_selector

ADAPTER = "default"


def candidate_modules(transformer) -> dict[str, str]:
    """``{canonical name: diffusers module name}`` of the block Linear layers, in model order."""
    import torch

    found = {}
    block_layers = set(wan_layout.block_linear_layers("i2v"))
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        canonical = wan_layout.from_diffusers(name)
        if canonical is None or wan_layout.block_index(canonical) is None:
            continue
        if wan_layout.block_local_name(canonical) in block_layers:
            found[canonical] = name
    return {name: found[name] for name in wan_layout.sorted_names(found)}


def select_targets(transformer, targets: str) -> dict[str, str]:
    """The candidates ``targets`` selects (``UserError`` naming why when it selects nothing)."""
    selector = parse_selector(targets or "all")
    candidates = candidate_modules(transformer)
    chosen = selector.select(list(candidates))
    if selector.is_weighted:
        raise UserError(f"targets {targets!r}: block weights (@) mean nothing for training; leave them out")
    return {name: candidates[name] for name in chosen}


def add_lora(transformer, targets: Mapping[str, str], rank: int, alpha: float, init_seed: int) -> list:
    """Inject the adapter; return its trainable parameters (float32), in a fixed order."""
    import torch
    from peft import LoraConfig

    config = LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha),
        target_modules=list(targets.values()),
        init_lora_weights=True,
        lora_dropout=0.0,
        bias="none",
    )
    # seeds only the CPU generator (the caller adds the adapter before moving the model to a GPU,
    # so the init is the same on every device) and gives the process its own state back
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(int(init_seed))
        transformer.add_adapter(config, adapter_name=ADAPTER)
    params = []
    for name, param in transformer.named_parameters():
        if "lora_" in name:
            param.data = param.data.float()
            param.requires_grad_(True)
            params.append(param)
        else:
            param.requires_grad_(False)
    return params


def lora_layers(transformer) -> list:
    from peft.tuners.lora import LoraLayer

    return [module for module in transformer.modules() if isinstance(module, LoraLayer)]


def set_multiplier(layers, multiplier: float) -> None:
    """The adapter's strength on every layer (slider mode trains at +1 and −1)."""
    for layer in layers:
        layer.set_scale(ADAPTER, multiplier)


def adapter_state(transformer) -> dict[str, Any]:
    """The adapter's tensors by parameter name (what a state folder keeps, exactly)."""
    return {
        name: param.detach().to("cpu").clone()
        for name, param in transformer.named_parameters()
        if "lora_" in name
    }


def load_adapter_state(transformer, tensors: Mapping[str, Any]) -> None:
    params = {name: param for name, param in transformer.named_parameters() if "lora_" in name}
    missing = sorted(set(params) - set(tensors))
    extra = sorted(set(tensors) - set(params))
    if missing or extra:
        raise UserError(
            "the saved state's LoRA does not fit this run (another rank or other targets?): "
            f"{len(missing)} missing, {len(extra)} unexpected tensors, e.g. {(missing + extra)[0]}"
        )
    import torch

    with torch.no_grad():
        for name, param in params.items():
            saved = tensors[name]
            if tuple(saved.shape) != tuple(param.shape):
                raise UserError(
                    f"the saved state's {name} has shape {tuple(saved.shape)}, expected {tuple(param.shape)}"
                )
            param.copy_(saved.to(param.device, param.dtype))


def lora_modules(transformer, targets: Mapping[str, str], rank: int, alpha: float) -> list:
    """The adapter as our canonical :class:`~difflora_gui.lora.model.LoraModule` list."""
    from difflora_gui.lora.model import LoraModule

    modules = dict(transformer.named_modules())
    out = []
    for canonical, diffusers_name in targets.items():
        layer = modules[diffusers_name]
        out.append(
            LoraModule(
                name=canonical,
                down=layer.lora_A[ADAPTER].weight.detach().to("cpu").float().clone(),
                up=layer.lora_B[ADAPTER].weight.detach().to("cpu").float().clone(),
                scale=float(alpha) / int(rank),
                alpha=float(alpha),
            )
        )
    return out


def file_metadata(run, *, step: int, seed: int, targets: str, module_count: int) -> dict[str, str]:
    """kohya ``ss_*``, SAI ``modelspec.*`` and our ``difflora.*`` metadata of a trained file."""
    from difflora_gui.lora.writer import build_metadata

    config = run.config
    extra = {
        "ss_output_name": run.name,
        "ss_steps": str(step),
        "ss_max_train_steps": str(run.total_steps),
        "ss_seed": str(seed),
        "ss_learning_rate": str(config.get("learning_rate")),
        "ss_optimizer": str(config.get("optimizer")),
        "ss_lr_scheduler": str(config.get("lr_scheduler")),
        "ss_lr_warmup_steps": str(config.get("lr_warmup_steps")),
        "ss_timestep_sampling": str(config.get("timestep_sampling")),
        "ss_discrete_flow_shift": str(config.get("discrete_flow_shift")),
        "ss_mixed_precision": str(config.get("mixed_precision")),
        "ss_max_grad_norm": str(config.get("max_grad_norm")),
        "ss_training_comment": "trained by DiffLoRA Studio's built-in trainer (diffusers + PEFT)",
        "difflora.train": json.dumps(
            {
                "backend": "builtin",
                "config": dict(config),
                "step": step,
                "side": run.side,
                "expert": run.expert,
                "seed": seed,
                "pair_id": run.pair_id,
                "run_id": run.run_id,
                "targets": targets,
                "modules": module_count,
            },
            sort_keys=True,
            ensure_ascii=False,
        ),
    }
    window = run.timestep_window()
    if window is not None:
        extra["modelspec.timestep_range"] = f"{window[0]},{window[1]}"
    return build_metadata(
        title=run.name,
        network_dim=int(config["network_dim"]),
        network_alpha=float(config["network_alpha"]),
        expert=run.expert,
        selector=targets,
        extra=extra,
    )
