"""The work of ``python main.py comfy``: server status, workflow validation, a run to files.

Qt-free; the argument parsing lives in :mod:`difflora_gui.commands.comfy_cmd`. A workflow is the
user's own API-format export: its inputs are bound to preview parameters (the suggested bindings,
or a saved binding set), ``--set`` values written through them, and the result checked against the
server's ``/object_info`` before anything is queued, so a typo is one line here rather than a
refusal halfway through a queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.comfy import binding as bindings_mod
from difflora_gui.comfy.validate import validate_workflow
from difflora_gui.errors import UserError
from difflora_gui.settings import ComfyServer, server_name_for, url_problem

#: a status check is a quick question: a server slower than this is reported down
STATUS_TIMEOUT_S = 5.0


def resolve_servers(given: Sequence[str], settings) -> list[ComfyServer]:
    """The servers ``--server NAME|URL`` names (a name from Settings ▸ ComfyUI servers, enabled or not, or
    any URL), or every enabled server of Settings when none is given."""
    if not given:
        return list(settings.enabled_comfyui_servers())
    servers = []
    for text in given:
        servers.append(resolve_server(text, settings))
    return servers


def resolve_server(text: str, settings) -> ComfyServer:
    text = str(text).strip()
    for server in settings.comfyui_servers:
        if server.name == text or server.url.rstrip("/") == text.rstrip("/"):
            return server
    if "://" in text:
        problem = url_problem(text)
        if problem:
            raise UserError(f"--server {text}: {problem}")
        return ComfyServer(name=server_name_for(text), url=text.rstrip("/"))
    known = ", ".join(s.name for s in settings.comfyui_servers) or "none in Settings ▸ ComfyUI servers"
    raise UserError(
        f"--server {text}: no server of that name (known: {known}); or give its URL, http://host:port"
    )


# --- status ------------------------------------------------------------------------------------------


def server_status(
    servers: Sequence[ComfyServer], *, timeout_s: float = STATUS_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Each server's health (asked in parallel) and, when it is up, the nodes each shipped
    template needs that it lacks."""
    from difflora_gui.comfy.client import ComfyClient
    from difflora_gui.comfy.pool import ComfyPool
    from difflora_gui.comfy.protocol import ComfyError
    from difflora_gui.comfy.workflows import TEMPLATES, missing_nodes

    # the pool skips disabled servers; a server named on the command line is asked all the same
    pool = ComfyPool([ComfyServer(s.name, s.url, s.lora_dir, True) for s in servers], timeout_s=timeout_s)
    report = []
    for health in pool.check_all(force=True):
        entry: dict[str, Any] = {
            "name": health.name,
            "url": health.url,
            "state": health.state,
            "error": health.error,
            "version": health.version,
            "devices": health.devices,
            "templates": {},
        }
        if health.healthy:
            try:
                with ComfyClient(health.url, timeout_s=timeout_s * 4) as client:
                    info = client.object_info()
                entry["templates"] = {t.name: missing_nodes(t.name, info) for t in TEMPLATES}
            except ComfyError as error:
                entry["error"] = f"no /object_info: {error}"
        report.append(entry)
    return report


def _gib(value: Any) -> str:
    return f"{value / 2**30:.1f}" if isinstance(value, int | float) else "?"


