"""Example DiffLoRA Studio plugin package: a cosine-similarity module filter."""

__version__ = "0.2.0"
