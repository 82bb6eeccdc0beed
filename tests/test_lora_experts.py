"""Wan2.2 A14B experts, file layer: names, metadata, the three layouts, combo files, inspect and convert."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from difflora_gui.errors import BadFileError
from difflora_gui.lora import experts as ex
from difflora_gui.lora.inspect import delta_norm, summarize
from difflora_gui.lora.model import ModelInfo
from difflora_gui.lora.reader import open_lora
from difflora_gui.lora.synthetic import combo_state_dict, make_wan_combo, make_wan_lora, make_wan_split
from difflora_gui.lora.writer import build_metadata, save_safetensors

ROOT = Path(__file__).resolve().parents[1]
#: 14B-shaped but small: rank 2 on the attention of two blocks (16 modules of 5120×5120)
SMALL_14B = {"rank": 2, "select": "attn blocks=0-1", "alpha": 1.0}
#: where dense ΔW are compared: the tiny Wan-like layout (no released size, so it may be an expert)
VARIANT = "tiny"


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expert", "shown"),
    [
        ("my_lora_high_noise.safetensors", "high", "…_high_noise"),
        ("my_lora_low_noise.safetensors", "low", "…_low_noise"),
        ("style_high.safetensors", "high", "…_high"),
        ("style_LOW.safetensors", "low", "…_LOW"),
        ("wan22-high.v2.safetensors", "high", "…-high…"),
        ("HIGH_style.safetensors", "high", "HIGH…"),
        ("StyleHighNoise.safetensors", "high", "…HighNoise"),
        ("WanLowNoise_e10.safetensors", "low", "…LowNoise…"),
        ("wan2.2_t2v_high_noise_14B_fp16.safetensors", "high", "…_high_noise…"),
    ],
)
def test_expert_from_name_tokens(name, expert, shown):
    assert ex.expert_from_name(name) == expert
    match = ex.find_expert_in_name(name)
    assert match is not None and match.shown == shown


@pytest.mark.parametrize(
    "name",
    [
        "highlight.safetensors",  # a word containing "high" is no token
        "slowmo_lora.safetensors",
        "low_res_style.safetensors",  # "low" describing something else
        "high_quality.safetensors",
        "high_to_low.safetensors",  # both experts named: the name does not say
        "wan21_t2v_style.safetensors",
        "Highlands.safetensors",
    ],
)
def test_words_that_are_not_expert_tokens(name):
    assert ex.expert_from_name(name) is None


def test_output_and_partner_names(tmp_path):
    assert ex.expert_suffix("high") == "_high_noise" and ex.expert_suffix("low") == "_low_noise"
    out = tmp_path / "delta.safetensors"
    assert ex.expert_output_path(out, "high") == tmp_path / "delta_high_noise.safetensors"
    assert ex.expert_output_path(out, "low") == tmp_path / "delta_low_noise.safetensors"
    # a name that already says the expert is kept (and the other expert's suffix replaced)
    assert (
        ex.expert_output_path(tmp_path / "d_high_noise.safetensors", "high").name
        == "d_high_noise.safetensors"
    )
    assert (
        ex.expert_output_path(tmp_path / "d_high_noise.safetensors", "low").name == "d_low_noise.safetensors"
    )
    with pytest.raises(ValueError):
        ex.expert_suffix("both")

    high, low, upper = (
        tmp_path / n for n in ("a_high_noise.safetensors", "a_low_noise.safetensors", "b_HIGH.safetensors")
    )
    assert ex.partner_path(high) is None  # the other file does not exist
    low.write_bytes(b"x")
    assert ex.partner_path(high) == low
    high.write_bytes(b"x")
    assert ex.partner_path(low) == high
    assert ex.partner_name(upper) == tmp_path / "b_LOW.safetensors"
    assert ex.partner_name(tmp_path / "MyHighNoise.safetensors").name == "MyLowNoise.safetensors"
    assert ex.partner_path(tmp_path / "plain.safetensors") is None


def test_expert_role_dataclass():
    assert ex.ExpertRole("high", "name").experts == ("high",)
    assert ex.ExpertRole("both").experts == ("high", "low")
    assert ex.ExpertRole("combo", "prefix").experts == ("high", "low")
    assert ex.EXPERT_TITLES == {"high": "high-noise expert", "low": "low-noise expert"}
    assert ex.EXPERTS == ("high", "low")


# --- metadata ------------------------------------------------------------------------------------


def test_expert_from_metadata():
    assert ex.expert_from_metadata({}) is None
    assert ex.expert_from_metadata({"difflora_expert": "low"})[0] == "low"
    assert ex.expert_from_metadata(build_metadata(expert="high"))[0] == "high"
    expert, detail = ex.expert_from_metadata(
        {"ss_sd_model_name": "wan2.2_t2v_low_noise_14B_fp16.safetensors"}
    )
    assert expert == "low" and "Musubi" in detail and "low-noise DiT" in detail
    expert, detail = ex.expert_from_metadata(
        {"ss_sd_model_name": "C:\\models\\wan2.2_i2v_high_noise_14B.safetensors"}
    )
    assert expert == "high" and "Musubi" not in detail
    assert ex.expert_from_metadata({"ss_sd_model_name": "wan2.1_t2v_14B_bf16.safetensors"}) is None
    with pytest.raises(ValueError):
        build_metadata(expert="both")


def test_metadata_names_the_expert_of_a_plain_named_file(tmp_path):
    path = tmp_path / "style.safetensors"
    make_wan_lora(
        "14B", path=path, metadata={"ss_sd_model_name": "wan2.2_t2v_high_noise_14B.safetensors"}, **SMALL_14B
    )
    with open_lora(path) as lora:
        assert lora.expert_role.role == "high" and lora.expert_role.source == "metadata"
        assert lora.model.label == "Wan2.2 A14B high-noise expert" and lora.model.expert == "high"


def test_a_musubi_joint_run_is_for_both_experts(tmp_path):
    """Musubi's joint mode names the low-noise DiT as ss_sd_model_name and the high-noise one beside it."""
    joint = {
        "ss_sd_model_name": "wan2.2_t2v_low_noise_14B_fp16.safetensors",
        "ss_dit_high_noise_name": "wan2.2_t2v_high_noise_14B_fp16.safetensors",
    }
    assert ex.expert_from_metadata(joint) is None
    path = tmp_path / "style.safetensors"
    make_wan_lora("14B", path=path, metadata=joint, **SMALL_14B)
    with open_lora(path) as lora:
        role = lora.expert_role
        assert (role.role, role.source) == ("both", "metadata") and "joint" in role.detail
        assert role.experts == ("high", "low")


