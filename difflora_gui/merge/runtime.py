"""Where and how a merge computes: the torch device, its workers' thread limits, quiet loggers."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from difflora_gui.errors import UserError

if TYPE_CHECKING:
    import torch


def resolve_device(text: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch device; a clear ``UserError`` when CUDA is missing."""
    import torch

    text = str(text).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if not text.startswith("cuda"):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {text!r}")
    if torch.version.cuda is None:
        raise UserError(
            f"--device {text}: this PyTorch build has no CUDA support (it is a CPU-only build); use --device cpu"
        )
    if not torch.cuda.is_available():
        raise UserError(
            f"--device {text}: no CUDA GPU is available (driver missing or no NVIDIA GPU); use --device cpu"
        )
    device = torch.device(text)
    index = device.index if device.index is not None else 0
    if index >= torch.cuda.device_count():
        raise UserError(
            f"--device {text}: there is no CUDA device {index} ({torch.cuda.device_count()} found)"
        )
    return torch.device("cuda", index)


def merge_workers() -> int:
    """Worker threads a merge uses: one per core, at most 4 (factored modules are small work)."""
    import os

    return max(1, min(4, os.cpu_count() or 1))


def warm_up_linalg(device: torch.device) -> None:
    """Run each CUDA linear-algebra routine the strategies use once, here, in one thread.

    torch loads its CUDA solver libraries lazily on the first call, and two threads making that
    first call at the same time fail ("lazy wrapper should be called at most once"): the merge's
    workers would, with randomized SVD's QR for instance.
    """
    import torch

    if device.type != "cuda":
        return
    small = torch.eye(3, device=device) + 0.5
    torch.linalg.qr(small)
    torch.linalg.svd(small, full_matrices=False)
    torch.linalg.eigh(small)


@contextlib.contextmanager
def quiet_logger(name: str):
    """Drop a logger's records for the duration of a block (messages already reported elsewhere)."""
    import logging

    logger = logging.getLogger(name)

    def drop(record) -> bool:
        return False

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@contextlib.contextmanager
def merge_worker_threads():
    """For the life of one merge worker thread: one OpenMP thread for torch, in this thread only.

    Factored modules are small work; several single-threaded workers beat one multi-threaded
    stream, and single-threaded math makes every re-run give the same bits. The OpenMP thread
    count (``nthreads-var``) belongs to the calling thread in GNU, LLVM and Intel OpenMP alike, and
    torch's CPU kernels and its MKL follow it: this limits the worker and no other thread.
    ``torch.set_num_threads`` is not used: it also changes a process-wide default that every
    thread started later picks up (a preview job's, say).

    torch sets a thread's OpenMP count on that thread's first parallel call; asking for it here
    makes that happen now, before the limit, instead of later over it.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


_blas_lock = threading.Lock()
_blas_owner: threading.Thread | None = None


@contextlib.contextmanager
def numpy_blas_single_threaded(enabled: bool = True):
    """numpy's BLAS on one thread while a CPU merge runs (the Gram products go through numpy).

    Without it every worker's product wakes the BLAS's own threads, which compete with the
    workers for the same cores and serialise on the BLAS's lock (measured on 2 cores: a 14B
    merge took 70 s instead of 2-5 s). This is the one setting a merge cannot confine to its
    threads: OpenBLAS (numpy's) keeps a single thread count for the whole process. So it is set
    and put back by one owner, the job thread that took it first, with threadpoolctl (which
    restores exactly the value it found); a job that overlaps it rides along and changes nothing,
    so overlapping jobs can never leave it changed. GPU merges do not take it (their products run
    on the GPU), and torch's own threads are not touched (see :func:`merge_worker_threads`).
    """
    global _blas_owner

    if not enabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        owner = _blas_owner is None
        if owner:
            _blas_owner = threading.current_thread()
    if not owner:
        yield
        return
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        with _blas_lock:
            _blas_owner = None
