"""Built-in trainer backend ``musubi``: Musubi Tuner (kohya-ss/musubi-tuner), installed by the user.

Each run stages its items, writes a dataset TOML and runs Musubi's ``wan_cache_latents.py``,
``wan_cache_text_encoder_outputs.py`` and ``wan_train_network.py`` as child processes
(``difflora_gui.train.musubi``). Everything heavy is imported when a run starts.

Pair modes: only ``independent``. Musubi draws its own noise and timesteps in each process, so
the A and B runs cannot share them (that is the built-in trainer's synchronised mode), and it
has no slider objective. Wan2.2's joint mode (one file for both experts) is Musubi's alone.
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.specs import TrainerBackendSpec
from difflora_gui.train.musubi.settings import MUSUBI_PARAMS


@hookimpl
def difflora_register_trainer_backends():
    return [
        TrainerBackendSpec(
            name="musubi",
            title="Musubi Tuner",
            description=(
                "Train with Musubi Tuner (an external checkout and its Python): caches latents and "
                "text-encoder outputs, then runs wan_train_network.py; A and B are independent runs "
                "(Musubi cannot share noise between runs); Wan2.2 joint mode trains one file for both experts."
            ),
            params=MUSUBI_PARAMS,
            run="difflora_gui.train.musubi.job:run_musubi",
            validate="difflora_gui.train.musubi.validate:validate_musubi",
            describe="difflora_gui.train.musubi.describe:describe_musubi",
            settings_defaults="difflora_gui.train.musubi.settings:settings_defaults",
            pair_modes=("independent",),
            resumable=True,
            produces_samples=True,
        )
    ]
