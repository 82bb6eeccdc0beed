"""Our Musubi commands parsed by Musubi Tuner's OWN argument parsers (skipped without a checkout).

Set ``MUSUBI_TUNER_DIR`` to a musubi-tuner checkout. Importing its Wan modules needs CUDA torch
(``wan/modules/t5.py`` calls ``torch.cuda.current_device()`` at import), so the parsers are built
from its source instead: each script's ``main()`` up to ``parse_args`` is compiled from the AST,
and every function it calls (``setup_parser_common``, the ``_add_*_args`` helpers,
``wan_setup_parser``, ``_int_or_float`` …) is taken from Musubi's files, following its imports;
only module-level dict literals (``WAN_CONFIGS``' keys) are evaluated, and other packages
(argparse, accelerate) are the installed ones. No Musubi code is copied into this repository:
the files are read when the test runs. Abbreviations are turned off, so every flag we write
must be spelled in full.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import importlib
import os
import re
from pathlib import Path

import pytest

from difflora_gui.train.musubi import commands
from difflora_gui.train.plan import TrainRun
from tests.musubi_helpers import pair_runs, quick_config, single_run, write_items

MUSUBI = os.environ.get("MUSUBI_TUNER_DIR", "")
pytestmark = pytest.mark.skipif(
    not MUSUBI or not (Path(MUSUBI) / "src" / "musubi_tuner" / "wan_train_network.py").is_file(),
    reason="MUSUBI_TUNER_DIR does not point to a musubi-tuner checkout",
)


class Unresolvable(Exception):
    pass


class _ModuleProxy:
    """A Musubi module whose attributes are resolved from its source when used."""

    def __init__(self, source: MusubiSource, module: str):
        self._source, self._module = source, module

    def __getattr__(self, name):
        return self._source.resolve(self._module, name)


class MusubiSource:
    """Functions and literal tables of Musubi's modules, built from their source text."""

    def __init__(self, checkout: Path):
        self.src = Path(checkout) / "src"
        self._trees: dict[str, ast.Module] = {}
        self._cache: dict[tuple[str, str], object] = {}

    def file_of(self, module: str) -> Path:
        base = self.src.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        raise Unresolvable(module)

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            self._trees[module] = ast.parse(self.file_of(module).read_text(encoding="utf-8"))
        return self._trees[module]

    def is_module(self, module: str) -> bool:
        try:
            self.file_of(module)
            return True
        except Unresolvable:
            return False

    def resolve(self, module: str, name: str):
        key = (module, name)
        if key not in self._cache:
            self._cache[key] = self._resolve(module, name)
        return self._cache[key]

    def _resolve(self, module: str, name: str):
        for node in self.tree(module).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return self.function(module, node)
        for node in self.tree(module).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return _literal(node.value)
        for node in self.tree(module).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self._imported(node.module, alias.name)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == name or (alias.asname is None and alias.name.split(".")[0] == name):
                        target = alias.name if alias.asname else alias.name.split(".")[0]
                        return self._module(target)
        raise Unresolvable(f"{module}.{name}")

    def _module(self, target: str):
        if target.split(".")[0] == "musubi_tuner":
            return _ModuleProxy(self, target)
        try:
            return importlib.import_module(target)
        except Exception as exc:  # torch-dependent or missing packages: not needed by the parsers
            raise Unresolvable(target) from exc

    def _imported(self, module: str, name: str):
        if module.split(".")[0] == "musubi_tuner":
            if self.is_module(f"{module}.{name}"):
                return _ModuleProxy(self, f"{module}.{name}")
            return self.resolve(module, name)
        try:
            return getattr(importlib.import_module(module), name)
        except Exception as exc:
            raise Unresolvable(f"{module}.{name}") from exc

    def function(self, module: str, node: ast.FunctionDef):
        """``node`` compiled with the names it uses resolved in ``module`` (decorators and
        annotations dropped: they may need torch and do not change a parser)."""
        node = _stripped(node)
        namespace: dict = {"__builtins__": builtins, "__name__": module}
        for used in sorted(_names_used(node) - {node.name}):
            if hasattr(builtins, used):
                continue
            try:
                namespace[used] = self.resolve(module, used)
            except Unresolvable:
                pass  # a local variable, or a name of a branch a parser never takes
        code = compile(
            ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[])),
            str(self.file_of(module)),
            "exec",
        )
        exec(code, namespace)  # noqa: S102 - Musubi's own function definitions, read from its checkout
        return namespace[node.name]

    def script_parser(self, script: str) -> argparse.ArgumentParser:
        """The parser ``<script>.main()`` builds: its statements before ``parse_args``."""
        module = f"musubi_tuner.{Path(script).stem}"
        main = next(n for n in self.tree(module).body if isinstance(n, ast.FunctionDef) and n.name == "main")
        body = []
        for statement in main.body:
            if "parse_args" in ast.dump(statement):
                break
            body.append(statement)
        build = ast.FunctionDef(
            name="_build_parser",
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=[*body, ast.Return(value=ast.Name(id="parser", ctx=ast.Load()))],
            decorator_list=[],
            returns=None,
        )
        ast.copy_location(build, main)
        parser = self.function(module, build)()
        parser.allow_abbrev = False
        return parser


