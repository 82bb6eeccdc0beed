"""Export of a pair set for Musubi Tuner (two dataset TOMLs) and as plain folder pairs.

Real files: images written with cv2, clips encoded with PyAV. The TOMLs are parsed back with
tomllib (and, when ``MUSUBI_TUNER_DIR`` names a Musubi Tuner checkout and ``toml``/``voluptuous``
are installed, with Musubi's own config loader, validator and image glob).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from difflora_gui.dataset import folder_export, musubi_export
from difflora_gui.dataset.folder_export import MANIFEST_NAME, export_folders, safe_file_stem
from difflora_gui.dataset.model import MediaItem, Pair, PairSet
from difflora_gui.dataset.musubi_export import (
    GENERAL_KEYS,
    IMAGE_KEYS,
    VIDEO_KEYS,
    MusubiOptions,
    export_musubi,
    render_dataset_toml,
    toml_string,
)
from difflora_gui.errors import UserError
from difflora_gui.jobs.context import NullContext

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DIRECTORY_KEYS = {"image_directory", "video_directory", "cache_directory"}


# --- fixtures ----------------------------------------------------------------------------------


def write_image(path: Path, seed: int, size=(48, 64)) -> Path:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix.lower(), image)
    assert ok
    path.write_bytes(data.tobytes())  # cv2.imwrite cannot write non-ASCII names on Windows
    return path


def write_video(path: Path, seed: int, frames: int = 9, size=(32, 48)) -> Path:
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=16)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 255, (*size, 3), dtype=np.uint8), format="rgb24"
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def digest_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pair(pair_id, a, b, caption="", include=True):
    return Pair(
        pair_id,
        MediaItem.from_path(a) if a else None,
        MediaItem.from_path(b) if b else None,
        caption,
        include,
    )


@pytest.fixture
def image_set(tmp_path):
    """Five image pairs: two with captions, one excluded, one without B, one with an upper-case suffix."""
    src = tmp_path / "src folder ü"
    a, b = src / "dense", src / "sparse"
    files = {}
    for i, stem in enumerate(["frame 001", "frame_002", "Größe 003", "frame_004", "frame_005"]):
        files[stem] = (write_image(a / f"{stem}.png", i), write_image(b / f"{stem}.jpg", 100 + i))
    upper_a = write_image(a / "shot_006.PNG", 6)
    upper_b = write_image(b / "shot_006.JPG", 106)
    pairs = [
        pair("frame 001", *files["frame 001"]),
        pair("frame_002", *files["frame_002"], caption="a film still, dense detail"),
        pair("Größe 003", *files["Größe 003"], caption="ünïcode caption ✓"),
        pair("frame_004", *files["frame_004"], include=False),
        pair("frame_005", files["frame_005"][0], None),
        pair("shot_006", upper_a, upper_b),
    ]
    pair_set = PairSet(name="test", pairs=pairs, sources={"a": str(a), "b": str(b)}, rule="stem")
    return pair_set, src


@pytest.fixture
def video_set(tmp_path):
    src = tmp_path / "clips"
    pairs = [
        pair(
            f"clip_{i}",
            write_video(src / "A" / f"clip_{i}.mp4", i),
            write_video(src / "B" / f"clip_{i}.mp4", 10 + i),
        )
        for i in range(2)
    ]
    return PairSet(name="clips", pairs=pairs), src


def parse(path: Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def without_directories(config: dict) -> dict:
    return {
        "general": config["general"],
        "datasets": [{k: v for k, v in d.items() if k not in DIRECTORY_KEYS} for d in config["datasets"]],
    }


def check_twin_tomls(result) -> tuple[dict, dict]:
    """Only [general] and [[datasets]]; identical but for the folders; caches distinct and empty."""
    a, b = parse(result.toml_a), parse(result.toml_b)
    for config in (a, b):
        assert set(config) == {"general", "datasets"}
        assert set(config["general"]) <= set(GENERAL_KEYS)
        for entry in config["datasets"]:
            allowed = VIDEO_KEYS if "video_directory" in entry else IMAGE_KEYS
            assert set(entry) <= set(allowed), set(entry) - set(allowed)
            assert "cache_directory" in entry
    assert without_directories(a) == without_directories(b)
    caches = [d["cache_directory"] for config in (a, b) for d in config["datasets"]]
    sources = [
        d.get("image_directory") or d.get("video_directory") for config in (a, b) for d in config["datasets"]
    ]
    assert len(set(caches)) == len(caches) and not set(caches) & set(sources)
    for cache in caches:
        assert Path(cache).is_dir() and not any(Path(cache).iterdir())
    for d_a, d_b in zip(a["datasets"], b["datasets"], strict=True):
        assert d_a != d_b  # the folders do differ
    return a, b


# --- Musubi export: images ---------------------------------------------------------------------


def test_image_export_writes_twin_tomls_and_caption_files(image_set, tmp_path):
    pair_set, src = image_set
    before = digest_tree(src)
    out = tmp_path / "export out ✓"
    result = export_musubi(pair_set, out, resolution=192, repeats=3, batch_size=2, ctx=NullContext())

    a, b = check_twin_tomls(result)
    assert a["general"] == {
        "resolution": 192,
        "caption_extension": ".txt",
        "batch_size": 2,
        "num_repeats": 3,
        "enable_bucket": True,
        "bucket_no_upscale": False,
    }
    assert a["datasets"] == [{"image_directory": str(out / "A"), "cache_directory": str(out / "cache" / "A")}]
    assert b["datasets"] == [{"image_directory": str(out / "B"), "cache_directory": str(out / "cache" / "B")}]
    assert result.toml_a == out / "dataset_A.toml" and result.toml_b == out / "dataset_B.toml"
    assert result.folders == {"a": out / "A", "b": out / "B"}

    # included complete pairs only; the excluded and the incomplete are listed with their reason
    assert [i.pair_id for i in result.items] == ["frame 001", "frame_002", "Größe 003", "shot_006"]
    assert {x.pair_id: x.reason for x in result.left_out} == {
        "frame_004": "excluded",
        "frame_005": "no B item",
    }
    names_a = sorted(p.name for p in (out / "A").iterdir())
    assert names_a == sorted(
        ["frame 001.png", "frame 001.txt", "frame_002.png", "frame_002.txt", "Größe 003.png", "Größe 003.txt"]
        + [
            "shot_006.png",
            "shot_006.txt",
        ]  # suffix lower-cased: Musubi's glob knows .png/.PNG, not mixed case
    )
    names_b = sorted(p.name for p in (out / "B").iterdir())
    assert names_b == [n.replace(".png", ".jpg") for n in names_a]
    # an empty caption file for every empty caption, the caption otherwise
    for side in ("A", "B"):
        assert (out / side / "frame 001.txt").read_bytes() == b""
        assert (out / side / "shot_006.txt").read_bytes() == b""
        assert (out / side / "frame_002.txt").read_text(encoding="utf-8") == "a film still, dense detail"
        assert (out / side / "Größe 003.txt").read_text(encoding="utf-8") == "ünïcode caption ✓"
    # copies of the sources, byte for byte; the sources untouched
    assert (out / "A" / "frame_002.png").read_bytes() == (src / "dense" / "frame_002.png").read_bytes()
    assert (out / "B" / "shot_006.jpg").read_bytes() == (src / "sparse" / "shot_006.JPG").read_bytes()
    assert digest_tree(src) == before
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["export"] == "musubi" and len(manifest["pairs"]) == 4 and len(manifest["left_out"]) == 2
    # nothing left beside the export (the staging folder was renamed into place)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export out ✓", "src folder ü"]


def test_width_height_resolution_and_bucket_options(image_set, tmp_path):
    pair_set, _ = image_set
    result = export_musubi(
        pair_set, tmp_path / "out", resolution="336x192", enable_bucket=False, bucket_no_upscale=True
    )
    a, _ = check_twin_tomls(result)
    assert a["general"]["resolution"] == [336, 192]
    assert a["general"]["enable_bucket"] is False and a["general"]["bucket_no_upscale"] is True
    text = result.toml_a.read_text(encoding="utf-8")
    assert "resolution = [336, 192]" in text and "image_directory = '" in text  # a literal string


def test_options_are_validated_before_anything_is_written(image_set, tmp_path):
    pair_set, _ = image_set
    bad = [
        ({"target_frames": [1, 24]}, r"4N\+1 \(use 21 or 25\)"),
        ({"frame_extraction": "middle"}, "frame_extraction"),
        ({"frame_extraction": "uniform", "frame_sample": 1}, "frame_sample"),
        ({"resolution": "big"}, "resolution"),
        ({"resolution": [336, 192, 3]}, "resolution"),
        ({"repeats": 0}, "num_repeats"),
        ({"caption_extension": "txt"}, "caption extension"),
        ({"caption_extension": ".caption.txt"}, "caption extension"),
        ({"caption_extension": ".png"}, "media"),
        ({"source_fps": -3.0}, "source_fps"),
        ({"shuffle": True}, "unknown"),
    ]
    for options, words in bad:
        with pytest.raises(UserError, match=words):
            export_musubi(pair_set, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_and_replaces_only_a_previous_export(image_set, tmp_path):
    pair_set, src = image_set
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export_musubi(pair_set, out)
    with pytest.raises(UserError, match="not a DiffLoRA export"):
        export_musubi(pair_set, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"

    fresh = tmp_path / "fresh"
    export_musubi(pair_set, fresh)
    (fresh / "cache" / "A" / "stale_0048x0064_wan.safetensors").write_bytes(b"old cache")
    with pytest.raises(UserError, match="not empty"):
        export_musubi(pair_set, fresh)
    pair_set.set_included(["frame 001"], False)
    result = export_musubi(pair_set, fresh, overwrite=True, repeats=2)
    assert parse(result.toml_a)["general"]["num_repeats"] == 2
    assert not (fresh / "A" / "frame 001.png").exists()
    assert not any((fresh / "cache" / "A").iterdir())  # stale caches would be trained on: gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out", "src folder ü"]

    # an empty folder is fine without --overwrite
    empty = tmp_path / "empty"
    empty.mkdir()
    export_musubi(pair_set, empty)
    assert (empty / "dataset_A.toml").is_file()


def test_refuses_an_export_folder_inside_or_around_the_sources(image_set, tmp_path):
    pair_set, src = image_set
    before = digest_tree(src)
    with pytest.raises(UserError, match="inside the source folder"):
        export_musubi(pair_set, src / "dense" / "export")
    with pytest.raises(UserError, match="holds the source"):
        export_musubi(pair_set, src, overwrite=True)
    assert digest_tree(src) == before


def test_nothing_to_export_is_one_line(tmp_path):
    a = write_image(tmp_path / "a" / "x.png", 1)
    pair_set = PairSet(pairs=[pair("x", a, None), pair("y", a, a, include=False)])
    with pytest.raises(UserError, match=r"nothing to export.*1 no B item, 1 excluded"):
        export_musubi(pair_set, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_files_and_mixed_kind_pairs_are_left_out_with_reasons(tmp_path):
    a = write_image(tmp_path / "a" / "x.png", 1)
    b = write_image(tmp_path / "b" / "x.png", 2)
    clip = write_video(tmp_path / "b" / "m.mp4", 3)
    pair_set = PairSet(
        pairs=[pair("x", a, b), pair("m", a, clip), pair("gone", tmp_path / "a" / "gone.png", b)]
    )
    result = export_musubi(pair_set, tmp_path / "out")
    reasons = {x.pair_id: x.reason for x in result.left_out}
    assert "A is image, B is video" in reasons["m"] and "missing" in reasons["gone"]
    assert [i.pair_id for i in result.items] == ["x"]


def test_cancel_leaves_nothing_behind(image_set, tmp_path):
    pair_set, _ = image_set

    class CancelAfterOne(NullContext):
        calls = 0

        def raise_if_cancelled(self):
            self.calls += 1
            if self.calls > 1:
                self.cancel()
            super().raise_if_cancelled()

    from difflora_gui.errors import JobCancelled

    with pytest.raises(JobCancelled):
        export_musubi(pair_set, tmp_path / "out", ctx=CancelAfterOne())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src folder ü"]


def test_hardlinks_share_the_source_file_and_copies_do_not(image_set, tmp_path):
    pair_set, src = image_set
    linked = export_musubi(pair_set, tmp_path / "linked", link=True)
    copied = export_musubi(pair_set, tmp_path / "copied")
    source = src / "dense" / "frame_002.png"
    assert linked.linked == 8 and copied.linked == 0
    assert os.path.samefile(tmp_path / "linked" / "A" / "frame_002.png", source)
    assert not os.path.samefile(tmp_path / "copied" / "A" / "frame_002.png", source)


# --- Musubi export: videos, and images with videos ---------------------------------------------


def test_video_export_target_frames_and_frame_extraction(video_set, tmp_path):
    pair_set, src = video_set
    before = digest_tree(src)
    result = export_musubi(
        pair_set,
        tmp_path / "out",
        resolution=[336, 192],
        target_frames=[1, 25, 45],
        frame_extraction="slide",
        frame_stride=8,
        source_fps=30,
    )
    a, b = check_twin_tomls(result)
    [entry] = a["datasets"]
    assert entry["video_directory"] == str(tmp_path / "out" / "A")
    assert entry["target_frames"] == [1, 25, 45] and all((f - 1) % 4 == 0 for f in entry["target_frames"])
    assert entry["frame_extraction"] == "slide" and entry["frame_stride"] == 8
    assert "frame_sample" not in entry and "max_frames" not in entry  # only the keys that apply
    assert entry["source_fps"] == 30.0 and isinstance(entry["source_fps"], float)
    assert "source_fps = 30.0" in result.toml_a.read_text(encoding="utf-8")  # Musubi wants a decimal number
    for side in ("A", "B"):  # a clip without a caption file crashes Musubi's text-encoder caching
        assert (tmp_path / "out" / side / "clip_0.txt").read_bytes() == b""
        assert (tmp_path / "out" / side / "clip_1.mp4").is_file()
    assert digest_tree(src) == before

    full = export_musubi(pair_set, tmp_path / "full", frame_extraction="full", max_frames=81)
    [entry] = parse(full.toml_b)["datasets"]
    assert entry["frame_extraction"] == "full" and entry["max_frames"] == 81
    uniform = export_musubi(pair_set, tmp_path / "uniform", frame_extraction="uniform", frame_sample=4)
    [entry] = parse(uniform.toml_a)["datasets"]
    assert entry["frame_sample"] == 4 and entry["target_frames"] == [1, 25, 45]


def test_images_and_videos_split_into_a_dataset_each(image_set, video_set, tmp_path):
    images, _ = image_set
    clips, _ = video_set
    mixed = PairSet(pairs=images.pairs + clips.pairs)
    out = tmp_path / "out"
    result = export_musubi(mixed, out)
    a, b = check_twin_tomls(result)
    assert [sorted(k for k in d if k.endswith("directory")) for d in a["datasets"]] == [
        ["cache_directory", "image_directory"],
        ["cache_directory", "video_directory"],
    ]
    assert a["datasets"][0]["image_directory"] == str(out / "A" / "images")
    assert a["datasets"][1]["video_directory"] == str(out / "A" / "videos")
    assert b["datasets"][1]["cache_directory"] == str(out / "cache" / "B" / "videos")
    assert sorted(p.name for p in (out / "B" / "videos").iterdir()) == [
        "clip_0.mp4",
        "clip_0.txt",
        "clip_1.mp4",
        "clip_1.txt",
    ]
    assert not list((out / "A" / "videos").glob("*.png"))
    assert [(d.side, d.kind, d.items) for d in result.datasets] == [
        ("a", "image", 4),
        ("a", "video", 2),
        ("b", "image", 4),
        ("b", "video", 2),
    ]


# --- TOML strings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Users\Renée\My Datasets\film frames\A",
        r"\\server\share\data set\B",
        r"D:\data\x [1]\tab	here",
        "/home/me/data set/ü/A",
        r"C:\Users\O'Brien\data",  # a quote: no literal string possible, an escaped one instead
        'D:\\odd "quoted"\\name',
    ],
)
def test_paths_round_trip_through_toml(path):
    text = render_dataset_toml(
        {"resolution": 192, "caption_extension": ".txt"},
        [{"image_directory": path, "cache_directory": path + "_cache"}],
    )
    config = tomllib.loads(text)
    assert config["datasets"][0]["image_directory"] == path
    assert config["datasets"][0]["cache_directory"] == path + "_cache"
    if "'" not in path:
        assert f"image_directory = '{path}'" in text  # a literal string: backslashes as they are
    toml = pytest.importorskip("toml")  # what Musubi itself parses with (toml 0.10.2)
    assert toml.loads(text)["datasets"][0]["image_directory"] == path


def test_toml_string_escapes_what_a_literal_string_cannot_hold():
    assert toml_string(r"C:\a\b") == r"'C:\a\b'"
    for text in ("a\nb", chr(7) + chr(127), "it's"):
        assert tomllib.loads("x = " + toml_string(text))["x"] == text


# --- plain folders ---------------------------------------------------------------------------------


def test_folder_export_pairs_names_and_captions(image_set, tmp_path):
    pair_set, src = image_set
    before = digest_tree(src)
    out = tmp_path / "pairs"
    result = export_folders(pair_set, out)
    assert result.folders == {"a": out / "A", "b": out / "B"}
    assert sorted(p.name for p in out.iterdir()) == ["A", "B", MANIFEST_NAME]
    stems_a = sorted(p.stem for p in (out / "A").glob("*.png"))
    stems_b = sorted(p.stem for p in (out / "B").glob("*.jpg"))
    assert stems_a == stems_b == ["Größe 003", "frame 001", "frame_002", "shot_006"]
    assert (out / "A" / "frame 001.txt").read_bytes() == b""
    assert (out / "B" / "frame_002.txt").read_text(encoding="utf-8") == "a film still, dense detail"
    assert not list(out.glob("*.toml"))
    assert digest_tree(src) == before
    with pytest.raises(UserError, match="not empty"):
        export_folders(pair_set, out)


def test_file_names_are_safe_and_unique_on_case_insensitive_drives(tmp_path):
    assert safe_file_stem('a/b\\c:d*e?"f<g>h|') == "a_b_c_d_e__f_g_h_"
    assert safe_file_stem("CON") == "_CON" and safe_file_stem("nul.tar") == "_nul.tar"
    assert safe_file_stem("trailing. ") == "trailing" and safe_file_stem("..") == "pair"
    a1 = write_image(tmp_path / "a" / "Frame.png", 1)
    a2 = write_image(tmp_path / "a2" / "frame.png", 2)
    b = write_image(tmp_path / "b" / "frame.png", 3)
    items, left = folder_export.plan_export(PairSet(pairs=[pair("Frame", a1, b), pair("frame", a2, b)]))
    assert [i.name for i in items] == ["Frame", "frame_2"] and not left


def test_relative_item_paths_resolve_against_base_dir(tmp_path):
    write_image(tmp_path / "ds" / "a" / "x.png", 1)
    write_image(tmp_path / "ds" / "b" / "x.png", 2)
    pair_set = PairSet(pairs=[Pair("x", MediaItem("a/x.png", "image"), MediaItem("b/x.png", "image"))])
    result = export_musubi(pair_set, tmp_path / "out", base_dir=tmp_path / "ds")
    assert (tmp_path / "out" / "B" / "x.png").read_bytes() == (tmp_path / "ds" / "b" / "x.png").read_bytes()
    assert result.pairs == 1


# --- the job, the CLI and the plugin --------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    """``dataset export-musubi ARGS`` as the app's CLI runs it (one-line errors, exit 2)."""
    from difflora_gui.dataset import export_cli

    parser = argparse.ArgumentParser(prog="export-musubi")
    export_cli.configure(parser)
    args = parser.parse_args(argv)
    try:
        return export_cli.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def test_cli_from_a_pair_list(image_set, tmp_path, capsys):
    pair_set, _ = image_set
    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(json.dumps(pair_set.to_json()), encoding="utf-8")
    out = tmp_path / "out"
    code = run_cli(
        ["--pairs", str(pairs_file), "--out", str(out), "--resolution", "256", "--repeats", "4", "--quiet"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "exported 4 pairs" in printed and "dataset_A.toml" in printed and "frame_004: excluded" in printed
    general = parse(out / "dataset_A.toml")["general"]
    assert general["resolution"] == 256 and general["num_repeats"] == 4

    code = run_cli(
        ["--pairs", str(pairs_file), "--out", str(tmp_path / "plain"), "--folders-only", "--json", "--quiet"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "folders" and summary["pairs"] == 4
    assert not list((tmp_path / "plain").glob("*.toml"))


def test_cli_bad_input_is_one_line_exit_2(image_set, tmp_path, capsys):
    pair_set, _ = image_set
    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(json.dumps(pair_set.to_json()), encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    cases = [
        ["--pairs", str(tmp_path / "broken.json"), "--out", str(tmp_path / "o1")],
        ["--pairs", str(tmp_path / "nothing.json"), "--out", str(tmp_path / "o2")],
        ["--pairs", str(pairs_file), "--out", str(tmp_path / "o3"), "--target-frames", "1,24"],
        ["--pairs", str(pairs_file), "--out", str(tmp_path / "o4"), "--resolution", "wide"],
        ["--pairs", str(pairs_file), "--out", str(tmp_path / "no" / "such" / "folder")],
        [str(tmp_path / "missing_a"), str(tmp_path / "missing_b"), "--out", str(tmp_path / "o5")],
        [str(tmp_path), "--out", str(tmp_path / "o6")],
        ["--pairs", str(pairs_file), "--project", "p.difflora", "--out", str(tmp_path / "o7")],
    ]
    for argv in cases:
        assert run_cli([*argv, "--quiet"]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 8))


def test_cli_pairs_two_folders(tmp_path, capsys):
    pytest.importorskip("difflora_gui.dataset.pairing")
    for i in range(3):
        write_image(tmp_path / "A" / f"f{i}.png", i)
        write_image(tmp_path / "B" / f"f{i}.png", 10 + i)
    write_image(tmp_path / "A" / "lonely.png", 99)
    out = tmp_path / "out"
    assert run_cli([str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "B").glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    assert len(list((out / "A").glob("*.txt"))) == 3
    check = types.SimpleNamespace(toml_a=out / "dataset_A.toml", toml_b=out / "dataset_B.toml")
    check_twin_tomls(check)


def test_cli_from_a_project(image_set, tmp_path, capsys):
    from difflora_gui.dataset.store import create_dataset
    from difflora_gui.project.model import Project

    pair_set, _ = image_set
    project_file = tmp_path / "films.difflora"
    project = Project("films", path=project_file)
    project.save(project_file)
    record = create_dataset(project, pair_set, name="dense vs sparse")
    project.save()
    out = tmp_path / "from project"
    assert run_cli(["--project", str(project_file), "--out", str(out), "--quiet"]) == 0
    assert len(list((out / "B").glob("*.jpg"))) == 4 and (out / "dataset_A.toml").is_file()

    create_dataset(project, PairSet(name="other"), name="other")
    project.save()
    assert run_cli(["--project", str(project_file), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "several datasets" in capsys.readouterr().err
    assert (
        run_cli(
            ["--project", str(project_file), "--dataset", record.id, "--out", str(tmp_path / "o3"), "--quiet"]
        )
        == 0
    )
    assert (
        run_cli(
            ["--project", str(project_file), "--dataset", "nope", "--out", str(tmp_path / "o4"), "--quiet"]
        )
        == 2
    )
    assert "no dataset 'nope'" in capsys.readouterr().err


def test_main_dataset_export_musubi_command(image_set, tmp_path):
    """Through ``python main.py dataset export-musubi`` once the dataset command delegates to it."""
    pytest.importorskip("difflora_gui.commands.dataset_cmd")
    from difflora_gui.cli import main

    pair_set, _ = image_set
    pairs_file = tmp_path / "pairs.json"
    pairs_file.write_text(json.dumps(pair_set.to_json()), encoding="utf-8")
    try:
        code = main(
            [
                "dataset",
                "export-musubi",
                "--pairs",
                str(pairs_file),
                "--out",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
    except SystemExit as exc:  # the subcommand is not wired (yet)
        pytest.skip(f"dataset export-musubi is not available: exit {exc.code}")
    assert code == 0 and (tmp_path / "out" / "dataset_B.toml").is_file()


def test_job_takes_an_open_pair_set_and_the_plugin_registers(image_set, tmp_path):
    from difflora_gui.dataset.export_job import run_export
    from difflora_gui.jobs.recording import RecordingContext

    pair_set, _ = image_set
    ctx = RecordingContext()
    summary = run_export(
        {"pairs": pair_set, "out": str(tmp_path / "out"), "resolution": "192", "repeats": 2}, ctx
    )
    assert summary["format"] == "musubi" and summary["pairs"] == 4
    assert Path(summary["toml_a"]).is_file()

    from difflora_gui.plugin_host import PluginHost

    host = PluginHost(persist=False).load()
    spec = host.dataset_tools()["export_musubi"]
    assert spec.lane == "light"
    values = spec.params.defaults()
    values.update(pairs=pair_set, out=str(tmp_path / "form"))
    summary = run_export(values, NullContext())
    assert parse(Path(summary["toml_b"]))["general"]["resolution"] == 192

    from difflora_gui.dataset.store import save_pair_set

    save_pair_set(tmp_path / "ds", pair_set)  # the panel hands the dataset's folder
    values = spec.params.defaults()
    values.update(dataset_folder=str(tmp_path / "ds"), out=str(tmp_path / "plain"), format="folders")
    summary = run_export(values, NullContext())
    assert summary["format"] == "folders" and (tmp_path / "plain" / "B" / "frame_002.txt").is_file()


# --- Musubi Tuner's own loader and validator (optional) -------------------------------------------


def _musubi_config_utils():
    root = os.environ.get("MUSUBI_TUNER_DIR")
    if not root:
        pytest.skip("MUSUBI_TUNER_DIR is not set (a Musubi Tuner checkout validates the TOMLs)")
    pytest.importorskip("toml")
    pytest.importorskip("voluptuous")
    dataset_dir = Path(root) / "src" / "musubi_tuner" / "dataset"
    # config_utils imports the dataset classes (torch); the loader and validator do not need them
    stub = types.ModuleType("musubi_tuner.dataset.image_video_dataset")
    stub.DatasetGroup = stub.ImageDataset = stub.VideoDataset = object
    modules = {
        "musubi_tuner": types.ModuleType("musubi_tuner"),
        "musubi_tuner.dataset": types.ModuleType("x"),
    }
    modules["musubi_tuner.dataset.image_video_dataset"] = stub
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        loaded = {}
        for name in ("config_utils", "media_utils"):
            spec = importlib.util.spec_from_file_location(f"musubi_{name}", dataset_dir / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return loaded["config_utils"], loaded["media_utils"]


def test_musubi_tuner_accepts_the_tomls_and_finds_every_item(image_set, video_set, tmp_path):
    config_utils, media_utils = _musubi_config_utils()
    images, _ = image_set
    clips, _ = video_set
    mixed = PairSet(pairs=images.pairs + clips.pairs)
    result = export_musubi(mixed, tmp_path / "out [1] ü", resolution=[336, 192], source_fps=30.0)
    sanitizer = config_utils.ConfigSanitizer()
    for toml_path in (result.toml_a, result.toml_b):
        user_config = config_utils.load_user_config(str(toml_path))
        blueprint = config_utils.BlueprintGenerator(sanitizer).generate(
            user_config, argparse.Namespace(debug_dataset=False)
        )
        datasets = blueprint.dataset_group.datasets
        assert [d.is_image_dataset for d in datasets] == [True, False]
        image_params, video_params = datasets[0].params, datasets[1].params
        assert image_params.resolution == (336, 192) and image_params.caption_extension == ".txt"
        assert image_params.enable_bucket is True and video_params.source_fps == 30.0
        assert len({d.params.cache_directory for d in datasets}) == 2
        found = media_utils.glob_images(image_params.image_directory, caption_extension=".txt")
        assert len(found) == 4  # every exported image has its caption file, so none is skipped
        assert len(media_utils.glob_videos(video_params.video_directory)) == 2
    # an unknown key is what Musubi rejects: the validator is really checking
    bad = tmp_path / "bad.toml"
    bad.write_text(
        result.toml_a.read_text(encoding="utf-8").replace("batch_size", "batchsize"), encoding="utf-8"
    )
    with pytest.raises(Exception, match="extra keys"):
        sanitizer.sanitize_user_config(config_utils.load_user_config(str(bad)))


def test_option_defaults_match_the_reference():
    options = MusubiOptions().validated()
    assert options.general_table()["enable_bucket"] is True and options.caption_extension == ".txt"
    assert options.video_table() == {"target_frames": [1, 25, 45], "frame_extraction": "head"}
    assert musubi_export.FRAME_EXTRACTIONS == ("head", "chunk", "slide", "uniform", "full")
