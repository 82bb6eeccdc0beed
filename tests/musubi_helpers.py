"""Helpers for the Musubi backend's tests: a fake checkout from the stand-in, tiny Wan DiT
headers, training folders and runs."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

from difflora_gui.train.musubi.commands import SCRIPTS
from difflora_gui.train.plan import plan_pair, plan_single
from difflora_gui.train.presets import preset_values

STANDIN = Path(__file__).parent / "fixtures" / "musubi_standin.py"
WIDTH = {"1.3B": 1536, "14B": 5120}
ITEM_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}


def fake_checkout(folder: Path, **standin_settings) -> Path:
    """A folder shaped like a musubi-tuner checkout whose scripts are the stand-in."""
    package = folder / "src" / "musubi_tuner"
    package.mkdir(parents=True, exist_ok=True)
    for script in SCRIPTS:
        shutil.copy(STANDIN, package / script)
    set_standin(folder, **standin_settings)
    return folder


def set_standin(folder: Path, **settings) -> None:
    (folder / "standin.json").write_text(json.dumps(settings), encoding="utf-8")


def write_dit_header(
    path: Path, size: str = "1.3B", in_dim: int = 16, dtype: str = "BF16", prefix: str = ""
) -> Path:
    """A Wan DiT file with the two tensors the checks read; the data is a sparse hole (no
    gigabytes written), so the file has a DiT's real header and size."""
    dim = WIDTH[size]
    shapes = {
        f"{prefix}patch_embedding.weight": [dim, in_dim, 1, 2, 2],
        f"{prefix}blocks.0.cross_attn.k.weight": [dim, dim],
    }
    header, offset = {}, 0
    for key, shape in shapes.items():
        count = 1
        for s in shape:
            count *= s
        nbytes = count * ITEM_BYTES[dtype]
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        handle.truncate(8 + len(text) + offset)
    return path


def write_items(folder: Path, names, caption: str | None = None, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}{suffix}").write_bytes(b"\x89PNG not decoded by the stand-in " + name.encode())
        if caption is not None:
            (folder / f"{name}.txt").write_text(caption.format(name=name), encoding="utf-8")
    return folder


def model_files(folder: Path, task: str = "t2v-1.3B", dtype: str = "BF16") -> dict[str, str]:
    size = "1.3B" if "1.3B" in task else "14B"
    in_dim = 36 if task.startswith("i2v") else 16
    files = {
        "dit": str(write_dit_header(folder / "wan2.1_dit ü.safetensors", size, in_dim, dtype)),
        "vae": str(folder / "wan_2.1_vae.safetensors"),
        "t5": str(folder / "models_t5_umt5-xxl-enc-bf16.pth"),
    }
    if "A14B" in task:
        files["dit_high_noise"] = str(
            write_dit_header(folder / "high_noise.safetensors", size, in_dim, dtype)
        )
    if task == "i2v-14B":
        files["clip"] = str(folder / "clip.pth")
    for key in ("vae", "t5", "clip"):
        if key in files:
            Path(files[key]).write_bytes(b"not read by the tests")
    return files


def backend_config(checkout: Path, models: dict[str, str], **extra) -> dict:
    import sys

    return {
        "musubi_dir": str(checkout),
        "python": sys.executable,
        "attention": "sdpa",
        "max_data_loader_n_workers": 2,
        "stop_and_keep": "next_checkpoint",
        **models,
        **extra,
    }


def quick_config(**values) -> dict:
    config = preset_values("quick-test")
    config.update({"optimizer": "adamw", "pair_mode": "independent", "save_state": True})
    config.update(values)
    return config


def single_run(tmp_path: Path, config: dict, backend: dict, dataset: Path, name: str = "diff"):
    (run,) = plan_single(
        config, dataset, tmp_path / "out put ü", name, backend="musubi", backend_config=backend
    )
    return run


def pair_runs(tmp_path: Path, config: dict, backend: dict, a: Path, b: Path, name: str = "diff"):
    return plan_pair(config, a, b, tmp_path / "out put ü", name, backend="musubi", backend_config=backend)
