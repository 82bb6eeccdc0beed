"""A declaration's command line: argparse flags from its fields, their values back, and the
equivalent command of a set of values (only the fields that apply and differ from their defaults).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from difflora_gui.config.declaration import ConfigDeclaration
from difflora_gui.errors import UserError
from difflora_gui.params import Param, ParamSchema, value_text


def _metavar(param: Param) -> str | None:
    if param.metavar:
        return param.metavar
    if param.type == "choice":
        return "{" + ",".join(param.choice_values()) + "}"  # choices computed now, when the parser is built
    if param.type in ("path", "paths"):
        return "PATH"
    return {"int": "N", "float": "X", "list": param.item_type.upper()}.get(param.type, "VALUE")


def _help(param: Param) -> str:
    text = param.help.replace("%", "%%")
    default = param.default
    if param.type == "bool" or default in (None, "", [], {}):
        return text
    shown = ", ".join(value_text(v) for v in default) if isinstance(default, list) else value_text(default)
    return f"{text} (default {shown})"


def add_arguments(parser: argparse.ArgumentParser, declaration: ConfigDeclaration) -> None:
    """Add one option per field (in ``--help`` groups by the fields' groups).

    Every option defaults to ``None`` (= not given), so :func:`values_from_args` returns only what
    the command line set and a recipe's defaults stay the declaration's.
    """
    sections: dict[str, Any] = {}
    for param in declaration.cli_params():
        key = param.group
        if key and key not in sections:
            sections[key] = parser.add_argument_group(declaration.group_title(key))
        target = sections.get(key, parser)
        kwargs: dict[str, Any] = {"dest": param.name, "default": None, "help": _help(param)}
        if param.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction if param.default is True else "store_true"
        elif param.is_list:
            kwargs["metavar"] = _metavar(param)
            if param.repeat:
                kwargs["action"] = "append"
            else:
                kwargs["nargs"] = "*"
        else:
            kwargs["metavar"] = _metavar(param)
        target.add_argument(*param.flags, **kwargs)


def _declared(schema: ParamSchema, args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in schema:
        if param.type == "config":
            nested = _declared(param.config, args)
            if nested:
                values[param.name] = nested
            continue
        if not param.cli:
            continue
        value = getattr(args, param.name, None)
        if value is None or (param.type == "bool" and value is False and param.default is False):
            continue
        try:
            values[param.name] = param.coerce(value)
        except UserError as exc:
            message, named = str(exc), f"parameter {param.name!r}"
            if message.startswith(named):
                raise UserError(param.flags[0] + message[len(named) :]) from None
            raise UserError(f"{param.flags[0]}: {message}") from None
    return values


def values_from_args(declaration: ConfigDeclaration, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the command line set, checked (``UserError`` naming the flag); nested configs nest."""
    return _declared(declaration, args)


def _same(param: Param, value: Any, default: Any) -> bool:
    try:
        return param.coerce(value) == (None if default is None else param.coerce(default))
    except UserError:
        return value == default


def _args_of(schema: ParamSchema, values: Mapping[str, Any]) -> list[str]:
    merged = {**schema.defaults(), **values}
    args: list[str] = []
    for param in schema:
        if not param.cli or not param.applies(merged):
            continue
        value = merged[param.name]
        if param.type == "config":
            args += _args_of(param.config, value if isinstance(value, Mapping) else {})
            continue
        if value is None or _same(param, value, param.default):
            continue
        flag = param.flags[0]
        if param.type == "bool":
            truth = param.coerce(value)
            args.append(flag if truth else f"--no-{flag[2:]}")
        elif param.is_list:
            items = [value_text(item) for item in param.coerce(value)]
            args += [part for item in items for part in (flag, item)] if param.repeat else [flag, *items]
        else:
            args += [flag, value_text(value)]
    return args


def command_args(declaration: ConfigDeclaration, values: Mapping[str, Any]) -> list[str]:
    """The options of the equivalent command: every field that applies (its condition holds) and
    differs from its default, with its canonical flag; parsing them gives those values back."""
    return _args_of(declaration, values)
