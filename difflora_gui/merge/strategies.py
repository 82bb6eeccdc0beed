"""Resolving ``--strategy NAME`` into a module filter and a compressor, with checked parameters.

Rules (``docs/merge-strategies.md``):

* a strategy with ``compress`` is the compressor;
* a strategy with only ``select`` is the filter; its compressor is the one named by its own
  ``compressor`` parameter when it declares one, else its ``default_compressor`` (``full_svd``);
* a strategy with both filters and compresses.

Any registered strategy can take either role, third-party ones included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.errors import UserError
from difflora_gui.merge.api import StrategyInfo
from difflora_gui.specs import MergeStrategySpec, resolve_callable


@dataclass
class ResolvedStrategy:
    """The callables and checked parameters a merge runs with."""

    info: StrategyInfo
    compress: Callable
    select: Callable | None = None
    specs: dict[str, MergeStrategySpec] = field(default_factory=dict)

    @property
    def compressor_params(self) -> dict[str, Any]:
        return self.info.compressor_params

    @property
    def filter_params(self) -> dict[str, Any]:
        return self.info.filter_params


def available_strategies(host=None) -> dict[str, MergeStrategySpec]:
    from difflora_gui.plugin_host import get_plugin_host

    return (host or get_plugin_host()).merge_strategies()


def _unknown(name: str, strategies: Mapping[str, MergeStrategySpec]) -> UserError:
    known = ", ".join(strategies) or "none (are the built-in plugins disabled?)"
    return UserError(f"unknown merge strategy {name!r}; registered: {known}")


def compressor_name_for(spec: MergeStrategySpec, values: Mapping[str, Any]) -> str:
    """The compressor a strategy runs with, from its (user-given) parameter values."""
    if spec.is_compressor:
        return spec.name
    if "compressor" in spec.params:
        chosen = values.get("compressor", spec.params.get("compressor").default)
        return str(chosen or spec.default_compressor)
    return spec.default_compressor


def resolve_strategy(
    name: str, strategy_params: Mapping[str, Mapping[str, Any]] | None = None, host=None
) -> ResolvedStrategy:
    """Look ``name`` up among the registered strategies and check every parameter."""
    strategies = available_strategies(host)
    strategy_params = {k: dict(v) for k, v in (strategy_params or {}).items()}
    spec = strategies.get(name)
    if spec is None:
        raise _unknown(name, strategies)
    own_values = strategy_params.get(name, {})
    compressor_name = compressor_name_for(spec, own_values)
    compressor_spec = strategies.get(compressor_name)
    if compressor_spec is None:
        raise UserError(
            f"strategy {name!r} wants the compressor {compressor_name!r}, which is not registered"
        )
    if not compressor_spec.is_compressor:
        raise UserError(
            f"{compressor_name!r} is a module filter, not a compressor; choose a compressor for {name!r}"
        )
    used = {name, compressor_name}
    unused = sorted(set(strategy_params) - used)
    if unused:
        raise UserError(
            f"parameters given for strategy {', '.join(unused)}, which this merge does not use "
            f"(strategy {name!r}, compressor {compressor_name!r})"
        )
    own = spec.params.resolve(own_values, owner=f"strategy {name!r}")
    if compressor_name == name:
        compressor_params = own
    else:
        compressor_params = compressor_spec.params.resolve(
            strategy_params.get(compressor_name, {}), owner=f"compressor {compressor_name!r}"
        )
    select = resolve_callable(spec.select) if spec.is_filter else None
    info = StrategyInfo(
        strategy=name,
        compressor=compressor_name,
        compressor_params=compressor_params,
        filter=name if spec.is_filter else None,
        filter_params=own if spec.is_filter else {},
    )
    return ResolvedStrategy(
        info=info,
        compress=resolve_callable(compressor_spec.compress),
        select=select,
        specs={name: spec, compressor_name: compressor_spec},
    )


def assign_cli_params(
    strategy: str,
    pairs: Mapping[str, str],
    strategy_params: Mapping[str, Mapping[str, Any]] | None = None,
    host=None,
) -> dict[str, dict[str, Any]]:
    """Place ``--param key=value`` values: ``name.key`` explicitly, else the strategy's own
    parameter, else its compressor's. Values are converted to the parameter's type."""
    strategies = available_strategies(host)
    result = {k: dict(v) for k, v in (strategy_params or {}).items()}
    spec = strategies.get(strategy)
    if spec is None:
        raise _unknown(strategy, strategies)
    for key, value in pairs.items():
        owner_name, dot, param_name = key.rpartition(".")
        if dot:
            owner = strategies.get(owner_name)
            if owner is None:
                raise _unknown(owner_name, strategies)
        else:
            param_name = key
            owner_name = ""
            candidates = [spec]
            compressor = strategies.get(compressor_name_for(spec, {**result.get(strategy, {}), **pairs}))
            if compressor is not None and compressor is not spec:
                candidates.append(compressor)
            for candidate in candidates:
                if param_name in candidate.params:
                    owner_name, owner = candidate.name, candidate
                    break
            else:
                known = sorted({p.name for c in candidates for p in c.params})
                raise UserError(
                    f"--param {key}: strategy {strategy!r} has no parameter {param_name!r}"
                    f" (known: {', '.join(known) or 'none'}; use NAME.{param_name}=... for another strategy)"
                )
        if param_name not in owner.params:
            known = ", ".join(p.name for p in owner.params) or "none"
            raise UserError(
                f"--param {key}: strategy {owner_name!r} has no parameter {param_name!r} (known: {known})"
            )
        result.setdefault(owner_name, {})[param_name] = owner.params.get(param_name).coerce(value)
    return result