def test_name_wins_over_metadata_and_says_so(tmp_path):
    path = tmp_path / "style_low_noise.safetensors"
    make_wan_lora("14B", path=path, metadata=build_metadata(expert="high"), **SMALL_14B)
    with open_lora(path) as lora:
        role = lora.expert_role
        assert (role.role, role.source) == ("low", "name")
        assert "'…_low_noise'" in role.detail and "metadata says high-noise expert" in role.detail
        assert "file name wins" in role.detail


def test_no_expert_named_is_both(tmp_path):
    path = tmp_path / "style.safetensors"
    make_wan_lora("14B", path=path, **SMALL_14B)
    with open_lora(path) as lora:
        assert lora.expert_role.role == "both" and lora.expert_role.source == "none"
        assert lora.experts_in_file == () and lora.part("high") is lora and lora.part("low") is lora
        assert lora.model.expert is None and lora.model.label == "Wan 14B T2V (2.1, or 2.2 A14B)"
        assert "cannot tell" in lora.model.description and "Wan2.2 A14B T2V/I2V" in lora.model.description
    with pytest.raises(ValueError):
        open_lora(path).part("middle")


@pytest.mark.parametrize(("variant", "title"), [("1.3B", "Wan 1.3B"), ("5B", "Wan2.2 TI2V-5B")])
def test_an_expert_token_is_ignored_for_models_without_experts(tmp_path, variant, title):
    path = tmp_path / "style_high_noise.safetensors"
    make_wan_lora(variant, rank=1, select="attn blocks=0", path=path)
    with open_lora(path) as lora:
        role = lora.expert_role
        assert role.role == "both" and role.source == "none"
        assert "'…_high_noise'" in role.detail and title in role.detail and "only Wan2.2 A14B" in role.detail
        assert lora.model.expert is None


