"""Small spec objects that plugins return from ``difflora_register_*`` hooks.

Every spec names one contribution (``name`` is its stable id, ``title`` what the GUI shows,
``description`` a sentence for tooltips and ``--help``), declares its parameters as a
:class:`~difflora_gui.params.ParamSchema`, and points at the callable that does the work.

Callables may be given directly or as a ``"package.module:attribute"`` string, which is imported
only when the work runs. Use the string form when the work needs torch, diffusers or Qt, so that
loading the plugin stays cheap and ``python main.py --help`` stays fast.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from difflora_gui.params import Param, ParamSchema, schema

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")

#: lane kinds a job can ask for: ``device`` = the lane of the chosen device (one job at a time per
#: device, so two GPU jobs never share a card); ``light`` = small CPU jobs; ``cuda`` = any free GPU;
#: ``comfy`` = any healthy ComfyUI server (see difflora_gui.jobs.scheduler).
LANES = ("device", "light", "comfy", "cuda")


def resolve_callable(target: Callable | str) -> Callable:
    """Return ``target`` itself, or import ``"module:attr"`` and return the attribute."""
    if callable(target):
        return target
    module_name, sep, attr = str(target).partition(":")
    if not sep:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target!r} is not callable")
    return obj


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r} must be lower-case letters, digits, '_' or '-'")


def _check_target(kind: str, name: str, target: Any, *, optional: bool = False) -> None:
    if target is None and optional:
        return
    if not (callable(target) or (isinstance(target, str) and ":" in target)):
        raise ValueError(f"{kind} {name!r}: expected a callable or 'module:attr' string, got {target!r}")


@dataclass(frozen=True)
class _Contribution:
    name: str
    title: str
    description: str
    params: ParamSchema | tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self):
        _check_name(type(self).__name__, self.name)
        object.__setattr__(self, "params", schema(self.params))
        if not self.title:
            raise ValueError(f"{self.name!r} needs a title")
        if not self.description:
            raise ValueError(f"{self.name!r} needs a description")


@dataclass(frozen=True)
class MergeStrategySpec(_Contribution):
    """A merge strategy: a *compressor*, a *module filter*, or both.

    ``compress(delta, rank_cap, params, ctx)`` re-factors one module's difference (a
    :class:`difflora_gui.merge.api.ModuleDelta`) and returns a
    :class:`difflora_gui.merge.api.Decomposition`; it may run on worker threads, several modules at
    once. ``select(stats, params, ctx)`` receives a :class:`difflora_gui.merge.api.ModuleStats` for
    every targeted module and returns the names that take part; the others are treated like
    non-targeted modules. A strategy with only ``select`` hands the kept modules to
    ``default_compressor`` (or the compressor named by its own ``compressor`` parameter, when it
    declares one). See ``docs/merge-strategies.md``.
    """

    compress: Callable | str | None = None
    select: Callable | str | None = None
    default_compressor: str = "full_svd"

    def __post_init__(self):
        super().__post_init__()
        if self.compress is None and self.select is None:
            raise ValueError(f"merge strategy {self.name!r} needs compress, select or both")
        _check_target("merge strategy", self.name, self.compress, optional=True)
        _check_target("merge strategy", self.name, self.select, optional=True)

    @property
    def is_compressor(self) -> bool:
        return self.compress is not None

    @property
    def is_filter(self) -> bool:
        return self.select is not None


@dataclass(frozen=True)
class _JobContribution(_Contribution):
    """A contribution whose work is a job: ``run(params, ctx) -> result``."""

    run: Callable | str | None = None
    lane: str = "device"

    def __post_init__(self):
        super().__post_init__()
        _check_target(type(self).__name__, self.name, self.run)
        if self.lane not in LANES:
            raise ValueError(f"{self.name!r}: lane must be one of {LANES}, got {self.lane!r}")


@dataclass(frozen=True)
class TrainerBackendSpec(_JobContribution):
    """Trains one component LoRA (see ``difflora_gui.train`` and ``docs/training.md``).

    ``params`` declares the backend's own settings (model files, the Musubi checkout ...): a form in
    the GUI, flags on the command line; the training config shared by A and B is
    :data:`difflora_gui.train.config.TRAIN_CONFIG`. Every callable takes one
    :class:`difflora_gui.train.plan.TrainRun`:

    * ``run(run, ctx)`` trains it as a job (progress, metrics ``loss``/``avr_loss``/``lr``, artifacts
      ``checkpoint``/``state``/``sample``/``lora``) and returns a
      :class:`difflora_gui.train.plan.TrainResult`; ``ctx.keep_requested`` means "Stop and keep";
    * ``validate(run)`` returns :class:`difflora_gui.train.backend.TrainIssue` items before launch;
    * ``describe(run)`` returns a :class:`difflora_gui.train.backend.TrainDescription`: the exact
      commands it will run (``--dry-run``), or the plan of an in-process backend;
    * ``settings_defaults(settings)`` maps the app's Settings to defaults of ``params``.

    ``pair_modes`` lists the pair modes it can train (``independent``, ``synchronised``, ``slider``).
    """

    validate: Callable | str | None = None
    describe: Callable | str | None = None
    settings_defaults: Callable | str | None = None
    pair_modes: tuple[str, ...] = ("independent",)
    resumable: bool = True
    produces_samples: bool = False

    def __post_init__(self):
        super().__post_init__()
        for target in (self.validate, self.describe, self.settings_defaults):
            _check_target("trainer backend", self.name, target, optional=True)


@dataclass(frozen=True)
class DatasetToolSpec(_JobContribution):
    """Edits or builds a (paired) dataset: ``run(params, ctx)`` returns a summary dict."""

    lane: str = "light"


@dataclass(frozen=True)
class PreviewBackendSpec(_JobContribution):
    """Renders preview videos (see :mod:`difflora_gui.preview.backend` and ``docs/preview.md``).

    * ``run(job, ctx)`` renders a :class:`difflora_gui.preview.backend.PreviewJob` and returns a
      :class:`difflora_gui.preview.backend.PreviewResult` (progress per step, cancel between steps,
      artifacts ``video`` and ``image``);
    * ``model_facts(options)`` returns a :class:`difflora_gui.preview.backend.ModelFacts` (blocks,
      experts) read from the model's configs, without loading weights;
    * ``settings_defaults(settings)`` maps the app's Settings to defaults of ``params`` (the
      backend's options);
    * ``cached(job)`` returns the :class:`~difflora_gui.preview.backend.PreviewResult` of a job
      from the render cache, or None, and never renders (the grid job asks it for every cell
      before queueing the missing ones; without it every cell is queued and looks itself up).
    """

    model_facts: Callable | str | None = None
    settings_defaults: Callable | str | None = None
    cached: Callable | str | None = None

    def __post_init__(self):
        super().__post_init__()
        for target in (self.model_facts, self.settings_defaults, self.cached):
            _check_target("preview backend", self.name, target, optional=True)


@dataclass(frozen=True)
class CliCommandSpec:
    """A headless command: ``python main.py NAME ...``.

    ``configure(parser)`` adds arguments to an ``argparse`` sub-parser (keep it import-light);
    ``run(args)`` does the work and returns the exit code (``None`` means 0). Raise
    :class:`difflora_gui.errors.UserError` for bad input: it is printed as one line, exit code 2.
    """

    name: str
    help: str
    configure: Callable | str
    run: Callable | str
    description: str = ""

    def __post_init__(self):
        _check_name("command", self.name)
        if not self.help:
            raise ValueError(f"command {self.name!r} needs help text")
        _check_target("command", self.name, self.configure)
        _check_target("command", self.name, self.run)


def check_specs(hook_name: str, result: Any, expected: type | None = None) -> list:
    """Validate what a ``register`` hook returned: ``None`` or an iterable of the right spec type."""
    expected = expected or spec_type(hook_name)
    if result is None:
        return []
    if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
        raise TypeError(f"{hook_name} must return a list of {expected.__name__}, got {type(result).__name__}")
    items = list(result)
    for item in items:
        if not isinstance(item, expected):
            raise TypeError(f"{hook_name} must return {expected.__name__} objects, got {type(item).__name__}")
    return items


#: the sections of the main window, in order.
SECTIONS = ("dataset", "train", "merge", "preview", "compare")


#: listed in ``PanelSpec.accepts``: the panel takes dropped folders (a dataset's image folders)
FOLDER_ACCEPTS = "/"


@dataclass(frozen=True)
class PanelSpec:
    """A GUI panel contributed through ``difflora_gui_register_panels`` (GUI-only hook).

    ``widget`` is a ``"module:Class"`` string (or a callable) called as ``widget(app)`` with the
    running :class:`difflora_gui.qt.services.AppServices`; it returns a ``QWidget``. Keep it a
    string so the plugin's own module never imports Qt. ``order`` sorts panels in a section.
    ``accepts`` lists file suffixes (``".safetensors"``) this panel takes by drag and drop, and
    :data:`FOLDER_ACCEPTS` (``"/"``) when it takes dropped folders.
    """

    name: str
    title: str
    section: str
    widget: Callable | str
    order: int = 100
    accepts: tuple[str, ...] = ()

    def __post_init__(self):
        _check_name("panel", self.name)
        if self.section not in SECTIONS:
            raise ValueError(f"panel {self.name!r}: section must be one of {SECTIONS}, got {self.section!r}")
        _check_target("panel", self.name, self.widget)
        object.__setattr__(self, "accepts", tuple(s.lower() for s in self.accepts))


@dataclass(frozen=True)
class RegisterHook:
    """One ``register`` hook: its name, the spec type its results must be, and where it is declared.

    ``gui`` hooks are declared in :mod:`difflora_gui.qt.gui_hookspecs` and added to the plugin
    manager only when the window starts; the others in :mod:`difflora_gui.hookspecs`.
    """

    name: str
    spec_type: type
    gui: bool = False


#: every register hook, in the order the hookspec modules, ``python main.py plugins`` and the docs use.
#: The hookspec modules, the plugin host and the GUI read their lists from here.
REGISTER_HOOKS: tuple[RegisterHook, ...] = (
    RegisterHook("difflora_register_merge_strategies", MergeStrategySpec),
    RegisterHook("difflora_register_trainer_backends", TrainerBackendSpec),
    RegisterHook("difflora_register_dataset_tools", DatasetToolSpec),
    RegisterHook("difflora_register_preview_backends", PreviewBackendSpec),
    RegisterHook("difflora_register_cli_commands", CliCommandSpec),
    RegisterHook("difflora_gui_register_panels", PanelSpec, gui=True),
)

#: hook name → spec type (read from :data:`REGISTER_HOOKS`)
SPEC_TYPES: dict[str, type] = {hook.name: hook.spec_type for hook in REGISTER_HOOKS}


def register_hook_names(*, gui: bool) -> tuple[str, ...]:
    """The names of the headless (``gui=False``) or GUI-only (``gui=True``) register hooks."""
    return tuple(hook.name for hook in REGISTER_HOOKS if hook.gui == gui)


def spec_type(hook_name: str) -> type:
    """The spec type a register hook returns (KeyError for a hook that is not a register hook)."""
    return SPEC_TYPES[hook_name]
