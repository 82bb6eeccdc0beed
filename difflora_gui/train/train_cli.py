"""``python main.py train``: from the command line to the runs of a pair, and their dry run.

The config is the declaration's defaults, then ``--preset``, then ``--config FILE`` (JSON or
TOML: training config fields and an optional ``[backend]`` table), then the flags. The backend's
settings are its declared defaults, then Settings (model files, the Musubi checkout and its
Python), then the file's ``[backend]`` table, then the flags. Backend flags come from each
registered backend's ``params`` declaration, so a third-party backend's settings are flags too;
``--backend-param KEY=VALUE`` reaches any of them, and the usual short names (``--dit``,
``--musubi-dir``, ``--python`` ...) are aliases of whichever field the chosen backend declares.
Import-light: the work is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from difflora_gui.errors import UserError

BACKEND_DEST = "backend__"
ALIAS_DEST = "backend_alias__"
#: conventional short flags → the backend fields they may stand for (the first one a backend
#: declares wins); ``--model`` is a diffusers model folder
BACKEND_ALIASES: dict[str, tuple[str, ...]] = {
    "--musubi-dir": ("musubi_tuner_dir", "musubi_dir", "tuner_dir"),
    "--python": ("musubi_python", "python"),
    "--dit": ("dit", "wan_dit"),
    "--dit-high-noise": ("dit_high_noise", "wan_dit_high_noise"),
    "--vae": ("vae", "wan_vae"),
    "--t5": ("t5", "wan_t5"),
    "--clip": ("clip", "wan_clip"),
    "--model": ("model", "model_dir", "wan_model_dir"),
}


def add_own_arguments(parser: argparse.ArgumentParser) -> None:
    from difflora_gui.train.presets import PRESET_NAMES

    parser.add_argument(
        "mode",
        nargs="?",
        choices=("pair",),
        metavar="pair",
        help="'pair': train A on --a and B on --b with one config, then print the merge command",
    )
    runs = parser.add_argument_group("what to train")
    runs.add_argument("--backend", metavar="NAME", help="the trainer backend (musubi, builtin ...)")
    runs.add_argument("--dataset", metavar="DIR", help="the folder of one LoRA (images/videos, captions)")
    runs.add_argument("--a", dest="set_a", metavar="A_DIR", help="train pair: set A (concept present)")
    runs.add_argument("--b", dest="set_b", metavar="B_DIR", help="train pair: set B (concept absent)")
    runs.add_argument("--output", metavar="DIR", help="the folder the LoRA files go to")
    runs.add_argument("--name", metavar="NAME", help="the output name (<name>_A, <name>_B ...)")
    runs.add_argument(
        "--resume",
        action="append",
        default=[],
        metavar="STATE",
        help="continue a stopped run from its state folder (repeat for each stopped run of a pair)",
    )
    source = parser.add_argument_group("config source")
    source.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        metavar="NAME",
        help=f"start from a preset: {', '.join(PRESET_NAMES)}",
    )
    source.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="a JSON or TOML file of training config fields ([backend] table optional)",
    )
    running = parser.add_argument_group("running")
    running.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="cpu, cuda, cuda:N, or auto (default: one GPU trains the runs in turn, two GPUs train A and B side by side)",
    )
    running.add_argument(
        "--project", metavar="FILE", help="record the runs in this project (.difflora; made if missing)"
    )
    running.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the exact commands (or the plan) and run nothing",
    )
    running.add_argument(
        "--json", action="store_true", help="print JSON on stdout (with --dry-run: a list of argument lists)"
    )
    running.add_argument("--quiet", action="store_true", help="no progress bars")


def add_backend_arguments(parser: argparse.ArgumentParser, backends: dict) -> None:
    """One flag per backend field (a field several backends declare shares it), the aliases,
    and ``--backend-param KEY=VALUE``. A flag already taken stays reachable through --backend-param."""
    group = parser.add_argument_group("backend settings (also from Settings)")
    group.add_argument(
        "--backend-param",
        "--backend_param",
        dest="backend_param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any setting of the chosen backend (repeatable)",
    )
    taken = set(parser._option_string_actions)
    declared: dict[str, list[str]] = {}
    params: dict[str, Any] = {}
    for spec in backends.values():
        for param in spec.params:
            declared.setdefault(param.name, []).append(spec.name)
            params.setdefault(param.name, param)
    for name, param in params.items():
        flags = [flag for flag in param.flags if flag not in taken]
        if not flags:
            continue
        taken.update(flags)
        kwargs: dict[str, Any] = {"dest": BACKEND_DEST + name, "default": None}
        if param.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = "PATH" if param.type in ("path", "paths") else param.type.upper()
        owners = ", ".join(declared[name])
        group.add_argument(*flags, help=f"{param.help} [{owners}]".replace("%", "%%"), **kwargs)
    for alias, names in BACKEND_ALIASES.items():
        targets = [name for name in names if name in params]
        if alias in taken or not targets:
            continue
        taken.add(alias)
        group.add_argument(
            alias,
            dest=ALIAS_DEST + alias[2:].replace("-", "_"),
            default=None,
            metavar="PATH",
            help=f"short for --{targets[0]}"
            + (f" (or --{' / --'.join(targets[1:])})" if targets[1:] else ""),
        )


# --- config ----------------------------------------------------------------------------------------


def load_config_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(training config values, [backend] table)`` of a JSON or TOML file; bad → one line."""
    from difflora_gui.train.config import TRAIN_CONFIG

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("config file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read the config file: {getattr(exc, 'strerror', None) or exc}", path=path
        ) from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"not valid TOML: {exc}", path=path) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            hint = " (a TOML file needs the .toml suffix)" if path.suffix.lower() != ".json" else ""
            raise UserError(f"not valid JSON at line {exc.lineno}: {exc.msg}{hint}", path=path) from None
    if not isinstance(data, dict):
        raise UserError("a config file must hold a table of training settings", path=path)
    backend = data.pop("backend", {})
    if not isinstance(backend, dict):
        raise UserError("'backend' must be a table of the backend's settings", path=path)
    known = {param.name for param in TRAIN_CONFIG.params}
    for key in data:
        if key not in known:
            raise UserError(
                f"unknown key {key!r} (training config fields are listed by python main.py train --help)",
                path=path,
            )
    try:
        TRAIN_CONFIG.resolve(data, owner="the training config")
    except UserError as exc:
        raise UserError(str(exc), path=path) from None
    return dict(data), dict(backend)


