"""The bad-input corpus: every kind of unusable file is named with its reason and skipped; nothing crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from difflora_gui.dataset.media import MAX_IMAGE_PIXELS, image_header, load_frame, probe, read_image
from difflora_gui.dataset.pairing import import_single, pair_folders
from difflora_gui.errors import BadFileError
from tests.app_process import run_main
from tests.dataset_media_helpers import bad_corpus, folder_digest, write_huge_png, write_image, write_video

MEDIA_ONLY = {"notes.md", "model.safetensors"}  # not media by name: probe refuses them too


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "bad ü"
    return folder, bad_corpus(folder)


def test_probe_names_each_bad_file_and_its_problem(corpus):
    folder, expected = corpus
    for name, word in expected.items():
        with pytest.raises(BadFileError) as caught:
            probe(folder / name)
        message = str(caught.value)
        assert message.startswith(str(folder / name) + ": "), message
        assert word in message, (name, message)
        assert "\n" not in message


def test_decoding_refuses_each_bad_file_too(corpus):
    folder, expected = corpus
    for name in expected:
        if name in MEDIA_ONLY:
            continue
        path = folder / name
        with pytest.raises(BadFileError):
            read_image(path, 64)
        if path.suffix == ".mp4":
            with pytest.raises(BadFileError):
                load_frame(path)


def test_the_huge_png_is_real_and_refused_from_its_header(tmp_path):
    path = write_huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 2_000_000
    head = path.read_bytes()[:64]
    assert image_header(path, head, path.read_bytes()[-64:], path.stat().st_size) == ("png", 30_000, 30_000)
    with pytest.raises(BadFileError, match=r"too large: 30000×30000 is 900 MP \(at most 100 MP\)"):
        probe(path)
    with pytest.raises(BadFileError, match="too large"):
        read_image(path, 256)
    small = write_huge_png(tmp_path / "just_under.png", 10_000, 10_000)
    assert MAX_IMAGE_PIXELS >= 10_000 * 10_000
    assert probe(small).width == 10_000


def test_a_folder_of_bad_files_pairs_nothing_and_lists_every_one(corpus, tmp_path):
    folder, expected = corpus
    other = tmp_path / "B"
    for name in expected:  # good counterparts with the same names
        target = other / (Path(name).stem + (".mp4" if name.endswith(".mp4") else ".png"))
        if name.endswith(".mp4"):
            write_video(target, frames=4)
        else:
            write_image(target)
    before = folder_digest(tmp_path)
    pair_set = pair_folders(folder, other)
    assert folder_digest(tmp_path) == before
    assert pair_set.pairs == []
    reasons = {Path(s.path).name: s.reason for s in pair_set.skipped}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    assert len(pair_set.unpaired_b) == len(list(other.iterdir()))
    single = import_single(folder)
    assert single.pairs == [] and len(single.skipped) == len(expected)


def test_mixed_good_and_bad_files_keep_the_good_pairs(corpus, tmp_path):
    folder, expected = corpus
    write_image(folder / "good 1.png")
    write_image(folder / "good 2.jpg")
    b = tmp_path / "B"
    write_image(b / "good 1.png")
    write_image(b / "good 2.jpg")
    write_image(b / "half.jpg")
    pair_set = pair_folders(folder, b)
    assert pair_set.ids() == ["good 1", "good 2"]
    assert [i.name for i in pair_set.unpaired_b] == ["half.jpg"]  # its A counterpart was skipped


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_an_unreadable_file_is_skipped(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    a, b = tmp_path / "A", tmp_path / "B"
    locked = write_image(a / "locked.png")
    write_image(b / "locked.png")
    locked.chmod(0)
    try:
        pair_set = pair_folders(a, b)
        assert "cannot read" in pair_set.skipped[0].reason
    finally:
        locked.chmod(0o644)


def test_the_cli_lists_the_corpus_and_exits_0(corpus, tmp_path):
    folder, expected = corpus
    b = tmp_path / "B"
    write_image(b / "x.png")
    before = folder_digest(folder)
    result = run_main("dataset", "pair", folder, b, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 pairs")
    assert f"skipped ({len(expected)}):" in result.stdout
    for name, word in expected.items():
        line = next(line for line in result.stdout.splitlines() if name in line)
        assert word in line, line
    assert "warning: no pairs were found" in result.stderr
    assert "Traceback" not in result.stderr
    assert folder_digest(folder) == before


@pytest.mark.parametrize("suffix, options", [(".mp4", {"movflags": "faststart"}), (".webm", None)])
def test_a_clip_cut_off_after_its_first_frames_is_truncated(tmp_path, suffix, options):
    """The header still says 5 s and the first frames decode: only the missing end tells."""
    from tests.dataset_media_helpers import truncate

    whole = write_video(
        tmp_path / f"whole{suffix}", frames=120, width=128, height=96, noise=True, options=options
    )
    assert probe(whole).frames == 120
    cut = truncate(whole, tmp_path / f"cut{suffix}", 0.4)
    with pytest.raises(BadFileError, match=r"truncated video: the file ends before the clip does"):
        probe(cut)
