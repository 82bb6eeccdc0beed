"""The Preview section's core (Qt-free): render a clip with a LoRA stack, resident model, cached renders.

* :mod:`.request` — :class:`~.request.PreviewRequest` and :class:`~.request.LoraEntry` (what a
  render is), their cache key and checks; :mod:`.backend` — the backend contract (job, result,
  model facts);
* :mod:`.model_files` — the model's folder or files and what they are; :mod:`.resident` — the
  pipeline kept loaded between renders; :mod:`.adapters` — the LoRA stack as PEFT adapters,
  strengths and block weights set per module without reloading anything; :mod:`.samplers`;
* :mod:`.render` — the diffusers Wan preview job; :mod:`.render_outputs` — what every backend
  writes and emits; :mod:`.render_cache` — renders cached by key; :mod:`.latent_preview`;
* :mod:`.video_io` — writing and decoding clips; :mod:`.bake` — strength and blocks baked into a file.
"""