def config_values(args: argparse.Namespace, spec=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the resolved training config, the file's [backend] table)``.

    A pair mode nobody chose (not the preset, the file or a flag) that ``spec`` cannot train
    becomes the backend's first one (Musubi: independent), with a note on stderr.
    """
    from difflora_gui.config import values_from_args
    from difflora_gui.train.config import TRAIN_CONFIG
    from difflora_gui.train.presets import preset, preset_values

    values = preset_values(args.preset) if args.preset else TRAIN_CONFIG.defaults()
    chosen = bool(args.preset) and "pair_mode" in preset(args.preset).values
    backend_table: dict[str, Any] = {}
    if args.config_file:
        from_file, backend_table = load_config_file(args.config_file)
        values.update(from_file)
        chosen = chosen or "pair_mode" in from_file
    flags = values_from_args(TRAIN_CONFIG, args)
    values.update(flags)
    chosen = chosen or "pair_mode" in flags
    if spec is not None and not chosen and spec.pair_modes and values["pair_mode"] not in spec.pair_modes:
        if args.mode == "pair":
            print(
                f"note: the {spec.title} backend trains pairs as {spec.pair_modes[0]} runs "
                f"(not {values['pair_mode']}); --pair_mode chooses",
                file=sys.stderr,
            )
        values["pair_mode"] = spec.pair_modes[0]
    return TRAIN_CONFIG.to_recipe(values), backend_table


def _parse_pairs(items: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--backend-param expects KEY=VALUE, got {item!r}")
        found[key] = value
    return found


def backend_given(spec, args: argparse.Namespace, table: dict[str, Any], source: str = "") -> dict[str, Any]:
    """What the file's ``[backend]`` table and the flags set for ``spec`` (checked: a setting
    another backend has, or one no backend has, is an error naming it)."""
    names = {param.name for param in spec.params}
    known = ", ".join(sorted(names)) or "none"
    for key in table:
        if key not in names:
            where = f"{source}: " if source else ""
            raise UserError(
                f"{where}[backend] key {key!r} is not a setting of the {spec.name} backend (known: {known})"
            )
    given = dict(table)
    for key, value in vars(args).items():
        if value is None:
            continue
        if key.startswith(BACKEND_DEST):
            name = key[len(BACKEND_DEST) :]
            if name not in names:
                raise UserError(
                    f"--{name} is not a setting of the {spec.name} backend (its settings: {known})"
                )
            given[name] = value
        elif key.startswith(ALIAS_DEST):
            alias = "--" + key[len(ALIAS_DEST) :].replace("_", "-")
            target = next((name for name in BACKEND_ALIASES[alias] if name in names), None)
            if target is None:
                raise UserError(
                    f"{alias} is not a setting of the {spec.name} backend (its settings: {known})"
                )
            given[target] = value
    for key, value in _parse_pairs(args.backend_param or []).items():
        if key not in names:
            raise UserError(
                f"--backend-param {key}: not a setting of the {spec.name} backend (known: {known})"
            )
        given[key] = value
    return given


def _default_pair_name(a_dir: str, b_dir: str) -> str:
    a, b = Path(os.path.abspath(a_dir)), Path(os.path.abspath(b_dir))
    return a.parent.name if a.parent == b.parent and a.parent.name else "pair"


def _resume(run, state: str) -> None:
    from difflora_gui.train.run_records import step_of

    steps = step_of(state)
    run.resume = str(state)
    run.steps_done = steps if steps is not None else 0


def base_name(args: argparse.Namespace) -> str:
    """The output name the runs' names start from (``--name``, else from the folders)."""
    from difflora_gui.train.run_records import name_of_state

    if args.name:
        return args.name
    if args.mode == "pair":
        return _default_pair_name(args.set_a, args.set_b)
    for state in args.resume or []:
        if name_of_state(state):
            return name_of_state(state)
    return Path(os.path.abspath(args.dataset)).name