def test_wan21_i2v_files_are_not_experts(tmp_path):
    path = tmp_path / "style_high.safetensors"
    make_wan_lora("14B", task="i2v", rank=1, select="cross_attn blocks=0", path=path)
    with open_lora(path) as lora:
        assert lora.model.task == "i2v" and lora.model.label == "Wan2.1 I2V 14B"
        assert "k_img/v_img" in lora.model.description and "Wan2.2 I2V has none" in lora.model.description
        assert lora.expert_role.role == "both" and "ignored" in lora.expert_role.detail


# --- identification ------------------------------------------------------------------------------


def test_ti2v_5b_identified(tmp_path):
    path = tmp_path / "ti2v.safetensors"
    make_wan_lora("5B", rank=1, select="blocks=0,29", path=path)
    with open_lora(path) as lora:
        model = lora.model
        assert (model.variant, model.task, model.dim, model.num_blocks, model.ffn_dim) == (
            "5B",
            "ti2v",
            3072,
            30,
            14336,
        )
        assert model.label == "Wan2.2 TI2V-5B"


def test_labels_stay_short():
    labels = [
        ModelInfo("wan", v, t, 40, 5120, None, e).label
        for v in ("1.3B", "14B", "5B")
        for t in ("t2v", "i2v")
        for e in (None, "high", "low", "combo")
    ]
    assert max(len(label) for label in labels) <= 32
    assert ModelInfo("wan", "14B", "t2v", 40, 5120, None, "low").label == "Wan2.2 A14B low-noise expert"
    assert ModelInfo("wan", "1.3B", "t2v", 30, 1536).label == "Wan 1.3B T2V"


# --- the three layouts ---------------------------------------------------------------------------


def _same_modules(source, modules, *, exact: bool = True, dense: bool = True) -> None:
    """``source`` holds ``modules``: same names and ΔW (bit for bit when ``exact``; also factors and alpha).

    ``dense=False`` (14B-sized modules): equal factors and scale, which make ΔW equal, without forming it.
    """
    assert source.names() == [m.name for m in modules]
    for expected in modules:
        got = source.load(expected.name)
        if exact:
            assert torch.equal(got.down, expected.down) and torch.equal(got.up, expected.up)
            assert got.alpha == expected.alpha and got.scale == expected.scale
            assert not dense or torch.equal(got.delta(), expected.delta())
        else:  # diffusers has no alpha: the scale is folded into the factors when written
            assert torch.allclose(got.delta(), expected.delta(), rtol=1e-5, atol=1e-7)


def _same_files(one, other) -> None:
    """Two sources read to the same modules, bit for bit."""
    assert one.names() == other.names()
    for name in one.names():
        a, b = one.load(name), other.load(name)
        assert torch.equal(a.down, b.down) and torch.equal(a.up, b.up)
        assert (a.alpha, a.scale) == (b.alpha, b.scale)
        assert torch.equal(a.delta(), b.delta())


@pytest.mark.parametrize(
    ("fmt", "bare"), [("comfy", False), ("comfy", True), ("musubi", False), ("diffusers", False)]
)
def test_three_layouts_read_to_the_same_per_expert_modules(tmp_path, fmt, bare):
    options = {"rank": 3, "alpha": 2.0}
    combo_path = tmp_path / "combo.safetensors"
    combo = make_wan_combo(VARIANT, path=combo_path, seed=7, format=fmt, bare=bare, **options)
    split = make_wan_split(VARIANT, stem=tmp_path / "split", seed=7, format=fmt, **options)
    assert combo["high"][0].delta().ne(combo["low"][0].delta()).any()  # the experts differ
    with open_lora(combo_path) as lora:
        assert lora.expert_role.role == "combo" and lora.expert_role.source == "prefix"
        assert lora.experts_in_file == ("high", "low")
        for expert in ex.EXPERTS:
            part = lora.part(expert)
            path, modules = split[expert]
            with open_lora(path) as single:
                assert single.expert_role.role == expert and single.expert_role.source == "name"
                assert single.model == part.model
                _same_files(single, part)
                _same_modules(single, modules, exact=fmt != "diffusers")
            assert part.model.expert == expert and part.expert_role.source == "prefix"
            assert part.format == single.format and part.part(expert) is part
            assert part.part(ex.other_expert(expert)) is lora.part(ex.other_expert(expert))
            assert lora.part(expert).path == combo_path
    # a joint file (one LoRA for both experts) is used as it is for each expert
    joint = tmp_path / "joint.safetensors"
    modules = make_wan_lora(VARIANT, seed=7, path=joint, format=fmt, **options)
    with open_lora(joint) as lora:
        assert lora.expert_role.role == "both"
        for expert in ex.EXPERTS:
            _same_modules(lora.part(expert), modules, exact=fmt != "diffusers")


