"""Checks of a Musubi Tuner run before launch: the checkout, its Python, the Wan files, the memory.

Everything Musubi would only find out after minutes of loading is checked here: the scripts
exist, the Python runs and has the packages the run needs, the DiT file fits the task (width
1536 = 1.3B, 5120 = 14B; ``in_dim`` 16 = T2V, 36 = I2V) and the precision (Musubi asserts fp16
weights ⇒ fp16/no, bf16 ⇒ bf16/no, and refuses ``--fp8_scaled`` on an fp8 file), the Wan2.2
experts' files are there, CLIP for Wan2.1 I2V. The DiT is read through its safetensors header
only (a 14B file is 28 GB; no tensor is loaded).
"""

from __future__ import annotations

import json
from pathlib import Path

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.train.backend import ERROR, WARNING, TrainIssue
from difflora_gui.train.config import is_two_expert, model_size
from difflora_gui.train.musubi import commands
from difflora_gui.train.musubi.staging import dataset_options, run_items
from difflora_gui.train.musubi.targets import network_targets
from difflora_gui.train.plan import TrainRun

DIT_WIDTH = {1536: "1.3B", 5120: "14B"}
IN_DIM = {16: "t2v", 36: "i2v", 48: "fun-control"}
MAX_BLOCKS_TO_SWAP = {"1.3B": 29, "14B": 39}
PYTHON_TIMEOUT_S = 60.0
SAMPLE_PROMPT_SUFFIXES = (".txt", ".toml", ".json")
#: the key Musubi reads the DiT's dtype from (with or without the ComfyUI prefix)
_DTYPE_KEY = "blocks.0.cross_attn.k.weight"
_PREFIX = "model.diffusion_model."
#: precision -> the DiT dtypes Musubi accepts with it
_PRECISION_DTYPES = {"fp16": ("F16",), "bf16": ("BF16",), "no": ("F16", "BF16", "F32")}


def _missing_file(field: str, what: str, path: str) -> TrainIssue | None:
    if not path:
        return TrainIssue(ERROR, f"set the {what} ({field}) in the Musubi settings", field)
    if not Path(path).is_file():
        return TrainIssue(ERROR, f"the {what} is not a file: {path}", field)
    return None


def check_checkout(backend: dict) -> list[TrainIssue]:
    folder = str(backend.get("musubi_dir") or "")
    if not folder:
        return [
            TrainIssue(ERROR, "set the Musubi Tuner folder (musubi_dir) in the Musubi settings", "musubi_dir")
        ]
    missing = [s for s in commands.SCRIPTS if not Path(commands.script_path(backend, s)).is_file()]
    if missing:
        return [
            TrainIssue(
                ERROR,
                f"{folder} is not a musubi-tuner checkout: src/musubi_tuner/{missing[0]} is missing",
                "musubi_dir",
            )
        ]
    return []


def _probe_code(modules: list[str]) -> str:
    return (
        "import json, sys, importlib.util as u; "
        f"print(json.dumps({{'version': list(sys.version_info[:2]), "
        f"'found': {{m: u.find_spec(m) is not None for m in {modules!r}}}}}))"
    )


#: (python, its mtime, modules) -> the answer: a form re-validated on every change asks once
_PROBES: dict[tuple, dict] = {}


def probe_python(python: str, modules: list[str]) -> dict:
    """Run ``python`` and ask which of ``modules`` it can import (found, not imported)."""
    try:
        key = (python, Path(python).stat().st_mtime_ns, tuple(sorted(modules)))
    except OSError:
        key = None
    if key is not None and key in _PROBES:
        return _PROBES[key]
    answer = _probe(python, modules)
    if key is not None:
        _PROBES[key] = answer
    return answer


def _probe(python: str, modules: list[str]) -> dict:
    from difflora_gui.jobs.process import ChildProcess

    child = ChildProcess([python, "-c", _probe_code(modules)], name="Musubi's Python")
    try:
        child.start()
    except UserError as exc:
        raise UserError(f"the Python for Musubi does not start: {exc}") from None
    out: list[str] = []
    with child:
        for line in child.lines(timeout=PYTHON_TIMEOUT_S):
            if line is None:
                raise UserError(f"the Python for Musubi did not answer in {PYTHON_TIMEOUT_S:.0f} s: {python}")
            out.append(line.text)
        child.wait(PYTHON_TIMEOUT_S)
    for text in reversed(out):
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                break
    raise UserError(
        f"the Python for Musubi failed ({child.failure() or 'no answer'}): {' | '.join(out[-3:])}"
    )


def _needed_modules(run: TrainRun) -> dict[str, str]:
    """module -> why the run needs it."""
    backend, config = run.backend_config, run.config
    needed = {"torch": "Musubi", "accelerate": "Musubi", "safetensors": "Musubi"}
    optimizer = config["optimizer"]
    if optimizer == "lion":
        needed["lion_pytorch"] = "the Lion optimizer (pip install lion-pytorch)"
    if optimizer == "prodigy":
        needed["prodigyopt"] = "the Prodigy optimizer (pip install prodigyopt)"
    if optimizer == "adamw8bit":
        needed["bitsandbytes"] = "AdamW8bit (pip install bitsandbytes)"
    attention = backend.get("attention")
    if attention in ("flash_attn", "flash3"):
        needed["flash_attn" if attention == "flash_attn" else "flash_attn_interface"] = f"--{attention}"
    if attention == "xformers":
        needed["xformers"] = "--xformers"
    return needed


