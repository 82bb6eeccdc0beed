"""The pair-check job: score every pair of a set on all cores, cached in the dataset's folder.

``run_check(params, ctx)`` takes a pair set — a dataset folder holding ``pairs.json``, a pair-list
JSON file or table (``pairs``), or two folders to pair (``a_dir``, ``b_dir``, ``rule``) — plus the
:data:`~difflora_gui.dataset.check_config.CHECK_CONFIG` values (resolution, thresholds, workers).

* Pairs are checked on a :class:`~difflora_gui.jobs.pipeline.WorkerPool` (threads: OpenCV and
  numpy release the GIL; paths go in, numbers come out). OpenCV's own thread pool is set to one
  thread for the run (it does not speed up per-pair work and would oversubscribe the cores) and
  restored after.
* Progress with ETA through ``ctx.progress``, each new pair's scores through ``ctx.partial``
  (a ``PairScores``), the summary's figures through ``ctx.metric``; a cancel stops at the next
  pair and writes nothing.
* The scores are cached in ``scores-<resolution>.json`` in the dataset folder (``folder``, or the
  dataset folder given as the pair set), keyed by pair id and the items' paths, sizes and
  modification times: a changed or replaced item is rechecked, the rest reused. The cache also
  records the resize method; a different one rechecks everything. Written atomically at the end.
  Source folders are never written to.
* Flags are re-derived from the numbers under the thresholds of this run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflora_gui.dataset.check_config import CheckThresholds
from difflora_gui.dataset.check_summary import SetSummary, summarize
from difflora_gui.dataset.checks import RESIZE_METHOD, PairScores, check_pair, flag_scores
from difflora_gui.dataset.model import PairSet
from difflora_gui.errors import UserError
from difflora_gui.fileio import atomic_write_json
from difflora_gui.jobs.context import JobContext, NullContext

SCORES_FORMAT = "difflora-pair-scores"
SCORES_VERSION = 1
PAIRS_FILE = "pairs.json"


def scores_path(folder: str | Path, resolution: int) -> Path:
    return Path(folder) / f"scores-{int(resolution)}.json"


@dataclass
class CheckResult:
    scores: dict[str, PairScores]
    summary: SetSummary
    pair_set: PairSet
    cache_path: Path | None = None
    reused: int = 0
    checked_now: int = 0
    thresholds: CheckThresholds = field(default_factory=CheckThresholds)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_json(),
            "thresholds": self.thresholds.to_json(),
            "cache": None if self.cache_path is None else str(self.cache_path),
            "reused": self.reused,
            "checked_now": self.checked_now,
            "pairs": {pid: s.to_json() for pid, s in self.scores.items()},
        }


# --- the cache -------------------------------------------------------------------------------


def _item_key(path: str) -> list[Any]:
    try:
        st = os.stat(path)
        return [str(path), int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
        return [str(path), -1, -1]


def pair_key(pair) -> dict[str, list[Any]]:
    """What a cached score depends on: each item's path, size and modification time."""
    return {"a": _item_key(pair.a.path), "b": _item_key(pair.b.path)}


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != SCORES_FORMAT:
        return {}
    return data


def load_scores(
    folder: str | Path, resolution: int, thresholds: CheckThresholds | None = None
) -> dict[str, PairScores]:
    """The cached scores of a dataset folder at ``resolution`` by pair id ({} when none).

    With ``thresholds`` the flags are re-derived under them; otherwise they are the stored ones.
    """
    data = _read_cache(scores_path(folder, resolution))
    result: dict[str, PairScores] = {}
    for pair_id, entry in dict(data.get("pairs", {})).items():
        try:
            scores = PairScores.from_json(entry["scores"])
        except (KeyError, TypeError, ValueError, UserError):
            continue
        if thresholds is not None:
            scores.flags = flag_scores(scores, thresholds)
        result[str(pair_id)] = scores
    return result


def _cached_entries(path: Path, resize_method: str) -> dict[str, Any]:
    data = _read_cache(path)
    if data.get("resize_method") != resize_method or data.get("version", 0) > SCORES_VERSION:
        return {}
    return dict(data.get("pairs", {}))


# --- the pair set ----------------------------------------------------------------------------


def _load_pair_set_file(path: Path) -> PairSet:
    from difflora_gui.dataset.store import load_pair_set

    return load_pair_set(path)


def pair_two_folders(a_dir, b_dir, rule: str = "stem", ctx: JobContext | None = None) -> PairSet:
    """Pair two folders with the shared pairing rules (:func:`difflora_gui.dataset.pairing.pair_folders`)."""
    from difflora_gui.dataset.pairing import pair_folders

    return pair_folders(Path(a_dir), Path(b_dir), rule=rule or "stem", ctx=ctx)


