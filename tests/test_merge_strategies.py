"""Strategy plugins: resolution and composition, the magnitude filter, randomized SVD, third-party strategies."""

from __future__ import annotations

import types

import pytest
import torch
from test_merge_support import dense, make_modules, names, params, write

from difflora_gui import hookimpl
from difflora_gui.errors import UserError
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.reader import open_lora
from difflora_gui.merge import analysis as an
from difflora_gui.merge.api import ModuleStats
from difflora_gui.merge.engine import run_merge
from difflora_gui.merge.strategies import assign_cli_params, resolve_strategy
from difflora_gui.params import Param
from difflora_gui.plugin_host import PluginHost, get_plugin_host, set_plugin_host
from difflora_gui.specs import MergeStrategySpec


def test_builtin_strategies_are_registered_like_plugins():
    strategies = get_plugin_host().merge_strategies()
    assert {"full_svd", "randomized_svd", "magnitude_filter"} <= set(strategies)
    assert strategies["full_svd"].is_compressor and not strategies["full_svd"].is_filter
    assert strategies["magnitude_filter"].is_filter and not strategies["magnitude_filter"].is_compressor
    assert isinstance(strategies["randomized_svd"].compress, str)  # heavy work referenced lazily
    infos = {i.name: i for i in get_plugin_host().infos()}
    assert infos["full_svd"].source == "built-in" and infos["full_svd"].status == "enabled"


def test_resolution_and_composition():
    resolved = resolve_strategy("magnitude_filter", {"magnitude_filter": {"top_k_layers": 3}})
    assert (resolved.info.filter, resolved.info.compressor) == ("magnitude_filter", "full_svd")
    assert resolved.filter_params["top_k_layers"] == 3 and resolved.select is not None
    resolved = resolve_strategy(
        "magnitude_filter",
        {"magnitude_filter": {"compressor": "randomized_svd"}, "randomized_svd": {"niter": 5}},
    )
    assert resolved.info.compressor == "randomized_svd" and resolved.compressor_params["niter"] == 5
    with pytest.raises(UserError, match="unknown merge strategy"):
        resolve_strategy("nope")
    with pytest.raises(UserError, match="not a compressor|filter"):
        resolve_strategy("magnitude_filter", {"magnitude_filter": {"compressor": "magnitude_filter"}})
    with pytest.raises(UserError, match="does not use"):
        resolve_strategy("full_svd", {"randomized_svd": {"niter": 3}})
    with pytest.raises(UserError, match="unknown parameter"):
        resolve_strategy("randomized_svd", {"randomized_svd": {"bogus": 1}})
    with pytest.raises(UserError, match="niter"):
        resolve_strategy("randomized_svd", {"randomized_svd": {"niter": -1}})


def test_cli_params_find_their_owner():
    assert assign_cli_params("randomized_svd", {"niter": "4"}) == {"randomized_svd": {"niter": 4}}
    placed = assign_cli_params(
        "magnitude_filter", {"compressor": "randomized_svd", "oversample": "3", "relative": "yes"}
    )
    assert placed == {
        "magnitude_filter": {"compressor": "randomized_svd", "relative": True},
        "randomized_svd": {"oversample": 3},
    }
    assert assign_cli_params("full_svd", {"randomized_svd.seed": "7"}) == {"randomized_svd": {"seed": 7}}
    with pytest.raises(UserError, match="no parameter"):
        assign_cli_params("full_svd", {"niter": "4"})


# --- the magnitude filter ---------------------------------------------------------------------------


def _stat(name, index, norm_diff, cancellation=None):
    return ModuleStats(
        name,
        index,
        0,
        "self_attn",
        "q",
        (8, 8),
        4,
        4,
        1.0,
        1.0,
        norm_diff,
        0.0,
        0.0,
        cancellation if cancellation is not None else norm_diff / 2,
        True,
    )


def _select(stats, **values):
    from difflora_builtin_plugins.magnitude_filter import select

    spec = get_plugin_host().merge_strategies()["magnitude_filter"]
    return select(stats, spec.params.resolve(values), types.SimpleNamespace(log=lambda text: None))


