"""Pair checks on constructed pairs: identical, shifted, tinted, resized, videos; the set summary; the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from difflora_gui.dataset.check_config import CHECK_CONFIG, CheckThresholds
from difflora_gui.dataset.check_metrics import ssim
from difflora_gui.dataset.check_summary import scores_csv, summarize
from difflora_gui.dataset.checks import PairScores, check_pair, flag_scores, shift_text

ROOT = Path(__file__).resolve().parent.parent


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured uint8 BGR scene: gradients, blurred noise, filled shapes, a little grain."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = np.concatenate([x * 180 + y * 40, y * 160 + 30 * np.sin(x * 12), (1 - x) * 140 + y * 50], axis=2)
    noise = cv2.resize(rng.random((height // 8, width // 8, 3), dtype=np.float32), (width, height)) * 60
    image = image + noise
    for _ in range(25):
        colour = tuple(float(c) for c in rng.integers(0, 255, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.integers(8, 60)), colour, -1)
    image = image + rng.normal(0, 2, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def base():
    return scene(720, 520, seed=3)


@pytest.fixture
def a_image(base):
    return base[20:500, 40:680]  # 640 × 480


def test_identical_pair_has_ssim_one_no_shift_no_drift_no_flags(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    b = write(tmp_path / "b.png", a_image)
    s = check_pair(a, b, 256)
    assert s.error == ""
    assert s.ssim == pytest.approx(1.0, abs=1e-6)
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in s.ssim_rgb)
    assert s.mad == 0.0 and s.mad_rgb == (0.0, 0.0, 0.0)
    assert s.shift_px < 0.05
    assert all(abs(v) < 1e-6 for v in s.lab_drift) and abs(s.chroma_drift) < 1e-6
    assert s.histogram < 1e-6
    assert s.flags == []
    assert s.check_size == (341, 256) and s.size_a == (640, 480) == s.size_b
    assert s.resize_method  # the decode/resize path is stored with the scores


def test_ssim_matches_the_standard_formula_against_a_direct_computation(a_image):
    a = cv2.cvtColor(a_image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    b = np.clip(a + np.random.default_rng(1).normal(0, 12, a.shape), 0, 255)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    full = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    expected = full[5:-5, 5:-5].mean()
    assert ssim(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(expected, abs=2e-5)
    assert 0.3 < expected < 0.95


@pytest.mark.parametrize(("dx", "dy"), [(12, 0), (-12, 5)])
def test_shifted_pair_is_found_within_a_pixel_and_flagged(tmp_path, base, dx, dy):
    a = write(tmp_path / "a.png", base[20:500, 40:680])
    # B's content lies dx right, dy down of A's: B's window starts dx left, dy up
    b = write(tmp_path / "b.png", base[20 - dy : 500 - dy, 40 - dx : 680 - dx])
    s = check_pair(a, b, 256)
    sx, sy = s.shift_source
    assert abs(sx - dx) < 1.0 and abs(sy - dy) < 1.0
    scale = 256 / 480
    assert abs(s.shift[0] - dx * scale) < 0.6 and abs(s.shift[1] - dy * scale) < 0.6
    shift_flags = [f for f in s.flags if f.code == "shift"]
    assert len(shift_flags) == 1
    assert ("right" if dx > 0 else "left") in shift_flags[0].text
    assert f"{abs(sx):.1f}" in shift_flags[0].text


def test_shift_found_at_512_too(tmp_path, base):
    a = write(tmp_path / "a.png", base[20:500, 40:680])
    b = write(tmp_path / "b.png", base[20:500, 28:668])  # 12 px right
    s = check_pair(a, b, 512)
    assert abs(s.shift_source[0] - 12) < 1.0 and abs(s.shift_source[1]) < 1.0
    assert abs(s.shift[0] - 12 * 512 / 480) < 1.0


def test_shift_text_reads_directions():
    assert shift_text(12.34, 0.4) == "shifted 12.3 px right, 0.4 px down"
    assert shift_text(-3.0, -2.0) == "shifted 3.0 px left, 2.0 px up"


def test_green_tint_is_flagged_greener_with_its_number(tmp_path, a_image):
    tinted = a_image.astype(np.int16)
    tinted[:, :, 1] += 18  # more green
    tinted[:, :, 2] -= 6  # less red
    a = write(tmp_path / "a.png", a_image)
    b = write(tmp_path / "b.png", np.clip(tinted, 0, 255).astype(np.uint8))
    s = check_pair(a, b, 256)
    dL, da, db = s.lab_drift
    assert da < -3
    flags = {f.code: f.text for f in s.flags}
    assert "green_magenta" in flags
    assert flags["green_magenta"].startswith("B is greener (Δa −")
    assert f"{abs(da):.1f}" in flags["green_magenta"]
    assert s.ssim > 0.9  # the structure is the same
    assert "shift" not in flags


def test_darker_and_less_saturated_directions(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    hsv = cv2.cvtColor(a_image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[:, :, 1] *= 0.5
    hsv[:, :, 2] *= 0.8
    b = write(tmp_path / "b.png", cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR))
    s = check_pair(a, b, 256)
    flags = {f.code: f.text for f in s.flags}
    assert "darker" in flags["lightness"] and "less saturated" in flags["saturation"]


def test_resized_b_gets_a_size_flag_and_another_aspect_an_aspect_flag(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    half = write(tmp_path / "half.png", cv2.resize(a_image, (320, 240), interpolation=cv2.INTER_AREA))
    square = write(tmp_path / "square.png", cv2.resize(a_image, (512, 512), interpolation=cv2.INTER_AREA))
    s = check_pair(a, half, 256)
    assert [f.code for f in s.flags] == ["size"]
    assert "B is 320×240 but A 640×480" in s.flags[0].text
    assert s.ssim > 0.8  # B was brought to A's size before it was compared
    s = check_pair(a, square, 256)
    aspect = [f for f in s.flags if f.code == "aspect"]
    assert aspect and "B is 512×512 but A 640×480 (aspect 1.00 vs 1.33)" in aspect[0].text
    assert s.check_size == (341, 256)


def test_unreadable_item_is_reported_not_raised(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not an image at all")
    s = check_pair(a, bad, 256)
    assert s.error and "b.png" in s.error
    assert [f.code for f in s.flags] == ["unreadable"]


def write_clip(path: Path, frames: int, *, fps: int = 24, seed: int = 0) -> Path:
    import av

    base = scene(200, 130, seed=seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(frames):
            image = np.ascontiguousarray(base[10 : 10 + 96, i : i + 160, ::-1])  # a slow pan
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_pair_with_different_frame_counts_is_flagged(tmp_path):
    a = write_clip(tmp_path / "a.mp4", 24)
    same = write_clip(tmp_path / "same.mp4", 24)
    short = write_clip(tmp_path / "short.mp4", 16)
    s = check_pair(a, same, 64)
    assert s.kind == "video" and s.frames == (24, 24)
    assert s.ssim > 0.9 and len(s.frame_ssim) == 3
    assert not {"frames", "fps", "duration"} & set(s.flag_codes)
    s = check_pair(a, short, 64)
    assert s.frames == (24, 16)
    codes = set(s.flag_codes)
    assert {"frames", "duration"} <= codes
    assert "B has 16 frames but A 24" in next(f.text for f in s.flags if f.code == "frames")
    assert len(s.sampled_frames) == 3 and s.sampled_frames[-1][1] < 16


def test_video_and_image_pair_is_an_error(tmp_path, a_image):
    s = check_pair(write_clip(tmp_path / "a.mp4", 8), write(tmp_path / "b.png", a_image), 64)
    assert s.error and s.flag_codes == ["unreadable"]


def _scores(pair_id: str, da: float, ssim_value: float = 0.95) -> PairScores:
    return PairScores(
        pair_id=pair_id,
        size_a=(640, 480),
        size_b=(640, 480),
        check_size=(341, 256),
        ssim=ssim_value,
        ssim_rgb=(ssim_value,) * 3,
        mad=3.0,
        mad_rgb=(3.0, 3.0, 3.0),
        align_response=0.9,
        lab_drift=(0.1, da, 0.2),
        resize_method="full+linear",
    )


def test_set_level_drift_is_called_out_when_most_pairs_drift_the_same_way():
    t = CheckThresholds()
    scores = [_scores(f"p{i}", -1.8 - 0.05 * i) for i in range(8)] + [_scores("p8", 0.3), _scores("p9", 0.1)]
    for s in scores:
        s.flags = flag_scores(s, t)
    assert all(s.flags == [] for s in scores)  # every pair is under the per-pair threshold
    summary = summarize(scores, t)
    assert len(summary.set_level) == 1
    line = summary.set_level[0]
    assert line.startswith("set-level: 8 of 10 pairs: B is greener than A (median Δa −")
    assert "a slider learns this" in line
    # a split set is not a set-level drift
    mixed = [_scores(f"q{i}", -2.0 if i % 2 else 2.0) for i in range(10)]
    assert summarize(mixed, t).set_level == []


def test_summary_distributions_worst_first_and_verdicts(tmp_path):
    t = CheckThresholds()
    scores = {f"p{i}": _scores(f"p{i}", 0.0, 0.9 + 0.01 * i) for i in range(5)}
    scores["p1"].lab_drift = (0.0, -6.1, 0.0)
    scores["p3"].ssim = 0.2
    for s in scores.values():
        s.flags = flag_scores(s, t)
    summary = summarize(scores, t)
    assert summary.pairs == 5 and summary.checked == 5 and summary.flagged == 2
    d = summary.distributions["ssim"]
    assert d.minimum == pytest.approx(0.2) and d.maximum == pytest.approx(0.94) and sum(d.counts) == 5
    assert summary.worst[:2] == ["p3", "p1"]  # flagged first, lowest SSIM first
    texts = {v.code: v.text for v in summary.verdicts}
    assert texts["green_magenta"].startswith("green–magenta drift: 1 of 5 pairs (1 greener; median Δa −6.1)")
    assert texts["ssim"] == "low SSIM: 1 of 5 pairs (lowest 0.200)"
    data = json.loads(json.dumps(summary.to_json()))
    assert data["worst"][0] == "p3" and data["distributions"]["ssim"]["counts"]
    csv_text = scores_csv(scores)
    assert csv_text.splitlines()[0].startswith("pair_id,kind,error,ssim")
    assert len(csv_text.splitlines()) == 6 and "B is greener" in csv_text


def test_scores_json_round_trip_and_threshold_change_reflags(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    b = write(tmp_path / "b.png", np.clip(a_image.astype(np.int16) + 14, 0, 255).astype(np.uint8))
    s = check_pair(a, b, 256, pair_id="x")
    back = PairScores.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s
    assert "lightness" in s.flag_codes
    loose = CheckThresholds(drift_lightness=50.0)
    assert "lightness" not in [f.code for f in flag_scores(back, loose)]


def test_check_config_declares_every_threshold_with_help():
    names = [p.name for p in CHECK_CONFIG.params]
    assert names[0] == "resolution" and CHECK_CONFIG.defaults()["resolution"] == 256
    for p in CHECK_CONFIG.params:
        assert len(p.help) > 20, p.name
    assert CheckThresholds.from_values({"ssim_min": "0.7", "other": 1}).ssim_min == 0.7
    from difflora_gui.errors import UserError

    with pytest.raises(UserError):
        CheckThresholds.from_values({"resolution": 0})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "dataset", "check", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_cli_prints_scores_writes_json_and_csv_and_exits_0_with_flags(tmp_path, base):
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    a = base[20:500, 40:680]
    write(a_dir / "one.png", a)
    write(b_dir / "one.png", a)
    write(a_dir / "two.png", a)
    write(b_dir / "two.png", base[20:500, 28:668])
    write(a_dir / "lonely.png", a)
    out_json, out_csv = tmp_path / "scores.json", tmp_path / "scores.csv"
    result = _cli(str(a_dir), str(b_dir), "--json", str(out_json), "--csv", str(out_csv), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "2 of 2 pairs checked at 256 px" in result.stdout
    assert "shifted" in result.stdout and "1 unpaired in A" in result.stdout
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(data["pairs"]) == {"one", "two"}
    assert data["pairs"]["one"]["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert [f["code"] for f in data["pairs"]["two"]["flags"]] == ["ssim", "shift"] or "shift" in [
        f["code"] for f in data["pairs"]["two"]["flags"]
    ]
    assert data["summary"]["flagged"] == 1
    rows = out_csv.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3
    assert not math.isnan(float(rows[1].split(",")[3]))
    # an existing output is not overwritten without --overwrite
    again = _cli(str(a_dir), str(b_dir), "--json", str(out_json), "--quiet")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    result = _cli(str(tmp_path / "missing"), str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing" in result.stderr
    result = _cli(str(tmp_path), "--resolution", "8")
    assert result.returncode == 2


@pytest.mark.parametrize("zoom", [1.08, 0.92])
def test_zoomed_pair_scale_is_estimated_and_flagged(tmp_path, zoom):
    big = scene(900, 700, seed=4)
    a = write(tmp_path / "a.png", big[110:590, 130:770])
    matrix = cv2.getRotationMatrix2D((450, 350), 0, zoom)  # about the crop's centre
    b = write(tmp_path / "b.png", cv2.warpAffine(big, matrix, (900, 700))[110:590, 130:770])
    s = check_pair(a, b, 256)
    assert s.scale == pytest.approx(zoom, abs=0.01)
    flag = next(f for f in s.flags if f.code == "scale")
    assert ("zoomed in" if zoom > 1 else "zoomed out") in flag.text


def test_unzoomed_pairs_have_scale_one(tmp_path, a_image):
    a = write(tmp_path / "a.png", a_image)
    tinted = write(tmp_path / "b.png", np.clip(a_image.astype(np.int16) + 10, 0, 255).astype(np.uint8))
    s = check_pair(a, tinted, 256)
    assert s.scale == pytest.approx(1.0, abs=0.003) and "scale" not in s.flag_codes
