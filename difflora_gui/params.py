"""Typed parameter schemas shared by every plugin contribution and every config declaration.

A plugin describes its settings once as a tuple of :class:`Param`; the CLI turns them into
``--param key=value`` parsing, the GUI generates a form from them, and the project file stores
the plain values. A whole config (the merge recipe, a trainer's settings) is a
:class:`~difflora_gui.config.ConfigDeclaration` of the same ``Param`` fields, which also gives its
own command-line flags and equivalent command. Keep this module free of heavy imports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import UserError

PARAM_TYPES = ("int", "float", "bool", "str", "choice", "path", "list", "paths", "dict", "config")
#: the item types of a ``list`` parameter
LIST_ITEM_TYPES = ("str", "int", "float")

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class Condition:
    """When a parameter applies: every named field has one of its allowed values (``all``),
    or at least one does (``any``), or a callable of the values says so.

    Built by :func:`when`; a mapping given as ``visible_when`` / ``applies_when`` becomes one.
    """

    equals: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    test: Callable[[Mapping[str, Any]], bool] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.equals)

    def __call__(self, values: Mapping[str, Any]) -> bool:
        for name, allowed in self.equals:
            if values.get(name) not in allowed:
                return False
        return bool(self.test(values)) if self.test is not None else True

    def describe(self) -> str:
        parts = [f"{name} is {' or '.join(value_text(v) for v in allowed)}" for name, allowed in self.equals]
        if self.test is not None:
            parts.append("its condition holds")
        return " and ".join(parts)


def when(test: Callable[[Mapping[str, Any]], bool] | None = None, /, **equals: Any) -> Condition:
    """``when(rank_mode="energy")``, ``when(mode=("a", "b"))`` or ``when(lambda v: v["n"] > 1)``."""
    pairs = tuple(
        (name, tuple(value) if isinstance(value, (tuple, list, set, frozenset)) else (value,))
        for name, value in equals.items()
    )
    return Condition(pairs, test)


def _condition(value: Any, owner: str) -> Condition | None:
    if value is None or isinstance(value, Condition):
        return value
    if isinstance(value, Mapping):
        return when(**dict(value))
    if callable(value):
        return when(value)
    raise ValueError(f"parameter {owner!r}: a condition is a mapping, a callable or when(...), got {value!r}")


def value_text(value: Any) -> str:
    """A value as written on a command line (``true``, ``1.5``, ``4``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return "" if value is None else str(value)


#: ``Param.gui_default`` when a field's form starts from its ``default`` (the CLI's) like everything else
NO_GUI_DEFAULT: Any = type("NoGuiDefault", (), {"__repr__": lambda self: "NO_GUI_DEFAULT"})()


@dataclass(frozen=True)
class Param:
    """One typed, documented parameter (a field of a config declaration or a plugin's schema).

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``, ``choice`` (one of ``choices``),
    ``path``, ``list`` (of ``item_type``: str, int or float), ``paths`` (a list of paths),
    ``dict`` (a JSON table) or ``config`` (a nested declaration in ``config``, its value a dict).
    ``minimum``/``maximum`` bound numbers (and list items), inclusive. ``choices`` may be a callable
    returning them, evaluated when a form or parser is built (e.g. what is registered now).
    ``advanced`` parameters are folded away in generated forms; ``group`` names the form section
    and ``--help`` group. ``visible_when`` hides the field in forms unless a condition on the other
    fields holds; ``applies_when`` (default: ``visible_when``) decides whether the field is used at
    all — a field that does not apply is left out of the equivalent command. ``flag`` is the
    command-line spelling (default the name), ``aliases`` more accepted spellings (dashed ones
    are always accepted), ``metavar`` the value's name in ``--help``. ``value_aliases`` maps other
    spellings of a choice to the canonical one (``fp16`` → ``float16``); ``none_label`` shows an
    optional choice's "not set" as a named entry of its combo box. ``repeat`` lists repeat their
    flag per item (``--param a=1 --param b=2``) instead of taking several values after one flag.
    ``cli=False`` keeps a field off the command line, ``form=False`` out of generated forms.
    ``gui_default`` is where a new form starts when it differs from the command line's ``default``
    (the CLI keeps a published script's behaviour; the GUI may start from a recommendation).
    """

    name: str
    type: str
    default: Any
    help: str
    title: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | Callable[[], Iterable[str]] = ()
    advanced: bool = False
    step: float | None = None
    optional: bool = False
    item_type: str = "str"
    group: str = ""
    config: Any = None
    visible_when: Condition | Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None
    applies_when: Condition | Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None
    flag: str = ""
    aliases: tuple[str, ...] = ()
    metavar: str = ""
    value_aliases: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    none_label: str = ""
    repeat: bool = False
    cli: bool = True
    form: bool = True
    gui_default: Any = NO_GUI_DEFAULT

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}; use one of {PARAM_TYPES}")
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier")
        if not self.help:
            raise ValueError(f"parameter {self.name!r} needs help text")
        if self.type == "choice" and not callable(self.choices) and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")
        if self.type == "list" and self.item_type not in LIST_ITEM_TYPES:
            raise ValueError(f"list parameter {self.name!r}: item_type must be one of {LIST_ITEM_TYPES}")
        if self.type == "config" and not hasattr(self.config, "params"):
            raise ValueError(f"config parameter {self.name!r} needs config= a nested declaration")
        if not callable(self.choices):
            object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "aliases", tuple(a.lstrip("-") for a in self.aliases))
        object.__setattr__(self, "flag", self.flag.lstrip("-"))
        object.__setattr__(self, "value_aliases", tuple(dict(self.value_aliases).items()))
        object.__setattr__(self, "visible_when", _condition(self.visible_when, self.name))
        object.__setattr__(self, "applies_when", _condition(self.applies_when, self.name))
        if self.type == "config" and self.default is None:
            object.__setattr__(self, "default", self.config.defaults())
        if self.default is not None or not self.optional:
            try:
                self.coerce(self.default, check_choices=not callable(self.choices))
            except UserError as exc:  # a bad default is the plugin author's bug, not user input
                raise ValueError(f"invalid default: {exc}") from None

    def __hash__(self) -> int:
        # list and table defaults are unhashable; equal parameters still share name and type
        return hash((self.name, self.type))

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    @property
    def form_default(self) -> Any:
        """Where a new form starts: ``gui_default`` when one is declared, else ``default``."""
        return self.default if self.gui_default is NO_GUI_DEFAULT else self.gui_default

    @property
    def is_list(self) -> bool:
        return self.type in ("list", "paths")

    @property
    def condition(self) -> Condition | None:
        """What decides whether this field applies (``applies_when``, else ``visible_when``)."""
        return self.applies_when if self.applies_when is not None else self.visible_when

    def applies(self, values: Mapping[str, Any]) -> bool:
        condition = self.condition
        return condition is None or condition(values)

    def visible(self, values: Mapping[str, Any]) -> bool:
        return self.visible_when is None or self.visible_when(values)

    def choice_values(self) -> tuple[str, ...]:
        """The allowed choices now (a callable ``choices`` is evaluated on each call)."""
        return tuple(str(c) for c in self.choices()) if callable(self.choices) else self.choices

    @property
    def flags(self) -> tuple[str, ...]:
        """Every accepted command-line spelling, the canonical one first (``--target_blocks``, ...)."""
        names = [self.flag or self.name, *self.aliases]
        result: list[str] = []
        for name in names:
            for spelling in (name, name.replace("_", "-")):
                flag = f"--{spelling}"
                if flag not in result:
                    result.append(flag)
        return tuple(result)

    def coerce(self, value: Any, *, check_choices: bool = True) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ``UserError``."""
        if value is None:
            if self.optional:
                return None
            raise UserError(f"parameter {self.name!r} needs a value")
        if isinstance(value, str) and self.optional and value.strip().lower() in {"", "none"}:
            return None
        if self.type == "config":
            if not isinstance(value, Mapping):
                raise UserError(f"parameter {self.name!r} must be a table of {self.name} settings")
            return self.config.resolve(value, owner=self.name)
        try:
            converted = self._convert(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"parameter {self.name!r}: {exc}") from None
        items = converted if self.type == "list" else [converted] if self.type in ("int", "float") else []
        for item in items:
            self._check_number(item, value)
        if self.type == "choice" and check_choices:
            choices = self.choice_values()
            if converted not in choices:
                raise UserError(
                    f"parameter {self.name!r} must be one of {', '.join(choices)}; got {converted!r}"
                )
        return converted

    def _check_number(self, number: Any, value: Any) -> None:
        if not isinstance(number, (int, float)):
            return
        if isinstance(number, float) and not math.isfinite(number):
            raise UserError(f"parameter {self.name!r} must be a finite number, got {value!r}")
        if self.minimum is not None and number < self.minimum:
            raise UserError(f"parameter {self.name!r} must be >= {self.minimum:g}, got {number:g}")
        if self.maximum is not None and number > self.maximum:
            raise UserError(f"parameter {self.name!r} must be <= {self.maximum:g}, got {number:g}")

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
            return _to_int(value)
        if self.type == "float":
            return _to_float(value)
        if self.type == "list":
            convert = {"int": _to_int, "float": _to_float, "str": str}[self.item_type]
            return [convert(item) for item in _split_list(value, ",")]
        if self.type == "paths":
            return [str(item) for item in _split_list(value, "\n") if str(item).strip()]
        if self.type == "dict":
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            if not isinstance(value, Mapping):
                raise ValueError(f"expected a table, got {value!r}")
            return json.loads(json.dumps(dict(value)))  # a deep, JSON-safe copy
        text = str(value)
        if self.type == "choice" and self.value_aliases:
            return dict(self.value_aliases).get(text.strip().lower(), text)
        return text

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
            data["choices"] = list(self.choice_values())
        for key in ("advanced", "optional", "repeat"):
            if getattr(self, key):
                data[key] = True
        if self.type == "list":
            data["item_type"] = self.item_type
        for key in ("group", "flag", "metavar", "none_label"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.aliases:
            data["aliases"] = list(self.aliases)
        if self.visible_when is not None:
            data["visible_when"] = self.visible_when.describe()
        if self.applies_when is not None:
            data["applies_when"] = self.applies_when.describe()
        if self.type == "config":
            data["fields"] = [p.to_json() for p in self.config.params]
        return data


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def _split_list(value: Any, separator: str) -> list[Any]:
    """A list from a list, a JSON list text (``["a", "b"]``) or a ``separator``-joined text."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            loaded = json.loads(text)
            if not isinstance(loaded, list):
                raise ValueError(f"expected a list, got {value!r}")
            return loaded
        return [part.strip() for part in text.split(separator) if part.strip()] if text else []
    raise ValueError(f"expected a list, got {value!r}")