def resolve_pair_set(params: Mapping[str, Any], ctx: JobContext | None = None) -> tuple[PairSet, Path | None]:
    """(pair set, cache folder or None) from the job's params.

    ``pairs``: a ``PairSet``, its JSON table, a pair-list file or a dataset folder; ``dataset`` /
    ``dataset_folder``: a dataset folder (its ``pairs.json`` when no ``pairs`` is given, and where
    the scores are cached); ``folder``: where to cache instead; or ``a_dir`` + ``b_dir`` (+ ``rule``).
    """
    dataset = params.get("dataset") or params.get("dataset_folder") or None
    folder = params.get("folder") or dataset or None
    cache = Path(folder) if folder else None
    source = params.get("pairs") or dataset
    if isinstance(source, PairSet):
        return source, cache
    if isinstance(source, Mapping):
        return PairSet.from_json(dict(source)), cache
    if source:
        path = Path(source)
        if path.is_dir():
            if not (path / PAIRS_FILE).is_file():
                raise UserError(f"no {PAIRS_FILE} in the dataset folder", path=path)
            return _load_pair_set_file(path / PAIRS_FILE), cache or path
        if not path.is_file():
            raise UserError("pair list not found", path=path)
        return _load_pair_set_file(path), cache
    if params.get("a_dir") and params.get("b_dir"):
        pair_set = pair_two_folders(params["a_dir"], params["b_dir"], params.get("rule") or "stem", ctx)
        return pair_set, cache
    raise UserError("the pair check needs a dataset folder, a pair list, or two folders (a_dir, b_dir)")


# --- the job ---------------------------------------------------------------------------------


@contextlib.contextmanager
def single_threaded_opencv():
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def worker_count(requested: int) -> int:
    return max(1, int(requested) if requested else (os.cpu_count() or 1))


def run_check(params: Mapping[str, Any], ctx: JobContext | None = None) -> CheckResult:
    """Check every complete pair of a set; see the module docstring for ``params``."""
    from difflora_gui.jobs.pipeline import WorkerPool

    ctx = ctx if ctx is not None else NullContext()
    params = dict(params or {})
    thresholds = CheckThresholds.from_values(params)
    resolution = thresholds.resolution
    pair_set, folder = resolve_pair_set(params, ctx)
    pairs = [p for p in pair_set.pairs if p.complete]
    cache_file = scores_path(folder, resolution) if folder is not None else None
    cached = _cached_entries(cache_file, RESIZE_METHOD) if cache_file is not None else {}
    keys = {p.id: pair_key(p) for p in pairs}
    scores: dict[str, PairScores] = {}
    todo = []
    for pair in pairs:
        entry = cached.get(pair.id)
        if isinstance(entry, dict) and entry.get("key") == keys[pair.id]:
            try:
                value = PairScores.from_json(entry["scores"])
            except (KeyError, TypeError, ValueError, UserError):
                value = None
            if value is not None and value.resolution == resolution:
                value.pair_id = pair.id
                value.flags = flag_scores(value, thresholds)
                scores[pair.id] = value
                continue
        todo.append(pair)
    reused = len(scores)
    total = len(pairs)
    ctx.status(
        f"checking {len(todo)} of {total} pairs at {resolution} px"
        + (f" ({reused} unchanged, from the cache)" if reused else "")
    )
    flagged = sum(1 for s in scores.values() if s.flags)
    done = reused
    ctx.progress(done, total, f"{flagged} flagged")

    def work(pair):
        return check_pair(pair.a, pair.b, resolution, thresholds, pair_id=pair.id)

    if todo:
        with (
            single_threaded_opencv(),
            WorkerPool(worker_count(thresholds.workers), name="pair-check") as pool,
        ):
            for pair, value in zip(todo, pool.ordered(work, todo, ctx=ctx), strict=True):
                scores[pair.id] = value
                done += 1
                flagged += bool(value.flags)
                ctx.partial(value)  # the panel shows each pair's scores as they arrive
                ctx.progress(done, total, f"{flagged} flagged")
    ctx.raise_if_cancelled()
    ordered = {p.id: scores[p.id] for p in pairs}
    summary = summarize(ordered, thresholds)
    if cache_file is not None and (todo or set(cached) != set(ordered)):
        _write_cache(cache_file, ordered, keys, thresholds)
        ctx.artifact("file", cache_file, what="pair scores", resolution=resolution)
    ctx.metric("pairs_checked", summary.checked)
    ctx.metric("pairs_flagged", summary.flagged)
    if "ssim" in summary.distributions:
        ctx.metric("ssim_median", summary.distributions["ssim"].median)
        ctx.metric("ssim_min", summary.distributions["ssim"].minimum)
    for line in summary.set_level:
        ctx.log(line)
    return CheckResult(ordered, summary, pair_set, cache_file, reused, len(todo), thresholds)


def _write_cache(path: Path, scores: dict[str, PairScores], keys, thresholds: CheckThresholds) -> None:
    data = {
        "format": SCORES_FORMAT,
        "version": SCORES_VERSION,
        "resolution": thresholds.resolution,
        "resize_method": RESIZE_METHOD,
        "thresholds": thresholds.to_json(),
        "pairs": {pid: {"key": keys[pid], "scores": s.to_json()} for pid, s in scores.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)


def run_check_tool(params: Mapping[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The "check pairs" dataset tool: :func:`run_check`, returning a summary dict."""
    result = run_check(params, ctx)
    return {
        "summary": result.summary.to_json(),
        "lines": result.summary.lines(),
        "cache": None if result.cache_path is None else str(result.cache_path),
        "reused": result.reused,
        "checked_now": result.checked_now,
    }