def test_magnitude_filter_criteria():
    get_plugin_host()  # makes difflora_builtin_plugins importable
    stats = [_stat(f"m{i}", i, v) for i, v in enumerate([0.5, 3.0, 1.0, 2.0, 0.1])]
    assert _select(stats, threshold=1.0) == ["m1", "m2", "m3"]
    assert _select(stats, top_k_layers=2) == ["m1", "m3"]
    # percentile 50 of [0.1, 0.5, 1, 2, 3] is 1.0 (linear interpolation, as numpy)
    assert _select(stats, threshold_percentile=50) == ["m1", "m2", "m3"]
    assert _select(stats, threshold_percentile=60) == ["m1", "m3"]  # 1.4
    assert _select(stats, threshold=0.4, top_k_layers=4, threshold_percentile=10) == ["m0", "m1", "m2", "m3"]
    relative = [_stat("x", 0, 5.0, 0.1), _stat("y", 1, 0.2, 0.9)]
    assert _select(relative, top_k_layers=1, relative=True) == ["y"]
    with pytest.raises(UserError, match="needs a criterion"):
        _select(stats)


def test_magnitude_filter_in_a_merge_picks_exactly_the_expected_modules(tmp_path):
    # every module equal in A and B except a chosen few, which differ by growing amounts
    base = make_modules(1, rank=8)
    distinct = {"blocks.0.cross_attn.k": 3.0, "blocks.2.self_attn.o": 2.0, "blocks.1.ffn.2": 1.0}
    modified = []
    for m in base:
        factor = distinct.get(m.name)
        modified.append(LoraModule(m.name, up=m.up * (1 + factor) if factor else m.up, down=m.down))
    a, b = write(tmp_path / "a.safetensors", modified), write(tmp_path / "b.safetensors", base)
    result = run_merge(
        params(
            tmp_path,
            a,
            b,
            strategy="magnitude_filter",
            strategy_params={"magnitude_filter": {"top_k_layers": 2}},
            analyze=True,
            exclude_non_targeted=True,
        )
    )
    with open_lora(tmp_path / "out.safetensors") as f:
        assert sorted(f.names()) == ["blocks.0.cross_attn.k", "blocks.2.self_attn.o"]
    assert (result.merged, result.filtered, result.excluded) == (2, 28, 28)
    assert result.analysis.row("blocks.1.ffn.2").reason == an.FILTERED
    # absolute threshold between the 3rd and a zero difference: the three distinct ones
    result = run_merge(
        params(
            tmp_path,
            a,
            b,
            strategy="magnitude_filter",
            strategy_params={"magnitude_filter": {"threshold": 1e-6}},
            overwrite=True,
        )
    )
    assert result.merged == 3 and result.nullified == 27
    with pytest.raises(UserError, match="kept none"):
        run_merge(
            params(
                tmp_path,
                a,
                b,
                strategy="magnitude_filter",
                strategy_params={"magnitude_filter": {"threshold": 1e9}},
                output=str(tmp_path / "none.safetensors"),
            )
        )
    assert not (tmp_path / "none.safetensors").exists()


def test_randomized_svd_reports_its_error_against_exact(tmp_path):
    a = write(tmp_path / "a.safetensors", make_modules(1, rank=16, decay=0.7))
    b = write(tmp_path / "b.safetensors", make_modules(2, rank=16, decay=0.7))
    exact = run_merge(
        params(tmp_path, a, b, analyze=True, output=str(tmp_path / "exact.safetensors"), save_dtype="float32")
    )
    fast = run_merge(
        params(
            tmp_path,
            a,
            b,
            strategy="randomized_svd",
            analyze=True,
            output=str(tmp_path / "fast.safetensors"),
            save_dtype="float32",
        )
    )
    for name in names():
        e, f = exact.analysis.row(name), fast.analysis.row(name)
        assert f.residual >= e.residual * (1 - 1e-6)  # never better than the optimum
        assert f.residual <= e.residual * 1.05 + 1e-6  # decaying spectrum: close to it
    with open_lora(tmp_path / "exact.safetensors") as fe, open_lora(tmp_path / "fast.safetensors") as ff:
        for name in names():
            ref = fe.load(name).delta(torch.float64)
            assert float((ff.load(name).delta(torch.float64) - ref).norm() / ref.norm()) < 0.05


# --- a third-party strategy ----------------------------------------------------------------------------


def sign_flip_compress(delta, rank_cap, params, ctx):
    """A third-party compressor: the exact SVD, but of −ΔW (easy to recognise in the output)."""
    from difflora_gui.merge import linalg

    decomposition = linalg.factored_svd(delta, rank_cap)
    decomposition.U = -decomposition.U
    return decomposition