@dataclass(frozen=True)
class ParamSchema:
    """An ordered set of parameters with lookup by name."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(self.params))
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
        return {
            p.name: json.loads(json.dumps(p.default))
            if p.is_list or p.type in ("dict", "config")
            else p.default
            for p in self.params
        }

    def form_defaults(self) -> dict[str, Any]:
        """Where a new form starts: each field's :attr:`Param.form_default`."""
        return {
            p.name: json.loads(json.dumps(p.form_default))
            if p.is_list or p.type in ("dict", "config")
            else p.form_default
            for p in self.params
        }

    def resolve(self, values: Mapping[str, Any] | None = None, *, owner: str = "") -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value checked; unknown names are an error."""
        values = dict(values or {})
        unknown = sorted(set(values) - {p.name for p in self.params})
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            where = f" for {owner}" if owner else ""
            raise UserError(f"unknown parameter(s) {', '.join(unknown)}{where}; known: {known}")
        defaults = self.defaults()
        return {p.name: p.coerce(values.get(p.name, defaults[p.name])) for p in self.params}

    def applicable(self, values: Mapping[str, Any]) -> list[str]:
        """The names of the parameters that apply with these values (their conditions hold)."""
        merged = {**self.defaults(), **values}
        return [p.name for p in self.params if p.applies(merged)]

    def visible(self, values: Mapping[str, Any]) -> list[str]:
        """The names of the parameters a form shows with these values."""
        merged = {**self.defaults(), **values}
        return [p.name for p in self.params if p.visible(merged)]


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
