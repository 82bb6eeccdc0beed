"""The Musubi Tuner trainer backend: commands, dataset TOML, output parsing, the job (Qt-free)."""