def every_other_block(stats, params, ctx):
    return [s.name for s in stats if s.block is not None and s.block % 2 == params["parity"]]


class ThirdParty:
    @hookimpl
    def difflora_register_merge_strategies(self):
        return [
            MergeStrategySpec(
                name="sign_flip",
                title="Sign flip",
                description="negated exact SVD",
                compress=sign_flip_compress,
            ),
            MergeStrategySpec(
                name="odd_blocks",
                title="Odd blocks",
                description="keeps blocks of one parity",
                params=(Param("parity", "int", 1, "which parity"),),
                select=every_other_block,
            ),
        ]


def test_third_party_strategies_take_part(tmp_path):
    host = PluginHost(autoload=False, persist=False)
    host.load()
    host.register(ThirdParty(), "thirdparty")
    set_plugin_host(host)
    mods_a, mods_b = make_modules(1, rank=4), make_modules(2, rank=4)
    a, b = write(tmp_path / "a.safetensors", mods_a), write(tmp_path / "b.safetensors", mods_b)
    run_merge(params(tmp_path, a, b, strategy="sign_flip", save_dtype="float32", rank=8))
    with open_lora(tmp_path / "out.safetensors") as f:
        got = f.load("blocks.0.self_attn.q").delta(torch.float64)
    expected = -(dense(mods_a[0]) - dense(mods_b[0]))
    assert float((got - expected).norm() / expected.norm()) < 1e-5
    # a third-party filter composes with the built-in compressor, a built-in filter with a third-party compressor
    result = run_merge(params(tmp_path, a, b, strategy="odd_blocks", overwrite=True))
    assert result.merged == 10 and result.strategy["compressor"] == "full_svd"
    result = run_merge(
        params(
            tmp_path,
            a,
            b,
            strategy="magnitude_filter",
            overwrite=True,
            strategy_params={"magnitude_filter": {"top_k_layers": 5, "compressor": "sign_flip"}},
        )
    )
    assert result.merged == 5 and result.strategy["compressor"] == "sign_flip"


def test_a_broken_compressor_fails_the_merge_cleanly(tmp_path):
    class Broken:
        @hookimpl
        def difflora_register_merge_strategies(self):
            return [
                MergeStrategySpec(
                    name="broken",
                    title="Broken",
                    description="returns garbage",
                    compress=lambda d, r, p, c: "nope",
                )
            ]

    host = PluginHost(autoload=False, persist=False)
    host.load()
    host.register(Broken(), "broken")
    set_plugin_host(host)
    a, b = (
        write(tmp_path / "a.safetensors", make_modules(1, rank=4)),
        write(tmp_path / "b.safetensors", make_modules(2, rank=4)),
    )
    with pytest.raises(TypeError, match="Decomposition"):
        run_merge(params(tmp_path, a, b, strategy="broken"))
    assert not (tmp_path / "out.safetensors").exists()


def test_the_example_package_strategy_runs_in_a_merge(tmp_path, monkeypatch):
    """examples/difflora-example-strategy (a filter) composes with the built-in exact compressor."""
    from pathlib import Path

    monkeypatch.syspath_prepend(
        str(Path(__file__).resolve().parent.parent / "examples" / "difflora-example-strategy")
    )
    plugin = __import__("difflora_example_strategy.plugin", fromlist=["plugin"])
    host = PluginHost(autoload=False, persist=False)
    host.load()
    host.register(plugin, "cosine_filter")
    set_plugin_host(host)
    base = make_modules(1, rank=4)
    same_direction = {m.name: LoraModule(m.name, up=m.up * 2.0, down=m.down) for m in base}  # cosine 1
    other = make_modules(2, rank=4)
    mods_a = [
        same_direction[m.name] if m.name.startswith("blocks.0.") else o
        for m, o in zip(base, other, strict=True)
    ]
    a, b = write(tmp_path / "a.safetensors", mods_a), write(tmp_path / "b.safetensors", base)
    result = run_merge(
        params(
            tmp_path, a, b, strategy="cosine_filter", strategy_params={"cosine_filter": {"max_cosine": 0.9}}
        )
    )
    assert result.merged == 20 and result.filtered == 10  # block 0 agrees in direction: filtered out
    assert (result.strategy["filter"], result.strategy["compressor"]) == ("cosine_filter", "full_svd")
    assert result.strategy["filter_params"]["max_cosine"] == 0.9
