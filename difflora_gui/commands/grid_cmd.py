"""``python main.py grid``: a strength × seed × variant grid of preview renders as one labelled video.

The flags become a :class:`~difflora_gui.compare.grid_types.GridJob` (:func:`job_from_args`: pure
checks, nothing written), run by the grid job (:mod:`difflora_gui.compare.grid_job`) on the light
lane: it queues each missing cell on the preview backend's lanes, exports the grid to ``--out`` and
writes the JSON sidecar next to it. ``--from SIDECAR`` runs a sidecar's job again. The model, stack
and render flags are the preview command's (:mod:`difflora_gui.commands.preview_cmd`), except that
``--blocks`` is an axis here and a stack entry's own selector is ``--lora-blocks``. Import-light.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from difflora_gui.commands.preview_cmd import _EntryOption, _LoraAction, add_model_flags
from difflora_gui.specs import CliCommandSpec

DESCRIPTION = """\
Render a grid of preview clips — LoRA strengths × seeds × LoRA variants, block presets or prompts —
and export it as one labelled video with a JSON sidecar that renders the same grid again.

  python main.py grid --model Wan2.1-T2V-1.3B-Diffusers --lora slider.safetensors \\
      --strengths -3:3:1 --seeds 1,2 --prompt "a cat in the rain" --out grid.mp4

Cells already rendered (same model files, settings and LoRA contents) come from the render cache,
so a grid that was stopped, or one that only gained a column, renders just what is missing.
"""

EPILOG = """\
Axes: --strengths, --strengths-high, --strengths-low and --seeds take a list (1,2,3) or a range
START:STOP:STEP with the stop included (-3:3:1); --variants F1,F2 or --variant FILE (repeatable;
a Windows path may hold a comma), --blocks PRESET_OR_SELECTOR and --prompts TEXT are repeatable.
At most three axes: the first runs along the columns, the second down the rows, the third splits
the rows into groups. Default order: strength, seed, then the others as given; --axes KIND,KIND
sets it. The LoRA axes change the --target entry of the stack (default 1, the first --lora).

--from SIDECAR renders the grid a sidecar describes; only --out, --overwrite, --cache, --layout,
--sheet, --lane, --json and --quiet may be given with it.