def check_python(run: TrainRun) -> list[TrainIssue]:
    python = commands.python_of(run.backend_config)
    if run.backend_config.get("python") and not Path(python).is_file():
        return [TrainIssue(ERROR, f"the Python for Musubi is not a file: {python}", "python")]
    needed = _needed_modules(run)
    try:
        answer = probe_python(python, list(needed))
    except UserError as exc:
        return [TrainIssue(ERROR, str(exc), "python")]
    issues = []
    version = tuple(answer.get("version") or ())
    if version and not (3, 10) <= version < (3, 13):
        issues.append(
            TrainIssue(
                WARNING,
                f"{python} is Python {'.'.join(map(str, version))}; Musubi Tuner asks for 3.10 to 3.12",
                "python",
            )
        )
    for module, why in needed.items():
        if not answer.get("found", {}).get(module):
            issues.append(TrainIssue(ERROR, f"{python} cannot import {module}, needed for {why}", "python"))
    return issues


def dit_files(run: TrainRun) -> list[tuple[str, str]]:
    """(field, what) of the DiT files the run loads."""
    task = run.config["task"]
    if not is_two_expert(task):
        return [("dit", "DiT")]
    if run.expert == "high":
        return [("dit_high_noise", "high-noise DiT")]
    if run.expert == "low":
        return [("dit", "low-noise DiT")]
    return [("dit", "low-noise DiT"), ("dit_high_noise", "high-noise DiT")]


def check_dit(run: TrainRun, field: str, what: str) -> list[TrainIssue]:
    """The DiT file's header against the task and the precision."""
    from difflora_gui.lora.safetensors_header import read_header

    backend, config, task = run.backend_config, run.config, run.config["task"]
    path = str(backend.get(field) or "")
    try:
        header = read_header(path)
    except BadFileError as exc:
        return [TrainIssue(ERROR, f"the {what}: {exc}", field)]
    tensors = header.tensors
    prefix = _PREFIX if _PREFIX + _DTYPE_KEY in tensors else ""
    probe = tensors.get(prefix + _DTYPE_KEY)
    if probe is None:
        hint = " (it looks like a diffusers file)" if "blocks.0.attn2.to_k.weight" in tensors else ""
        return [
            TrainIssue(
                ERROR,
                f"the {what} {path} is not a Wan DiT in the original/ComfyUI layout{hint}: no {_DTYPE_KEY}",
                field,
            )
        ]
    issues = []
    size = DIT_WIDTH.get(probe.shape[0]) if probe.shape else None
    if size != model_size(task):
        issues.append(
            TrainIssue(
                ERROR,
                f"the {what} is a {size or f'width-{probe.shape[0]}'} model but the task {task} needs "
                f"{model_size(task)}",
                field,
            )
        )
    patch = tensors.get(prefix + "patch_embedding.weight")
    if patch is not None and len(patch.shape) > 1:
        kind = IN_DIM.get(patch.shape[1], f"in_dim {patch.shape[1]}")
        wanted = "i2v" if commands.is_i2v(task) else "t2v"
        if kind != wanted:
            issues.append(
                TrainIssue(ERROR, f"the {what} is a {kind} model but the task {task} is {wanted}", field)
            )
    code = probe.dtype_code
    precision = config["mixed_precision"]
    if code.startswith("F8"):
        if backend.get("fp8_scaled"):
            issues.append(
                TrainIssue(
                    ERROR,
                    f"the {what} is already fp8: Musubi cannot scale it again; turn off fp8_scaled "
                    "(or use the fp16/bf16 file)",
                    "fp8_scaled",
                )
            )
    elif code not in _PRECISION_DTYPES.get(precision, ()):
        fitting = {"F16": "fp16", "BF16": "bf16"}.get(code, "no")
        issues.append(
            TrainIssue(
                ERROR,
                f"the {what} holds {probe.dtype} weights, so Musubi requires mixed_precision {fitting} or no "
                f"(not {precision})",
                "mixed_precision",
            )
        )
    return issues


def check_models(run: TrainRun) -> list[TrainIssue]:
    backend, task = run.backend_config, run.config["task"]
    issues = []
    for field, what in dit_files(run):
        problem = _missing_file(field, what, str(backend.get(field) or ""))
        issues += [problem] if problem else check_dit(run, field, what)
    if not is_two_expert(task) and backend.get("dit_high_noise"):
        issues.append(
            TrainIssue(WARNING, f"{task} has one DiT: the high-noise DiT is not used", "dit_high_noise")
        )
    for field, what in (("vae", "VAE"), ("t5", "T5 text encoder")):
        problem = _missing_file(field, what, str(backend.get(field) or ""))
        if problem:
            issues.append(problem)
    if commands.needs_clip(task):
        problem = _missing_file("clip", "CLIP image encoder (Wan2.1 I2V)", str(backend.get("clip") or ""))
        if problem:
            issues.append(problem)
    return issues