def test_a_combo_file_with_both_experts_equal_matches_the_joint_file(tmp_path):
    modules = make_wan_lora(VARIANT, seed=3, alpha=1.0)
    path = tmp_path / "same.safetensors"
    save_safetensors(path, combo_state_dict(modules, modules), {})
    with open_lora(path) as lora:
        for expert in ex.EXPERTS:
            _same_modules(lora.part(expert), modules)


def test_combo_file_refuses_whole_file_reads(tmp_path):
    path = tmp_path / "combo.safetensors"
    make_wan_combo("14B", path=path, **SMALL_14B)
    with open_lora(path) as lora:
        for call in (lora.names, lambda: lora.load("blocks.0.self_attn.q"), lambda: list(lora)):
            with pytest.raises(
                BadFileError, match=r"holds both Wan2\.2 A14B experts.*part\('high'\)"
            ) as info:
                call()
            assert str(path) in str(info.value)
        assert len(lora) == 32 and lora.model.label == "Wan2.2 A14B, both experts"
        assert "transformer_1" in lora.format_detail and "transformer_2" in lora.format_detail


def test_combo_parts_load_from_threads(tmp_path):
    path = tmp_path / "combo.safetensors"
    experts = make_wan_combo(VARIANT, path=path, seed=11, rank=3)
    failures: list[str] = []
    with open_lora(path) as lora:
        assert lora.part("high").thread_safe_loads and lora.part("low").thread_safe_loads

        def work(expert: str, modules) -> None:
            part = lora.part(expert)
            for _ in range(3):
                for expected in modules:
                    if not torch.equal(part.load(expected.name).delta(), expected.delta()):
                        failures.append(f"{expert} {expected.name}")

        threads = [threading.Thread(target=work, args=(e, experts[e])) for e in ex.EXPERTS for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_combo_experts_of_different_models_are_refused(tmp_path):
    high = make_wan_lora("14B", **SMALL_14B)
    low = make_wan_lora("1.3B", rank=2, select="attn blocks=0-1")
    path = tmp_path / "mixed.safetensors"
    save_safetensors(path, combo_state_dict(high, low), {})
    with pytest.raises(BadFileError, match="high-noise expert .* but its low-noise expert") as info:
        open_lora(path)
    assert str(path) in str(info.value)


def test_combo_prefixes_on_a_model_without_experts_are_refused(tmp_path):
    modules = make_wan_lora("1.3B", rank=2, select="attn blocks=0")
    path = tmp_path / "small.safetensors"
    save_safetensors(path, combo_state_dict(modules, modules), {})
    with pytest.raises(BadFileError, match="only Wan2.2 A14B"):
        open_lora(path)


def test_mixed_prefixed_and_plain_keys_are_refused(tmp_path):
    modules = make_wan_lora("14B", **SMALL_14B)
    tensors = combo_state_dict(modules[:4], modules[:4])
    from difflora_gui.lora.writer import to_state_dict

    tensors.update(to_state_dict(modules[4:]))
    path = tmp_path / "mixed.safetensors"
    save_safetensors(path, tensors, {})
    with pytest.raises(BadFileError, match="mixes keys with a per-expert prefix"):
        open_lora(path)


def test_a_file_with_one_expert_prefix_is_that_expert(tmp_path):
    modules = make_wan_lora("14B", **SMALL_14B)
    tensors = {k: v for k, v in combo_state_dict(modules, modules).items() if ".transformer_2." in k}
    path = tmp_path / "only_high_named.safetensors"  # the name disagrees: the key prefix wins
    save_safetensors(path, tensors, {})
    with open_lora(path) as lora:
        role = lora.expert_role
        assert (role.role, role.source) == ("low", "prefix") and "the keys win" in role.detail
        assert lora.experts_in_file == () and lora.part("high") is lora
        _same_modules(lora, modules, dense=False)


def test_the_tiny_layout_can_be_an_expert(tmp_path):
    """Wan-like layouts of no released size keep the name's expert (tests and other helpers use them)."""
    path = tmp_path / "tiny_high_noise.safetensors"
    make_wan_lora("tiny", path=path)
    with open_lora(path) as lora:
        assert lora.model.variant == "unknown" and lora.expert_role.role == "high"
    combo = tmp_path / "tiny_combo.safetensors"
    make_wan_combo("tiny", path=combo)
    with open_lora(combo) as lora:
        assert lora.experts_in_file == ("high", "low")


# --- inspect and convert -------------------------------------------------------------------------


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, cwd=ROOT, **kwargs
    )


