"""The built-in trainer: LoRA training of a diffusers WanTransformer3DModel with PEFT, in-process (Qt-free)."""
