"""Which files a merge subtracts for each Wan2.2 A14B expert: :func:`plan_experts` (headers only).

Wan2.2 A14B has a high-noise and a low-noise expert with identical key names and shapes; a
component LoRA comes as one file for both experts (Musubi's joint mode, or any one-model LoRA),
one "combo" file holding both (ai-toolkit ``transformer_1``/``transformer_2`` prefixes), or two
files (``<name>_high_noise`` / ``<name>_low_noise``). A merge subtracts per expert:
ΔH = A_H − B_H and ΔL = A_L − B_L.

Each side (A, B) gives per-expert sources:

* ``--lora_a`` by what the file is: a split file gives its expert (from the key prefix, the name
  or the metadata: :mod:`difflora_gui.lora.experts`), a combo file both of its parts, a joint or
  one-model file stands for both experts;
* ``--lora_a_high`` / ``--lora_a_low`` give that expert explicitly and override the above (a combo
  file there gives that expert's part). This is how the GUI's expert override is expressed: a
  file marked "both experts" goes in both fields.

When neither side has expert information the merge is the one-model merge it always was: one
pair with ``expert=None``. Otherwise an expert whose two sides are both known is merged (a joint
file filling in for either side); a known expert file without its counterpart on the other side
is an error saying what to pass. ``--expert high|low`` keeps one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from difflora_gui.errors import UserError
from difflora_gui.lora.experts import EXPERT_TITLES, EXPERTS
from difflora_gui.merge.output_names import expert_output

if TYPE_CHECKING:
    from difflora_gui.merge.params import MergeParams

TITLES = EXPERT_TITLES
EXPERT_FLAGS = ("lora_a_high", "lora_a_low", "lora_b_high", "lora_b_low")
SHORT = {"high": "high-noise", "low": "low-noise"}
#: the key prefix of each expert in a combo file (for the notes)
COMBO_PREFIX = {"high": "transformer_1", "low": "transformer_2"}


@dataclass(frozen=True)
class PartRef:
    """One input of one expert: the file, which expert's part of it (combo files only), and why."""

    path: str
    part: str | None
    how: str

    @property
    def name(self) -> str:
        return Path(self.path).name

    def same_input(self, other: PartRef) -> bool:
        """The same file (symlinks and case resolved) and the same part of it."""
        from difflora_gui.fileio import same_file

        return self.part == other.part and same_file(self.path, other.path)


@dataclass(frozen=True)
class ExpertPair:
    """What one written file subtracts: ``a − b`` for ``expert`` (None: a one-model merge)."""

    expert: str | None
    a: PartRef
    b: PartRef
    output: Path | None


@dataclass
class ExpertPlan:
    pairs: list[ExpertPair]
    notes: list[str] = field(default_factory=list)
    #: warnings a user must see (e.g. only one expert of a two-expert pair is written)
    warnings: list[str] = field(default_factory=list)

    @property
    def two_expert(self) -> bool:
        return any(pair.expert is not None for pair in self.pairs)

    @property
    def experts(self) -> list[str]:
        return [pair.expert for pair in self.pairs if pair.expert is not None]

    def describe(self) -> list[str]:
        """One line per pair: ``high-noise expert: A = x (how) − B = y (how)``."""
        lines = []
        for pair in self.pairs:
            head = TITLES[pair.expert] if pair.expert else "one model"
            lines.append(f"{head}: A = {pair.a.name} ({pair.a.how}) − B = {pair.b.name} ({pair.b.how})")
        return lines


# --- what a file is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileRole:
    role: str  # "high" | "low" | "both" | "combo"
    detail: str
    source: str = "none"  # "prefix" | "name" | "metadata" | "none"


