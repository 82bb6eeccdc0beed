"""What the workbench says about a file before it would replace it (Qt-free)."""

from __future__ import annotations

import hashlib

from difflora_gui.lora.synthetic import make_wan_lora
from difflora_gui.merge.existing_output import describe_file, sha256_of


def test_a_lora_is_described_by_model_date_and_size(tmp_path):
    path = tmp_path / "slider.safetensors"
    make_wan_lora("1.3B", rank=2, select="self_attn blocks=0", path=path)
    text = describe_file(path)
    assert text.startswith("slider.safetensors: a Wan 1.3B T2V LoRA with 4 modules")
    assert "modified 20" in text and "KiB" in text


def test_other_files_are_described_without_failing(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    assert "not a readable LoRA" in describe_file(broken)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    assert describe_file(notes).startswith("notes.txt: modified ") and "5 bytes" in describe_file(notes)
    assert "cannot be read" in describe_file(tmp_path / "gone.safetensors")


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_of(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
