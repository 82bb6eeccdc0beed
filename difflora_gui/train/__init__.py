"""Training the two component LoRAs (Qt-free): one config for A and B, backends as plugins.

* :mod:`.config` — the training config A and B share (``TRAIN_CONFIG``), declared once;
* :mod:`.presets` — named starting points (the model card's, a quick test, Wan2.2 per expert);
* :mod:`.plan` — a pair (or a single LoRA) as :class:`~.plan.TrainRun` items: A and B, and for
  Wan2.2 A14B per expert four runs with Musubi's timestep windows;
* :mod:`.dataset_folder` — the items of a training folder and their captions, A and B matched by name;
* :mod:`.backend` — what a trainer backend is (``difflora_register_trainer_backends``), its checks
  before launch and its dry-run description;
* :mod:`.musubi` — the Musubi Tuner backend (a child process); :mod:`.builtin` — the in-process
  diffusers + PEFT trainer with synchronised pairs and slider mode;
* :mod:`.pair_job` — one action trains the pair and offers the merge.
"""
