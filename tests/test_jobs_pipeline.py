"""The ordered worker pipeline (difflora_gui.jobs.pipeline): order, bounded look-ahead, cancel, errors."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from difflora_gui.errors import BadFileError, JobCancelled
from difflora_gui.jobs.context import NullContext
from difflora_gui.jobs.pipeline import WorkerPool, ordered_map


def test_results_come_in_input_order_when_workers_finish_out_of_order():
    finished: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.001)  # every third item is slow: later ones overtake it
        with lock:
            finished.append(i)
        return i * i

    results = list(ordered_map(work, range(30), workers=4))
    assert results == [i * i for i in range(30)]
    assert finished != sorted(finished)  # they really did finish out of order


def test_lookahead_bounds_the_items_taken_but_not_delivered():
    taken: list[int] = []

    def items():
        for i in range(40):
            taken.append(i)
            yield i

    delivered = 0
    most_ahead = 0
    with WorkerPool(3) as pool:
        for result in pool.ordered(lambda i: i, items(), lookahead=5):
            assert result == delivered
            delivered += 1
            time.sleep(0.002)  # a slow consumer: the workers would run far ahead if they could
            most_ahead = max(most_ahead, len(taken) - delivered)
    assert delivered == 40
    assert most_ahead <= 5


def test_cancel_stops_promptly_and_running_items_finish():
    ctx = NullContext()
    started: list[int] = []
    running = threading.Event()
    finished: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        running.set()
        time.sleep(0.05)
        finished.append(i)
        return i

    results = []
    begin = time.perf_counter()
    with pytest.raises(JobCancelled):
        for result in ordered_map(work, range(1000), workers=2, ctx=ctx, lookahead=4):
            results.append(result)
            if len(results) == 3:
                ctx.cancel()
    assert time.perf_counter() - begin < 2.0  # 1000 items × 50 ms would take 25 s
    assert len(started) <= 3 + 4 + 2  # delivered + look-ahead + the ones running when it was seen
    assert sorted(finished) == sorted(started)  # nothing was left running behind the consumer's back


def test_an_exception_in_one_item_fails_the_run_and_stops_the_others():
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        if i == 5:
            raise BadFileError("broken.safetensors", "module 5 is damaged")
        time.sleep(0.01)
        return i

    results = []
    with pytest.raises(BadFileError, match="module 5 is damaged"):
        for result in ordered_map(work, range(500), workers=3, lookahead=6):
            results.append(result)
    assert results == [0, 1, 2, 3, 4]  # everything before the failed item was delivered, in order
    assert max(started) < 5 + 6 + 3  # no item was started long after the failure


def test_inline_items_run_in_the_consumer_thread_after_the_earlier_ones():
    consumer = threading.current_thread()
    where: dict[int, threading.Thread] = {}
    done: list[int] = []

    def work(i: int) -> int:
        if i == 7:
            assert sorted(done) == list(range(7))  # the workers are idle when an inline item runs
        where[i] = threading.current_thread()
        time.sleep(0.002)
        done.append(i)
        return i

    assert list(ordered_map(work, range(12), workers=3, inline=lambda i: i == 7)) == list(range(12))
    assert where[7] is consumer
    assert all(where[i] is not consumer for i in where if i != 7)


def test_thread_context_is_entered_once_per_worker_thread_and_left_at_close():
    entered: list[str] = []
    left: list[str] = []

    @contextlib.contextmanager
    def per_thread():
        entered.append(threading.current_thread().name)
        yield
        left.append(threading.current_thread().name)

    with WorkerPool(3, name="test-pool", thread_context=per_thread) as pool:
        assert list(pool.ordered(lambda i: i + 1, range(20))) == list(range(1, 21))
        assert list(pool.ordered(lambda i: -i, range(5))) == [0, -1, -2, -3, -4]  # a second pass
        assert sorted(entered) == ["test-pool-0", "test-pool-1", "test-pool-2"]
        assert left == []
    assert sorted(left) == sorted(entered)
    assert not any(t.name.startswith("test-pool") for t in threading.enumerate())


def test_a_failing_thread_context_fails_the_pool_start():
    @contextlib.contextmanager
    def broken():
        raise RuntimeError("no thread settings here")
        yield

    with pytest.raises(RuntimeError, match="no thread settings"):
        WorkerPool(2, name="broken-pool", thread_context=broken)
    time.sleep(0.05)
    assert not any(t.name.startswith("broken-pool") for t in threading.enumerate())


def test_leaving_the_loop_early_starts_no_more_items():
    started: list[int] = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.005)
        return i

    with WorkerPool(2) as pool:
        results = pool.ordered(work, range(200), lookahead=4)
        for result in results:
            if result == 2:
                break
        results.close()
        count = len(started)
        time.sleep(0.05)
        assert len(started) == count <= 2 + 1 + 4
