"""A resumable training state as plain files — never a pickle.

``<name>-step00000500-state/`` holds ``lora.safetensors`` (the adapter's tensors by parameter
name, float32, exact), ``optimizer.safetensors`` (every tensor of ``optimizer.state_dict()``:
``state.<param index>.<key>`` and ``group.<i>.<key>``) and ``state.json`` (the step, the
optimizer's non-tensor values, its param groups' hyper-parameters, the config hash and the
trainer's own scalars). Nothing random needs saving: the schedule is a pure function of the step
(:mod:`.schedule`) and the learning-rate schedule is replayed to the step. The folder is written
beside its destination under a temporary name and renamed when complete, so a crash never
leaves a half state that looks whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError

STATE_FORMAT = "difflora-builtin-state"
STATE_VERSION = 1
LORA_FILE = "lora.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
#: config fields that may change between a run and its resume without changing what it computes
RESUME_FREE = ("max_train_steps", "save_every_n_steps", "save_state")


def state_folder_name(name: str, step: int) -> str:
    return f"{name}-step{int(step):08d}-state"


def config_hash(config: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in config.items() if k not in RESUME_FREE}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    raise UserError(f"cannot save optimizer value {value!r} of type {type(value).__name__} without pickle")


def flatten_optimizer(optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON) of ``optimizer.state_dict()``."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if _is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = _json_value(value)
    groups = []
    for number, group in enumerate(state_dict["param_groups"]):
        plain = {}
        for key, value in group.items():
            if _is_tensor(value):
                tensors[f"group.{number}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                plain[key] = _json_value(value)
        groups.append(plain)
    return tensors, {"class": type(optimizer).__name__, "state_scalars": scalars, "param_groups": groups}


def _like(current: Any, saved: Any) -> Any:
    """A JSON value in the type the optimizer uses now (betas are tuples; JSON has only lists)."""
    if isinstance(current, tuple) and isinstance(saved, list):
        return tuple(saved)
    return saved


def restore_optimizer(optimizer, tensors: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    if info.get("class") != type(optimizer).__name__:
        raise UserError(
            f"the saved state was trained with {info.get('class')}, this run uses {type(optimizer).__name__}"
        )
    state: dict[int, dict[str, Any]] = {}
    for index, entries in info.get("state_scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = [dict(group) for group in info["param_groups"]]
    for key, tensor in tensors.items():
        kind, number, name = key.split(".", 2)
        if kind == "state":
            state.setdefault(int(number), {})[name] = tensor
        else:
            groups[int(number)][name] = tensor
    current = optimizer.state_dict()["param_groups"]
    if len(current) != len(groups):
        raise UserError("the saved optimizer state has another number of parameter groups")
    for now, saved in zip(current, groups, strict=True):
        for key, value in list(saved.items()):
            saved[key] = _like(now.get(key), value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_state(
    folder: str | Path,
    *,
    adapter: Mapping[str, Any],
    optimizer,
    step: int,
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the state folder atomically (temporary folder, then one rename); refuse an existing one."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists():
        raise UserError(f"{folder} already exists; nothing is overwritten")
    opt_tensors, opt_info = flatten_optimizer(optimizer)
    info = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "step": int(step),
        "config_hash": config_hash(config),
        "config": _json_value(dict(config)),
        "optimizer": opt_info,
        "trainer": _json_value(dict(extra or {})),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(tmp / LORA_FILE))
        save_file(opt_tensors, str(tmp / OPTIMIZER_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, folder)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    return folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_state_info(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a built-in trainer state (no {STATE_FILE})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None
    if info.get("format") != STATE_FORMAT:
        raise UserError(f"{folder}: not a built-in trainer state (format {info.get('format')!r})")
    if int(info.get("version", 0)) > STATE_VERSION:
        raise UserError(f"{folder}: saved by a newer DiffLoRA Studio (state version {info['version']})")
    return info


def load_state(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(adapter tensors, optimizer tensors, state.json) of a state folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = read_state_info(folder)
    for name in (LORA_FILE, OPTIMIZER_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: the state is incomplete (no {name})")
    return load_file(folder / LORA_FILE), load_file(folder / OPTIMIZER_FILE), info


def changed_fields(saved: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Config fields that differ between a state and the run resuming it (beyond :data:`RESUME_FREE`)."""
    keys = (set(saved) | set(config)) - set(RESUME_FREE)
    return sorted(k for k in keys if _json_value(saved.get(k)) != _json_value(config.get(k)))
