"""The merge recipe: every choice of a differential merge as one plain, JSON-serialisable object.

Its fields are declared once in :mod:`difflora_gui.merge.config` (flags, forms, help). The project
file stores it, the GUI edits it, ``to_cli_args()`` turns it into the equivalent
``python main.py merge ...`` command ("Copy command": only the settings that apply), and a re-run of the same recipe writes the
same bytes (``created`` is recorded; randomized strategies take a seed). Import-light: no torch.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from difflora_gui.config import check_dataclass, command_args
from difflora_gui.errors import UserError
from difflora_gui.merge.config import (
    COMPUTE_DTYPES,
    DEFAULT_STRATEGY,
    DTYPE_ALIASES,
    EXPERT_CHOICES,
    EXPERT_INPUTS,
    MERGE_CONFIG,
    OUTPUT_FORMATS,
    SAVE_DTYPE_ALIASES,
    SAVE_DTYPES,
    TARGET_NORMS,
)
from difflora_gui.merge.rank import RankPolicy
from difflora_gui.params import value_text

__all__ = [
    "COMPUTE_DTYPES",
    "DEFAULT_STRATEGY",
    "MERGE_CONFIG",
    "OUTPUT_FORMATS",
    "SAVE_DTYPES",
    "TARGET_NORMS",
    "MergeParams",
]

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _number_text(value: float) -> str:
    return value_text(float(value))


@dataclass
class MergeParams:
    """A differential merge: ``ΔW_out = alpha · (weight_a·ΔW_a − weight_b·ΔW_b)``, re-factored to low rank.

    The fields are declared (flags, form, help) in :data:`~difflora_gui.merge.config.MERGE_CONFIG`;
    this dataclass is checked against that declaration when the module is imported. Engine options
    live here as fields; a strategy's own options live in ``strategy_params``, keyed by strategy name
    (``{"randomized_svd": {"niter": 4}}``), and are checked against the strategy's schema when the
    merge runs.
    """

    lora_a: str = ""
    lora_b: str = ""
    # Wan2.2 A14B: per-expert inputs (each overrides what lora_a / lora_b give for its expert)
    lora_a_high: str | None = None
    lora_a_low: str | None = None
    lora_b_high: str | None = None
    lora_b_low: str | None = None
    expert: str = "both"
    output: str | None = None
    weight_a: float = 1.0
    weight_b: float = 1.0
    targets: str = "all"
    exclude_non_targeted: bool = False
    alpha: float = 1.0
    auto_alpha: bool = False
    target_norm: str = "a"
    rank: int = 4
    rank_mode: str = "fixed"
    energy: float = 0.99
    sv_ratio: float = 10.0
    sv_cumulative: float = 0.9
    strategy: str = DEFAULT_STRATEGY
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"
    save_dtype: str | None = None
    format: str = "comfy"
    overwrite: bool = False
    analyze: bool = False
    title: str | None = None
    created: str | None = None

    # --- checking --------------------------------------------------------------------------------

    def normalized(self) -> MergeParams:
        """A checked copy with spellings normalised (``fp32`` → ``float32``); raises ``UserError``."""
        p = replace(self, strategy_params={k: dict(v) for k, v in (self.strategy_params or {}).items()})
        for name in EXPERT_INPUTS:
            value = getattr(p, name)
            setattr(p, name, None if value is None or not str(value).strip() else str(value))
        if not str(p.lora_a or "").strip() and not (p.lora_a_high or p.lora_a_low):
            raise UserError("no LoRA A given (--lora_a: the LoRA with the concept)")
        if not str(p.lora_b or "").strip() and not (p.lora_b_high or p.lora_b_low):
            raise UserError("no LoRA B given (--lora_b: the LoRA without the concept)")
        p.lora_a, p.lora_b = str(p.lora_a or ""), str(p.lora_b or "")
        p.expert = str(p.expert or "both").strip().lower()
        if p.expert not in EXPERT_CHOICES:
            raise UserError(f"--expert must be one of {', '.join(EXPERT_CHOICES)}, got {self.expert!r}")
        p.output = None if p.output in (None, "") else str(p.output)
        for name in ("weight_a", "weight_b", "alpha", "energy", "sv_ratio", "sv_cumulative"):
            value = getattr(p, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise UserError(f"--{name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise UserError(f"--{name} must be a finite number, got {value!r}")
            setattr(p, name, value)
        try:
            p.rank = int(p.rank)
        except (TypeError, ValueError):
            raise UserError(f"--rank must be an integer, got {self.rank!r}") from None
        p.rank_mode = str(p.rank_mode).lower()
        p.rank_policy()  # raises UserError for a bad rank, mode or dynamic parameter
        if p.weight_a == 0 and p.weight_b == 0:
            raise UserError("--weight_a and --weight_b are both 0: the difference would be empty")
        p.target_norm = str(p.target_norm).strip().lower()
        if p.target_norm not in TARGET_NORMS:
            try:
                value = float(p.target_norm)
            except ValueError:
                raise UserError(
                    f"--target_norm must be a, b, mean or a positive number, got {self.target_norm!r}"
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"--target_norm must be a positive number, got {self.target_norm!r}")
            p.target_norm = _number_text(value)
        if not p.auto_alpha and p.alpha == 0:
            raise UserError("--alpha 0 would write an all-zero LoRA")
        p.device = str(p.device).strip().lower()
        if not _DEVICE_RE.match(p.device):
            raise UserError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        p.dtype = DTYPE_ALIASES.get(str(p.dtype).lower(), str(p.dtype).lower())
        if p.dtype not in COMPUTE_DTYPES:
            raise UserError(f"--dtype (the compute precision) must be float32 or float64, got {self.dtype!r}")
        if p.save_dtype not in (None, ""):
            p.save_dtype = SAVE_DTYPE_ALIASES.get(str(p.save_dtype).lower(), str(p.save_dtype).lower())
            if p.save_dtype not in SAVE_DTYPES:
                raise UserError(
                    f"--save_dtype must be one of {', '.join(SAVE_DTYPES)}, got {self.save_dtype!r}"
                )
        else:
            p.save_dtype = None
        p.format = str(p.format).lower()
        if p.format not in OUTPUT_FORMATS:
            raise UserError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.format!r}")
        p.strategy = str(p.strategy or DEFAULT_STRATEGY)
        p.targets = str(p.targets or "all").strip() or "all"
        if not isinstance(p.strategy_params, Mapping) or not all(
            isinstance(v, Mapping) for v in p.strategy_params.values()
        ):
            raise UserError("strategy_params must map strategy names to {parameter: value} tables")
        if p.created is not None:
            p.created = str(p.created)
        return p

    def rank_policy(self) -> RankPolicy:
        return RankPolicy(
            mode=self.rank_mode,
            rank=int(self.rank),
            energy=float(self.energy),
            sv_ratio=float(self.sv_ratio),
            sv_cumulative=float(self.sv_cumulative),
        )

    # --- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategy_params"] = {k: dict(v) for k, v in sorted(self.strategy_params.items())}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown merge recipe field(s): {', '.join(unknown)}")
        return cls(**dict(data))

    @classmethod
    def coerce(cls, value: MergeParams | Mapping[str, Any]) -> MergeParams:
        """Accept a ``MergeParams`` or its JSON form (what a job runner or project file holds)."""
        if isinstance(value, MergeParams):
            return value
        if isinstance(value, Mapping):
            return cls.from_json(value)
        raise TypeError(f"expected MergeParams or a dict, got {type(value).__name__}")

    # --- command line ----------------------------------------------------------------------------

    def to_cli_args(self) -> list[str]:
        """The arguments of the equivalent ``python main.py merge ...`` command (``merge`` first).

        Only the fields that apply (``energy`` only in energy mode, ``target_norm`` only with auto
        alpha, ...) and differ from their defaults, as the declaration says; then the strategies'
        parameters as ``--param``.
        """
        args = ["merge", *command_args(MERGE_CONFIG, asdict(self))]
        for strategy_name, values in sorted(self.strategy_params.items()):
            for key, value in sorted(values.items()):
                qualified = key if strategy_name == self.strategy else f"{strategy_name}.{key}"
                args += ["--param", f"{qualified}={value_text(value)}"]
        return args

    def to_command_line(
        self, python: str | None = None, script: str = "main.py", *, windows: bool | None = None
    ) -> str:
        """The command as one line to paste in a terminal: the running interpreter (``sys.executable``
        unless ``python`` is given), the script, then :meth:`to_cli_args`; quoted for the platform
        (``windows``: double quotes as ``subprocess.list2cmdline`` writes them; otherwise POSIX
        shell quoting). ``windows`` defaults to the platform this runs on."""
        argv = [python or sys.executable or "python", script, *self.to_cli_args()]
        windows = sys.platform == "win32" if windows is None else windows
        return subprocess.list2cmdline(argv) if windows else shlex.join(argv)

    # --- display ---------------------------------------------------------------------------------

    def describe(self) -> str:
        weights = (
            ""
            if (self.weight_a, self.weight_b) == (1.0, 1.0)
            else f" (weights {self.weight_a:g}, {self.weight_b:g})"
        )
        alpha = f"auto alpha (target {self.target_norm})" if self.auto_alpha else f"alpha {self.alpha:g}"
        return (
            f"A − B{weights}, targets '{self.targets}', {self.rank_policy().describe()}, {alpha}, "
            f"strategy {self.strategy}"
        )


check_dataclass(MergeParams, MERGE_CONFIG)
