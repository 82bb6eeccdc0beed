"""``python main.py preview``: render one preview clip with a LoRA stack, headless.

The request is a :class:`~difflora_gui.preview.request.PreviewRequest`, the job a
:class:`~difflora_gui.preview.backend.PreviewJob` run by the chosen preview backend (``--backend``,
default ``diffusers``) on the device's lane, with a progress bar on stderr. Import-light: the
backend (and torch) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from difflora_gui.preview.backend import DEFAULT_BACKEND
from difflora_gui.specs import CliCommandSpec

DESCRIPTION = """\
Render a preview clip of a Wan model with a stack of LoRAs at chosen strengths and DiT blocks.

  python main.py preview --model Wan2.1-T2V-1.3B-Diffusers --lora slider.safetensors:1.5 \\
      --prompt "a cat in the rain" --seed 1 --frames 33 --steps 20 --size 832x480 --out cat.mp4

--frames-dir also writes every frame as a lossless PNG (for exact comparisons). With --cache DIR
a render asked for again (same model files, settings and LoRA contents) is replayed from there.
"""

EPILOG = """\
LoRA stack: --lora FILE[:STRENGTH] (repeatable; strength 1 by default; a Windows path such as
C:\\loras\\x.safetensors:0.8 works: the strength is split off the right only when it is a number).
--blocks SELECTOR, --expert both|high|low, --strength-high X and --strength-low X given after a
--lora apply to that LoRA; given before the first --lora, to every LoRA. Selectors as for merge:
attn, self_attn, cross_attn, ffn, blocks with weights ("blocks=0-9@1,10-19@0.5"), "all".
Wan2.2 A14B: --expert high|low puts a LoRA on one expert only; --strength-high/-low set a
strength per expert.

--accelerator: the preset for lightx2v-style accelerator LoRAs (4 steps, guidance 1, shift 5,
euler); flags given explicitly win. Model files and precision default to Settings (Wan diffusers
folder, DiT files, VAE and text encoder folders, preview dtype and memory savers); --backend-param KEY=VALUE sets any option
of the backend.