prints the grid video's path (--json: the grid result as JSON).
exit codes: 0 done, 1 a render failed, 2 bad input (nothing written), 130 cancelled.
"""

#: render flags' defaults, the preview command's (None in the parser, so --from can tell a given flag)
RENDER_DEFAULTS = {"seed": 0, "frames": 33, "size": "832x480", "fps": 16, "negative": ""}
#: x264's presets, fastest first (checked here: a bad one would fail only after every cell rendered)
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
#: the flags allowed with --from (by dest): where the grid goes, the cache, how it is laid out, where it runs
FROM_OVERRIDES = ("from_sidecar", "out", "overwrite", "cache", "layout", "sheet", "lane", "json", "quiet")
#: the axis flags and the axis kind each one adds to
AXIS_FLAGS = {
    "--strengths": "strength",
    "--strengths-high": "strength_high",
    "--strengths-low": "strength_low",
    "--seeds": "seed",
    "--variants": "variant",
    "--variant": "variant",
    "--blocks": "blocks",
    "--prompts": "prompt",
}
_KIND_FLAGS = {
    "strength": "--strengths",
    "strength_high": "--strengths-high",
    "strength_low": "--strengths-low",
    "seed": "--seeds",
    "variant": "--variants / --variant",
    "blocks": "--blocks",
    "prompt": "--prompts",
}
#: the names --axes takes for each kind (singular, plural, the axis title)
_AXIS_NAMES = {
    **{kind: kind for kind in _KIND_FLAGS},
    **{flag.lstrip("-").replace("-", "_"): kind for flag, kind in AXIS_FLAGS.items()},
    "block": "blocks",
    "lora": "variant",
    "loras": "variant",
}


class _AxisFlag(argparse.Action):
    """An axis flag: ``(kind, flag, text)`` appended in command-line order (the default axis order)."""

    def __call__(self, parser, namespace, values, option_string=None):
        flags = list(getattr(namespace, "axis_flags", None) or [])
        flags.append((AXIS_FLAGS[option_string], option_string, values))
        namespace.axis_flags = flags


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.set_defaults(lora_specs=None, lora_defaults=None, axis_flags=None)
    # a value such as "-3:3:1" or "-1,0,1" is a value, not an unknown option (argparse only lets
    # plain negative numbers through); `--strengths=-3:3:1` works on every Python regardless
    parser._negative_number_matcher = re.compile(r"^-\.?\d")
    add_model_flags(parser, backend_default=None)
    stack = parser.add_argument_group("LoRA stack")
    stack.add_argument("--lora", action=_LoraAction, metavar="FILE[:STRENGTH]", help="a LoRA (repeatable)")
    stack.add_argument(
        "--lora-blocks",
        dest="blocks",
        action=_EntryOption,
        metavar="SELECTOR",
        help="blocks, weights and layer groups of the LoRA given before it",
    )
    stack.add_argument("--expert", action=_EntryOption, choices=("both", "high", "low"), help="Wan2.2 expert")
    stack.add_argument("--strength-high", dest="strength_high", action=_EntryOption, metavar="X")
    stack.add_argument("--strength-low", dest="strength_low", action=_EntryOption, metavar="X")
    stack.add_argument(
        "--target", type=int, metavar="N", help="the --lora entry the LoRA axes change (default 1)"
    )
    axes = parser.add_argument_group("axes (one to three)")
    axes.add_argument(
        "--strengths", action=_AxisFlag, metavar="LIST|RANGE", help="strengths: -1,0,1 or -3:3:1"
    )
    axes.add_argument("--strengths-high", action=_AxisFlag, metavar="LIST|RANGE", help="high-noise expert")
    axes.add_argument("--strengths-low", action=_AxisFlag, metavar="LIST|RANGE", help="low-noise expert")
    axes.add_argument("--seeds", action=_AxisFlag, metavar="LIST|RANGE", help="seeds: 1,2,3 or 1:4:1")
    axes.add_argument("--variants", action=_AxisFlag, metavar="F1,F2", help="LoRA files for the target entry")
    axes.add_argument("--variant", action=_AxisFlag, metavar="FILE", help="one LoRA file (repeatable)")
    axes.add_argument(
        "--blocks", action=_AxisFlag, metavar="PRESET|SELECTOR", help="a block preset (repeatable)"
    )
    axes.add_argument(
        "--prompts", action=_AxisFlag, metavar="TEXT", help="one prompt of the axis (repeatable)"
    )
    axes.add_argument("--axes", metavar="KIND,KIND[,KIND]", help="columns, rows, row groups")
    render = parser.add_argument_group("render (as preview)")
    render.add_argument("--prompt", metavar="TEXT", help="the prompt (default: the first --prompts)")
    render.add_argument("--negative", metavar="TEXT", help="negative prompt")
    render.add_argument("--seed", type=int, metavar="N", help="the seed without a seed axis (default 0)")
    render.add_argument("--frames", type=int, metavar="N", help="4N+1 frames (default 33)")
    render.add_argument("--steps", type=int, metavar="N", help="denoising steps (default 30)")
    render.add_argument("--size", metavar="WxH", help="multiples of 16 (default 832x480)")
    render.add_argument("--guidance", type=float, metavar="G", help="classifier-free guidance (default 5)")
    render.add_argument("--shift", type=float, metavar="S", help="flow shift (default 3)")
    render.add_argument("--sampler", choices=("unipc", "euler"), help="default unipc")
    render.add_argument("--fps", type=int, metavar="N", help="frames per second (default 16)")
    render.add_argument(
        "--accelerator", action="store_true", help="the accelerator-LoRA preset (4 steps, cfg 1)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="GRID.mp4", help="the grid video (.mp4 H.264, .webm, .webp, .gif)")
    output.add_argument("--layout", choices=("horizontal", "vertical"), help="first axis across (default)")
    output.add_argument("--sheet", type=int, metavar="FRAME", help="also a PNG contact sheet of this frame")
    output.add_argument("--crf", type=int, metavar="N", help="H.264 quality, 0…51 (default 20)")
    output.add_argument(
        "--preset", choices=X264_PRESETS, metavar="NAME", help="x264 preset (default veryfast)"
    )
    output.add_argument("--no-labels", dest="no_labels", action="store_true", help="no axis labels")
    output.add_argument("--overwrite", action="store_true", help="replace an existing grid, sidecar, sheet")
    output.add_argument("--cache", metavar="DIR", help="the render cache (default: the per-user one)")
    output.add_argument("--lane", metavar="LANE", help="where cells render: device:cuda:*, comfy:* …")
    output.add_argument("--from", dest="from_sidecar", metavar="SIDECAR", help="render a sidecar's grid")
    output.add_argument("--json", action="store_true", help="print the grid result as JSON")
    output.add_argument("--quiet", action="store_true", help="no progress bar")


def default_cache_dir() -> Path:
    """The grid command's render cache without ``--cache``: the per-user data folder's, so a grid
    asked for again (or a stopped one) replays what it has."""
    from difflora_gui.settings import data_dir

    return data_dir() / "renders" / "cache"


def axes_from_args(args: argparse.Namespace) -> list:
    """The axes the flags give, in the order ``--axes`` names (default: strength, seed, the rest
    in command-line order)."""
    from difflora_gui.compare.grid_spec import MAX_AXES, Axis, parse_numbers
    from difflora_gui.errors import UserError

    texts: dict[str, list[str]] = {}
    for kind, flag, text in args.axis_flags or []:
        if flag == "--variants":
            texts.setdefault(kind, []).extend(part.strip() for part in str(text).split(",") if part.strip())
        else:
            texts.setdefault(kind, []).append(str(text))
    if not texts:
        raise UserError("a grid needs an axis: --strengths, --seeds, --variants, --blocks or --prompts")
    given = list(texts)
    if len(given) > MAX_AXES:
        flags = ", ".join(_KIND_FLAGS[kind] for kind in given)
        raise UserError(f"a grid has at most {MAX_AXES} axes, {len(given)} given ({flags}): drop one")
    order = _axis_order(args.axes, given) if args.axes else _default_order(given)
    axes = []
    for kind in order:
        values = texts[kind]
        if kind in ("strength", "strength_high", "strength_low", "seed"):
            what = "seed" if kind == "seed" else kind.replace("_", " ")
            numbers = parse_numbers(",".join(values), integers=kind == "seed", what=what)
            axes.append(Axis(kind, numbers))
        elif kind == "variant":
            axes.append(Axis(kind, tuple(_lora_file(v, "--variant") for v in values)))
        else:
            axes.append(Axis(kind, tuple(v.strip() for v in values)))
    return axes


def _default_order(given: list[str]) -> list[str]:
    first = [kind for kind in ("strength", "seed") if kind in given]
    return first + [kind for kind in given if kind not in first]


def _axis_order(text: str, given: list[str]) -> list[str]:
    from difflora_gui.errors import UserError

    order = []
    for name in (part.strip().lower().replace("-", "_") for part in str(text).split(",")):
        kind = _AXIS_NAMES.get(name)
        if kind is None:
            raise UserError(f"--axes: unknown axis {name!r}; known: {', '.join(_KIND_FLAGS)}")
        if kind not in given:
            raise UserError(f"--axes names {kind}, but no {_KIND_FLAGS[kind]} is given")
        if kind in order:
            raise UserError(f"--axes names {kind} twice")
        order.append(kind)
    missing = [kind for kind in given if kind not in order]
    if missing:
        raise UserError(f"--axes must name every axis given; it leaves out {', '.join(missing)}")
    return order


def _lora_file(text: str, flag: str) -> str:
    from difflora_gui.errors import UserError

    path = Path(str(text).strip()).expanduser()
    if not path.exists():
        raise UserError(f"LoRA file not found ({flag})", path=path)
    if not path.is_file():
        raise UserError(f"LoRA path is a folder, not a file ({flag})", path=path)
    return os.path.abspath(path)


def _render_namespace(args: argparse.Namespace, axes: list) -> argparse.Namespace:
    """The flags as the preview command's helpers read them: its defaults filled in, the prompt
    from the prompt axis when --prompt is not given, the first variant as the LoRA when no --lora."""
    from difflora_gui.errors import UserError

    values = vars(args).copy()
    for name, default in RENDER_DEFAULTS.items():
        if values.get(name) is None:
            values[name] = default
    by_kind = {axis.kind: axis for axis in axes}
    if not values.get("prompt"):
        if "prompt" not in by_kind:
            raise UserError("a grid needs --prompt TEXT (or a prompt axis: --prompts TEXT, repeatable)")
        values["prompt"] = by_kind["prompt"].values[0]
    if not values.get("lora_specs") and "variant" in by_kind:
        values["lora_specs"] = [{"text": by_kind["variant"].values[0]}]
    return argparse.Namespace(**values)


def _check_outputs(out: str, inputs, export, *, overwrite: bool) -> str:
    """The grid's files (video, sidecar, contact sheet) checked before anything runs."""
    from difflora_gui.compare.export import sheet_path
    from difflora_gui.compare.grid_types import EXPORT_SUFFIXES
    from difflora_gui.compare.sidecar import sidecar_path_for
    from difflora_gui.errors import UserError
    from difflora_gui.fileio import check_output_path

    if not out:
        raise UserError("grid needs --out GRID.mp4 (or .webm, .webp, .gif)")
    path = Path(out).expanduser()
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise UserError(f"a grid exports to {', '.join(EXPORT_SUFFIXES)}", path=path)
    inputs = list(inputs)
    check_output_path(path, inputs=inputs, overwrite=overwrite)
    if export.sidecar:
        check_output_path(sidecar_path_for(path), inputs=inputs, overwrite=overwrite)
    if export.sheet_frame is not None:
        check_output_path(sheet_path(path), inputs=inputs, overwrite=overwrite)
    return os.path.abspath(path)


