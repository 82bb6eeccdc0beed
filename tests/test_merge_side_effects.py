"""A merge changes nothing for the rest of the process, and reports its phases and files as events."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path

import torch
from test_merge_support import make_modules, params, write
from threadpoolctl import threadpool_info

from difflora_gui.jobs import RecordingContext
from difflora_gui.jobs.events import Artifact, Status, event_from_json
from difflora_gui.jobs.pipeline import WorkerPool
from difflora_gui.merge.engine import analysis_paths, run_merge
from difflora_gui.merge.runtime import merge_worker_threads, numpy_blas_single_threaded


def _pools() -> dict[str, int]:
    """This thread's view of every native thread pool threadpoolctl knows (BLAS, OpenMP)."""
    return {f"{d['user_api']}:{d['filepath']}": d["num_threads"] for d in threadpool_info()}


def _snapshot() -> dict:
    return {"torch": torch.get_num_threads(), "gc": gc.isenabled(), "pools": _pools()}


def _pair(tmp_path: Path):
    a = write(tmp_path / "a.safetensors", make_modules(1))
    b = write(tmp_path / "b.safetensors", make_modules(2))
    return a, b


class _Sampling(RecordingContext):
    """Samples the calling thread's settings, and a freshly started thread's, at every progress report."""

    def __init__(self):
        super().__init__(progress_interval_s=0.0)
        self.here: list[dict] = []
        self.fresh: list[int] = []

    def _emit_progress(self, progress) -> None:
        super()._emit_progress(progress)
        if len(self.here) < 5:
            self.here.append(_snapshot())
            seen: list[int] = []
            probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
            probe.start()
            probe.join()
            self.fresh.extend(seen)


def test_a_merge_leaves_torch_threads_gc_and_thread_pools_as_they_were(tmp_path):
    a, b = _pair(tmp_path)
    before = _snapshot()
    ctx = _Sampling()
    run_merge(params(tmp_path, a, b, rank=4), ctx)
    assert _snapshot() == before
    assert ctx.here, "the merge reported no progress to sample"
    blas = {key for key in before["pools"] if key.startswith("blas:")}
    for during in ctx.here:
        # the job's own thread keeps torch's thread count, the collector and OpenMP as they were
        assert during["torch"] == before["torch"]
        assert during["gc"] is before["gc"]
        assert {k: v for k, v in during["pools"].items() if k not in blas} == {
            k: v for k, v in before["pools"].items() if k not in blas
        }
        # numpy's OpenBLAS has one count for the process: held at 1 during a CPU merge (runtime.py)
        assert all(during["pools"][key] == 1 for key in blas)
    # a thread started while the merge runs (a preview job's, say) gets torch's normal thread count
    assert ctx.fresh and all(count == before["torch"] for count in ctx.fresh)


def test_a_merge_on_another_thread_does_not_change_this_threads_settings(tmp_path):
    a, b = _pair(tmp_path)
    before = _snapshot()
    samples: list[dict] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def merge():
        try:
            for i in range(3):
                run_merge(params(tmp_path, a, b, rank=4, output=str(tmp_path / f"out{i}.safetensors")))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    job = threading.Thread(target=merge)
    job.start()
    while not done.wait(0.005):
        samples.append(_snapshot())
    job.join()
    assert not errors
    assert samples
    for during in samples:
        assert during["torch"] == before["torch"]
        assert during["gc"] is before["gc"]
    assert _snapshot() == before


def test_merge_worker_threads_limit_only_the_worker_thread():
    before = torch.get_num_threads()
    fresh: list[int] = []

    def probe(_):
        torch.ones(512, 512) @ torch.ones(512, 512)  # a parallel kernel ran in this thread
        return torch.get_num_threads()

    with WorkerPool(2, thread_context=merge_worker_threads) as pool:
        assert list(pool.ordered(probe, range(6))) == [1] * 6
        thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert torch.get_num_threads() == before
    assert fresh == [before]
    assert torch.get_num_threads() == before


def test_overlapping_blas_limits_never_leave_the_process_changed():
    before = _pools()
    blas = [key for key in before if key.startswith("blas:")]
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, dict] = {}

    def first():
        with numpy_blas_single_threaded():
            first_in.set()
            second_in.wait(5)
            seen["both"] = _pools()
        first_out.set()

    def second():
        first_in.wait(5)
        with numpy_blas_single_threaded():
            second_in.set()
            first_out.wait(5)  # the first job ends while this one still runs
            seen["second alone"] = _pools()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(seen["both"][key] == 1 for key in blas)
    # the owner put back what it found; the job riding along changed nothing
    assert seen["second alone"] == before
    assert _pools() == before
    with numpy_blas_single_threaded():  # and a later job can take it again
        assert all(_pools()[key] == 1 for key in blas)
    with numpy_blas_single_threaded(enabled=False):
        assert _pools() == before
    assert _pools() == before


def test_the_merge_reports_its_phases_and_files_as_events(tmp_path):
    a, b = _pair(tmp_path)
    ctx = RecordingContext()
    p = params(tmp_path, a, b, rank=4, analyze=True)
    result = run_merge(p, ctx)
    statuses = [e.text for e in ctx.events if isinstance(e, Status)]
    assert statuses[0] == "reading the inputs"
    assert any(text.startswith("merging 30 modules") for text in statuses)
    assert statuses[-1] == "writing out.safetensors"
    artifacts = [e for e in ctx.events if isinstance(e, Artifact)]
    lora = [e for e in artifacts if e.kind == "lora"]
    assert [e.path for e in lora] == [p.output] == [result.output]
    assert lora[0].meta["merged"] == result.merged == 30
    assert lora[0].meta["alpha"] == result.alpha
    json_path, csv_path = analysis_paths(p.output)
    files = [(e.path, e.meta["role"], e.meta["format"]) for e in artifacts if e.kind == "file"]
    assert files == [(str(json_path), "analysis", "json"), (str(csv_path), "analysis", "csv")]
    assert all(Path(e.path).is_file() for e in artifacts)
    # every event survives the event log's JSON round trip
    for event in ctx.events:
        assert event_from_json(json.loads(json.dumps(event.to_json()))) == event


def test_a_merge_without_analysis_files_names_only_the_lora(tmp_path):
    a, b = _pair(tmp_path)
    ctx = RecordingContext()
    run_merge(params(tmp_path, a, b, rank=4), ctx)
    assert [e.kind for e in ctx.events if isinstance(e, Artifact)] == ["lora"]
