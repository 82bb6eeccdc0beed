"""A Musubi Tuner run described without running it: the exact commands and the dataset TOML.

What ``--dry-run`` prints and the GUI shows (copyable) before launch. Nothing is written: the
TOML is the text the job will write at ``<output_dir>/.musubi/<run name>/dataset.toml``.
"""

from __future__ import annotations

from difflora_gui.train.backend import TrainDescription
from difflora_gui.train.musubi import commands
from difflora_gui.train.musubi.staging import dataset_toml, toml_path
from difflora_gui.train.plan import TrainRun


def describe_musubi(run: TrainRun | dict) -> TrainDescription:
    run = TrainRun.from_json(run) if isinstance(run, dict) else run
    return TrainDescription(
        commands=commands.commands(run),
        files={str(toml_path(run)): dataset_toml(run)},
        plan={
            "backend": "musubi",
            "run": run.name,
            "musubi_output_dir": str(commands.musubi_output_dir(run)),
            "max_train_steps": commands.steps_to_train(run),
            "resumed_at_step": commands.resume_step(run),
        },
        env=commands.command_env(run),
        cwd=str(run.backend_config.get("musubi_dir") or "") or None,
    )