def _role_of(path: str) -> _FileRole:
    """The expert role of one input file, from its header (nothing is loaded)."""
    if not Path(path).is_file():
        return _FileRole("both", "")  # reported as missing later, by the one check that does
    from difflora_gui.lora.reader import open_lora

    with open_lora(path) as lora:
        role = lora.expert_role
    return _FileRole(str(role.role), str(role.detail or ""), str(role.source))


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class _Side:
    label: str  # "A" | "B"
    flag: str  # "lora_a"
    specific: dict[str, PartRef] = field(default_factory=dict)  # expert → its own file
    joint: PartRef | None = None  # a file for both experts (or a one-model LoRA)
    by_name_only: bool = True  # what it says of experts comes from file names alone
    by_metadata: bool = False  # its expert comes from the metadata (Musubi's ss_sd_model_name)

    def source(self, expert: str) -> PartRef | None:
        return self.specific.get(expert) or self.joint

    @property
    def has_experts(self) -> bool:
        return bool(self.specific)

    def what(self) -> str:
        """What this side holds, for a message: "a high-noise file", "a joint file", "nothing"."""
        kinds = [SHORT[e] for e in EXPERTS if e in self.specific]
        if kinds:
            return f"a {' and a '.join(kinds)} file"
        return "a joint file" if self.joint is not None else "no file"


def _side(p: MergeParams, side: str, notes: list[str], role_of: Callable[[str], _FileRole]) -> _Side:
    label = side.upper()
    result = _Side(label, f"lora_{side}")
    main = str(getattr(p, f"lora_{side}") or "")
    explicit = {e: getattr(p, f"lora_{side}_{e}") for e in EXPERTS}
    if main:
        role = role_of(main)
        result.by_name_only = role.source in ("name", "none")
        result.by_metadata = role.source == "metadata"
        if role.role == "combo":
            for e in EXPERTS:
                result.specific[e] = PartRef(main, e, f"{TITLES[e]} of a combo file ({COMBO_PREFIX[e]})")
        elif role.role in EXPERTS:
            detail = role.detail or "from the file"
            result.specific[role.role] = PartRef(main, None, f"{TITLES[role.role]}, {detail}")
        else:
            result.joint = PartRef(main, None, "joint file, used for both experts")
    for e in EXPERTS:
        path = explicit[e]
        if not path:
            continue
        role = role_of(path)
        result.by_name_only = False
        part = e if role.role == "combo" else None
        how = f"{TITLES[e]}, given with --lora_{side}_{e}"
        if role.role in EXPERTS and role.role != e:
            how += f" (the file says {TITLES[role.role]}; the flag wins)"
        replaced = result.specific.get(e)
        if replaced is not None and not replaced.same_input(PartRef(path, part, "")):
            notes.append(f"--lora_{side}_{e} replaces {replaced.name} as LoRA {label} of the {TITLES[e]}")
        result.specific[e] = PartRef(path, part, how)
    if result.joint is not None and all(e in result.specific for e in EXPERTS):
        notes.append(
            f"--lora_{side} ({result.joint.name}) is not used: both experts of LoRA {label} are given"
        )
        result.joint = None
    return result


def _missing_half(have: _Side, lack: _Side, expert: str, *, other_complete: bool) -> UserError:
    """The error for an expert file on one side without its counterpart on the other."""
    other = next(e for e in EXPERTS if e != expert)
    crossed = other in lack.specific and have.source(other) is None  # A high only, B low only
    hint = f" ({lack.label} has a {SHORT[other]} file: are they for different experts?)" if crossed else ""
    only = f", or --expert {other} to write only the {TITLES[other]}" if other_complete else ""
    one_model = ""
    if crossed and have.by_name_only and lack.by_name_only:  # "x_high"/"x_low": maybe not experts at all
        one_model = "; if both are one-model LoRAs whose names only look like experts', pass --expert none"
    return UserError(
        f"{have.label} has a {SHORT[expert]} file ({have.specific[expert].name}) but {lack.label} has none: "
        f"pass --{lack.flag}_{expert} or a joint {lack.label}{only}{hint}{one_model}"
    )


