"""Atomic output: no partial files, inputs never overwritten, usual file modes."""

from __future__ import annotations

import os
import stat

import pytest

from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_output, atomic_write_text


def test_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out file.safetensors"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_and_inputs_are_protected(tmp_path):
    source = tmp_path / "input.safetensors"
    source.write_bytes(b"precious")
    with (
        pytest.raises(UserError, match="refusing to overwrite an input"),
        atomic_output(source, inputs=[source], overwrite=True),
    ):
        pass
    with pytest.raises(UserError, match="already exists"), atomic_output(source):
        pass
    assert source.read_bytes() == b"precious"
    with atomic_output(source, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert source.read_bytes() == b"new"


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="output folder does not exist"), atomic_output(tmp_path / "no" / "x"):
        pass


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_new_files_get_the_usual_mode_and_replaced_files_keep_theirs(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "x", overwrite=False)
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    os.chmod(target, 0o640)
    atomic_write_text(target, "y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