def _cache(args: argparse.Namespace, default: str) -> str:
    from difflora_gui.errors import UserError

    folder = Path(args.cache).expanduser() if args.cache else Path(default)
    if folder.exists() and not folder.is_dir():
        raise UserError("the render cache is a file, not a folder", path=folder)
    return os.path.abspath(folder)


def _lane(text: str | None) -> str:
    from difflora_gui.errors import UserError
    from difflora_gui.jobs.job import normalize_lane

    if not text:
        return ""
    try:
        return normalize_lane(text)
    except ValueError as exc:
        raise UserError(f"--lane: {exc}") from None


def _export_options(args: argparse.Namespace, base=None):
    import dataclasses

    from difflora_gui.compare.grid_types import ExportOptions

    given = {"layout": args.layout, "sheet_frame": args.sheet}
    if base is None:
        given.update(crf=args.crf, preset=args.preset, labels=False if args.no_labels else None)
        base = ExportOptions()
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def _stack_files(spec) -> list[str]:
    files = {entry.file for entry in spec.base.loras}
    for axis in spec.axes:
        if axis.kind == "variant":
            files.update(axis.values)
    return sorted(files)


def _model_facts(backend, options):
    """The backend's model facts (a missing model file is bad input, said before anything runs)."""
    from difflora_gui.specs import resolve_callable

    return resolve_callable(backend.model_facts)(options) if backend.model_facts is not None else None