prints the written video's path (--json: the result as JSON).
exit codes: 0 done, 1 the render failed, 2 bad input (nothing written), 130 cancelled (nothing written).
"""

#: the model flags and the option of the backend each one sets
MODEL_FLAGS = {
    "model": "model_dir",
    "dit": "dit_file",
    "dit_high": "dit_high_file",
    "vae_dir": "vae_dir",
    "text_encoder_dir": "text_encoder_dir",
    "dtype": "dtype",
    "offload": "offload",
    "vae_tiling": "vae_tiling",
    "vae_slicing": "vae_slicing",
    "device": "device",
    "server": "server",
}


class _LoraAction(argparse.Action):
    """``--lora TEXT``: one more entry of the stack (kept in order with the per-LoRA flags)."""

    def __call__(self, parser, namespace, values, option_string=None):
        entries = list(getattr(namespace, "lora_specs", None) or [])
        entries.append({"text": values})
        namespace.lora_specs = entries


class _EntryOption(argparse.Action):
    """A per-LoRA flag: sets the option on the latest ``--lora``, or on every one before the first."""

    def __call__(self, parser, namespace, values, option_string=None):
        entries = list(getattr(namespace, "lora_specs", None) or [])
        if entries:
            entries[-1] = {**entries[-1], self.dest: values}
            namespace.lora_specs = entries
        else:
            namespace.lora_defaults = {**(getattr(namespace, "lora_defaults", None) or {}), self.dest: values}


def add_model_flags(parser: argparse.ArgumentParser, *, backend_default: str | None) -> None:
    """The model and backend flags (:data:`MODEL_FLAGS`, ``--backend``, ``--server``,
    ``--backend-param``), shared by ``preview`` and ``grid`` (whose ``--backend`` has no default:
    a sidecar's backend stands unless the flag is given)."""
    model = parser.add_argument_group("model (defaults: Settings)")
    model.add_argument("--model", metavar="DIR", help="a diffusers-format Wan folder (model_index.json)")
    model.add_argument(
        "--dit", metavar="FILE", help="a single-file DiT (the low-noise expert of Wan2.2 A14B)"
    )
    model.add_argument(
        "--dit-high", dest="dit_high", metavar="FILE", help="the single-file high-noise DiT (A14B)"
    )
    model.add_argument(
        "--vae-dir",
        dest="vae_dir",
        metavar="DIR",
        help="a diffusers VAE folder (config.json, *.safetensors) instead of the model folder's vae/",
    )
    model.add_argument(
        "--text-encoder-dir",
        dest="text_encoder_dir",
        metavar="DIR",
        help="a diffusers UMT5 folder (its tokenizer, else the model folder's) instead of text_encoder/",
    )
    model.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="compute precision")
    model.add_argument("--offload", choices=("none", "model", "group"), help="CPU offload to fit small GPUs")
    model.add_argument(
        "--vae-tiling",
        dest="vae_tiling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VAE tiling",
    )
    model.add_argument(
        "--vae-slicing",
        dest="vae_slicing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VAE slicing (a batch's clips decoded one at a time)",
    )
    model.add_argument(
        "--device", metavar="DEVICE", help="auto (default: a CUDA GPU when present), cpu, cuda, cuda:N"
    )
    model.add_argument(
        "--backend", default=backend_default, metavar="NAME", help="the preview backend (default diffusers)"
    )
    model.add_argument(
        "--server",
        metavar="NAME|URL",
        help="--backend comfyui: the ComfyUI server to render on (default: any healthy one of Settings)",
    )
    model.add_argument(
        "--backend-param",
        dest="backend_param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one option of the backend (repeatable)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.set_defaults(lora_specs=None, lora_defaults=None)
    add_model_flags(parser, backend_default=DEFAULT_BACKEND)
    stack = parser.add_argument_group("LoRA stack")
    stack.add_argument("--lora", action=_LoraAction, metavar="FILE[:STRENGTH]", help="a LoRA (repeatable)")
    stack.add_argument(
        "--blocks", action=_EntryOption, metavar="SELECTOR", help="blocks, weights, layer groups"
    )
    stack.add_argument("--expert", action=_EntryOption, choices=("both", "high", "low"), help="Wan2.2 expert")
    stack.add_argument("--strength-high", dest="strength_high", action=_EntryOption, metavar="X")
    stack.add_argument("--strength-low", dest="strength_low", action=_EntryOption, metavar="X")
    render = parser.add_argument_group("render")
    render.add_argument("--prompt", required=True, metavar="TEXT")
    render.add_argument("--negative", default="", metavar="TEXT", help="negative prompt")
    render.add_argument("--seed", type=int, default=0, metavar="N")
    render.add_argument("--frames", type=int, default=33, metavar="N", help="4N+1 frames (default 33)")
    render.add_argument("--steps", type=int, metavar="N", help="denoising steps (default 30)")
    render.add_argument("--size", default="832x480", metavar="WxH", help="multiples of 16 (default 832x480)")
    render.add_argument("--guidance", type=float, metavar="G", help="classifier-free guidance (default 5)")
    render.add_argument("--shift", type=float, metavar="S", help="flow shift (default 3)")
    render.add_argument("--sampler", choices=("unipc", "euler"), help="default unipc")
    render.add_argument("--fps", type=int, default=16, metavar="N")
    render.add_argument(
        "--accelerator", action="store_true", help="the accelerator-LoRA preset (4 steps, cfg 1)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="FILE.mp4", help="the video to write (.mp4 H.264, .webm)")
    output.add_argument(
        "--frames-dir", dest="frames_dir", metavar="DIR", help="also every frame as a PNG here"
    )
    output.add_argument("--overwrite", action="store_true", help="replace an existing --out / PNG frames")
    output.add_argument(
        "--cache", metavar="DIR", help="the render cache folder (replays a render asked again)"
    )
    output.add_argument("--json", action="store_true", help="print the result as JSON")
    output.add_argument("--quiet", action="store_true", help="no progress bar")


def split_lora(text: str) -> tuple[str, float]:
    """``FILE[:STRENGTH]`` → ``(file, strength)``; the strength is split off the right only when
    it is a number (``C:\\x\\y.safetensors:0.8``), and a file whose name has a colon wins."""
    from difflora_gui.errors import UserError

    text = str(text).strip()
    if not text:
        raise UserError("--lora needs a file")
    head, sep, tail = text.rpartition(":")
    if sep and head and not Path(text).is_file():
        try:
            strength = float(tail)
        except ValueError:
            return text, 1.0
        if not math.isfinite(strength):
            raise UserError(f"--lora {text}: the strength must be a finite number")
        if len(head) == 1 and head.isalpha():  # "C:5" is a path on drive C, not file "C"
            return text, 1.0
        return head, strength
    return text, 1.0


def parse_size(text: str) -> tuple[int, int]:
    from difflora_gui.errors import UserError

    parts = str(text).lower().replace("×", "x").split("x")
    try:
        width, height = (int(part) for part in parts)
    except ValueError:
        raise UserError(f"--size must be WxH such as 832x480, got {text!r}") from None
    return width, height


def _number(name: str, value: Any) -> float | None:
    from difflora_gui.errors import UserError

    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"--{name.replace('_', '-')} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value!r}")
    return number


def lora_entries(args: argparse.Namespace) -> list:
    """The stack the flags describe; every file must exist (checked here, before anything runs)."""
    from difflora_gui.errors import UserError
    from difflora_gui.lora.selector import parse_selector
    from difflora_gui.preview.request import LoraEntry

    defaults = dict(args.lora_defaults or {})
    entries = []
    for spec in args.lora_specs or []:
        values = {**defaults, **spec}
        file, strength = split_lora(values["text"])
        path = Path(file).expanduser()
        if not path.exists():
            raise UserError("LoRA file not found", path=path)
        if not path.is_file():
            raise UserError("LoRA path is a folder, not a file", path=path)
        selector = values.get("blocks") or "all"
        parse_selector(selector)
        entries.append(
            LoraEntry(
                file=os.path.abspath(path),
                strength=strength,
                selector=selector,
                expert=values.get("expert") or "both",
                strength_high=_number("strength_high", values.get("strength_high")),
                strength_low=_number("strength_low", values.get("strength_low")),
            )
        )
    return entries


def request_from_args(args: argparse.Namespace):
    """The :class:`PreviewRequest` of the flags (``--accelerator`` under explicit flags)."""
    from difflora_gui.preview.request import ACCELERATOR_PRESET, PreviewRequest

    width, height = parse_size(args.size)
    sampling = {"steps": 30, "guidance": 5.0, "flow_shift": 3.0, "sampler": "unipc"}
    if args.accelerator:
        sampling.update(ACCELERATOR_PRESET)
    given = {
        "steps": args.steps,
        "guidance": args.guidance,
        "flow_shift": args.shift,
        "sampler": args.sampler,
    }
    sampling.update({key: value for key, value in given.items() if value is not None})
    return PreviewRequest(
        prompt=args.prompt,
        negative_prompt=args.negative or "",
        seed=args.seed,
        width=width,
        height=height,
        frames=args.frames,
        fps=args.fps,
        loras=tuple(lora_entries(args)),
        **sampling,
    )


def _default_device() -> str:
    from difflora_gui.jobs.devices import detect_devices

    cuda = [device.id for device in detect_devices() if device.id.startswith("cuda:")]
    return cuda[0] if cuda else "cpu"


def backend_options(spec, args: argparse.Namespace, settings=None) -> dict[str, Any]:
    """The backend's options: declared defaults, then Settings, then the model flags, then
    ``--backend-param``; paths made absolute."""
    from difflora_gui.errors import UserError
    from difflora_gui.params import parse_key_values
    from difflora_gui.specs import resolve_callable

    declared = {param.name: param for param in spec.params}
    values = dict(spec.params.defaults())
    if spec.settings_defaults is not None:
        if settings is None:
            from difflora_gui.settings import AppSettings

            settings = AppSettings.load()
        values.update(resolve_callable(spec.settings_defaults)(settings) or {})
    for flag, option in MODEL_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None or value == "":
            continue
        if option not in declared:
            raise UserError(
                f"the {spec.name} preview backend has no {option} option (--{flag.replace('_', '-')})"
            )
        values[option] = value
    values.update(parse_key_values(args.backend_param or []))
    if str(values.get("device", "")).strip().lower() == "auto" and "device" in declared:
        values["device"] = _default_device()
    resolved = spec.params.resolve(values, owner=f"the {spec.name} preview backend")
    for name, param in declared.items():
        if param.type == "path" and resolved.get(name):
            resolved[name] = os.path.abspath(os.path.expanduser(str(resolved[name])))
    return resolved


def job_from_args(args: argparse.Namespace, spec=None, settings=None):
    """The :class:`PreviewJob` of the flags, with its outputs checked (nothing is written).
    ``spec``: the backend (default: the one ``--backend`` names), looked up after the flags' checks."""
    from difflora_gui.errors import UserError
    from difflora_gui.fileio import check_output_path
    from difflora_gui.preview.backend import PreviewJob

    if settings is None:
        from difflora_gui.settings import AppSettings

        settings = AppSettings.load()
    if not args.out and not args.frames_dir:
        raise UserError("preview needs --out FILE.mp4 (or --frames-dir DIR)")
    request = request_from_args(args)
    out = ""
    if args.out:
        path = Path(args.out).expanduser()
        if path.suffix.lower() not in (".mp4", ".webm"):
            raise UserError("the video must be an .mp4 or .webm file", path=path)
        inputs = [entry.file for entry in request.loras]
        out = os.path.abspath(check_output_path(path, inputs=inputs, overwrite=args.overwrite))
    frames_dir = ""
    if args.frames_dir:
        folder = Path(args.frames_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise UserError("--frames-dir is a file, not a folder", path=folder)
        if folder.is_dir() and any(folder.iterdir()) and not args.overwrite:
            raise UserError(
                "the frames folder is not empty (use --overwrite to replace its frames)", path=folder
            )
        if not folder.exists() and not folder.parent.is_dir():
            raise UserError(f"folder does not exist: {folder.parent}", path=folder)
        frames_dir = os.path.abspath(folder)
    if spec is None:
        from difflora_gui.plugin_host import get_plugin_host
        from difflora_gui.preview.backend import preview_backend

        spec = preview_backend(get_plugin_host(), args.backend)
    options = backend_options(spec, args, settings)
    return PreviewJob(
        request=request,
        options=options,
        out=out,
        frames_dir=frames_dir,
        overwrite=bool(args.overwrite),
        cache_dir=os.path.abspath(Path(args.cache).expanduser()) if args.cache else "",
        cache_mb=int(getattr(settings, "preview_cache_mb", 2048)),
    )


def run(args: argparse.Namespace) -> int:
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.jobs.cli import lane_for, run_in_terminal
    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.preview.backend import preview_backend
    from difflora_gui.specs import resolve_callable

    job = job_from_args(args)
    spec = preview_backend(get_plugin_host(), args.backend)
    if spec.model_facts is not None:  # a missing model file is bad input: said before anything runs
        resolve_callable(spec.model_facts)(job.options)
    lane = lane_for({"device": job.options.get("device") or "cpu"})
    result = run_in_terminal(spec.run, job.to_json(), description="preview", quiet=args.quiet, lane=lane)
    data = result.to_json() if hasattr(result, "to_json") else dict(result or {})
    if args.json:
        return print_to_pipe(json.dumps(data, indent=1, ensure_ascii=False))
    return print_to_pipe(job.out or job.frames_dir or str(data.get("video", "")))


COMMAND = CliCommandSpec(
    name="preview",
    help="render a preview clip with a LoRA stack at chosen strengths and DiT blocks",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
