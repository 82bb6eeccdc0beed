"""The merge engine end to end on real files: exactness, nullify/exclude, formats, ranks, analysis,
alpha, concept recovery, reproducibility, cancellation and bad inputs."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from test_merge_support import (
    SMALL,
    by_name,
    dense,
    make_modules,
    names,
    params,
    rel_err,
    truncated,
    write,
)

from difflora_gui.errors import BadFileError, UserError
from difflora_gui.jobs import RecordingContext, run_sync
from difflora_gui.lora.model import LoraModule
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.wan_layout import WanVariant
from difflora_gui.merge import analysis as an
from difflora_gui.merge.engine import analysis_paths, run_analysis, run_merge

ATTN = [n for n in names() if ".ffn." not in n]
FFN = [n for n in names() if ".ffn." in n]


def read_modules(path: Path) -> dict[str, LoraModule]:
    with open_lora(path) as f:
        return {n: f.load(n) for n in f.names()}


@pytest.fixture
def pair(tmp_path):
    """A: rank 16, alpha 1 (musubi's default scale 1/16), bf16 musubi file. B: rank 32, no alpha, fp16 comfy."""
    a = write(
        tmp_path / "concept a.safetensors",
        make_modules(1, rank=16, alpha=1.0),
        format="musubi",
        dtype="bfloat16",
    )
    b = write(
        tmp_path / "concept b.safetensors",
        make_modules(2, rank=32, alpha=None),
        format="comfy",
        dtype="float16",
    )
    return a, b


def test_merge_equals_dense_truncation_and_nullifies_the_rest(tmp_path, pair):
    a, b = pair
    result = run_merge(params(tmp_path, a, b, targets="attn", rank=4, save_dtype="float32"))
    assert (result.merged, result.nullified, result.excluded) == (24, 6, 0)
    ins_a, ins_b, out = read_modules(a), read_modules(b), read_modules(tmp_path / "out.safetensors")
    assert set(out) == set(names())
    for name in ATTN:
        expected = truncated(dense(ins_a[name]) - dense(ins_b[name]), 4)
        assert out[name].rank == 4
        assert rel_err(out[name].delta(torch.float64), expected) <= 1e-5, name
    for name in FFN:  # nullified: present, all zero
        assert out[name].rank == 4 and not out[name].up.any() and not out[name].down.any()
    assert result.ranks == {4: 24}


def test_exclude_non_targeted_leaves_them_out(tmp_path, pair):
    a, b = pair
    result = run_merge(params(tmp_path, a, b, targets="cross_attn blocks=1-2", exclude_non_targeted=True))
    out = read_modules(tmp_path / "out.safetensors")
    assert sorted(out) == sorted(n for n in names() if ".cross_attn." in n and not n.startswith("blocks.0."))
    assert (result.merged, result.nullified, result.excluded) == (8, 0, 22)


def test_output_scale_is_what_loaders_apply(tmp_path, pair):
    """alpha is stored as the rank: ComfyUI's strength·alpha/rank·up@down at strength 1 is ΔW_out."""
    from safetensors import safe_open

    a, b = pair
    ins_a, ins_b = read_modules(a), read_modules(b)
    for fmt in ("comfy", "musubi", "diffusers"):
        out_path = tmp_path / f"{fmt}.safetensors"
        run_merge(
            params(
                tmp_path,
                a,
                b,
                targets="attn",
                exclude_non_targeted=True,
                output=str(out_path),
                format=fmt,
                save_dtype="float32",
                alpha=-1.5,
            )
        )
        with safe_open(str(out_path), framework="pt") as f:
            keys = list(f.keys())
            if fmt == "comfy":
                key = "diffusion_model.blocks.1.self_attn.v"
                up, down, alpha = (
                    f.get_tensor(f"{key}.lora_up.weight"),
                    f.get_tensor(f"{key}.lora_down.weight"),
                    f.get_tensor(f"{key}.alpha"),
                )
            elif fmt == "musubi":
                key = "lora_unet_blocks_1_self_attn_v"
                up, down, alpha = (
                    f.get_tensor(f"{key}.lora_up.weight"),
                    f.get_tensor(f"{key}.lora_down.weight"),
                    f.get_tensor(f"{key}.alpha"),
                )
            else:
                key = "transformer.blocks.1.attn1.to_v"
                up, down, alpha = (
                    f.get_tensor(f"{key}.lora_B.weight"),
                    f.get_tensor(f"{key}.lora_A.weight"),
                    None,
                )
                assert not any(k.endswith(".alpha") for k in keys)
        applied = (up.double() @ down.double()) * (1.0 if alpha is None else float(alpha) / down.shape[0])
        expected = -1.5 * truncated(
            dense(ins_a["blocks.1.self_attn.v"]) - dense(ins_b["blocks.1.self_attn.v"]), 4
        )
        assert rel_err(applied, expected) <= 1e-5, fmt


def test_mixed_formats_give_the_same_result(tmp_path):
    mods_a, mods_b = make_modules(3, rank=8, alpha=None), make_modules(4, rank=8, alpha=8.0)
    same_a = write(tmp_path / "a_comfy.safetensors", mods_a, format="comfy")
    same_b = write(tmp_path / "b_comfy.safetensors", mods_b, format="comfy")
    mixed_a = write(tmp_path / "a_diffusers.safetensors", mods_a, format="diffusers")
    mixed_b = write(tmp_path / "b_musubi.safetensors", mods_b, format="musubi")
    run_merge(params(tmp_path, same_a, same_b, output=str(tmp_path / "same.safetensors")))
    run_merge(params(tmp_path, mixed_a, mixed_b, output=str(tmp_path / "mixed.safetensors")))
    same, mixed = read_modules(tmp_path / "same.safetensors"), read_modules(tmp_path / "mixed.safetensors")
    assert set(same) == set(mixed) == set(names())
    for name in names():
        assert torch.equal(same[name].up, mixed[name].up) and torch.equal(
            same[name].down, mixed[name].down
        ), name


def test_dynamic_ranks_follow_the_dense_spectrum(tmp_path):
    a = write(tmp_path / "a.safetensors", make_modules(5, rank=16, decay=0.8))
    b = write(tmp_path / "b.safetensors", make_modules(6, rank=16, decay=0.8))
    ins_a, ins_b = read_modules(a), read_modules(b)
    result = run_merge(
        params(tmp_path, a, b, rank=0, rank_mode="energy", energy=0.9, analyze=True, save_dtype="float32")
    )
    out = read_modules(tmp_path / "out.safetensors")
    ranks = set()
    for name in names():
        difference = dense(ins_a[name]) - dense(ins_b[name])
        s = torch.linalg.svdvals(difference)
        energy = torch.cumsum(s**2, 0) / (s**2).sum()
        expected_rank = int((energy < 0.9 * (1 - 1e-12)).sum()) + 1
        assert out[name].rank == expected_rank, name
        assert result.analysis.row(name).retained_energy >= 0.9
        assert rel_err(out[name].delta(torch.float64), truncated(difference, expected_rank)) <= 1e-5
        ranks.add(expected_rank)
    assert len(ranks) > 1  # really per module
    with open_lora(tmp_path / "out.safetensors") as f:
        assert f.metadata["ss_network_dim"] == "Dynamic"
    # --rank caps a dynamic mode
    run_merge(params(tmp_path, a, b, rank=2, rank_mode="sv_ratio", sv_ratio=1000, overwrite=True))
    assert {m.rank for m in read_modules(tmp_path / "out.safetensors").values()} == {2}


def test_rank_zero_is_the_exact_difference_with_the_right_scale(tmp_path, pair):
    a, b = pair
    run_merge(params(tmp_path, a, b, rank=0, save_dtype="float32"))
    ins_a, ins_b, out = read_modules(a), read_modules(b), read_modules(tmp_path / "out.safetensors")
    for name in names():
        assert out[name].rank == 48  # r_a + r_b
        assert rel_err(out[name].delta(torch.float64), dense(ins_a[name]) - dense(ins_b[name])) <= 1e-6


def test_analysis_numbers_equal_dense_computations(tmp_path, pair):
    a, b = pair
    result = run_merge(params(tmp_path, a, b, targets="attn", rank=4, analyze=True, alpha=2.0, weight_b=0.5))
    ins_a, ins_b = read_modules(a), read_modules(b)
    analysis = result.analysis
    assert [r.name for r in analysis.rows] == names()
    for row in analysis.rows:
        da, db = dense(ins_a[row.name]), dense(ins_b[row.name])
        diff = 2.0 * (da - 0.5 * db)
        assert math.isclose(row.norm_a, float(da.norm()), rel_tol=1e-9)
        assert math.isclose(row.norm_b, float(db.norm()), rel_tol=1e-9)
        assert math.isclose(row.norm_diff, float(diff.norm()), rel_tol=1e-9)
        assert math.isclose(
            row.cosine, float((da * db).sum() / (da.norm() * db.norm())), rel_tol=1e-6, abs_tol=1e-9
        )
        expected_cancel = float((da - 0.5 * db).norm() / (da.norm() + 0.5 * db.norm()))
        assert math.isclose(row.cancellation, expected_cancel, rel_tol=1e-9)
        s = torch.linalg.svdvals(diff)
        assert len(row.singular_values) == 48
        assert torch.allclose(
            torch.tensor(row.singular_values, dtype=torch.float64),
            s[:48],
            rtol=1e-8,
            atol=1e-10 * float(s[0]),
        )
        if row.status == an.MERGED:
            assert row.rank == 4
            assert math.isclose(row.retained_energy, float((s[:4] ** 2).sum() / (s**2).sum()), rel_tol=1e-8)
            assert math.isclose(row.norm_out, float(s[:4].norm()), rel_tol=1e-8)
        else:
            assert (row.status, row.reason, row.norm_out) == (an.NULLIFIED, an.NOT_TARGETED, 0.0)
    # block × group aggregates are the norms of the concatenated modules
    group = next(g for g in analysis.groups if g.block == 1 and g.group == "self_attn")
    members = [n for n in names() if n.startswith("blocks.1.self_attn.")]
    cat_a = torch.cat([dense(ins_a[n]).flatten() for n in members])
    cat_b = torch.cat([dense(ins_b[n]).flatten() for n in members])
    assert math.isclose(group.norm_a, float(cat_a.norm()), rel_tol=1e-9)
    assert math.isclose(
        group.cosine, float(cat_a @ cat_b / (cat_a.norm() * cat_b.norm())), rel_tol=1e-6, abs_tol=1e-9
    )
    assert group.modules == 4 and group.merged == 4 and group.mean_rank == 4
    # most distinct = largest difference
    top = analysis.most_distinct(3)
    assert top[0].norm_diff == max(r.norm_diff for r in analysis.rows)
    # files beside the output
    json_path, csv_path = analysis_paths(tmp_path / "out.safetensors")
    assert result.analysis_files == [str(json_path), str(csv_path)]
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(data["modules"]) == 30 and data["groups"] and data["most_distinct"][0] == top[0].name
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 and math.isclose(float(rows[0]["norm_a"]), analysis.rows[0].norm_a, rel_tol=1e-6)
    assert "block" in analysis.table() and "most distinct" in analysis.table()


def test_run_analysis_writes_nothing(tmp_path, pair):
    a, b = pair
    before = sorted(p.name for p in tmp_path.iterdir())
    analysis = run_analysis(params(tmp_path, a, b, targets="attn"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert len(analysis.rows) == 30 and analysis.row("blocks.0.self_attn.q").status == an.MERGED
    assert (
        an.AnalysisResult.from_json(json.loads(json.dumps(analysis.to_json()))).row("blocks.0.ffn.0").status
        == an.NULLIFIED
    )


def test_keep_analysis_returns_the_analysis_without_writing_it(tmp_path, pair):
    a, b = pair
    (tmp_path / "plain").mkdir()
    (tmp_path / "kept").mkdir()
    plain = run_merge(params(tmp_path / "plain", a, b, targets="attn"))
    kept = run_merge(params(tmp_path / "kept", a, b, targets="attn"), keep_analysis=True)
    assert plain.analysis is None and kept.analysis is not None
    assert kept.analysis.row("blocks.0.ffn.0").status == an.NULLIFIED
    assert kept.analysis_files == [] and not list(tmp_path.rglob("*.analysis.*"))
    assert (tmp_path / "plain" / "out.safetensors").read_bytes() == (
        tmp_path / "kept" / "out.safetensors"
    ).read_bytes()


def test_concept_recovery(tmp_path):
    """A = shared + concept, B = shared + independent noise: the output is the concept."""
    gen = torch.Generator().manual_seed(11)
    mods_a, mods_b, concepts = [], [], {}
    for name in names():
        out_dim, in_dim = SMALL.shape(name)
        shared_up, shared_down = (
            torch.randn(out_dim, 12, generator=gen),
            torch.randn(12, in_dim, generator=gen),
        )
        concept_up, concept_down = (
            torch.randn(out_dim, 4, generator=gen) * 0.3,
            torch.randn(4, in_dim, generator=gen) * 0.3,
        )
        noise_up, noise_down = (
            torch.randn(out_dim, 4, generator=gen) * 0.02,
            torch.randn(4, in_dim, generator=gen) * 0.02,
        )
        mods_a.append(
            LoraModule(
                name,
                up=torch.cat([shared_up, concept_up], 1),
                down=torch.cat([shared_down, concept_down]),
                alpha=16.0,
            )
        )
        mods_b.append(
            LoraModule(
                name,
                up=torch.cat([shared_up, noise_up], 1),
                down=torch.cat([shared_down, noise_down]),
                alpha=16.0,
            )
        )
        concepts[name] = concept_up.double() @ concept_down.double()
    a = write(tmp_path / "a.safetensors", mods_a)
    b = write(tmp_path / "b.safetensors", mods_b)
    result = run_merge(params(tmp_path, a, b, rank=4, analyze=True))
    out = read_modules(tmp_path / "out.safetensors")
    for name in names():
        got = out[name].delta(torch.float64)
        cosine = float((got * concepts[name]).sum() / (got.norm() * concepts[name].norm()))
        assert cosine >= 0.999, (name, cosine)
        # the shared part cancels: A and B are nearly the same, the difference is small
        assert result.analysis.row(name).cancellation < 0.2


def test_modules_in_one_input_count_as_zero_in_the_other(tmp_path):
    mods_a = make_modules(7, rank=8)
    mods_b = [m for m in make_modules(8, rank=8) if not m.name.startswith("blocks.2.")]
    a, b = write(tmp_path / "a.safetensors", mods_a), write(tmp_path / "b.safetensors", mods_b)
    ctx = RecordingContext()
    outcome = run_sync(run_merge, params(tmp_path, a, b, rank=8, save_dtype="float32"), ctx)
    assert outcome.status == "done", outcome.traceback
    assert outcome.result.only_in_a == [n for n in names() if n.startswith("blocks.2.")]
    assert any("only in A" in line and "blocks.2.self_attn.q" in line for line in ctx.logs)
    out = read_modules(tmp_path / "out.safetensors")
    assert (
        rel_err(out["blocks.2.ffn.0"].delta(torch.float64), dense(by_name(mods_a)["blocks.2.ffn.0"])) <= 1e-6
    )


def test_shape_mismatch_names_both_files_and_the_module(tmp_path):
    other = WanVariant("other", num_blocks=3, dim=64, ffn_dim=160, num_heads=2, text_dim=32, image_dim=48)
    a = write(tmp_path / "small.safetensors", make_modules(1, rank=4))
    b = write(tmp_path / "other.safetensors", make_modules(2, rank=4, variant=other))
    with pytest.raises(UserError) as info:
        run_merge(params(tmp_path, a, b))
    message = str(info.value)
    assert (
        "small.safetensors" in message
        and "other.safetensors" in message
        and "blocks.0.self_attn.q" in message
    )
    assert not (tmp_path / "out.safetensors").exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rerun_of_a_recipe_is_bit_exact(tmp_path, pair):
    a, b = pair
    first = run_merge(
        params(
            tmp_path,
            a,
            b,
            created=None,
            targets="attn",
            output=str(tmp_path / "one.safetensors"),
            analyze=True,
        )
    )
    assert first.recipe["created"]  # recorded for the re-run
    before = _sha(tmp_path / "one.safetensors")
    run_merge(dict(first.recipe, overwrite=True))  # the project file's recipe, run again
    assert _sha(tmp_path / "one.safetensors") == before
    for strategy in ("randomized_svd", "full_svd"):
        outs = []
        for _ in range(2):
            out = tmp_path / f"{strategy}.safetensors"
            run_merge(params(tmp_path, a, b, strategy=strategy, output=str(out), overwrite=True))
            outs.append(_sha(out))
        assert outs[0] == outs[1], strategy
    with open_lora(tmp_path / "one.safetensors") as f:
        meta = f.metadata
    assert meta["difflora.created"] == first.recipe["created"]
    stored = json.loads(meta["difflora.params"])
    assert stored["lora_a"] == "concept a.safetensors"  # file names only: no user paths in a shared file
    assert json.loads(meta["difflora.inputs"])[0]["sha256"] == _sha(a)


def test_cancelled_merge_writes_nothing(tmp_path, pair):
    a, b = pair
    ctx = RecordingContext(cancel_after_progress=3, progress_interval_s=0)
    outcome = run_sync(run_merge, params(tmp_path, a, b, analyze=True), ctx)
    assert outcome.status == "cancelled"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["concept a.safetensors", "concept b.safetensors"]


def test_auto_alpha_reaches_the_target_norm(tmp_path, pair):
    a, b = pair
    ins_a = read_modules(a)
    result = run_merge(
        params(
            tmp_path,
            a,
            b,
            targets="attn",
            exclude_non_targeted=True,
            auto_alpha=True,
            target_norm="a",
            save_dtype="float32",
        )
    )
    out = read_modules(tmp_path / "out.safetensors")
    mean_out = sum(float(m.delta(torch.float64).norm()) for m in out.values()) / len(out)
    mean_a = sum(float(dense(ins_a[n]).norm()) for n in out) / len(out)
    assert math.isclose(mean_out, mean_a, rel_tol=1e-5)
    assert result.alpha > 0
    result = run_merge(
        params(
            tmp_path,
            a,
            b,
            targets="attn",
            auto_alpha=True,
            target_norm="2.5",
            overwrite=True,
            save_dtype="float32",
        )
    )
    out = read_modules(tmp_path / "out.safetensors")
    merged = [m for n, m in out.items() if n in ATTN]
    assert math.isclose(
        sum(float(m.delta(torch.float64).norm()) for m in merged) / len(merged), 2.5, rel_tol=1e-5
    )
    with open_lora(tmp_path / "out.safetensors") as f:
        assert math.isclose(float(f.metadata["difflora.alpha"]), result.alpha)


def test_dense_inputs_take_the_dense_path(tmp_path):
    mods_a = make_modules(9, rank=8, only=ATTN[:2])
    gen = torch.Generator().manual_seed(1)
    full = torch.randn(96, 96, generator=gen, dtype=torch.float64) * 0.01
    mods_a[0] = LoraModule(mods_a[0].name, dense=full.float(), kind="diff")
    mods_b = make_modules(10, rank=8, only=ATTN[:2])
    a, b = write(tmp_path / "a.safetensors", mods_a), write(tmp_path / "b.safetensors", mods_b)
    expected = truncated(full.float().double() - dense(mods_b[0]), 4)
    for strategy, tolerance in (("full_svd", 1e-5), ("randomized_svd", 0.5)):
        out_path = tmp_path / f"{strategy}.safetensors"
        result = run_merge(
            params(
                tmp_path, a, b, strategy=strategy, output=str(out_path), save_dtype="float32", analyze=True
            )
        )
        got = read_modules(out_path)[mods_a[0].name].delta(torch.float64)
        assert rel_err(got, expected) <= tolerance, strategy
        row = result.analysis.row(mods_a[0].name)
        assert row.sv_exact == (strategy == "full_svd")
        # the residual is measured, also for the approximation: close to the optimum on a flat spectrum
        optimum = math.sqrt(1 - row.retained_energy) if strategy == "full_svd" else None
        if optimum is not None:
            assert math.isclose(row.residual, optimum, rel_tol=1e-6)
        else:
            assert row.residual >= result.analysis.row(mods_a[0].name).residual * 0.999


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA (see test_merge_cuda.py)")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, pair):
    a, b = pair
    for device in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match="CUDA"):
            run_merge(params(tmp_path, a, b, device=device))
    assert not (tmp_path / "out.safetensors").exists()


def test_bad_recipe_values_are_user_errors(tmp_path, pair):
    a, b = pair
    for bad in (
        dict(rank=-1),
        dict(rank_mode="nope"),
        dict(energy=2.0),
        dict(dtype="float16"),
        dict(device="tpu"),
        dict(format="ckpt"),
        dict(target_norm="c"),
        dict(alpha=float("nan")),
        dict(targets="bogus_group"),
        dict(strategy="no_such_strategy"),
        dict(output=str(tmp_path / "out.ckpt")),
    ):
        with pytest.raises(UserError):
            run_merge(params(tmp_path, a, b, **bad))
    with pytest.raises(UserError, match="already exists"):
        (tmp_path / "exists.safetensors").write_bytes(b"keep me")
        run_merge(params(tmp_path, a, b, output=str(tmp_path / "exists.safetensors")))
    assert (tmp_path / "exists.safetensors").read_bytes() == b"keep me"
    with pytest.raises(UserError, match="input"):
        run_merge(params(tmp_path, a, b, output=str(a), overwrite=True))


def test_every_bad_input_of_the_corpus_fails_cleanly_with_nothing_written(tmp_path):
    """The LoRA-files issue's bad-input corpus, as LoRA A and as LoRA B of a merge."""
    from test_lora_bad_inputs import CORPUS

    from difflora_gui.lora.synthetic import make_wan_lora

    good = tmp_path / "good.safetensors"
    make_wan_lora("tiny", rank=2, alpha=1.0, seed=3, path=good)
    for make in CORPUS:
        folder = tmp_path / make.__name__
        folder.mkdir()
        bad = make(folder)
        for lora_a, lora_b in ((bad, good), (good, bad)):
            out = folder / "out.safetensors"
            with pytest.raises(UserError) as info:
                run_merge(params(folder, lora_a, lora_b, analyze=True))
            message = str(info.value)
            assert bad.name in message and "\n" not in message, (make.__name__, message)
            assert sorted(p.name for p in folder.iterdir()) == [bad.name], make.__name__
            assert not out.exists()
    # NaN/Inf found by the merge's own Gram check (the reader's value pass is skipped) name the module
    mods = make_modules(3, rank=4)
    mods[8].up[2, 1] = float("nan")  # blocks.0.ffn.0
    nan_file = tmp_path / "nan.safetensors"
    from safetensors.torch import save_file

    from difflora_gui.lora.writer import to_state_dict

    save_file(to_state_dict(mods), str(nan_file))
    good_small = write(tmp_path / "good small.safetensors", make_modules(4, rank=4))
    with pytest.raises(BadFileError, match="nan.safetensors: module blocks.0.ffn.0"):
        run_merge(params(tmp_path, good_small, nan_file))
    with pytest.raises(UserError, match="missing.safetensors"):
        run_merge(params(tmp_path, good_small, tmp_path / "missing.safetensors"))
    assert not (tmp_path / "out.safetensors").exists()
