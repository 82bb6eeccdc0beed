"""The pair-check job: both cores, progress, metrics, the scores cache (reuse, recheck, cancel)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from difflora_gui.dataset.check_job import load_scores, run_check, run_check_tool, scores_path
from difflora_gui.dataset.model import MediaItem, Pair, PairSet
from difflora_gui.dataset.store import save_pair_set
from difflora_gui.errors import UserError
from difflora_gui.jobs.recording import RecordingContext, run_sync
from tests.test_dataset_checks import scene, write


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder with pairs.json over 6 pairs: identical ones, one green, one shifted."""
    base = scene(400, 300, seed=5)
    a = base[10:290, 20:380]
    src = tmp_path / "src"
    pairs = []
    for i in range(6):
        image_a = np.ascontiguousarray(np.roll(a, 7 * i, axis=1))
        image_b = image_a
        if i == 1:
            tinted = image_a.astype(np.int16)
            tinted[:, :, 1] += 20
            image_b = np.clip(tinted, 0, 255).astype(np.uint8)
        if i == 2:
            image_b = np.ascontiguousarray(np.roll(image_a, 10, axis=1))
        pa = write(src / "A" / f"p{i}.png", image_a)
        pb = write(src / "B" / f"p{i}.png", image_b)
        pairs.append(Pair(f"p{i}", MediaItem(str(pa), "image"), MediaItem(str(pb), "image")))
    folder = tmp_path / "datasets" / "d1"
    save_pair_set(folder, PairSet(name="test", pairs=pairs))
    return folder


def test_run_check_scores_every_pair_caches_and_reports(dataset):
    ctx = RecordingContext()
    result = run_check({"dataset": str(dataset), "resolution": 128, "workers": 2}, ctx)
    assert list(result.scores) == [f"p{i}" for i in range(6)]
    assert result.checked_now == 6 and result.reused == 0
    assert "green_magenta" in result.scores["p1"].flag_codes
    assert "shift" in result.scores["p2"].flag_codes
    assert result.scores["p0"].flags == [] and result.scores["p0"].ssim == pytest.approx(1.0, abs=1e-6)
    assert result.cache_path == scores_path(dataset, 128) and result.cache_path.is_file()
    last = ctx.progress_reports[-1]
    assert last.done == last.total == 6
    metrics = {name: value for name, value, _ in ctx.metrics}
    assert metrics["pairs_flagged"] == 2 and metrics["pairs_checked"] == 6
    assert {p.pair_id for p in ctx.partials} == set(result.scores)
    assert "ssim_median" in metrics
    loaded = load_scores(dataset, 128)
    assert set(loaded) == set(result.scores)
    assert loaded["p1"].lab_drift == pytest.approx(result.scores["p1"].lab_drift)
    assert loaded["p1"].flag_codes == result.scores["p1"].flag_codes
    assert load_scores(dataset, 512) == {}


def test_opencv_threads_are_restored_after_the_run(dataset):
    before = cv2.getNumThreads()
    run_check({"dataset": str(dataset), "resolution": 96})
    assert cv2.getNumThreads() == before


def test_cache_is_reused_and_a_changed_file_is_rechecked(dataset):
    run_check({"dataset": str(dataset), "resolution": 128})
    again = run_check({"dataset": str(dataset), "resolution": 128})
    assert again.reused == 6 and again.checked_now == 0
    # change B of p0 (a green cast now): only that pair is checked again
    pair_b = dataset.parent.parent / "src" / "B" / "p0.png"
    image = cv2.imread(str(pair_b)).astype(np.int16)
    image[:, :, 1] += 25
    cv2.imwrite(str(pair_b), np.clip(image, 0, 255).astype(np.uint8))
    stat = pair_b.stat()
    os.utime(pair_b, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = run_check({"dataset": str(dataset), "resolution": 128})
    assert third.reused == 5 and third.checked_now == 1
    assert "green_magenta" in third.scores["p0"].flag_codes
    assert "green_magenta" in load_scores(dataset, 128)["p0"].flag_codes


def test_new_thresholds_reflag_cached_scores_without_rechecking(dataset):
    run_check({"dataset": str(dataset), "resolution": 128})
    loose = run_check({"dataset": str(dataset), "resolution": 128, "drift_colour": 100.0})
    assert loose.reused == 6
    assert "green_magenta" not in loose.scores["p1"].flag_codes
    assert "green_magenta" not in load_scores(dataset, 128, loose.thresholds)["p1"].flag_codes


def test_cancel_mid_run_leaves_the_previous_cache_intact(dataset):
    run_check({"dataset": str(dataset), "resolution": 128})
    cache = scores_path(dataset, 128)
    before = cache.read_bytes()
    # every pair changed: a full recheck, cancelled after its first progress reports
    for path in (dataset.parent.parent / "src" / "B").iterdir():
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    ctx = RecordingContext(cancel_after_progress=2, progress_interval_s=0.0)
    outcome = run_sync(run_check, {"dataset": str(dataset), "resolution": 128, "workers": 1}, ctx)
    assert outcome.status == "cancelled"
    assert cache.read_bytes() == before
    assert not [p for p in dataset.iterdir() if p.name.endswith(".tmp")]


def test_first_run_cancelled_writes_no_cache(dataset):
    ctx = RecordingContext(cancel_after_progress=1, progress_interval_s=0.0)
    assert run_sync(run_check, {"dataset": str(dataset), "resolution": 128}, ctx).status == "cancelled"
    assert not scores_path(dataset, 128).exists()


def test_two_folders_without_a_dataset_folder_write_nothing(tmp_path, dataset):
    src = dataset.parent.parent / "src"
    before = sorted(p.name for p in (src / "A").iterdir())
    result = run_check({"a_dir": str(src / "A"), "b_dir": str(src / "B"), "resolution": 96})
    assert result.cache_path is None and len(result.scores) == 6
    assert sorted(p.name for p in (src / "A").iterdir()) == before


def test_bad_params_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no pairs.json"):
        run_check({"dataset": str(tmp_path)})
    with pytest.raises(UserError):
        run_check({"pairs": str(tmp_path / "missing.json")})
    with pytest.raises(UserError):
        run_check({})


def test_tool_returns_a_summary_dict_and_the_plugin_registers_it(dataset):
    out = run_check_tool({"dataset_folder": str(dataset), "resolution": 96}, RecordingContext())
    assert out["summary"]["pairs"] == 6 and out["cache"].endswith("scores-96.json")
    assert any("flagged" in line for line in out["lines"])
    from difflora_gui.plugin_host import get_plugin_host

    host = get_plugin_host()
    tools = [spec for _, spec in host.call_register("difflora_register_dataset_tools")]
    spec = next(t for t in tools if t.name == "check_pairs")
    assert "resolution" in spec.params and "dataset_folder" in spec.params


def test_the_panels_params_pair_list_file_and_folder(dataset):
    """What the Dataset panel passes: the pair list's path and the folder to cache in."""
    params = {"pairs": str(dataset / "pairs.json"), "folder": str(dataset), "resolution": 96}
    result = run_check(params)
    assert result.cache_path == scores_path(dataset, 96) and len(result.scores) == 6
    assert run_check(params).reused == 6
