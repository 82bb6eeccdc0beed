"""The Dataset panel's import as a job: pair two folders, or take one folder as set A (Qt-free).

``run_import(params, ctx)`` with ``params = {"a_dir", "b_dir" (None or "": one folder as A),
"rule", "name", "resolution"}`` pairs with :func:`difflora_gui.dataset.pairing.pair_folders` (or
:func:`~difflora_gui.dataset.pairing.import_single`) and returns the
:class:`~difflora_gui.dataset.model.PairSet`. Source folders are only read. Storing the set (its
``pairs.json`` and the project's dataset record) is the caller's, in the thread that owns the project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from difflora_gui.dataset import pairing
from difflora_gui.dataset.model import PairSet
from difflora_gui.errors import UserError


def run_import(params: dict[str, Any], ctx) -> PairSet:
    """Pair (or take one folder as A) and return the set; see the module docstring."""
    a_dir = Path(params["a_dir"])
    b_dir = Path(params["b_dir"]) if params.get("b_dir") else None
    rule = str(params.get("rule") or "stem")
    for folder in (a_dir, b_dir):
        if folder is not None and not folder.is_dir():
            raise UserError("the folder does not exist (or is not a folder)", path=folder)
    ctx.status(f"Pairing {a_dir.name}" + (f" with {b_dir.name}" if b_dir else " (set A only)"))
    if b_dir is None:
        pair_set = pairing.import_single(a_dir, ctx=ctx)
    else:
        pair_set = pairing.pair_folders(a_dir, b_dir, rule=rule, ctx=ctx)
    ctx.raise_if_cancelled()
    if params.get("name"):
        pair_set.name = str(params["name"])
    if params.get("resolution"):
        pair_set.resolution = int(params["resolution"])
    ctx.log(
        f"{len(pair_set.pairs)} pairs, {len(pair_set.unpaired_a)} unpaired in A, "
        f"{len(pair_set.unpaired_b)} unpaired in B, {len(pair_set.skipped)} skipped"
    )
    return pair_set


def run_copy_into_project(params: dict, ctx) -> PairSet:
    """Job: copy every item of ``params["pairs"]`` into ``params["folder"]`` (``a/``, ``b/``).

    Returns the set pointing at the copies; the sources are only read (see
    :func:`difflora_gui.dataset.store.copy_into_workspace`).
    """
    from difflora_gui.dataset.store import copy_into_workspace

    pair_set = params["pairs"]
    folder = Path(params["folder"])
    ctx.status(f"Copying {len(pair_set.pairs)} pairs into the project folder {folder}")
    copied = copy_into_workspace(pair_set, folder, ctx=ctx)
    ctx.raise_if_cancelled()
    return copied