def plan_experts(params: MergeParams, *, role_of: Callable[[str], _FileRole] | None = None) -> ExpertPlan:
    """The pairs a merge subtracts, one per written file (raises ``UserError``; reads headers only).

    ``params`` should be normalized. The outputs are ``<output stem>_high_noise.safetensors`` /
    ``_low_noise`` for a two-expert merge, the output itself for a one-model merge (None when no
    output is given, as for an analysis).
    """
    p = params
    role_of = role_of or _role_of
    notes: list[str] = []
    for flag in ("lora_a", "lora_b", "lora_a_high", "lora_a_low", "lora_b_high", "lora_b_low"):
        path = getattr(p, flag)
        if path and not Path(path).is_file():
            label = flag[5].upper() + ("" if flag in ("lora_a", "lora_b") else f" ({TITLES[flag[7:]]})")
            raise UserError(f"LoRA {label} not found: {path}")
    output = Path(p.output) if p.output else None
    if p.expert == "none":  # the user says: one model, whatever the names say
        flags = [f"--{f}" for f in EXPERT_FLAGS if getattr(p, f)]
        if flags:
            raise UserError(
                f"--expert none merges --lora_a and --lora_b as one model; {', '.join(flags)} need an expert"
            )
        pair = ExpertPair(
            None,
            PartRef(p.lora_a, None, "one model (--expert none)"),
            PartRef(p.lora_b, None, "one model (--expert none)"),
            output,
        )
        _refuse_same(pair)
        return ExpertPlan([pair], notes)
    a, b = _side(p, "a", notes, role_of), _side(p, "b", notes, role_of)
    if not a.has_experts and not b.has_experts:
        if p.expert != "both":
            notes.append(f"--expert {p.expert} is ignored: neither input is for one Wan2.2 expert")
        pair = ExpertPair(None, a.joint, b.joint, output)  # type: ignore[arg-type]
        _refuse_same(pair)
        return ExpertPlan([pair], notes)

    wanted = EXPERTS if p.expert == "both" else (p.expert,)
    pairs: list[ExpertPair] = []
    absent: list[str] = []
    for expert in wanted:
        src_a, src_b = a.source(expert), b.source(expert)
        if src_a is not None and src_b is not None:
            pair = ExpertPair(expert, src_a, src_b, expert_output(output, expert) if output else None)
            _refuse_same(pair)
            pairs.append(pair)
            continue
        other = next(e for e in EXPERTS if e != expert)
        other_complete = p.expert == "both" and a.source(other) is not None and b.source(other) is not None
        if expert in a.specific:
            raise _missing_half(a, b, expert, other_complete=other_complete)
        if expert in b.specific:
            raise _missing_half(b, a, expert, other_complete=other_complete)
        absent.append(expert)
    if not pairs:
        expert = wanted[0]
        raise UserError(
            f"--expert {expert}: no input is for the {TITLES[expert]} (A has {a.what()}, B has {b.what()}); "
            f"pass --lora_a_{expert} and --lora_b_{expert}"
        )
    plan = ExpertPlan(pairs, notes)
    if absent:
        written = pairs[0]
        plan.warnings.append(
            f"only the {TITLES[written.expert]} has inputs (A has {a.what()}, B has {b.what()}): "  # type: ignore[index]
            f"writing {written.output.name if written.output else 'its file'} alone; pass --lora_a_{absent[0]} "
            f"and --lora_b_{absent[0]} for the {TITLES[absent[0]]}"
            + (
                # Musubi names the low-noise DiT in a file trained for both experts at once too
                "; if they are joint files trained for both experts, --expert none writes one file for both"
                if a.by_metadata or b.by_metadata
                else ""
            )
        )
    return plan


def planned_outputs(params: MergeParams) -> list[Path]:
    """The LoRA files a merge of ``params`` writes (one, or one per expert), before it runs.

    For an overwrite question or a free numbered name (:func:`~.output_names.numbered_free` with
    the plan's experts); raises ``UserError`` as the merge would (headers only).
    """
    plan = plan_experts(params.normalized())
    return [pair.output for pair in plan.pairs if pair.output is not None]


def _refuse_same(pair: ExpertPair) -> None:
    if pair.a.same_input(pair.b):
        where = f" for the {TITLES[pair.expert]}" if pair.expert else ""
        raise UserError(
            f"A and B are the same file{where} ({pair.a.path}): their difference is zero; choose two different LoRAs"
        )


def expert_part(source, part: str | None):
    """The LoRA source of one expert: a combo file's part, or the file itself."""
    if part is None:
        return source
    get = getattr(source, "part", None)
    if get is None:
        raise UserError(f"{source.path}: this version cannot read one expert of a combo file")
    return get(part)
