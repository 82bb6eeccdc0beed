"""``python main.py merge``: the model card's command, flags, shortcuts, the recipe ↔ argv round trip."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from test_merge_support import make_modules, write

from difflora_gui.cli import build_parser
from difflora_gui.commands.merge_cmd import params_from_args
from difflora_gui.errors import UserError
from difflora_gui.lora.reader import open_lora
from difflora_gui.merge.params import MergeParams
from tests.app_process import run_main


def run_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_main(*args, cwd=cwd)


@pytest.fixture
def inputs(tmp_path):
    write(
        tmp_path / "animedenser_pos_wan14b.safetensors",
        make_modules(1, rank=16, alpha=1.0),
        format="musubi",
        dtype="bfloat16",
    )
    write(
        tmp_path / "animedenser_neg_wan14b.safetensors",
        make_modules(2, rank=16, alpha=1.0),
        format="musubi",
        dtype="bfloat16",
    )
    return tmp_path


MODEL_CARD = [
    "merge",
    "--lora_a",
    "animedenser_pos_wan14b.safetensors",
    "--lora_b",
    "animedenser_neg_wan14b.safetensors",
    "--target_blocks",
    "attn",
    "--output",
    "animedenser_v01rc.safetensors",
    "--rank",
    "4",
    "--dtype",
    "float32",
    "--alpha",
    "1.0",
    "--device",
    "cuda",
    "--analyze_blocks",
    "--exclude_non_targeted",
]


def test_model_card_command_verbatim(inputs):
    """With a CUDA GPU it merges there; without one it is a one-line error and writes nothing."""
    import torch

    done = run_cli(*MODEL_CARD, cwd=inputs)
    if torch.cuda.is_available():
        assert done.returncode == 0, done.stderr
        assert (inputs / "animedenser_v01rc.safetensors").is_file()
        return
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CUDA" in lines[0]
    assert not (inputs / "animedenser_v01rc.safetensors").exists()


def test_model_card_command_runs(inputs):
    args = [a if a != "cuda" else "cpu" for a in MODEL_CARD]
    done = run_cli(*args, cwd=inputs)
    assert done.returncode == 0, done.stderr
    out = inputs / "animedenser_v01rc.safetensors"
    with open_lora(out) as f:
        assert len(f.names()) == 24 and all(
            ".ffn." not in n for n in f.names()
        )  # attention only, ffn excluded
        assert {f.rank(n) for n in f.names()} == {4}
    assert (inputs / "animedenser_v01rc.analysis.json").is_file() and (
        inputs / "animedenser_v01rc.analysis.csv"
    ).is_file()
    assert "most distinct modules" in done.stdout and "24 merged, 0 nullified, 6 excluded" in done.stdout
    assert "merge:" in done.stderr  # the progress bar
    # --fast_svd on the same command
    done = run_cli(*args, "--fast_svd", "--overwrite", "--quiet", cwd=inputs)
    assert done.returncode == 0, done.stderr
    assert "strategy: randomized_svd" in done.stdout


def _parse(*argv) -> MergeParams:
    args = build_parser().parse_args(["merge", *argv])
    return params_from_args(args)


def test_dashed_spellings_and_shortcuts():
    underscored = _parse(
        "--lora_a",
        "a.safetensors",
        "--lora_b",
        "b.safetensors",
        "--target_blocks",
        "attn 0-9",
        "--exclude_non_targeted",
        "--analyze_blocks",
        "--save_dtype",
        "bf16",
        "--weight_b",
        "0.5",
    )
    dashed = _parse(
        "--lora-a",
        "a.safetensors",
        "--lora-b",
        "b.safetensors",
        "--target-blocks",
        "attn 0-9",
        "--exclude-non-targeted",
        "--analyze-blocks",
        "--save-dtype",
        "bf16",
        "--weight-b",
        "0.5",
    )
    assert underscored == dashed and underscored.targets == "attn 0-9" and underscored.weight_b == 0.5
    fast = _parse("--lora_a", "a", "--lora_b", "b", "--fast_svd", "--oversample", "4", "--niter", "3")
    assert fast.strategy == "randomized_svd" and fast.strategy_params == {
        "randomized_svd": {"oversample": 4, "niter": 3}
    }
    filtered = _parse(
        "--lora_a", "a", "--lora_b", "b", "--threshold_percentile", "75", "--fast_svd", "--niter", "1"
    )
    assert filtered.strategy == "magnitude_filter"
    assert filtered.strategy_params == {
        "magnitude_filter": {"threshold_percentile": 75.0, "compressor": "randomized_svd"},
        "randomized_svd": {"niter": 1},
    }
    top = _parse("--lora_a", "a", "--lora_b", "b", "--top_k_layers", "20", "--param", "relative=true")
    assert top.strategy_params == {"magnitude_filter": {"top_k_layers": 20, "relative": True}}
    with pytest.raises(UserError, match="--fast_svd"):
        _parse("--lora_a", "a", "--lora_b", "b", "--niter", "3")
    with pytest.raises(UserError, match="key=value"):
        _parse("--lora_a", "a", "--lora_b", "b", "--param", "novalue")


def test_recipe_to_cli_args_round_trip(tmp_path):
    recipe = MergeParams(
        lora_a=str(tmp_path / "with space" / "a.safetensors"),
        lora_b="b.safetensors",
        output="o.safetensors",
        weight_a=1.25,
        targets="cross_attn blocks=0-19 exclude=k_img",
        exclude_non_targeted=True,
        alpha=-2.0,
        rank=0,
        rank_mode="energy",
        energy=0.95,
        strategy="magnitude_filter",
        strategy_params={
            "magnitude_filter": {"top_k_layers": 12, "compressor": "randomized_svd"},
            "randomized_svd": {"seed": 3},
        },
        save_dtype="float16",
        format="musubi",
        analyze=True,
        created="2026-02-03T04:05:06+00:00",
        title="Dense ✨",
    )
    argv = recipe.to_cli_args()
    assert argv[0] == "merge"
    assert _parse(*argv[1:]) == recipe
    assert MergeParams.from_json(json.loads(json.dumps(recipe.to_json()))) == recipe
    line = recipe.to_command_line(python="python", windows=False)
    assert line.startswith("python main.py merge --lora_a ") and "'" in line  # the space is quoted
    assert '"' in recipe.to_command_line(windows=True)
    defaults = MergeParams(lora_a="a", lora_b="b", output="o.safetensors")
    assert defaults.to_cli_args() == ["merge", "--lora_a", "a", "--lora_b", "b", "--output", "o.safetensors"]
    with pytest.raises(UserError, match="unknown merge recipe field"):
        MergeParams.from_json({"lora_a": "a", "bogus": 1})


def test_analyze_only_list_strategies_and_missing_inputs(inputs):
    done = run_cli(
        "merge",
        "--lora_a",
        "animedenser_pos_wan14b.safetensors",
        "--lora_b",
        "animedenser_neg_wan14b.safetensors",
        "--analyze_only",
        "--quiet",
        cwd=inputs,
    )
    assert done.returncode == 0, done.stderr
    assert "cos(A,B)" in done.stdout
    assert sorted(p.name for p in inputs.iterdir()) == [
        "animedenser_neg_wan14b.safetensors",
        "animedenser_pos_wan14b.safetensors",
    ]
    done = run_cli("merge", "--list_strategies", cwd=inputs)
    assert done.returncode == 0 and "full_svd" in done.stdout and "--param niter=" in done.stdout
    done = run_cli(
        "merge",
        "--lora_a",
        "missing.safetensors",
        "--lora_b",
        "animedenser_neg_wan14b.safetensors",
        "--output",
        "x.safetensors",
        cwd=inputs,
    )
    assert done.returncode == 2 and "missing.safetensors" in done.stderr and "Traceback" not in done.stderr


PLUGIN = textwrap.dedent(
    '''
    """A user's own merge strategy, dropped in the plugins folder."""
    from difflora_gui import hookimpl
    from difflora_gui.params import Param
    from difflora_gui.specs import MergeStrategySpec


    def compress(delta, rank_cap, params, ctx):
        from difflora_gui.merge import linalg

        decomposition = linalg.factored_svd(delta, rank_cap)
        decomposition.S = decomposition.S * params["gain"]
        return decomposition


    @hookimpl
    def difflora_register_merge_strategies():
        return [MergeStrategySpec(
            name="scaled_svd", title="Scaled SVD", description="exact SVD times a gain",
            params=(Param("gain", "float", 1.0, "multiplies the singular values"),),
            compress="difflora_user_plugins.my_strategy:compress",
        )]
    '''
)


def test_third_party_strategy_through_the_cli(inputs):
    from difflora_gui.settings import user_plugins_dir

    folder = user_plugins_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_strategy.py").write_text(PLUGIN, encoding="utf-8")
    common = [
        "merge",
        "--lora_a",
        "animedenser_pos_wan14b.safetensors",
        "--lora_b",
        "animedenser_neg_wan14b.safetensors",
        "--save_dtype",
        "float32",
        "--quiet",
    ]
    base = run_cli(*common, "--output", "base.safetensors", cwd=inputs)
    scaled = run_cli(
        *common, "--output", "scaled.safetensors", "--strategy", "scaled_svd", "--param", "gain=4", cwd=inputs
    )
    assert base.returncode == 0 and scaled.returncode == 0, scaled.stderr
    assert "strategy: scaled_svd" in scaled.stdout
    with open_lora(inputs / "base.safetensors") as fb, open_lora(inputs / "scaled.safetensors") as fs:
        name = "blocks.1.cross_attn.q"
        ratio = fs.load(name).delta().norm() / fb.load(name).delta().norm()
    assert abs(float(ratio) - 4.0) < 1e-4
    listed = run_cli("merge", "--list_strategies", cwd=inputs)
    assert "scaled_svd" in listed.stdout and "plugin my_strategy" in listed.stdout


def test_declared_aliases_value_spellings_and_bad_values_name_the_flag():
    assert _parse("--lora_a", "a", "--lora_b", "b", "--targets", "attn").targets == "attn"
    parsed = _parse("--lora_a", "a", "--lora_b", "b", "--save_dtype", "bf16", "--dtype", "fp64")
    assert (parsed.save_dtype, parsed.dtype) == ("bfloat16", "float64")
    with pytest.raises(UserError, match=r"^--rank: expected an integer, got 'x'$"):
        _parse("--lora_a", "a", "--lora_b", "b", "--rank", "x")
    with pytest.raises(UserError, match="--rank_mode must be one of fixed, energy"):
        _parse("--lora_a", "a", "--lora_b", "b", "--rank_mode", "wild")
    # a hidden setting is not in the command, and the command still parses back to what applies
    recipe = MergeParams(
        lora_a="a", lora_b="b", output="o.safetensors", energy=0.5, auto_alpha=True, alpha=7.0
    )
    argv = recipe.to_cli_args()
    assert "--energy" not in argv and "--alpha" not in argv and "--auto_alpha" in argv
    back = _parse(*argv[1:])
    assert back.auto_alpha and (back.energy, back.alpha) == (0.99, 1.0)


def test_copy_command_starts_with_the_running_interpreter_quoted_for_the_platform(tmp_path):
    """POSIX shell quoting or Windows (list2cmdline) double quotes; the expert flags only when set."""
    import shlex
    import sys

    recipe = MergeParams(lora_a="my a.safetensors", lora_b="b.safetensors", output="o.safetensors")
    posix = recipe.to_command_line(script="/opt/app dir/main.py", windows=False)
    assert posix.startswith(
        f"{shlex.quote(sys.executable)} '/opt/app dir/main.py' merge --lora_a 'my a.safetensors' "
    )
    assert shlex.split(posix)[:3] == [sys.executable, "/opt/app dir/main.py", "merge"]
    python = r"C:\Program Files\Python311\python.exe"
    windows = recipe.to_command_line(python=python, script=r"C:\Apps\DiffLoRA Studio\main.py", windows=True)
    assert windows.startswith(
        '"C:\\Program Files\\Python311\\python.exe" "C:\\Apps\\DiffLoRA Studio\\main.py" merge --lora_a "my a.safetensors" '
    )
    for line in (posix, windows):
        assert "expert" not in line and "_high" not in line  # a one-model recipe: no expert flag at all
    experts = MergeParams(
        lora_a_high="a_high_noise.safetensors",
        lora_a_low="a_low_noise.safetensors",
        lora_b="b.safetensors",
        output="o.safetensors",
        expert="low",
    )
    argv = experts.to_cli_args()
    assert argv == [
        "merge",
        "--lora_b",
        "b.safetensors",
        "--lora_a_high",
        "a_high_noise.safetensors",
        "--lora_a_low",
        "a_low_noise.safetensors",
        "--expert",
        "low",
        "--output",
        "o.safetensors",
    ]
    assert _parse(*argv[1:]) == experts


def test_a_reader_that_stops_early_ends_the_merge_command_quietly(tmp_path):
    """``merge ... --json | head -c 100``: exit 0, no BrokenPipeError traceback."""
    import sys

    from difflora_gui.lora.synthetic import make_wan_lora
    from tests.app_process import ROOT

    for name, seed in (("a", 1), ("b", 2)):  # 160 modules: a JSON of ~100 kB, more than a pipe holds
        make_wan_lora(
            "1.3B", rank=4, seed=seed, select="attn blocks=0-19", path=tmp_path / f"{name}.safetensors"
        )
    argv = [
        sys.executable,
        str(ROOT / "main.py"),
        "merge",
        "--lora_a",
        "a.safetensors",
        "--lora_b",
        "b.safetensors",
    ]
    with subprocess.Popen(
        [*argv, "--analyze_only", "--json", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdout.read(100).startswith(b"{")
        child.stdout.close()  # far more than a pipe's buffer is still to come
        stderr = child.stderr.read().decode("utf-8", "replace")
        assert child.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
