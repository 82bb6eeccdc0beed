"""The Preview section's core (Qt-free): render a clip with a LoRA stack, resident model, cached renders.

* :mod:`.request` — :class:`~.request.PreviewRequest` and :class:`~.request.LoraEntry` (what a
  render is), their cache key and checks;
* :mod:`.resident` — the pipeline kept loaded between renders; :mod:`.adapters` — the LoRA stack as
  PEFT adapters, strengths and block weights set per module without reloading anything;
* :mod:`.render` — the diffusers Wan preview job; :mod:`.render_cache` — renders cached by key;
* :mod:`.video_io` — writing and decoding clips; :mod:`.bake` — strength and blocks baked into a file.
"""
