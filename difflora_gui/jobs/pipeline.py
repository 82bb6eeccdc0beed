"""An ordered worker pipeline: compute items on a few threads, deliver the results in input order.

A job that does the same work for many items (the merge's modules, a dataset's pairs, a video's
frames) hands them to :meth:`WorkerPool.ordered` and consumes the results as a plain iterator::

    with WorkerPool(workers=4, thread_context=single_threaded_math) as pool:
        for result in pool.ordered(compute, items, ctx=ctx):
            write(result)                       # in the order of ``items``

* **Order**: results come out in the order of ``items``, whatever order the workers finish in.
* **Bounded memory**: at most ``lookahead`` items are taken from ``items`` and not yet delivered,
  so a lazy ``items`` generator (one that reads its item from a file) is read only that far ahead.
* **Cancellation**: the job's :class:`~difflora_gui.jobs.context.JobContext` is checked before an
  item is taken and before a worker starts one; a cancel raises ``JobCancelled`` in the consumer
  once the items already running have finished (a thread cannot be interrupted).
* **Errors**: the first exception stops the pipeline: queued items are not started, no new item is
  taken, and the consumer gets the exception (with its traceback) when it reaches that item.
* **Inline items**: ``inline(item)`` true runs the item in the consumer's thread once every earlier
  item is done (the workers are idle then), for work that uses every core by itself.

``thread_context`` is entered once in each worker thread around its whole life, for settings that
belong to that thread only (the merge limits OpenMP, whose thread count is per calling thread, to
one per worker). Qt-free; the workers are plain daemon threads.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from difflora_gui.errors import JobCancelled

if TYPE_CHECKING:
    from difflora_gui.jobs.context import JobContext

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()  # tells a worker thread to end


class _Skipped(Exception):
    """An item that was never started because the pipeline was stopped (cancel or an error)."""


class WorkerPool:
    """A fixed number of worker threads that :meth:`ordered` runs items on; close it when done.

    One pool can serve several passes one after the other (the merge measures, then merges).
    """

    def __init__(
        self,
        workers: int,
        *,
        name: str = "difflora-worker",
        thread_context: Callable[[], contextlib.AbstractContextManager] | None = None,
    ):
        if workers < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {workers}")
        self.workers = int(workers)
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._thread_context = thread_context
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(self.workers)
        ]
        self._started = threading.Barrier(self.workers + 1)
        self._setup_error: BaseException | None = None
        for thread in self._threads:
            thread.start()
        self._started.wait()
        if self._setup_error is not None:
            self.close()
            raise self._setup_error

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the worker threads (after the items they run) and wait for them."""
        for _ in self._threads:
            self._tasks.put(_STOP)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def _work(self) -> None:
        context = self._thread_context() if self._thread_context is not None else contextlib.nullcontext()
        try:
            context.__enter__()
        except BaseException as exc:
            self._setup_error = exc
            self._started.wait()
            return
        self._started.wait()
        try:
            while True:
                task = self._tasks.get()
                if task is _STOP:
                    return
                future, function, item = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(function(item))
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            context.__exit__(None, None, None)

    def ordered(
        self,
        work: Callable[[T], R],
        items: Iterable[T],
        *,
        ctx: JobContext | None = None,
        lookahead: int | None = None,
        inline: Callable[[T], bool] | None = None,
    ) -> Iterator[R]:
        """``work(item)`` for every item, on the workers, yielded in the order of ``items``.

        ``lookahead``: how many items may be taken and not yet delivered (default: two per
        worker). Stopping early (``close()`` on the iterator, or leaving the ``for`` loop) lets the
        items already running finish and starts no other.
        """
        limit = max(1, int(lookahead) if lookahead is not None else 2 * self.workers)
        return self._ordered(work, items, ctx, limit, inline)

    def _ordered(self, work, items, ctx, limit, inline) -> Iterator:
        stop = threading.Event()
        failures: list[BaseException] = []

        def guarded(item):
            if stop.is_set() or (ctx is not None and ctx.cancelled):
                raise _Skipped()
            try:
                return work(item)
            except BaseException as exc:
                failures.append(exc)
                stop.set()  # the other workers start nothing more
                raise

        window: collections.deque[Future] = collections.deque()

        def deliver(future: Future) -> Any:
            try:
                return future.result()
            except _Skipped:
                if ctx is not None:
                    ctx.raise_if_cancelled()
                if failures:  # a later item failed first and stopped this one
                    raise failures[0] from None
                raise JobCancelled() from None

        try:
            for item in items:
                if ctx is not None:
                    ctx.raise_if_cancelled()
                if stop.is_set():  # an earlier item failed: deliver up to it, which raises
                    break
                if inline is not None and inline(item):
                    while window:
                        yield deliver(window.popleft())
                    yield work(item)
                    continue
                future: Future = Future()
                window.append(future)
                self._tasks.put((future, guarded, item))
                while len(window) >= limit:
                    yield deliver(window.popleft())
            while window:
                yield deliver(window.popleft())
        finally:
            stop.set()
            for future in window:
                future.cancel()
            for future in window:
                if not future.cancelled():
                    with contextlib.suppress(BaseException):  # the first error is already on its way
                        future.result()


def ordered_map(
    work: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    ctx: JobContext | None = None,
    lookahead: int | None = None,
    inline: Callable[[T], bool] | None = None,
    thread_context: Callable[[], contextlib.AbstractContextManager] | None = None,
    name: str = "difflora-worker",
) -> Iterator[R]:
    """One pass of :meth:`WorkerPool.ordered` on a pool of its own (closed when the pass ends)."""
    with WorkerPool(workers, name=name, thread_context=thread_context) as pool:
        yield from pool.ordered(work, items, ctx=ctx, lookahead=lookahead, inline=inline)