def _literal(value: ast.expr):
    try:
        return ast.literal_eval(value)
    except ValueError:
        if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) for k in value.keys):
            return {k.value: None for k in value.keys}  # a table whose keys are what a parser uses
        raise Unresolvable(ast.dump(value)[:80]) from None


def _stripped(node: ast.FunctionDef) -> ast.FunctionDef:
    node = copy.deepcopy(node)
    node.decorator_list = []
    node.returns = None
    for arg in [
        *node.args.posonlyargs,
        *node.args.args,
        *node.args.kwonlyargs,
        node.args.vararg,
        node.args.kwarg,
    ]:
        if arg is not None:
            arg.annotation = None
    return node


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


class ParseError(Exception):
    pass


@pytest.fixture(scope="module")
def musubi():
    return MusubiSource(Path(MUSUBI))


def parse(musubi: MusubiSource, argv: list[str]) -> argparse.Namespace:
    """``argv`` (python, script, args …) parsed by the script's own parser."""
    script = Path(argv[1]).name
    parser = musubi.script_parser(script)

    def error(message):
        raise ParseError(f"{script}: {message}")

    parser.error = error
    return parser.parse_args(argv[2:])


def _network_kwargs(args: argparse.Namespace) -> dict[str, str]:
    """Musubi's own reading of --network_args: ``key, value = arg.split("=")`` per item."""
    kwargs = {}
    for item in args.network_args or []:
        key, value = item.split("=")
        kwargs[key] = value
    return kwargs


@pytest.fixture
def folders(tmp_path):
    a = write_items(tmp_path / "Set A ü", ["one", "two"])
    b = write_items(tmp_path / "Set B ü", ["one", "two"])
    models = tmp_path / "Models ü"
    backend = {
        "musubi_dir": str(tmp_path / "Musubi Tuner ü"),
        "python": str(tmp_path / "venv ü" / "python"),
        "dit": str(models / "low noise.safetensors"),
        "dit_high_noise": str(models / "high noise.safetensors"),
        "vae": str(models / "wan vae.safetensors"),
        "t5": str(models / "umt5 xxl.pth"),
        "clip": str(models / "clip.pth"),
        "attention": "sdpa",
        "max_data_loader_n_workers": 2,
    }
    return tmp_path, a, b, backend


def _model_card_runs(folders, **values):
    from difflora_gui.train.presets import preset_values

    tmp_path, a, b, backend = folders
    config = {**preset_values("model-card"), "pair_mode": "independent", **values}
    return pair_runs(tmp_path, config, backend, a, b)


def test_the_model_card_commands_parse(musubi, folders):
    for run in _model_card_runs(folders, targets="attn blocks=0-19"):
        latents, text, train = commands.commands(run)
        cached = parse(musubi, latents)
        assert cached.dataset_config == str(Path(run.output_dir) / ".musubi" / run.name / "dataset.toml")
        assert cached.skip_existing and cached.vae == run.backend_config["vae"]
        parsed_text = parse(musubi, text)
        assert parsed_text.t5 == run.backend_config["t5"] and parsed_text.batch_size == 16
        args = parse(musubi, train)
        assert args.task == "t2v-14B" and args.dit == run.backend_config["dit"]
        assert args.network_module == "networks.lora_wan"
        assert args.network_dim == 16 and args.network_alpha == 16.0  # not Musubi's default 1
        assert args.optimizer_type == "lion_pytorch.Lion"
        assert args.learning_rate == 2e-5 and args.lr_scheduler == "constant_with_warmup"
        assert args.lr_warmup_steps == 50 and args.max_train_steps == 5000
        assert args.save_every_n_steps == 500 and args.save_state and args.seed == 42
        assert args.sdpa and args.mixed_precision == "bf16" and args.gradient_checkpointing
        assert args.timestep_sampling == "shift" and args.discrete_flow_shift == 3.0
        assert args.output_name == run.name and args.output_dir == run.output_dir
        network = _network_kwargs(args)
        excluded = ast.literal_eval(network["exclude_patterns"])
        included = [re.compile(p) for p in ast.literal_eval(network["include_patterns"])]
        assert excluded == [".*"]
        trained = [
            f"blocks.{b}.{layer}" for b in range(40) for layer in ("self_attn.q", "cross_attn.o", "ffn.0")
        ]
        chosen = [name for name in trained if any(p.fullmatch(name) for p in included)]
        assert chosen == [n for n in trained if int(n.split(".")[1]) < 20 and "ffn" not in n]