def _backend(name: str):
    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.preview.backend import preview_backend

    return preview_backend(get_plugin_host(), name)


def job_from_args(args: argparse.Namespace, backend=None, settings=None):
    """The :class:`GridJob` the flags describe, every input and output checked; nothing is written.
    ``backend``: the preview backend's spec (default: the one ``--backend`` names)."""
    from difflora_gui.commands.preview_cmd import backend_options, request_from_args
    from difflora_gui.compare.grid_spec import GridSpec
    from difflora_gui.compare.grid_types import GridJob
    from difflora_gui.errors import UserError
    from difflora_gui.preview.backend import DEFAULT_BACKEND

    if args.from_sidecar:
        return job_from_sidecar(args, backend)
    if settings is None:
        from difflora_gui.settings import AppSettings

        settings = AppSettings.load()
    axes = axes_from_args(args)
    namespace = _render_namespace(args, axes)
    request = request_from_args(namespace)
    target = 1 if args.target is None else args.target
    if target < 1:
        raise UserError(f"--target counts the --lora entries from 1, got {target}")
    name = args.backend or DEFAULT_BACKEND
    backend = backend or _backend(name)
    options = backend_options(backend, namespace, settings)
    facts = _model_facts(backend, options)
    spec = GridSpec(request, tuple(axes), target - 1, facts.num_blocks if facts is not None else None)
    export = _export_options(args)
    out = _check_outputs(args.out, _stack_files(spec), export, overwrite=bool(args.overwrite))
    return GridJob(
        spec=spec,
        backend=name,
        options=options,
        cache_dir=_cache(args, str(default_cache_dir())),
        cache_mb=int(getattr(settings, "preview_cache_mb", 2048)),
        lane=_lane(args.lane),
        device=str(options.get("device") or "cpu"),
        out=out,
        overwrite=bool(args.overwrite),
        export=export,
    )


