"""A merge's plan: which modules exist where, which are targeted, how each is read, the output dtype.

Made from the two opened inputs before any tensor is read (:func:`make_plan`). The strategy and
the rank policy travel with it, so the per-module math (:mod:`.module_math`) and the output
(:mod:`.output`) see one description of the merge.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from difflora_gui.errors import UserError

if TYPE_CHECKING:
    from difflora_gui.lora.model import LoraSource
    from difflora_gui.merge.params import MergeParams
    from difflora_gui.merge.rank import RankPolicy
    from difflora_gui.merge.strategies import ResolvedStrategy

#: the dtype order used to pick the output dtype when the inputs disagree (most precise wins)
_DTYPE_RANK = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}


@dataclass
class MergePlan:
    """The modules of a merge and how to read them; built by :func:`make_plan`."""

    src_a: LoraSource
    src_b: LoraSource
    strategy: ResolvedStrategy
    policy: RankPolicy
    names: list[str]  # every module of A or B, in the model's order
    only_in_a: list[str]
    only_in_b: list[str]
    selector: Any
    targeted: set[str]
    save_dtype: str = "float32"
    only_in_a_set: set[str] = field(default_factory=set)
    only_in_b_set: set[str] = field(default_factory=set)

    def __post_init__(self):
        self.only_in_a_set = set(self.only_in_a)
        self.only_in_b_set = set(self.only_in_b)

    @property
    def workers_read(self) -> bool:
        """Whether both files allow loads from several threads (then the workers read their modules)."""
        return all(getattr(s, "thread_safe_loads", False) for s in (self.src_a, self.src_b))

    def shape(self, name: str) -> tuple[int, ...]:
        source = self.src_b if name in self.only_in_b_set else self.src_a
        return tuple(source.shape(name))

    def load(self, name: str):
        """(module of A or None, module of B or None); lazily mapped tensors, nothing is computed."""
        return (
            _load_from(self.src_a, name) if name not in self.only_in_b_set else None,
            _load_from(self.src_b, name) if name not in self.only_in_a_set else None,
        )

    def is_factored(self, name: str) -> bool:
        """Whether the module stays factored (every input is a plain LoRA pair): decides the lane."""
        for source, absent in ((self.src_a, self.only_in_b_set), (self.src_b, self.only_in_a_set)):
            if name in absent:
                continue
            kind = getattr(source, "kind", None)
            if kind is None or kind(name) != "lora" or len(self.shape(name)) != 2:
                return False
        return True

    def block_weight(self, name: str) -> float:
        """The targets selector's weight for a module's block (``blocks=0-9@0.5``); 1 without one."""
        weight_of = getattr(self.selector, "weight_of", None)
        return 1.0 if weight_of is None else float(weight_of(name))

    def ranks(self, name: str) -> tuple[int, int]:
        """The input ranks of a module (0 where it is absent or the reader cannot tell)."""
        return (
            _rank_of(self.src_a, name) if name not in self.only_in_b_set else 0,
            _rank_of(self.src_b, name) if name not in self.only_in_a_set else 0,
        )


def make_plan(
    params: MergeParams,
    src_a: LoraSource,
    src_b: LoraSource,
    *,
    strategy: ResolvedStrategy,
    policy: RankPolicy,
    warn: Callable[[str], None],
) -> MergePlan:
    """Pair the modules of A and B, check shapes, pick targets (no tensor is read here)."""
    from difflora_gui.fileio import same_file
    from difflora_gui.lora import wan_layout
    from difflora_gui.lora.selector import parse_selector

    p = params
    names_a, names_b = set(src_a.names()), set(src_b.names())
    names = wan_layout.sorted_names(names_a | names_b)
    for name in names:
        if name in names_a and name in names_b:
            shape_a, shape_b = tuple(src_a.shape(name)), tuple(src_b.shape(name))
            if shape_a != shape_b:
                raise UserError(
                    f"module {name} is {shape_text(shape_a)} in {src_a.path} but {shape_text(shape_b)} in "
                    f"{src_b.path}: the two LoRAs are for different models "
                    f"({src_a.model.label} vs {src_b.model.label})"
                )
    if same_file(p.lora_a, p.lora_b):
        warn("LoRA A and LoRA B are the same file: their difference is zero")
    model_a, model_b = src_a.model, src_b.model
    if (model_a.dim, model_a.variant) != (model_b.dim, model_b.variant) and model_a.variant != "unknown":
        warn(f"A is for {model_a.label} but B is for {model_b.label}")
    selector = parse_selector(p.targets)  # weight-0 blocks are not in it: they are not targeted
    plan = MergePlan(
        src_a=src_a,
        src_b=src_b,
        strategy=strategy,
        policy=policy,
        names=names,
        only_in_a=[n for n in names if n not in names_b],
        only_in_b=[n for n in names if n not in names_a],
        selector=selector,
        targeted=set(selector.select(names)),
    )
    for label, only in (("A", plan.only_in_a), ("B", plan.only_in_b)):
        if only:
            shown = ", ".join(only[:6]) + (f" (+{len(only) - 6} more)" if len(only) > 6 else "")
            warn(f"{len(only)} module(s) only in {label}, counted as zero in the other: {shown}")
    if p.format != "comfy":
        odd = [n for n in names if n in plan.targeted and len(plan.shape(n)) != 2]
        if odd:
            raise UserError(
                f"module {odd[0]} is a full-weight or bias change ({shape_text(plan.shape(odd[0]))}), which "
                f"only the comfy format can hold; use --format comfy or leave it out of --target_blocks"
            )
    plan.save_dtype = p.save_dtype or _input_dtype(src_a, src_b)
    return plan


def _input_dtype(src_a, src_b) -> str:
    stored = set()
    for source in (src_a, src_b):
        dtype_of = getattr(source, "dtype", None)
        for name in source.names():
            if dtype_of is not None:
                stored.add(str(dtype_of(name)).removeprefix("torch."))
            else:
                stored.add(str(source.load(name).up.dtype).removeprefix("torch."))
            break
    stored = {d if d in _DTYPE_RANK else "bfloat16" for d in stored}  # fp8 inputs: write bfloat16
    chosen = next(iter(stored)) if len(stored) == 1 else "float32"
    return "float32" if chosen == "float64" else chosen


def _load_from(source, name: str):
    # Low-rank factors are checked for NaN/Inf on their float64 Gram diagonals (free: the merge
    # computes them anyway) instead of by a separate pass over every value.
    kind = getattr(source, "kind", None)
    if _accepts_check_finite(source) and kind is not None and kind(name) == "lora":
        return source.load(name, check_finite=False)
    return source.load(name)


_CHECK_FINITE_CACHE: dict[type, bool] = {}


def _accepts_check_finite(source) -> bool:
    kind = type(source)
    if kind not in _CHECK_FINITE_CACHE:
        try:
            _CHECK_FINITE_CACHE[kind] = "check_finite" in inspect.signature(source.load).parameters
        except (TypeError, ValueError):
            _CHECK_FINITE_CACHE[kind] = False
    return _CHECK_FINITE_CACHE[kind]


def _rank_of(source, name: str) -> int:
    rank = getattr(source, "rank", None)
    return int(rank(name)) if rank is not None else 0


def shape_text(shape) -> str:
    return "×".join(str(s) for s in shape) or "scalar"