def _apply_resumes(runs, states: list[str]):
    """Set each state on the run it belongs to (by name: ``<run name>-stepN-state``); returns the
    runs to train: those resumed and those whose LoRA does not exist yet."""
    from difflora_gui.train.run_records import name_of_state

    resumed = []
    for state in states:
        state_name = name_of_state(state)
        target = next((run for run in runs if run.name == state_name), None)
        if target is None and len(runs) == 1 and not state_name:
            target = runs[0]  # a state folder renamed by the user: the one run it can belong to
        if target is None:
            names = ", ".join(run.name for run in runs)
            raise UserError(
                f"the state {state} belongs to none of these runs ({names}); give the same --name "
                "as the stopped run (the state folder is <run name>-stepNNNNNNNN-state)"
            )
        _resume(target, state)
        resumed.append(target)
    return [run for run in runs if run in resumed or not run.output_path().exists()]


def plan_runs(args: argparse.Namespace, spec, config: dict, backend_config: dict):
    """``(runs to train, every run of the plan)`` the command line asks for.

    With ``--resume STATE`` (repeatable) each state continues the run it belongs to (by name),
    the runs whose LoRA does not exist yet train too, and the merge offer covers every run.
    """
    from difflora_gui.train.plan import plan_pair, plan_single

    if not args.output:
        raise UserError("train needs --output DIR (the folder the LoRA files go to)")
    if args.mode == "pair":
        if args.dataset:
            raise UserError("train pair takes --a A_DIR and --b B_DIR, not --dataset")
        if not args.set_a or not args.set_b:
            raise UserError("train pair needs --a A_DIR and --b B_DIR")
        runs = plan_pair(
            config,
            args.set_a,
            args.set_b,
            args.output,
            base_name(args),
            backend=spec.name,
            backend_config=backend_config,
        )
    else:
        if args.set_a or args.set_b:
            raise UserError("--a and --b train a pair: python main.py train pair --a A_DIR --b B_DIR ...")
        if not args.dataset:
            raise UserError("train needs --dataset DIR (or: train pair --a A_DIR --b B_DIR)")
        runs = plan_single(
            config,
            args.dataset,
            args.output,
            base_name(args),
            backend=spec.name,
            backend_config=backend_config,
        )
    if not args.resume:
        return runs, runs
    return _apply_resumes(runs, list(args.resume)), runs