def test_inspect_shows_the_expert_and_its_source(tmp_path):
    path = tmp_path / "style_high_noise.safetensors"
    make_wan_lora("14B", path=path, **SMALL_14B)
    summary = summarize(path)
    assert summary.expert_role.role == "high" and summary.experts_in_file == ()
    rows = dict(summary.card())
    assert rows["expert"] == "high-noise expert (from the file name '…_high_noise')"
    assert rows["model"].startswith("Wan2.2 A14B high-noise expert")
    data = _cli("inspect", str(path), "--json")
    assert data.returncode == 0, data.stderr
    payload = json.loads(data.stdout)
    assert payload["expert_role"]["role"] == "high" and payload["expert_role"]["source"] == "name"
    assert payload["experts_in_file"] == [] and payload["model"]["expert"] == "high"


def test_inspect_a_combo_file_per_expert(tmp_path):
    path = tmp_path / "combo.safetensors"
    experts = make_wan_combo("14B", path=path, **SMALL_14B)
    seen: list[tuple[int, int]] = []
    summary = summarize(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (32, 32) and len(seen) == 32  # both experts' modules, counted once each
    assert summary.experts_in_file == ("high", "low") and summary.expert_role.role == "combo"
    assert set(summary.parts) == {"high", "low"} and summary.part("low") is summary.parts["low"]
    assert [m.name for m in summary.modules] == [m.name for m in experts["high"]]
    for expert in ex.EXPERTS:
        part = summary.part(expert)
        assert part.expert == expert and part.model.expert == expert and part.num_tensors == 48
        expected = {m.name: delta_norm(m) for m in experts[expert]}  # ‖ΔW‖ from the factors, in float64
        assert {m.name: m.norm for m in part.modules} == pytest.approx(expected, rel=1e-9)
    assert summary.part("high").modules[0].norm != summary.part("low").modules[0].norm
    text = _cli("inspect", str(path))
    assert text.returncode == 0, text.stderr
    assert "both experts in one combo file" in text.stdout
    assert "high modules" in text.stdout and "low modules" in text.stdout
    payload = json.loads(_cli("inspect", str(path), "--json").stdout)
    assert payload["experts_in_file"] == ["high", "low"]
    assert payload["parts"]["low"]["expert_role"]["source"] == "prefix"
    assert payload["parts"]["high"]["num_modules"] == 16


def test_inspect_into_a_pipe_that_closes_early_is_quiet(tmp_path):
    path = tmp_path / "combo.safetensors"
    make_wan_combo("14B", path=path, **SMALL_14B)
    for extra in ((), ("--json",), ("--modules",)):
        inspect = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "inspect", str(path), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        head = subprocess.run(["head", "-1"], stdin=inspect.stdout, capture_output=True, text=True)
        inspect.stdout.close()  # only head holds the pipe's read end now
        stderr = inspect.stderr.read().decode()
        inspect.stderr.close()
        assert inspect.wait() == 0
        assert stderr == ""
        assert head.stdout.strip()


def test_convert_a_combo_file_writes_the_two_expert_files(tmp_path):
    path = tmp_path / "combo.safetensors"
    experts = make_wan_combo("14B", path=path, seed=5, **SMALL_14B)
    out = tmp_path / "converted.safetensors"
    done = _cli("convert", str(path), str(out), "--format", "comfy")
    assert done.returncode == 0, done.stderr
    assert not out.exists()
    for expert in ex.EXPERTS:
        written = ex.expert_output_path(out, expert)
        assert str(written) in done.stdout
        with open_lora(written) as lora:
            assert lora.metadata["difflora_expert"] == expert
            assert lora.expert_role.role == expert and lora.expert_role.source == "name"
            _same_modules(lora, experts[expert], dense=False)
    again = _cli("convert", str(path), str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "_high_noise" in _cli("convert", "--help").stdout
