"""The Compare section's core (Qt-free): strength × seed × variant grids of preview renders.

- :mod:`~difflora_gui.compare.grid_spec`: axes (strength, seed, LoRA variant, block preset or
  selector, prompt, per-expert strength), the grid's cells and the order they render in;
- :mod:`~difflora_gui.compare.grid_job`: the grid job: every cell through a preview backend,
  cached, spread over the lanes the backend offers, resumable;
- :mod:`~difflora_gui.compare.export`: the grid as one labelled H.264 video (and WebP/GIF, a PNG
  contact sheet);
- :mod:`~difflora_gui.compare.sidecar`: the JSON sidecar that re-renders a grid exactly.
"""
