"""The declaration of one config: its ordered fields, their groups, the recipe (JSON) they make."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.params import Param, ParamSchema


@dataclass(frozen=True)
class ConfigDeclaration(ParamSchema):
    """A config's fields, declared once (see :mod:`difflora_gui.config`).

    ``name`` is what the config is called in messages (``merge recipe``); ``groups`` gives the
    titles of the groups its fields name (``(("rank", "Rank"), ...)``), in the order forms and
    ``--help`` show them (groups not listed follow, titled from their key).
    """

    name: str = "config"
    groups: tuple[tuple[str, str], ...] | Mapping[str, str] = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "groups", tuple(dict(self.groups).items()))
        flags: dict[str, str] = {}
        for param in self.cli_params():
            for flag in param.flags:
                if flag in flags:
                    raise ValueError(
                        f"{self.name}: the flag {flag} is declared by both {flags[flag]!r} and {param.name!r}"
                    )
                flags[flag] = param.name

    # --- building ---------------------------------------------------------------------------

    def with_fields(self, *params: Param, after: str | None = None) -> ConfigDeclaration:
        """A copy with more fields (at the end, or right after the field ``after``)."""
        fields = list(self.params)
        index = len(fields) if after is None else [p.name for p in fields].index(after) + 1
        fields[index:index] = params
        return dataclasses.replace(self, params=tuple(fields))

    # --- groups -----------------------------------------------------------------------------

    def group_keys(self) -> list[str]:
        """Every group a field names, in declaration order of ``groups`` then of the fields."""
        keys = [key for key, _ in self.groups]
        for param in self.params:
            if param.group and param.group not in keys:
                keys.append(param.group)
        return [key for key in keys if any(p.group == key for p in self.params)]

    def group_title(self, key: str) -> str:
        return dict(self.groups).get(key) or key.replace("_", " ").capitalize()

    def group(self, key: str) -> ParamSchema:
        """The form fields of one group (a form is built from it)."""
        return ParamSchema(tuple(p for p in self.params if p.group == key and p.form))

    def form_schema(self) -> ParamSchema:
        return ParamSchema(tuple(p for p in self.params if p.form))

    def cli_params(self) -> Iterator[Param]:
        """Every field with command-line flags; a nested config's fields take its place."""
        for param in self.params:
            if not param.cli:
                continue
            if param.type == "config":
                yield from param.config.cli_params()
            else:
                yield param

    # --- the recipe -------------------------------------------------------------------------

    def to_recipe(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The stored recipe: every field's checked value, JSON-serialisable (raises ``UserError``)."""
        return self.resolve(values or {}, owner=self.name)

    def from_recipe(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The values a stored recipe holds, checked; a field it lacks gets its default."""
        if not isinstance(data, Mapping):
            raise UserError(f"the {self.name} must be a table of settings, got {type(data).__name__}")
        unknown = sorted(set(data) - {p.name for p in self.params})
        if unknown:
            raise UserError(f"unknown {self.name} field(s): {', '.join(unknown)}")
        return self.resolve(data, owner=self.name)


def check_dataclass(cls: type, declaration: ConfigDeclaration) -> None:
    """Raise ``TypeError`` unless the dataclass ``cls`` has exactly the declaration's fields and defaults
    (in any order: the declaration's order is the forms' and the command's).

    A typed record (``MergeParams``) stays a plain dataclass for its users; this check, run when its
    module is imported, keeps it identical to the one declaration.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    declared = declaration.defaults()
    if set(fields) != set(declared):
        raise TypeError(
            f"{cls.__name__} fields differ from the {declaration.name} declaration: only in the class "
            f"{sorted(set(fields) - set(declared))}, only declared {sorted(set(declared) - set(fields))}"
        )
    for name, f in fields.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default != declared[name]:
            raise TypeError(
                f"{cls.__name__}.{name} defaults to {default!r}, the {declaration.name} declaration to "
                f"{declared[name]!r}"
            )
