"""The demo project: a procedural paired dataset and a tiny Wan model, built locally (no download)."""
