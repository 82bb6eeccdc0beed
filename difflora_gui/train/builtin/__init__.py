"""The built-in trainer: LoRA training of a diffusers WanTransformer3DModel with PEFT, in-process (Qt-free).

* :mod:`.settings` — the backend's own settings (model folder, device, dtype, latent cache, threads);
* :mod:`.model_loading` — the diffusers Wan folder checked and loaded (``transformer`` = high-noise
  expert, ``transformer_2`` = low-noise, as diffusers names them);
* :mod:`.data` / :mod:`.encode` — clips (images as one frame, videos at 4N+1 frames, Musubi buckets),
  VAE latents and T5 embeddings computed once (and cached in ``.builtin-cache/``);
* :mod:`.schedule` — the per-step items, noise and timesteps as a pure function of the step
  (synchronised pairs share them; a resume continues exactly);
* :mod:`.lora_setup` — the PEFT adapter on the selected modules, saved in the comfy format;
* :mod:`.optimizers` / :mod:`.state` — optimizers, schedules, and resumable states without pickle;
* :mod:`.objective` / :mod:`.trainer` / :mod:`.prepare` / :mod:`.outputs` — the loop, its setup
  and its files; :mod:`.job` — the backend's run / validate / describe.
"""