def devices_text(devices: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for device in devices:
        name = str(device.get("name") or device.get("type") or "device")
        parts.append(f"{name} {_gib(device.get('vram_free'))}/{_gib(device.get('vram_total'))} GiB free")
    return "; ".join(parts) or "-"


def status_text(report: Sequence[Mapping[str, Any]]) -> str:
    from difflora_gui.commands._table import format_table

    if not report:
        return "no ComfyUI server is enabled (Settings ▸ ComfyUI servers, or --server URL)"
    servers = format_table(
        [
            [
                e["name"],
                e["url"],
                e["state"],
                e["version"] or "-",
                "; ".join(x for x in (devices_text(e["devices"]), e["error"]) if x)
                if e["state"] == "up"
                else e["error"] or "-",
            ]
            for e in report
        ],
        ["server", "url", "state", "comfyui", "devices / error"],
    )
    rows = []
    for entry in report:
        for template, missing in entry["templates"].items():
            rows.append(
                [entry["name"], template, "ready" if not missing else "missing: " + ", ".join(missing)]
            )
    if not rows:
        return servers
    return servers + "\n\n" + format_table(rows, ["server", "template", "nodes"])


# --- workflow, bindings and values ---------------------------------------------------------------------


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``PARAM=VALUE`` → ``{param: value}`` with the type the parameter takes (a prompt stays
    text even when it looks like a number)."""
    values: dict[str, Any] = {}
    for item in items or []:
        param, sep, text = str(item).partition("=")
        param = param.strip()
        if not sep or not param:
            raise UserError(
                f"--set {item}: expected PARAM=VALUE or NODE.INPUT=VALUE, such as seed=7 or 3.steps=20"
            )
        if "." in param:  # NODE.INPUT: written straight into that node, typed by its declaration
            node, _, name = param.partition(".")
            if not node or not name:
                raise UserError(f"--set {item}: expected NODE.INPUT=VALUE, such as 3.steps=20")
            values[param] = text
            continue
        kinds = bindings_mod.PARAM_TYPES.get(param)
        if kinds is None:
            raise UserError(
                f"--set {item}: unknown parameter {param!r} (known: {', '.join(bindings_mod.PARAMS)})"
            )
        values[param] = _typed_value(param, kinds, text)
    return values


def _typed_value(param: str, kinds: tuple[str, ...], text: str) -> Any:
    if kinds[0] == "INT" or kinds == ("FLOAT", "INT"):
        try:
            return int(text)
        except ValueError:
            if kinds[0] == "INT":
                raise UserError(f"--set {param}={text}: a whole number is needed") from None
    if "FLOAT" in kinds:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"--set {param}={text}: a number is needed") from None
    return text


def load_bindings(path: str | Path | None, workflow: Mapping[str, Any], object_info: Mapping[str, Any]):
    """The bindings of ``--bindings FILE`` (a JSON list, or an object with a ``bindings`` list), or the
    suggested ones; and whether they came from a file."""
    if not path:
        return bindings_mod.suggest_bindings(workflow, object_info), False
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the bindings: {error}", path=path) from error
    if isinstance(data, Mapping) and "bindings" in data:
        data = data["bindings"]
    try:
        return bindings_mod.from_json(data), True
    except UserError as error:
        raise UserError(f"{error}", path=path) from error


def load_object_info(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the object_info: {error}", path=path) from error
    if not isinstance(data, dict):
        raise UserError("not a ComfyUI /object_info answer (node class → its inputs)", path=path)
    return data


@dataclass
class Checked:
    """A workflow with the values written in, and every problem found (empty: it may be queued)."""

    workflow: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    bindings: list = field(default_factory=list)


def check_workflow(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    values: Mapping[str, Any],
    bindings_file: str | Path | None = None,
) -> Checked:
    bindings, from_file = load_bindings(bindings_file, workflow, object_info)
    problems: list[str] = []
    if from_file:
        # a preview must bind a prompt and a seed; a run from here sets only what --set names
        unbound = tuple(f"{p} is not bound to any input" for p in bindings_mod.REQUIRED_PARAMS)
        problems.extend(
            p
            for p in bindings_mod.check_bindings(workflow, bindings, object_info)
            if not p.startswith(unbound)
        )
    direct = {key: text for key, text in values.items() if "." in key}
    values = {key: value for key, value in values.items() if key not in direct}
    workflow = _with_direct_values(workflow, direct, object_info, problems)
    bound = {b.param for b in bindings}
    for param in values:
        if param not in bound:
            problems.append(
                f"--set {param}: no input of the workflow is bound to {param} "
                "(the suggestions found none; name one in --bindings FILE)"
            )
    applied = dict(workflow)
    if not problems:
        try:
            applied = bindings_mod.apply_bindings(workflow, bindings, values, object_info)
        except UserError as error:
            problems.append(str(error))
    problems.extend(validate_workflow(applied, object_info))
    return Checked(applied, problems, bindings)


# --- running -----------------------------------------------------------------------------------------


def free_name(folder: Path, relative: Path, taken: set[Path]) -> Path:
    """``folder/relative``, or ``name (1).ext``, ``name (2).ext`` ... when that is taken (on disk or by
    an earlier file of this run): ComfyUI's own naming for a name already used."""
    target = folder / relative
    stem, suffix = target.stem, target.suffix
    number = 0
    while target.exists() or target in taken:
        number += 1
        target = target.with_name(f"{stem} ({number}){suffix}")
    return target


def save_outputs(outputs, folder: str | Path) -> list[Path]:
    """Every downloaded file under ``folder`` (its server subfolder kept); an existing file is kept
    and the new one gets the next free name."""
    from difflora_gui.fileio import atomic_write_bytes

    folder = Path(folder)
    written: list[Path] = []
    for item in outputs.files:
        target = free_name(folder, Path(item.relative_path), set(written))
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_bytes(target, item.data or b"", overwrite=False))
    return written


