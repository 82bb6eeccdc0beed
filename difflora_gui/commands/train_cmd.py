"""``python main.py train``: train one LoRA, or a pair with one shared config, then offer the merge.

The argument handling lives in :mod:`difflora_gui.train.train_cli`, the running in
:mod:`difflora_gui.train.pair_terminal`; this module wires them together. Import-light.
"""

from __future__ import annotations

import argparse
import json
import sys

from difflora_gui.specs import CliCommandSpec

DESCRIPTION = """\
Train the component LoRAs of a differential LoRA. A and B are trained with one config (seed,
steps, optimizer, rank, alpha, targets, resolution, captions ...): only the dataset differs, so
their difference is the concept.

  python main.py train pair --backend musubi --preset model-card --a A_DIR --b B_DIR --output DIR
  python main.py train --backend builtin --preset quick-test --dataset DIR --output DIR

A pair trains A, then B, on the one GPU (on two GPUs side by side) and prints the merge command
with both files filled in (Wan2.2 A14B per expert: four runs, and a merge of the expert pairs).
--dry-run prints the exact commands (Musubi: dataset TOMLs, caching and training) or the plan
(built-in trainer) and runs nothing; --dry-run --json prints them as a JSON list.
"""

EPILOG = """\
config: the declaration's defaults, then --preset, then --config FILE (JSON or TOML of the
training config fields, with an optional [backend] table of the backend's settings), then flags.
Backend settings: declared defaults, then Settings (model files, the Musubi checkout and its
Python), then the file's [backend] table, then flags (--backend-param KEY=VALUE for any of them).

Ctrl+C stops every run and keeps what it can (the newest checkpoint or a resumable state, named);
a second Ctrl+C aborts at once. Resume with --resume STATE (the same config), or with --project
FILE --resume STATE from the project's record.

exit codes: 0 done, 1 a run failed, 2 bad input (nothing started), 130 stopped.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from difflora_gui.config import add_arguments
    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.train.backend import trainer_backends
    from difflora_gui.train.config import TRAIN_CONFIG
    from difflora_gui.train.train_cli import add_backend_arguments, add_own_arguments

    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    add_own_arguments(parser)
    add_arguments(parser, TRAIN_CONFIG)
    add_backend_arguments(parser, trainer_backends(get_plugin_host()))


def _project_path(text):
    from difflora_gui.project import with_suffix

    return with_suffix(text)


def _open_project(path):
    """The project at ``path``, or None when there is no file yet (made once the runs start)."""
    from difflora_gui.project import Project

    return Project.load(path) if path.exists() else None


def _new_project(path):
    from difflora_gui.errors import UserError
    from difflora_gui.project import Project

    if not path.parent.is_dir():
        raise UserError(f"folder does not exist: {path.parent}", path=path)
    project = Project(path.stem)
    project.save(path)
    return project


def _resume_from_project(args, project):
    """``(runs to train, all runs of the pair)`` from the project's record of ``--resume``, or None."""
    from difflora_gui.train.run_records import continue_pair, record_with_state

    record = record_with_state(project, args.resume[0]) if project is not None and args.resume else None
    return (record, continue_pair(project, record)) if record is not None else None


def run(args: argparse.Namespace) -> int:
    from difflora_gui.errors import UserError
    from difflora_gui.plugin_host import get_plugin_host
    from difflora_gui.settings import AppSettings
    from difflora_gui.train import train_cli
    from difflora_gui.train.backend import backend_spec, backend_values

    project_path = _project_path(args.project) if args.project else None
    project = _open_project(project_path) if project_path is not None else None
    resumed = _resume_from_project(args, project)
    if resumed is not None:  # the record knows the config, backend, folders and names
        record, (runs, every_run) = resumed
        if args.backend and args.backend != record.backend:
            raise UserError(
                f"{record.name} was trained with the {record.backend} backend, not {args.backend}"
            )
        spec = backend_spec(get_plugin_host(), record.backend)
    else:
        if not args.backend:
            from difflora_gui.train.backend import trainer_backends

            known = ", ".join(sorted(trainer_backends(get_plugin_host()))) or "none"
            raise UserError(f"train needs --backend NAME (registered: {known})")
        spec = backend_spec(get_plugin_host(), args.backend)
        config, table = train_cli.config_values(args, spec)
        given = train_cli.backend_given(spec, args, table, source=args.config_file or "")
        backend_config = backend_values(spec, given, AppSettings.load())
        runs, every_run = train_cli.plan_runs(args, spec, config, backend_config)
    from difflora_gui.train.pair_job import PairJob, place_runs

    if args.dry_run:
        place_runs(runs, _devices(args.device), device=args.device)
        from difflora_gui.train.train_dry_run import dry_run

        return dry_run(spec, runs, as_json=args.json)
    job = PairJob.prepare(spec, runs, device=args.device)
    for warning in job.warnings:
        print(f"warning: {warning.text}", file=sys.stderr)
    if project_path is not None and project is None:  # checked first: a refused run leaves no file
        project = _new_project(project_path)
    from difflora_gui.train.pair_terminal import run_pair_in_terminal

    try:
        outcomes = run_pair_in_terminal(job, project=project, quiet=args.quiet)
    except KeyboardInterrupt:
        print("aborted: the runs were stopped; nothing more is saved", file=sys.stderr)
        return 130
    return _report(args, job, every_run, outcomes, project)


def _devices(device: str):
    if device != "auto":
        return []
    from difflora_gui.jobs.devices import detect_devices

    return detect_devices()


def _report(args, job, every_run, outcomes, project) -> int:
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.train.pair_job import merge_offer
    from difflora_gui.train.train_summary import outcome_lines, resume_commands

    offer = merge_offer(every_run)
    all_done = all(outcome.status == "finished" for outcome in outcomes)
    for outcome in outcomes:
        if outcome.state == "failed" and getattr(outcome.error, "tail", None):
            print("\n".join(outcome.error.tail), file=sys.stderr)
        elif outcome.state == "failed" and outcome.traceback and not _is_user_error(outcome.error):
            print(outcome.traceback, file=sys.stderr)
    if args.json:
        data = {
            "runs": [
                {
                    "name": o.run.name,
                    "run_id": o.run.run_id,
                    "status": o.status,
                    "device": o.run.device,
                    "result": o.result.to_json() if o.result else None,
                    "error": str(o.error) if o.error else None,
                }
                for o in outcomes
            ],
            "merge": offer.to_json() if all_done else None,
            "resume": resume_commands(args, job, outcomes, project),
        }
        print_to_pipe(json.dumps(data, indent=1, ensure_ascii=False))
    else:
        lines = outcome_lines(outcomes)
        resume = resume_commands(args, job, outcomes, project)
        if resume:
            lines += ["", "resume with:", *(f"  {command}" for command in resume)]
        if all_done and offer.argv:
            lines += ["", "merge them with:", f"  {offer.command()}"]
        elif all_done and offer.note:
            lines += ["", offer.note]
        print_to_pipe("\n".join(lines))
    if any(outcome.state == "failed" for outcome in outcomes):
        return 1
    return 0 if all_done else 130


def _is_user_error(error) -> bool:
    from difflora_gui.errors import UserError

    return isinstance(error, UserError)


COMMAND = CliCommandSpec(
    name="train",
    help="train a LoRA, or a pair A/B with one shared config (then prints the merge command)",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
