"""Content-hash LoRA names and their placement in a server's LoRA folder."""

from __future__ import annotations

import hashlib
import os

import pytest

from difflora_gui.comfy.names import listed_name, place_lora, unique_lora_name
from difflora_gui.errors import UserError
from difflora_gui.lora.synthetic import make_wan_lora


@pytest.fixture
def lora(tmp_path):
    path = tmp_path / "my slider (v2).safetensors"
    make_wan_lora("tiny", path=path, rank=4, seed=1)
    return path


def test_the_name_carries_the_content_hash(lora):
    digest = hashlib.sha256(lora.read_bytes()).hexdigest()
    name = unique_lora_name(lora)
    assert name == f"my_slider_v2-{digest[:12]}.safetensors"
    assert unique_lora_name(lora, digest) == name
    renamed = lora.with_name(name)
    lora.rename(renamed)
    assert unique_lora_name(renamed) == name  # one tag, not two
    with pytest.raises(UserError, match="SHA-256"):
        unique_lora_name(renamed, "abc")


def test_same_bytes_same_name_new_bytes_new_name(lora, tmp_path):
    server_dir = tmp_path / "server_loras"
    server_dir.mkdir()
    first = place_lora(lora, server_dir)
    assert first.copied and first.path.read_bytes() == lora.read_bytes()
    mtime = first.path.stat().st_mtime_ns
    again = place_lora(lora, server_dir)
    assert again.name == first.name and not again.copied
    assert first.path.stat().st_mtime_ns == mtime  # never rewritten: the server may have it loaded
    make_wan_lora("tiny", path=lora, rank=4, seed=2, overwrite=True)
    changed = place_lora(lora, server_dir)
    assert changed.copied and changed.name != first.name
    assert first.path.read_bytes() != changed.path.read_bytes()
    assert sorted(os.listdir(server_dir)) == sorted([first.name, changed.name])  # no temp file left


def test_a_damaged_file_under_our_name_is_replaced_whole(lora, tmp_path):
    server_dir = tmp_path / "server_loras"
    server_dir.mkdir()
    (server_dir / unique_lora_name(lora)).write_bytes(b"truncated")
    placed = place_lora(lora, server_dir)
    assert placed.copied and placed.path.read_bytes() == lora.read_bytes()


def test_missing_files_and_folders_are_named(lora, tmp_path):
    with pytest.raises(UserError, match="LoRA folder does not exist"):
        place_lora(lora, tmp_path / "nowhere")
    with pytest.raises(UserError, match="LoRA file not found"):
        place_lora(tmp_path / "gone.safetensors", tmp_path)


def test_the_server_spelling_is_found_in_its_listing():
    listing = [
        "style.safetensors",
        "difflora/slider-0123456789ab.safetensors",
        "win\\other-aaaaaaaaaaaa.safetensors",
    ]
    assert (
        listed_name("slider-0123456789ab.safetensors", listing) == "difflora/slider-0123456789ab.safetensors"
    )
    assert listed_name("other-aaaaaaaaaaaa.safetensors", listing) == "win\\other-aaaaaaaaaaaa.safetensors"
    assert listed_name("style.safetensors", listing) == "style.safetensors"
    assert listed_name("absent.safetensors", listing) is None