def run_workflow_job(params: Mapping[str, Any], ctx) -> dict[str, Any]:
    """The job: queue the workflow on ``params["url"]``, follow it with progress, download its files
    into ``params["out"]``. A cancel (Ctrl+C) deletes or interrupts the prompt on the server."""
    from difflora_gui.comfy.client import ComfyClient

    with ComfyClient(params["url"]) as client:
        ctx.log(f"queued on {client.server}")
        outputs = client.run(
            params["workflow"],
            on_progress=ctx.progress,
            cancelled=lambda: ctx.cancelled,
            max_wait_s=float(params.get("max_wait_s") or 3600.0),
        )
    written = save_outputs(outputs, params["out"])
    if outputs.cached_nodes:
        ctx.log("the server had this prompt cached: its files are those of the earlier identical run")
    return {
        "prompt_id": outputs.prompt_id,
        "files": [str(p) for p in written],
        "cached": outputs.cached_nodes,
    }


def _with_direct_values(workflow, direct: Mapping[str, str], object_info, problems: list[str]) -> dict:
    """``--set NODE.INPUT=VALUE`` written into a copy of the workflow, each value of the type the
    node's class declares for that input (``"false"`` a real false, ``"7"`` a number only where a
    number is asked for); problems are added to ``problems``."""
    import copy

    workflow = copy.deepcopy(dict(workflow))
    for key, text in direct.items():
        node_id, _, name = key.partition(".")
        node = workflow.get(node_id)
        if not isinstance(node, dict):
            problems.append(f"--set {key}: the workflow has no node {node_id}")
            continue
        declared = (object_info.get(node.get("class_type"), {}) or {}).get("input", {}) or {}
        spec = (declared.get("required", {}) or {}).get(name) or (declared.get("optional", {}) or {}).get(
            name
        )
        kind = spec[0] if isinstance(spec, (list, tuple)) and spec else None
        try:
            value = _direct_value(kind, text)
        except ValueError as error:
            problems.append(f"--set {key}={text}: {error}")
            continue
        node.setdefault("inputs", {})[name] = value
    return workflow


def _direct_value(kind, text: str):
    if kind == "INT":
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number is needed") from None
    if kind == "FLOAT":
        try:
            return float(text)
        except ValueError:
            raise ValueError("a number is needed") from None
    if kind == "BOOLEAN":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError("true or false is needed")
        return lowered == "true"
    return text  # STRING, a combo's choice, or an input the check will name as undeclared
