"""``python main.py comfy``: the ComfyUI servers from the terminal (status, validate, run).

Import-light: the client, the validation and the job are imported from
:mod:`difflora_gui.comfy.cli_run` when a sub-command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from difflora_gui.specs import CliCommandSpec

DESCRIPTION = """\
Talk to the ComfyUI servers of Settings ▸ ComfyUI servers (or any server by its URL).

  python main.py comfy status
  python main.py comfy validate my_workflow_api.json --server http://127.0.0.1:8188 --set seed=7
  python main.py comfy run my_workflow_api.json --server gpu-box --set prompt="a cat" --out renders

A workflow is ComfyUI's Export (API) file (the UI-format save is refused). --set PARAM=VALUE
writes a value through the workflow's bindings: the suggested ones (the prompt that reaches the
sampler, its seed, steps, cfg ...), or those of --bindings FILE (a JSON list of
{param, node_id, input_name}, as the bindings editor saves them). --set NODE.INPUT=VALUE
(3.steps=20) writes straight into a node, typed as the node declares the input.
"""

STATUS_EPILOG = """\
Asks every enabled server of Settings ▸ ComfyUI servers (or the --server ones): up or down, its ComfyUI
version, its devices with free/total VRAM, and for each workflow template shipped with this app
whether the server has all of its nodes (WanVideoWrapper templates need that custom node pack).
exit codes: 0 (also when a server is down: this is a report), 2 bad arguments.
"""

VALIDATE_EPILOG = """\
Prints each problem on its own line (a missing node, a model file the server does not list, a
value out of range, a broken link ...). --object-info FILE validates offline against a saved
GET /object_info answer instead of asking a server.
exit codes: 0 valid, 2 problems (or bad arguments).
"""

RUN_EPILOG = """\
Validates, queues the workflow, shows its progress on stderr and downloads every file it saved
into --out (default: the current folder), under the server's own subfolder/filename. A file is
never overwritten: when the name is taken the new file is saved as "name (1).ext", "name (2).ext"
..., as ComfyUI names an upload whose name is taken. Ctrl+C cancels the prompt on the server
(deleted while queued, interrupted while running); nothing is downloaded then.
prints the written files, one a line (--json: prompt id, files, cached nodes).
exit codes: 0 done, 2 problems or bad input (nothing was queued), or the server failed the prompt\n(the node's message) or stopped answering during the run, 130 cancelled.
"""


def _workflow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW.json", help="a workflow saved with Export (API)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="a value for a bound parameter: prompt, negative_prompt, seed, steps, guidance, shift, "
        "strength, lora_name, block_weights, width, height, frames, fps; or NODE.INPUT=VALUE "
        "straight into a node, such as 3.steps=20 (repeatable)",
    )
    parser.add_argument("--bindings", metavar="FILE", help="bindings JSON (default: the suggested ones)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="comfy_command", metavar="{status,validate,run}")
    sub.required = True
    status = sub.add_parser(
        "status",
        help="servers up/down, versions, VRAM, template nodes",
        description=STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--server", action="append", default=[], metavar="NAME|URL", help="only this server (repeatable)"
    )
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    validate = sub.add_parser(
        "validate",
        help="check a workflow against a server's nodes",
        description=VALIDATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _workflow_args(validate)
    where = validate.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="NAME|URL", help="the server (default: the first enabled one)")
    where.add_argument(
        "--object-info", dest="object_info", metavar="FILE", help="a saved /object_info (offline)"
    )
    run_parser = sub.add_parser(
        "run",
        help="validate, queue, follow and download a workflow's outputs",
        description=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _workflow_args(run_parser)
    run_parser.add_argument("--server", required=True, metavar="NAME|URL", help="the server to run on")
    run_parser.add_argument("--out", default=".", metavar="DIR", help="where the outputs go (default .)")
    run_parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _settings():
    from difflora_gui.settings import AppSettings

    return AppSettings.load()


def _status(args: argparse.Namespace) -> int:
    from difflora_gui.comfy.cli_run import resolve_servers, server_status, status_text
    from difflora_gui.console_output import print_to_pipe

    report = server_status(resolve_servers(args.server, _settings()))
    if args.json:
        return print_to_pipe(json.dumps(report, indent=1, ensure_ascii=False))
    return print_to_pipe(status_text(report))


def _checked(args: argparse.Namespace, server=None):
    """The workflow with ``--set`` written in, checked against the server's (or the file's) nodes."""
    from difflora_gui.comfy.binding import load_api_workflow
    from difflora_gui.comfy.cli_run import check_workflow, load_object_info, parse_sets

    values = parse_sets(args.sets)
    workflow = load_api_workflow(args.workflow)
    if getattr(args, "object_info", None):
        info = load_object_info(args.object_info)
    else:
        from difflora_gui.comfy.client import ComfyClient

        with ComfyClient(server.url) as client:
            info = client.object_info()
    return check_workflow(workflow, info, values, args.bindings)


def _first_server(args: argparse.Namespace):
    from difflora_gui.comfy.cli_run import resolve_server
    from difflora_gui.errors import UserError

    settings = _settings()
    if args.server:
        return resolve_server(args.server, settings)
    enabled = settings.enabled_comfyui_servers()
    if not enabled:
        raise UserError("no ComfyUI server is enabled: give --server NAME|URL or --object-info FILE")
    return enabled[0]


def _report_problems(args, problems) -> int:
    from difflora_gui.console_output import print_to_pipe

    if args.json:
        print_to_pipe(json.dumps({"valid": False, "problems": problems}, indent=1, ensure_ascii=False))
    else:
        print_to_pipe("\n".join(problems))
    print(f"error: {args.workflow}: {len(problems)} problem(s); nothing was queued", file=sys.stderr)
    return 2


def _validate(args: argparse.Namespace) -> int:
    from difflora_gui.console_output import print_to_pipe

    server = None if args.object_info else _first_server(args)
    checked = _checked(args, server)
    if checked.problems:
        return _report_problems(args, checked.problems)
    if args.json:
        return print_to_pipe(json.dumps({"valid": True, "problems": []}, indent=1))
    where = f"the nodes of {args.object_info}" if args.object_info else server.url
    return print_to_pipe(f"{args.workflow}: valid against {where}")


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from difflora_gui.comfy.cli_run import run_workflow_job
    from difflora_gui.comfy.protocol import ComfyError
    from difflora_gui.console_output import print_to_pipe
    from difflora_gui.errors import UserError
    from difflora_gui.jobs.cli import run_in_terminal

    server = _first_server(args)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError("--out is a file, not a folder", path=out)
    checked = _checked(args, server)
    if checked.problems:
        return _report_problems(args, checked.problems)
    params = {"url": server.url, "workflow": checked.workflow, "out": str(out.resolve())}
    try:
        result = run_in_terminal(
            run_workflow_job,
            params,
            description=f"comfy {server.name}",
            quiet=args.quiet,
            lane=f"comfy:{server.name}",
            comfy_servers=[server.name],
        )
    except ComfyError as error:
        # the workflow passed validation: what fails now is the server's run, not the input
        print(f"error: {error}", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.json:
        return print_to_pipe(json.dumps(result, indent=1, ensure_ascii=False))
    return print_to_pipe("\n".join(result["files"]) or "the workflow saved no files")


def run(args: argparse.Namespace) -> int:
    return {"status": _status, "validate": _validate, "run": _run}[args.comfy_command](args)


COMMAND = CliCommandSpec(
    name="comfy",
    help="ComfyUI servers: status, validate a workflow, run it and download its outputs",
    configure=configure,
    run=run,
    description=DESCRIPTION,
)
