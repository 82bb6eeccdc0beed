"""Every headless hook of DiffLoRA Studio, in one module.

Plugins implement these with ``from difflora_gui import hookimpl``. Each ``register`` hook takes
no arguments and returns a list of small spec objects (:mod:`difflora_gui.specs`); return an empty
list (or nothing) to contribute nothing. Names are prefixed ``difflora_`` so a typo is caught by
``check_pending()`` instead of being silently ignored.

GUI-only hooks (panels) live in :mod:`difflora_gui.qt.gui_hookspecs` and are added only when
the window starts; ``docs/plugins.md`` documents both sets and a test keeps it complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from difflora_gui import PROJECT_NAME
from difflora_gui.specs import register_hook_names

if TYPE_CHECKING:
    from difflora_gui.specs import (
        CliCommandSpec,
        DatasetToolSpec,
        MergeStrategySpec,
        PreviewBackendSpec,
        TrainerBackendSpec,
    )

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- merge -------------------------------------------------------------------------------------


@hookspec
def difflora_register_merge_strategies() -> list[MergeStrategySpec]:
    """Return merge strategies (compressors and/or module filters) for the differential merge.

    Listed by ``python main.py merge --strategy NAME`` and in the Merge section's chooser, with a
    form generated from each spec's parameters.
    """


# --- training ----------------------------------------------------------------------------------


@hookspec
def difflora_register_trainer_backends() -> list[TrainerBackendSpec]:
    """Return trainer backends; each trains one component LoRA as a job ``run(params, ctx)``."""


# --- dataset -----------------------------------------------------------------------------------


@hookspec
def difflora_register_dataset_tools() -> list[DatasetToolSpec]:
    """Return dataset tools (pairing, frame extraction, counterpart generation, export)."""


# --- preview -----------------------------------------------------------------------------------


@hookspec
def difflora_register_preview_backends() -> list[PreviewBackendSpec]:
    """Return preview backends that render videos with a LoRA at chosen strengths and blocks."""


# --- command line ------------------------------------------------------------------------------


@hookspec
def difflora_register_cli_commands() -> list[CliCommandSpec]:
    """Return headless commands, run as ``python main.py NAME ...``."""


#: the headless register hooks; their spec types are in :data:`difflora_gui.specs.REGISTER_HOOKS`
REGISTER_HOOKS = register_hook_names(gui=False)
