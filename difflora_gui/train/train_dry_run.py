"""``train --dry-run``: what the runs would do, printed as copyable lines or as JSON; nothing runs.

A command-line backend (Musubi) shows the files it writes first (the dataset TOML), the folder
and environment its commands need, and the exact commands, quoted for the user's shell; an
in-process backend shows its plan. The checks every run gets before launch go to stderr.
"""

from __future__ import annotations

import json
import os
import sys


def _env_line(key: str, value: str, windows: bool) -> str:
    import shlex

    return f'set "{key}={value}"' if windows else f"export {key}={shlex.quote(value)}"


def _cd_line(folder: str, windows: bool) -> str:
    import shlex
    import subprocess

    return f"cd /d {subprocess.list2cmdline([folder])}" if windows else f"cd {shlex.quote(folder)}"


def dry_run_text(spec, runs, descriptions, *, windows: bool | None = None) -> str:
    """Copyable lines: per run a comment, the files it writes first, then its exact commands
    (or, for an in-process backend, its plan as JSON)."""
    from difflora_gui.train.pair_job import shell_join

    windows = os.name == "nt" if windows is None else windows
    lines: list[str] = []
    for run, description in zip(runs, descriptions, strict=True):
        where = f"set {run.side.upper()}: " if run.side in ("a", "b") else ""
        expert = f", {run.expert}-noise expert" if run.expert else ""
        start = f"from step {run.steps_done} " if run.resume else ""
        lines.append(
            f"# {run.name} ({where}{run.dataset}{expert}; {start}to step {run.total_steps} on {run.device}) -> {run.output_path()}"
        )
        for path, text in description.files.items():
            lines.append(f"# writes {path}:")
            lines += [f"#   {line}" for line in text.splitlines()]
        if description.commands:
            if description.cwd:
                lines.append(_cd_line(description.cwd, windows))
            lines += [_env_line(key, value, windows) for key, value in description.env.items()]
            lines += [shell_join(command, windows=windows) for command in description.commands]
        else:
            lines.append(f"# the {spec.title} backend trains in-process; its plan:")
            lines += json.dumps(description.plan or run.to_json(), indent=1, ensure_ascii=False).splitlines()
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def dry_run_json(runs, descriptions) -> str:
    """Every command of the runs, in order (caching included), as a JSON list of argument lists;
    an in-process backend's plans instead when it runs no commands."""
    commands = [list(map(str, command)) for description in descriptions for command in description.commands]
    if commands:
        return json.dumps(commands, indent=1, ensure_ascii=False)
    plans = [description.plan or run.to_json() for run, description in zip(runs, descriptions, strict=True)]
    return json.dumps(plans, indent=1, ensure_ascii=False)


def dry_run(spec, runs, *, as_json: bool) -> int:
    """Print the dry run; the checks' findings go to stderr (exit 2 when a run could not start)."""
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.train.backend import ERROR, check_run, describe_run

    descriptions = [describe_run(spec, run) for run in runs]
    code = print_to_pipe(
        dry_run_json(runs, descriptions) if as_json else dry_run_text(spec, runs, descriptions).rstrip("\n")
    )
    failed = False
    found: dict[tuple[str, str], list[str]] = {}  # one line for what A and B share
    for run in runs:
        for issue in check_run(spec, run):
            failed = failed or issue.level == ERROR
            found.setdefault((issue.level, issue.text), []).append(run.name)
    for (level, text), names in found.items():
        print(f"{level}: {', '.join(names)}: {text}", file=sys.stderr)
    if failed:
        print("error: the runs above cannot start as they are (nothing was run)", file=sys.stderr)
        return 2
    return code or 0
