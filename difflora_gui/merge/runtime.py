"""Where and how a merge computes: the torch device, thread limits, quiet loggers."""

from __future__ import annotations

import contextlib
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
def torch_threads(count: int):
    """Run a block with ``count`` intra-op torch threads (restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def blas_threads(count: int):
    """Limit numpy's BLAS to ``count`` threads in a block (the Gram products go through numpy).

    Without it each of the merge's workers starts BLAS threads of its own and they compete for
    the same cores (measured: no gain from the second worker).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield


@contextlib.contextmanager
def gc_paused():
    """Hold off Python's cyclic garbage collector for a block (reference counting still frees).

    A merge allocates thousands of small objects per second and creates no reference cycles worth
    collecting; with torch's large heap loaded, each collection walks it all (measured: about 3 %
    of a 14B merge's CPU time).
    """
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