def test_the_wan22_per_expert_and_joint_commands_parse(musubi, folders):
    runs = _model_card_runs(folders, task="t2v-A14B", expert_mode="per_expert", mixed_precision="fp16")
    windows = {}
    for run in runs:
        args = parse(musubi, commands.train_command(run))
        windows[run.name] = (args.dit, args.min_timestep, args.max_timestep, args.preserve_distribution_shape)
        assert args.dit_high_noise is None and args.timestep_boundary is None
    backend = runs[0].backend_config
    assert windows["diff_A_high_noise"] == (backend["dit_high_noise"], 875, 1000, True)
    assert windows["diff_B_low_noise"] == (backend["dit"], 0, 875, True)

    (a_joint, _b) = _model_card_runs(folders, task="i2v-A14B", expert_mode="joint", mixed_precision="fp16")
    args = parse(musubi, commands.train_command(a_joint))
    assert args.task == "i2v-A14B" and args.timestep_boundary == 900  # an int, as Musubi's argparse wants
    assert args.dit == backend["dit"] and args.dit_high_noise == backend["dit_high_noise"]
    assert parse(musubi, commands.cache_latents_command(a_joint)).i2v


def test_i2v_resume_samples_and_memory_flags_parse(musubi, folders):
    tmp_path, a, _b, backend = folders
    prompts = tmp_path / "prompts ü.txt"
    prompts.write_text("a cat --w 256 --h 256\n", encoding="utf-8")
    backend = {
        **backend,
        "fp8_scaled": True,
        "blocks_to_swap": 20,
        "fp8_t5": True,
        "vae_cache_cpu": True,
        "sample_prompts": str(prompts),
        "sample_every_n_steps": 250,
        "extra_args": ["--save_last_n_steps", "1000"],
    }
    config = quick_config(
        task="i2v-14B", optimizer="prodigy", optimizer_args=["weight_decay=0.01", "betas=(0.9,0.99)"]
    )
    run = single_run(tmp_path, config, backend, a)
    state = Path(run.output_dir) / "diff-step00000010-state"
    resumed = TrainRun.from_json({**run.to_json(), "resume": str(state), "steps_done": 10})
    latents = parse(musubi, commands.cache_latents_command(resumed))
    assert latents.i2v and latents.clip == backend["clip"] and latents.vae_cache_cpu
    assert parse(musubi, commands.cache_text_command(resumed)).fp8_t5
    args = parse(musubi, commands.train_command(resumed))
    assert args.resume == str(state) and args.max_train_steps == 20  # 30 - 10: Musubi restarts at 0
    assert args.output_dir.endswith("resume-from-step00000010")
    assert args.fp8_base and args.fp8_scaled and args.blocks_to_swap == 20
    assert args.optimizer_type == "prodigyopt.Prodigy"
    assert [ast.literal_eval(item.split("=")[1]) for item in args.optimizer_args] == [0.01, (0.9, 0.99)]
    assert args.sample_prompts == str(prompts) and args.sample_every_n_steps == 250
    assert args.vae == backend["vae"] and args.t5 == backend["t5"] and args.clip == backend["clip"]
    assert args.save_last_n_steps == 1000
    assert args.lr_warmup_steps == 0  # constant schedule: no warm-up flag (Musubi raises on one)


def test_the_multi_gpu_command_parses_with_accelerate_and_musubi(musubi, folders):
    launch = pytest.importorskip("accelerate.commands.launch")
    tmp_path, a, _b, backend = folders
    run = single_run(tmp_path, quick_config(), {**backend, "multi_gpu": True, "num_processes": 2}, a)
    argv = commands.train_command(run)
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    launched = launch.launch_command_parser().parse_args(argv[3:])
    assert launched.multi_gpu and launched.num_processes == 2 and launched.mixed_precision == "no"
    assert launched.num_cpu_threads_per_process == 1
    assert launched.training_script == commands.script_path(run.backend_config, "wan_train_network.py")
    args = parse(musubi, [argv[0], launched.training_script, *launched.training_script_args])
    assert args.max_train_steps == 30


def test_a_misspelled_flag_is_refused_by_musubis_parser(musubi, folders):
    """The check itself: Musubi's parser refuses what Musubi would refuse."""
    (run, _b) = _model_card_runs(folders)
    argv = commands.train_command(run)
    with pytest.raises(ParseError, match="unrecognized"):
        parse(musubi, [*argv, "--network_alfa", "16"])
    with pytest.raises(ParseError, match="timestep_boundary"):
        parse(musubi, [*argv, "--timestep_boundary", "0.875"])