def given_flags(args: argparse.Namespace) -> list[str]:
    """The flags given on the command line (each once, by its first name)."""
    reference = argparse.ArgumentParser()
    configure(reference)
    found = []
    for action in reference._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if isinstance(action, _AxisFlag):
            given = any(flag in action.option_strings for _k, flag, _t in args.axis_flags or [])
        elif isinstance(action, (_LoraAction, _EntryOption)):
            given = bool(args.lora_specs or args.lora_defaults) and action.dest == "lora"
        else:
            given = getattr(args, action.dest, action.default) != action.default
        if given:
            found.append((action.dest, action.option_strings[0]))
    return found


def job_from_sidecar(args: argparse.Namespace, backend=None):
    """The job of ``--from SIDECAR`` with the allowed overrides (``--out``, ``--overwrite``,
    ``--cache``, ``--layout``, ``--sheet``, ``--lane``); any other flag is bad input."""
    import dataclasses

    from difflora_gui.compare.sidecar import read_sidecar
    from difflora_gui.errors import UserError

    fixed = [flag for dest, flag in given_flags(args) if dest not in FROM_OVERRIDES]
    if fixed:
        raise UserError(
            f"{fixed[0]} comes from the sidecar; with --from only --out, --overwrite, --cache, --layout, "
            "--sheet, --lane, --json and --quiet may be given"
        )
    path = Path(args.from_sidecar).expanduser()
    job = read_sidecar(path)
    for file in _stack_files(job.spec):
        if not Path(file).is_file():
            raise UserError("a LoRA file of the sidecar's grid is not there any more", path=file)
    _warn_changed_loras(path)
    _model_facts(backend or _backend(job.backend), job.options)
    export = _export_options(args, job.export)
    overwrite = bool(args.overwrite)
    out = _check_outputs(args.out or job.out, _stack_files(job.spec), export, overwrite=overwrite)
    lane = _lane(args.lane) if args.lane else job.lane
    cache = _cache(args, job.cache_dir)
    return dataclasses.replace(job, out=out, overwrite=overwrite, cache_dir=cache, lane=lane, export=export)


def _warn_changed_loras(sidecar: Path) -> None:
    """A LoRA file replaced since the grid was rendered gives other cells: said, not refused (the
    user may mean to render the same grid with a retrained file)."""
    import sys

    from difflora_gui.compare.sidecar import recorded_lora_hashes
    from difflora_gui.preview.render import hash_lora

    for file, sha256 in recorded_lora_hashes(sidecar).items():
        if Path(file).is_file() and hash_lora(file) != sha256:
            print(
                f"warning: {file}: changed since the grid was rendered; its cells will differ",
                file=sys.stderr,
            )


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)  # every check first: bad input writes nothing and loads nothing heavy
    from difflora_gui.compare.grid_job import GRID_TASK
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.jobs.cli import run_in_terminal

    # the grid's coordinator is light work; it queues each cell on the backend's own lanes
    result = run_in_terminal(GRID_TASK, job.to_json(), description="grid", quiet=args.quiet, lane="light")
    data = result.to_json() if hasattr(result, "to_json") else dict(result or {})
    if args.json:
        return print_to_pipe(json.dumps(data, indent=1, ensure_ascii=False))
    return print_to_pipe(str(data.get("out") or job.out))


COMMAND = CliCommandSpec(
    name="grid",
    help="render a strength × seed × variant grid of previews as one labelled video",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
