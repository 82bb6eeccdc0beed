"""Typed parameter schemas shared by every plugin contribution.

A plugin describes its settings once as a tuple of :class:`Param`; the CLI turns them into
``--param key=value`` parsing, the GUI generates a form from them, and the project file stores
the plain values. Keep this module free of heavy imports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import UserError

PARAM_TYPES = ("int", "float", "bool", "str", "choice", "path")

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class Param:
    """One typed, documented parameter.

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``, ``choice`` (one of ``choices``)
    or ``path``. ``minimum``/``maximum`` bound numbers (inclusive). ``advanced`` parameters
    are folded away in generated forms. ``step`` is a hint for spin boxes and sliders.
    """

    name: str
    type: str
    default: Any
    help: str
    title: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = False
    step: float | None = None
    optional: bool = False

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}; use one of {PARAM_TYPES}")
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier")
        if not self.help:
            raise ValueError(f"parameter {self.name!r} needs help text")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")
        if self.default is not None or not self.optional:
            try:
                self.coerce(self.default)
            except UserError as exc:  # a bad default is the plugin author's bug, not user input
                raise ValueError(f"invalid default: {exc}") from None

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ``UserError``."""
        if value is None:
            if self.optional:
                return None
            raise UserError(f"parameter {self.name!r} needs a value")
        if isinstance(value, str) and self.optional and value.strip().lower() in {"", "none"}:
            return None
        try:
            converted = self._convert(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"parameter {self.name!r}: {exc}") from None
        if self.type in ("int", "float"):
            if isinstance(converted, float) and not math.isfinite(converted):
                raise UserError(f"parameter {self.name!r} must be a finite number, got {value!r}")
            if self.minimum is not None and converted < self.minimum:
                raise UserError(f"parameter {self.name!r} must be >= {self.minimum:g}, got {converted:g}")
            if self.maximum is not None and converted > self.maximum:
                raise UserError(f"parameter {self.name!r} must be <= {self.maximum:g}, got {converted:g}")
        if self.type == "choice" and converted not in self.choices:
            raise UserError(
                f"parameter {self.name!r} must be one of {', '.join(self.choices)}; got {converted!r}"
            )
        return converted

    def _convert(self, value: Any) -> Any:
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected true/false, got {value!r}")
        if self.type == "int":
            if isinstance(value, bool):
                raise ValueError(f"expected an integer, got {value!r}")
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"expected an integer, got {value!r}")
                return int(value)
            return int(str(value).strip())
        if self.type == "float":
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        return str(value)

    def to_json(self) -> dict[str, Any]:
        """A plain description for docs, the GUI form and ``--help``."""
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
        }
        for key in ("minimum", "maximum", "step"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.choices:
            data["choices"] = list(self.choices)
        if self.advanced:
            data["advanced"] = True
        if self.optional:
            data["optional"] = True
        return data


@dataclass(frozen=True)
class ParamSchema:
    """An ordered set of parameters with lookup by name."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self):
        names = [p.name for p in self.params]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate parameter names: {sorted(duplicates)}")

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def get(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, values: Mapping[str, Any] | None = None, *, owner: str = "") -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value checked; unknown names are an error."""
        values = dict(values or {})
        unknown = sorted(set(values) - {p.name for p in self.params})
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            where = f" for {owner}" if owner else ""
            raise UserError(f"unknown parameter(s) {', '.join(unknown)}{where}; known: {known}")
        return {p.name: p.coerce(values.get(p.name, p.default)) for p in self.params}


def schema(params: Iterable[Param] | ParamSchema) -> ParamSchema:
    return params if isinstance(params, ParamSchema) else ParamSchema(tuple(params))


def parse_key_values(pairs: Iterable[str]) -> dict[str, str]:
    """Parse ``["k=v", ...]`` as given to ``--param``."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--param expects key=value, got {pair!r}")
        result[key] = value
    return result