def _resolution(config: dict) -> tuple[int, int]:
    res = dataset_options(config).resolution
    return res if isinstance(res, tuple) else (res, res)


def _dit_weight_dtype(run: TrainRun) -> str:
    if run.backend_config.get("fp8_base") or run.backend_config.get("fp8_scaled"):
        return "fp8"
    return {"fp16": "fp16", "bf16": "bf16"}.get(run.config["mixed_precision"], "bf16")


def check_memory(run: TrainRun) -> list[TrainIssue]:
    from difflora_gui.train import memory_fit

    backend, config, task = run.backend_config, run.config, run.config["task"]
    width, height = _resolution(config)
    frames = max(int(f) for f in config.get("target_frames") or [1]) if _has_videos(run) else 1
    joint = is_two_expert(task) and run.expert is None
    dtype = _dit_weight_dtype(run)
    fit = memory_fit.estimate(
        model_size(task),
        weight_dtype=dtype,
        blocks_to_swap=int(backend.get("blocks_to_swap") or 0),
        inactive_expert_on_gpu=joint and not backend.get("offload_inactive_dit"),
        width=width,
        height=height,
        frames=frames,
        batch_size=int(config.get("batch_size") or 1),
        gradient_checkpointing=bool(config.get("gradient_checkpointing")),
        device=run.device,
    )
    if fit.fits:
        return []
    gpu = f"{fit.available_gb:.0f} GB" + ("" if fit.gpu_known else " (assumed: no GPU visible here)")
    return [
        TrainIssue(
            WARNING,
            f"a {model_size(task)} model in {dtype} needs about {fit.needed_gb:.0f} GB and will not fit {gpu}: "
            "use fp8_base (fp8_scaled), blocks_to_swap, gradient checkpointing or a lower resolution",
            "fp8_base",
        )
    ]


def _has_videos(run: TrainRun) -> bool:
    try:
        return any(item.kind == "video" for item in run_items(run))
    except UserError:
        return False


def check_settings(run: TrainRun) -> list[TrainIssue]:
    backend, config, task = run.backend_config, run.config, run.config["task"]
    issues = []
    swap = int(backend.get("blocks_to_swap") or 0)
    limit = MAX_BLOCKS_TO_SWAP[model_size(task)]
    if swap > limit:
        issues.append(
            TrainIssue(
                ERROR, f"blocks_to_swap is at most {limit} for a {model_size(task)} model", "blocks_to_swap"
            )
        )
    if is_two_expert(task) and run.expert is None and swap > 0 and backend.get("offload_inactive_dit"):
        issues.append(
            TrainIssue(
                ERROR, "Musubi cannot combine block swap with offload_inactive_dit", "offload_inactive_dit"
            )
        )
    try:
        targets = network_targets(task, str(config.get("targets") or "all"))
        if targets.not_trainable:
            issues.append(
                TrainIssue(
                    WARNING,
                    f"Musubi trains only the layers inside the blocks: {', '.join(targets.not_trainable)} "
                    "are selected but not trained",
                    "targets",
                )
            )
        commands.commands(run)  # every mapping of the config (optimizer_args, resume step ...)
        run_items(run)
        dataset_options(config)
    except UserError as exc:
        issues.append(TrainIssue(ERROR, str(exc), "targets" if "targets" in str(exc) else ""))
    prompts = str(backend.get("sample_prompts") or "")
    if prompts and int(backend.get("sample_every_n_steps") or 0) > 0:
        if not Path(prompts).is_file():
            issues.append(
                TrainIssue(ERROR, f"the sample prompt file is not a file: {prompts}", "sample_prompts")
            )
        elif Path(prompts).suffix.lower() not in SAMPLE_PROMPT_SUFFIXES:
            issues.append(
                TrainIssue(ERROR, "the sample prompt file must be .txt, .toml or .json", "sample_prompts")
            )
    extra = [str(arg) for arg in backend.get("extra_args") or []]
    ours: set[str] = set()
    if extra and not any(issue.level == ERROR for issue in issues):
        argv = commands.train_command(run)
        ours = {arg for arg in argv[: len(argv) - len(extra)] if arg.startswith("--")}
    repeated = [arg for arg in extra if arg in ours]
    if repeated:
        issues.append(
            TrainIssue(
                WARNING,
                f"extra_args repeat {', '.join(map(str, repeated))}, which the app sets: the later value wins",
                "extra_args",
            )
        )
    return issues


def validate_musubi(run: TrainRun | dict) -> list[TrainIssue]:
    """Every Musubi-specific issue of ``run`` (the common checks are ``backend.common_issues``)."""
    run = TrainRun.from_json(run) if isinstance(run, dict) else run
    issues = check_checkout(run.backend_config)
    issues += check_settings(run)
    issues += check_models(run)
    if not any(issue.level == ERROR and issue.field == "musubi_dir" for issue in issues):
        issues += check_python(run)
    if not any(issue.level == ERROR for issue in issues):
        issues += check_memory(run)
    return issues
